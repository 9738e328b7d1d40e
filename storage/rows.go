package storage

import (
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/fleetwatch/fleetwatch/fleet"
)

//go:generate go run ./rowgen -o rows_gen.go

// Row types and the Append methods that turn them into the columns of the
// builders rowgen generates from storage/schema (rows_gen.go): one builder
// per table Go code writes, one slice per column, named and ordered as the
// table defines them. A builder appends rows into slices it reuses after
// Reset, so a steady stream of batches allocates nothing per row. The types
// rows share with the stages (topology, GPU identity, labels, inference
// events, detections) are package fleet's. Slices inside a row (labels,
// features) are referenced, not copied: do not change them after Append.

// HashSeries returns a stable 64-bit id for a series from its identifying
// parts (metric name, then label names and values in a fixed order).
func HashSeries(parts ...string) uint64 {
	d := xxhash.New()
	for _, p := range parts {
		_, _ = d.WriteString(p)
		_, _ = d.Write([]byte{0xff})
	}
	return d.Sum64()
}

// The column groups several tables share (docs/SCHEMA.md): each appends one
// row's group to the builder's columns of that group.

func appendTopology(t *fleet.Topology, datacenter, row, rack, node, cluster *[]string) {
	*datacenter = append(*datacenter, t.Datacenter)
	*row = append(*row, t.Row)
	*rack = append(*rack, t.Rack)
	*node = append(*node, t.Node)
	*cluster = append(*cluster, t.Cluster)
}

func appendGPU(g *fleet.GPUIdentity, index, uuid, pci, device, model, instance, profile *[]string) {
	*index = append(*index, g.Index)
	*uuid = append(*uuid, g.UUID)
	*pci = append(*pci, g.PCIBusID)
	*device = append(*device, g.Device)
	*model = append(*model, g.ModelName)
	*instance = append(*instance, g.Instance)
	*profile = append(*profile, g.Profile)
}

func appendK8s(k *fleet.Kubernetes, namespace, pod, container *[]string) {
	*namespace = append(*namespace, k.Namespace)
	*pod = append(*pod, k.Pod)
	*container = append(*container, k.Container)
}

