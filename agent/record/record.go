// Package record is the agent's in-process telemetry model: what every source
// (NVML, dcgm-exporter, inference logs, the simulator) hands to the pipeline,
// one Batch at a time. The pipeline encodes batches as OTLP per
// docs/TELEMETRY.md.
package record

import (
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Resource says where telemetry comes from; it becomes OTLP resource attributes.
type Resource struct {
	Datacenter, Row, Rack, Cluster string
	// Host is the node's host name (host.name, dcgm-exporter's Hostname).
	Host string
	// K8sNode is the Kubernetes node name, when different from Host.
	K8sNode string
	// Service is service.name (default "fleetwatch-agent").
	Service string
}

// GPU identifies a GPU (or MIG instance) with dcgm-exporter's labels.
type GPU struct {
	Index, UUID, PCIBusID, Device, ModelName string
	// MIGInstance and MIGProfile are set for a MIG GPU instance.
	MIGInstance, MIGProfile string
	// DriverVersion is the NVIDIA driver's version, when known.
	DriverVersion string
	// Workload using the GPU, when known.
	Workload
}

// Workload is what uses a GPU: a Kubernetes pod and container, a job, and
// who it is charged to (docs/TELEMETRY.md, "Workload labels").
type Workload struct {
	Namespace, Pod, PodUID, Container, Job string
	// HPCUser and HPCAccount run a Slurm job (telemetry.LabelHPCUser,
	// LabelHPCAccount).
	HPCUser, HPCAccount string
	// The pod's cost-attribution labels (telemetry.WorkloadLabels).
	Team, Model, ModelVersion, CostCenter, Environment string
}

// Labels are the workload's labels as the contract names them, the empty
// ones left out, in a fixed order.
func (w *Workload) Labels(dst [][2]string) [][2]string {
	for _, l := range [...][2]string{
		{telemetry.LabelNamespace, w.Namespace}, {telemetry.LabelPod, w.Pod}, {telemetry.LabelPodUID, w.PodUID},
		{telemetry.LabelContainer, w.Container}, {telemetry.LabelJob, w.Job},
		{telemetry.LabelHPCUser, w.HPCUser}, {telemetry.LabelHPCAccount, w.HPCAccount},
		{telemetry.LabelTeam, w.Team}, {telemetry.LabelModel, w.Model}, {telemetry.LabelModelVersion, w.ModelVersion},
		{telemetry.LabelCostCenter, w.CostCenter}, {telemetry.LabelEnvironment, w.Environment},
	} {
		if l[1] != "" {
			dst = append(dst, l)
		}
	}
	return dst
}

// Label is an extra data-point label (err_code, rank, ...).
type Label struct{ Key, Value string }

// Sample is one value of one field for one GPU.
type Sample struct {
	// Field indexes telemetry.Fields; -1 means a field outside the catalog,
	// named by Name with kind Kind.
	Field int16
	Name  string
	Kind  telemetry.Kind
	// GPU indexes Batch.GPUs; -1 for node-level samples.
	GPU int32
	// Link is the NVLink link index for per-link fields, else -1.
	Link  int16
	Value float64
	Extra []Label
}

// MetricName is the sample's metric name.
func (s *Sample) MetricName() string {
	if s.Field >= 0 {
		return telemetry.Fields[s.Field].Name
	}
	return s.Name
}

// MetricKind is the sample's kind.
func (s *Sample) MetricKind() telemetry.Kind {
	if s.Field >= 0 {
		return telemetry.Fields[s.Field].Kind
	}
	return s.Kind
}

// Event is a discrete GPU event (XID, ECC error, clock-event change, ...).
type Event struct {
	Time    time.Time
	GPU     int32
	Kind    string // telemetry.GPUEvent*
	Code    int64
	Count   uint32
	Message string
}

// Feature is one model input of an inference event.
type Feature struct {
	Name string
	// Num holds a numeric value; Str a categorical one when IsCat.
	Num     float64
	Str     string
	IsCat   bool
	Missing bool
}

// Inference is one model-serving request.
type Inference struct {
	Time                time.Time
	Model, ModelVersion string
	RequestID           string
	LatencyMs           float64
	Status              string
	Features            []Feature
	Prediction          float64
	HasPrediction       bool
	PredictionClass     string
	SampleRate          float64
	GPUUUID             string
	// FeatureUpdatedAt says when served feature values were last updated,
	// as the model server wrote it (docs/TELEMETRY.md): the agent forwards
	// it and the collector validates it.
	FeatureUpdatedAt []FeatureUpdate
}

// FeatureUpdate is one entry of an inference's feature_updated_at: Unix
// seconds (IsStr false) or a string, meant to be RFC 3339.
type FeatureUpdate struct {
	Name  string
	Unix  float64
	Str   string
	IsStr bool
}

// DelayedLabel is ground truth for an earlier request.
type DelayedLabel struct {
	Time       time.Time
	Model      string
	RequestID  string
	Label      string
	LabelValue float64
	HasValue   bool
}

// Outcome is a request's business outcome (engagement, a click, a
// conversion; issue 20 item 1).
type Outcome struct {
	Time         time.Time
	Model        string
	ModelVersion string
	RequestID    string
	// Outcome names what happened; empty is the contract's default
	// (engagement). Success is false for an explicit miss.
	Outcome  string
	Success  bool
	Value    float64
	HasValue bool
}

// Deployment marks a model version change.
type Deployment struct {
	Time                                 time.Time
	Model, ModelVersion, PreviousVersion string
	Change, Environment, Actor, Note     string
}

// Batch is what a source hands to the pipeline. After the hand-off the
// pipeline owns it; the source must not touch it again.
type Batch struct {
	Source   string
	Resource *Resource
	Time     time.Time
	GPUs     []GPU
	Samples  []Sample
	Events   []Event

	Inferences  []Inference
	Labels      []DelayedLabel
	Outcomes    []Outcome
	Deployments []Deployment

	// Commit, when set, is called once the batch is safely in the disk
	// buffer (the log tailer persists its read offsets then).
	Commit func()
}

// Len counts the records in the batch.
func (b *Batch) Len() int {
	return len(b.Samples) + len(b.Events) + len(b.Inferences) + len(b.Labels) + len(b.Outcomes) + len(b.Deployments)
}

// Sink receives batches. Sources call it; ownership passes with the call.
type Sink interface {
	Put(b *Batch)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(*Batch)

// Put implements Sink.
func (f SinkFunc) Put(b *Batch) { f(b) }

// Keep decides edge sampling for a request: deterministic in the request id,
// so that a delayed label is kept exactly when its prediction was.
func Keep(requestID string, rate float64) bool {
	if rate >= 1 {
		return true
	}
	if rate <= 0 {
		return false
	}
	return float64(xxhash.Sum64String(requestID)>>11)/float64(1<<53) < rate
}
