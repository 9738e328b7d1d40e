package fleet

import "time"

// InferenceEvent is one inference request as a model server reports it (a
// row of inference_events). Slices are referenced by whoever receives the
// event, not copied: do not change them after handing it over.
type InferenceEvent struct {
	Time                      time.Time
	Model, ModelVersion       string
	RequestID                 string
	LatencyMs                 float64
	Status                    string
	FeatureNames              []string
	FeatureValues             []float64
	CatFeatureNames           []string
	CatFeatureValues          []string
	Prediction                float64
	PredictionClass           string
	SampleRate                float64
	Service                   string
	Datacenter, Cluster, Node string
	GPUUUID, Namespace, Pod   string
	// FeatureUpdateNames and FeatureUpdateTimes (Unix seconds, aligned) say
	// when the served value of each listed feature was last updated, for
	// the features whose emitter reports it (fleetwatch.feature_updated_at).
	FeatureUpdateNames []string
	FeatureUpdateTimes []float64
}

// Detection is what a detector raised for one entity in one window (a row of
// detections); alerting correlates detections into incidents.
type Detection struct {
	Time, WindowStart       time.Time
	Detector, Class         string
	Severity                string
	EntityType, Entity, Key string
	Topology
	GPUUUID, GPUModel, Job       string
	Model, ModelVersion, Feature string
	Value, Threshold, PValue     float64
	Action, Summary, Evidence    string
}