func appendLabels(l *fleet.Labels, keys, values *[][]string) {
	*keys = append(*keys, nonNil(l.Keys))
	*values = append(*values, nonNil(l.Values))
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// GPUSample is one row of gpu_samples.
type GPUSample struct {
	Time   time.Time
	Metric string
	Series uint64
	Value  float64
	// Delta is a counter's increase since the previous sample of the series.
	Delta float64
}

// Append adds one row.
func (b *GPUSampleBlock) Append(s *GPUSample) {
	b.Ts = append(b.Ts, s.Time.Unix())
	b.Metric = append(b.Metric, s.Metric)
	b.Series = append(b.Series, s.Series)
	b.Value = append(b.Value, s.Value)
	b.Delta = append(b.Delta, s.Delta)
	b.TsNs = append(b.TsNs, uint32(s.Time.Nanosecond()))
}

// GPUSeries is one row of gpu_series: what a series of gpu_samples is.
type GPUSeries struct {
	Series  uint64
	Metric  string
	Counter bool
	fleet.Topology
	GPU                 fleet.GPUIdentity
	K8s                 fleet.Kubernetes
	Job                 string
	Labels              fleet.Labels
	FirstSeen, LastSeen time.Time
}

// Append adds one row.
func (b *GPUSeriesBlock) Append(s *GPUSeries) {
	b.Series = append(b.Series, s.Series)
	b.Metric = append(b.Metric, s.Metric)
	b.Counter = append(b.Counter, boolByte(s.Counter))
	appendTopology(&s.Topology, &b.Datacenter, &b.Row, &b.Rack, &b.Node, &b.Cluster)
	appendGPU(&s.GPU, &b.GPU, &b.UUID, &b.PCIBusID, &b.Device, &b.ModelName, &b.GPUInstance, &b.GPUProfile)
	appendK8s(&s.K8s, &b.Namespace, &b.Pod, &b.Container)
	b.Job = append(b.Job, s.Job)
	appendLabels(&s.Labels, &b.LabelKeys, &b.LabelValues)
	b.FirstSeen = append(b.FirstSeen, s.FirstSeen.Unix())
	b.LastSeen = append(b.LastSeen, s.LastSeen.Unix())
}

// GPUEvent is one row of gpu_events.
type GPUEvent struct {
	Time    time.Time
	Event   string
	Code    int64
	Count   uint32
	Message string
	Source  string
	fleet.Topology
	GPU    fleet.GPUIdentity
	K8s    fleet.Kubernetes
	Job    string
	Labels fleet.Labels
}

// Append adds one row; a zero Count is stored as 1.
func (b *GPUEventBlock) Append(e *GPUEvent) {
	b.Ts = append(b.Ts, e.Time.Unix())
	b.Event = append(b.Event, e.Event)
	b.Code = append(b.Code, e.Code)
	b.Count = append(b.Count, max(e.Count, 1))
	b.Message = append(b.Message, e.Message)
	b.Source = append(b.Source, e.Source)
	appendTopology(&e.Topology, &b.Datacenter, &b.Row, &b.Rack, &b.Node, &b.Cluster)
	appendGPU(&e.GPU, &b.GPU, &b.UUID, &b.PCIBusID, &b.Device, &b.ModelName, &b.GPUInstance, &b.GPUProfile)
	appendK8s(&e.K8s, &b.Namespace, &b.Pod, &b.Container)
	b.Job = append(b.Job, e.Job)
	appendLabels(&e.Labels, &b.LabelKeys, &b.LabelValues)
}

// Append adds one row; a zero SampleRate is stored as 1 (not sampled).
func (b *InferenceEventBlock) Append(e *fleet.InferenceEvent) {
	rate := e.SampleRate
	if rate == 0 {
		rate = 1
	}
	b.Ts = append(b.Ts, e.Time.Unix())
	b.Model = append(b.Model, e.Model)
	b.ModelVersion = append(b.ModelVersion, e.ModelVersion)
	b.RequestID = append(b.RequestID, e.RequestID)
	b.LatencyMs = append(b.LatencyMs, e.LatencyMs)
	b.Status = append(b.Status, e.Status)
	b.FeatureNames = append(b.FeatureNames, nonNil(e.FeatureNames))
	b.FeatureValues = append(b.FeatureValues, nonNil(e.FeatureValues))
	b.CatFeatureNames = append(b.CatFeatureNames, nonNil(e.CatFeatureNames))
	b.CatFeatureValues = append(b.CatFeatureValues, nonNil(e.CatFeatureValues))
	b.Prediction = append(b.Prediction, e.Prediction)
	b.PredictionClass = append(b.PredictionClass, e.PredictionClass)
	b.SampleRate = append(b.SampleRate, rate)
	b.Service = append(b.Service, e.Service)
	b.Datacenter = append(b.Datacenter, e.Datacenter)
	b.Cluster = append(b.Cluster, e.Cluster)
	b.Node = append(b.Node, e.Node)
	b.GPUUUID = append(b.GPUUUID, e.GPUUUID)
	b.Namespace = append(b.Namespace, e.Namespace)
	b.Pod = append(b.Pod, e.Pod)
	b.FeatureUpdateNames = append(b.FeatureUpdateNames, nonNil(e.FeatureUpdateNames))
	b.FeatureUpdateTs = append(b.FeatureUpdateTs, nonNil(e.FeatureUpdateTimes))
}

// DelayedLabel is one row of delayed_labels.
type DelayedLabel struct {
	Time       time.Time
	Model      string
	RequestID  string
	Label      string
	LabelValue float64
}

// Append adds one row.
func (b *DelayedLabelBlock) Append(l *DelayedLabel) {
	b.Ts = append(b.Ts, l.Time.Unix())
	b.Model = append(b.Model, l.Model)
	b.RequestID = append(b.RequestID, l.RequestID)
	b.Label = append(b.Label, l.Label)
	b.LabelValue = append(b.LabelValue, l.LabelValue)
}

// BusinessOutcome is one row of business_outcomes: a request's business
// outcome (issue 20 item 1).
type BusinessOutcome struct {
	Time                time.Time
	Model, ModelVersion string
	RequestID           string
	// Outcome names what happened (click, conversion); Success is false
	// for an explicit miss.
	Outcome string
	Success bool
	// Value is an optional magnitude; NaN when not sent.
	Value              float64
	Service, Namespace string
}

// Append adds one row.
func (b *BusinessOutcomeBlock) Append(o *BusinessOutcome) {
	var ok uint8
	if o.Success {
		ok = 1
	}
	b.Ts = append(b.Ts, o.Time.Unix())
	b.Model = append(b.Model, o.Model)
	b.ModelVersion = append(b.ModelVersion, o.ModelVersion)
	b.RequestID = append(b.RequestID, o.RequestID)
	b.Outcome = append(b.Outcome, o.Outcome)
	b.Success = append(b.Success, ok)
	b.Value = append(b.Value, o.Value)
	b.Service = append(b.Service, o.Service)
	b.Namespace = append(b.Namespace, o.Namespace)
}

// ModelDeployment is one row of model_deployments.
type ModelDeployment struct {
	Time                                 time.Time
	Model, ModelVersion, PreviousVersion string
	Change, Environment, Actor, Note     string
}

// Append adds one row.
func (b *ModelDeploymentBlock) Append(d *ModelDeployment) {
	b.Ts = append(b.Ts, d.Time.Unix())
	b.Model = append(b.Model, d.Model)
	b.ModelVersion = append(b.ModelVersion, d.ModelVersion)
	b.PreviousVersion = append(b.PreviousVersion, d.PreviousVersion)
	b.Change = append(b.Change, d.Change)
	b.Environment = append(b.Environment, d.Environment)
	b.Actor = append(b.Actor, d.Actor)
	b.Note = append(b.Note, d.Note)
}

// Span is one row of spans.
type Span struct {
	Start                          time.Time
	Duration                       time.Duration
	TraceID, SpanID, ParentSpanID  string
	Service, Operation, Kind       string
	StatusCode, StatusMessage      string
	Model, ModelVersion, RequestID string
	Cluster, Node                  string
	K8s                            fleet.Kubernetes
	Attributes                     fleet.Labels
}

// Append adds one row.
func (b *SpanBlock) Append(s *Span) {
	b.Ts = append(b.Ts, s.Start.Unix())
	b.StartNs = append(b.StartNs, s.Start.UnixNano())
	b.DurationNs = append(b.DurationNs, int64(s.Duration))
	b.TraceID = append(b.TraceID, s.TraceID)
	b.SpanID = append(b.SpanID, s.SpanID)
	b.ParentSpanID = append(b.ParentSpanID, s.ParentSpanID)
	b.Service = append(b.Service, s.Service)
	b.Operation = append(b.Operation, s.Operation)
	b.Kind = append(b.Kind, s.Kind)
	b.StatusCode = append(b.StatusCode, s.StatusCode)
	b.StatusMessage = append(b.StatusMessage, s.StatusMessage)
	b.Model = append(b.Model, s.Model)
	b.ModelVersion = append(b.ModelVersion, s.ModelVersion)
	b.RequestID = append(b.RequestID, s.RequestID)
	b.Cluster = append(b.Cluster, s.Cluster)
	b.Node = append(b.Node, s.Node)
	appendK8s(&s.K8s, &b.Namespace, &b.Pod, &b.Container)
	appendLabels(&s.Attributes, &b.AttrKeys, &b.AttrValues)
}

// Append adds one row: d, raised by the evaluation source (the engine
// detector or its share).
func (b *DetectionBlock) Append(d *fleet.Detection, source string) {
	b.Ts = append(b.Ts, d.Time.Unix())
	b.WindowStart = append(b.WindowStart, d.WindowStart.Unix())
	b.Detector = append(b.Detector, d.Detector)
	b.Class = append(b.Class, d.Class)
	b.Severity = append(b.Severity, d.Severity)
	b.EntityType = append(b.EntityType, d.EntityType)
	b.Entity = append(b.Entity, d.Entity)
	b.Key = append(b.Key, d.Key)
	appendTopology(&d.Topology, &b.Datacenter, &b.Row, &b.Rack, &b.Node, &b.Cluster)
	b.GPUUUID = append(b.GPUUUID, d.GPUUUID)
	b.GPUModel = append(b.GPUModel, d.GPUModel)
	b.Job = append(b.Job, d.Job)
	b.Model = append(b.Model, d.Model)
	b.ModelVersion = append(b.ModelVersion, d.ModelVersion)
	b.Feature = append(b.Feature, d.Feature)
	b.Value = append(b.Value, d.Value)
	b.Threshold = append(b.Threshold, d.Threshold)
	b.PValue = append(b.PValue, d.PValue)
	b.Action = append(b.Action, d.Action)
	b.Summary = append(b.Summary, d.Summary)
	b.Evidence = append(b.Evidence, d.Evidence)
	b.Source = append(b.Source, source)
}
