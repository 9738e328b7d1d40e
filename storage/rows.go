package storage

import (
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/fleetwatch/fleetwatch/fleet"
)

// Row types and their columnar builders, one per telemetry table. A builder
// appends rows column by column into slices it reuses after Reset, so a steady
// stream of batches allocates nothing per row. The types rows share with the
// stages (topology, GPU identity, labels, inference events, detections) are
// package fleet's. Slices inside a row (labels,
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

type columns struct {
	names []string
	data  []any
}

func (c *columns) add(name string, data any) {
	c.names = append(c.names, name)
	c.data = append(c.data, data)
}

func (c *columns) block(table string) Block {
	return Block{Table: table, Columns: c.names, Data: c.data}
}

type topologyCols struct{ datacenter, row, rack, node, cluster []string }

func (c *topologyCols) append(t *fleet.Topology) {
	c.datacenter = append(c.datacenter, t.Datacenter)
	c.row = append(c.row, t.Row)
	c.rack = append(c.rack, t.Rack)
	c.node = append(c.node, t.Node)
	c.cluster = append(c.cluster, t.Cluster)
}

func (c *topologyCols) reset() {
	c.datacenter, c.row, c.rack, c.node, c.cluster = c.datacenter[:0], c.row[:0], c.rack[:0], c.node[:0], c.cluster[:0]
}

func (c *topologyCols) addTo(cs *columns) {
	cs.add("datacenter", c.datacenter)
	cs.add("row", c.row)
	cs.add("rack", c.rack)
	cs.add("node", c.node)
	cs.add("cluster", c.cluster)
}

type gpuCols struct{ index, uuid, pci, device, model, instance, profile []string }

func (c *gpuCols) append(g *fleet.GPUIdentity) {
	c.index = append(c.index, g.Index)
	c.uuid = append(c.uuid, g.UUID)
	c.pci = append(c.pci, g.PCIBusID)
	c.device = append(c.device, g.Device)
	c.model = append(c.model, g.ModelName)
	c.instance = append(c.instance, g.Instance)
	c.profile = append(c.profile, g.Profile)
}

func (c *gpuCols) reset() {
	c.index, c.uuid, c.pci, c.device = c.index[:0], c.uuid[:0], c.pci[:0], c.device[:0]
	c.model, c.instance, c.profile = c.model[:0], c.instance[:0], c.profile[:0]
}

func (c *gpuCols) addTo(cs *columns) {
	cs.add("gpu", c.index)
	cs.add("uuid", c.uuid)
	cs.add("pci_bus_id", c.pci)
	cs.add("device", c.device)
	cs.add("model_name", c.model)
	cs.add("gpu_instance", c.instance)
	cs.add("gpu_profile", c.profile)
}

type k8sCols struct{ namespace, pod, container []string }

func (c *k8sCols) append(k *fleet.Kubernetes) {
	c.namespace = append(c.namespace, k.Namespace)
	c.pod = append(c.pod, k.Pod)
	c.container = append(c.container, k.Container)
}

func (c *k8sCols) reset() {
	c.namespace, c.pod, c.container = c.namespace[:0], c.pod[:0], c.container[:0]
}

func (c *k8sCols) addTo(cs *columns) {
	cs.add("namespace", c.namespace)
	cs.add("pod", c.pod)
	cs.add("container", c.container)
}

type labelCols struct{ keys, values [][]string }

func (c *labelCols) append(l *fleet.Labels) {
	c.keys = append(c.keys, nonNil(l.Keys))
	c.values = append(c.values, nonNil(l.Values))
}

func (c *labelCols) reset() { c.keys, c.values = c.keys[:0], c.values[:0] }

func (c *labelCols) addTo(cs *columns, prefix string) {
	cs.add(prefix+"_keys", c.keys)
	cs.add(prefix+"_values", c.values)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
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

// GPUSampleBlock builds gpu_samples blocks.
type GPUSampleBlock struct {
	ts           []int64
	tsNS         []uint32
	metric       []string
	series       []uint64
	value, delta []float64
}

// Append adds one row.
func (b *GPUSampleBlock) Append(s *GPUSample) {
	b.ts = append(b.ts, s.Time.Unix())
	b.tsNS = append(b.tsNS, uint32(s.Time.Nanosecond()))
	b.metric = append(b.metric, s.Metric)
	b.series = append(b.series, s.Series)
	b.value = append(b.value, s.Value)
	b.delta = append(b.delta, s.Delta)
}

// Len is the number of rows.
func (b *GPUSampleBlock) Len() int { return len(b.ts) }

// Reset empties the builder, keeping its capacity.
func (b *GPUSampleBlock) Reset() {
	b.ts, b.tsNS, b.metric, b.series, b.value, b.delta = b.ts[:0], b.tsNS[:0], b.metric[:0], b.series[:0], b.value[:0], b.delta[:0]
}

// Block returns the rows as a Block sharing the builder's memory.
func (b *GPUSampleBlock) Block() Block {
	var cs columns
	cs.add("ts", b.ts)
	cs.add("ts_ns", b.tsNS)
	cs.add("metric", b.metric)
	cs.add("series", b.series)
	cs.add("value", b.value)
	cs.add("delta", b.delta)
	return cs.block("gpu_samples")
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

// GPUSeriesBlock builds gpu_series blocks.
type GPUSeriesBlock struct {
	series          []uint64
	metric, job     []string
	counter         []uint8
	topo            topologyCols
	gpu             gpuCols
	k8s             k8sCols
	labels          labelCols
	first, lastSeen []int64
}

// Append adds one row.
func (b *GPUSeriesBlock) Append(s *GPUSeries) {
	b.series = append(b.series, s.Series)
	b.metric = append(b.metric, s.Metric)
	b.counter = append(b.counter, boolByte(s.Counter))
	b.topo.append(&s.Topology)
	b.gpu.append(&s.GPU)
	b.k8s.append(&s.K8s)
	b.job = append(b.job, s.Job)
	b.labels.append(&s.Labels)
	b.first = append(b.first, s.FirstSeen.Unix())
	b.lastSeen = append(b.lastSeen, s.LastSeen.Unix())
}

// Len is the number of rows.
func (b *GPUSeriesBlock) Len() int { return len(b.series) }

// Reset empties the builder, keeping its capacity.
func (b *GPUSeriesBlock) Reset() {
	b.series, b.metric, b.job, b.counter, b.first, b.lastSeen = b.series[:0], b.metric[:0], b.job[:0], b.counter[:0], b.first[:0], b.lastSeen[:0]
	b.topo.reset()
	b.gpu.reset()
	b.k8s.reset()
	b.labels.reset()
}

// Block returns the rows as a Block sharing the builder's memory.
func (b *GPUSeriesBlock) Block() Block {
	var cs columns
	cs.add("series", b.series)
	cs.add("metric", b.metric)
	cs.add("counter", b.counter)
	b.topo.addTo(&cs)
	b.gpu.addTo(&cs)
	b.k8s.addTo(&cs)
	cs.add("job", b.job)
	b.labels.addTo(&cs, "label")
	cs.add("first_seen", b.first)
	cs.add("last_seen", b.lastSeen)
	return cs.block("gpu_series")
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

// GPUEventBlock builds gpu_events blocks.
type GPUEventBlock struct {
	ts                     []int64
	event, message, source []string
	code                   []int64
	count                  []uint32
	topo                   topologyCols
	gpu                    gpuCols
	k8s                    k8sCols
	job                    []string
	labels                 labelCols
}

// Append adds one row; a zero Count is stored as 1.
func (b *GPUEventBlock) Append(e *GPUEvent) {
	b.ts = append(b.ts, e.Time.Unix())
	b.event = append(b.event, e.Event)
	b.code = append(b.code, e.Code)
	b.count = append(b.count, max(e.Count, 1))
	b.message = append(b.message, e.Message)
	b.source = append(b.source, e.Source)
	b.topo.append(&e.Topology)
	b.gpu.append(&e.GPU)
	b.k8s.append(&e.K8s)
	b.job = append(b.job, e.Job)
	b.labels.append(&e.Labels)
}

// Len is the number of rows.
func (b *GPUEventBlock) Len() int { return len(b.ts) }

// Reset empties the builder, keeping its capacity.
func (b *GPUEventBlock) Reset() {
	b.ts, b.event, b.code, b.count, b.message, b.source, b.job = b.ts[:0], b.event[:0], b.code[:0], b.count[:0], b.message[:0], b.source[:0], b.job[:0]
	b.topo.reset()
	b.gpu.reset()
	b.k8s.reset()
	b.labels.reset()
}

// Block returns the rows as a Block sharing the builder's memory.
func (b *GPUEventBlock) Block() Block {
	var cs columns
	cs.add("ts", b.ts)
	cs.add("event", b.event)
	cs.add("code", b.code)
	cs.add("count", b.count)
	cs.add("message", b.message)
	cs.add("source", b.source)
	b.topo.addTo(&cs)
	b.gpu.addTo(&cs)
	b.k8s.addTo(&cs)
	cs.add("job", b.job)
	b.labels.addTo(&cs, "label")
	return cs.block("gpu_events")
}

// InferenceEventBlock builds inference_events blocks.
type InferenceEventBlock struct {
	ts                                                    []int64
	model, version, requestID, status, predClass, service []string
	latency, prediction, sampleRate                       []float64
	featNames, catNames, catValues                        [][]string
	featValues                                            [][]float64
	datacenter, cluster, node, gpuUUID, namespace, pod    []string
}

// Append adds one row; a zero SampleRate is stored as 1 (not sampled).
func (b *InferenceEventBlock) Append(e *fleet.InferenceEvent) {
	rate := e.SampleRate
	if rate == 0 {
		rate = 1
	}
	b.ts = append(b.ts, e.Time.Unix())
	b.model = append(b.model, e.Model)
	b.version = append(b.version, e.ModelVersion)
	b.requestID = append(b.requestID, e.RequestID)
	b.latency = append(b.latency, e.LatencyMs)
	b.status = append(b.status, e.Status)
	b.featNames = append(b.featNames, nonNil(e.FeatureNames))
	b.featValues = append(b.featValues, nonNil(e.FeatureValues))
	b.catNames = append(b.catNames, nonNil(e.CatFeatureNames))
	b.catValues = append(b.catValues, nonNil(e.CatFeatureValues))
	b.prediction = append(b.prediction, e.Prediction)
	b.predClass = append(b.predClass, e.PredictionClass)
	b.sampleRate = append(b.sampleRate, rate)
	b.service = append(b.service, e.Service)
	b.datacenter = append(b.datacenter, e.Datacenter)
	b.cluster = append(b.cluster, e.Cluster)
	b.node = append(b.node, e.Node)
	b.gpuUUID = append(b.gpuUUID, e.GPUUUID)
	b.namespace = append(b.namespace, e.Namespace)
	b.pod = append(b.pod, e.Pod)
}

// Len is the number of rows.
func (b *InferenceEventBlock) Len() int { return len(b.ts) }

// Reset empties the builder, keeping its capacity.
func (b *InferenceEventBlock) Reset() {
	b.ts = b.ts[:0]
	b.model, b.version, b.requestID, b.status, b.predClass, b.service = b.model[:0], b.version[:0], b.requestID[:0], b.status[:0], b.predClass[:0], b.service[:0]
	b.latency, b.prediction, b.sampleRate = b.latency[:0], b.prediction[:0], b.sampleRate[:0]
	b.featNames, b.catNames, b.catValues, b.featValues = b.featNames[:0], b.catNames[:0], b.catValues[:0], b.featValues[:0]
	b.datacenter, b.cluster, b.node, b.gpuUUID, b.namespace, b.pod = b.datacenter[:0], b.cluster[:0], b.node[:0], b.gpuUUID[:0], b.namespace[:0], b.pod[:0]
}

// Block returns the rows as a Block sharing the builder's memory.
func (b *InferenceEventBlock) Block() Block {
	var cs columns
	cs.add("ts", b.ts)
	cs.add("model", b.model)
	cs.add("model_version", b.version)
	cs.add("request_id", b.requestID)
	cs.add("latency_ms", b.latency)
	cs.add("status", b.status)
	cs.add("feature_names", b.featNames)
	cs.add("feature_values", b.featValues)
	cs.add("cat_feature_names", b.catNames)
	cs.add("cat_feature_values", b.catValues)
	cs.add("prediction", b.prediction)
	cs.add("prediction_class", b.predClass)
	cs.add("sample_rate", b.sampleRate)
	cs.add("service", b.service)
	cs.add("datacenter", b.datacenter)
	cs.add("cluster", b.cluster)
	cs.add("node", b.node)
	cs.add("gpu_uuid", b.gpuUUID)
	cs.add("namespace", b.namespace)
	cs.add("pod", b.pod)
	return cs.block("inference_events")
}

// DelayedLabel is one row of delayed_labels.
type DelayedLabel struct {
	Time       time.Time
	Model      string
	RequestID  string
	Label      string
	LabelValue float64
}

// DelayedLabelBlock builds delayed_labels blocks.
type DelayedLabelBlock struct {
	ts                      []int64
	model, requestID, label []string
	value                   []float64
}

// Append adds one row.
func (b *DelayedLabelBlock) Append(l *DelayedLabel) {
	b.ts = append(b.ts, l.Time.Unix())
	b.model = append(b.model, l.Model)
	b.requestID = append(b.requestID, l.RequestID)
	b.label = append(b.label, l.Label)
	b.value = append(b.value, l.LabelValue)
}

// Len is the number of rows.
func (b *DelayedLabelBlock) Len() int { return len(b.ts) }

// Reset empties the builder, keeping its capacity.
func (b *DelayedLabelBlock) Reset() {
	b.ts, b.model, b.requestID, b.label, b.value = b.ts[:0], b.model[:0], b.requestID[:0], b.label[:0], b.value[:0]
}

// Block returns the rows as a Block sharing the builder's memory.
func (b *DelayedLabelBlock) Block() Block {
	var cs columns
	cs.add("ts", b.ts)
	cs.add("model", b.model)
	cs.add("request_id", b.requestID)
	cs.add("label", b.label)
	cs.add("label_value", b.value)
	return cs.block("delayed_labels")
}

// ModelDeployment is one row of model_deployments.
type ModelDeployment struct {
	Time                                 time.Time
	Model, ModelVersion, PreviousVersion string
	Change, Environment, Actor, Note     string
}

// ModelDeploymentBlock builds model_deployments blocks.
type ModelDeploymentBlock struct {
	ts                                                 []int64
	model, version, previous, change, env, actor, note []string
}

// Append adds one row.
func (b *ModelDeploymentBlock) Append(d *ModelDeployment) {
	b.ts = append(b.ts, d.Time.Unix())
	b.model = append(b.model, d.Model)
	b.version = append(b.version, d.ModelVersion)
	b.previous = append(b.previous, d.PreviousVersion)
	b.change = append(b.change, d.Change)
	b.env = append(b.env, d.Environment)
	b.actor = append(b.actor, d.Actor)
	b.note = append(b.note, d.Note)
}

// Len is the number of rows.
func (b *ModelDeploymentBlock) Len() int { return len(b.ts) }

// Reset empties the builder, keeping its capacity.
func (b *ModelDeploymentBlock) Reset() {
	b.ts, b.model, b.version, b.previous = b.ts[:0], b.model[:0], b.version[:0], b.previous[:0]
	b.change, b.env, b.actor, b.note = b.change[:0], b.env[:0], b.actor[:0], b.note[:0]
}

// Block returns the rows as a Block sharing the builder's memory.
func (b *ModelDeploymentBlock) Block() Block {
	var cs columns
	cs.add("ts", b.ts)
	cs.add("model", b.model)
	cs.add("model_version", b.version)
	cs.add("previous_version", b.previous)
	cs.add("change", b.change)
	cs.add("environment", b.env)
	cs.add("actor", b.actor)
	cs.add("note", b.note)
	return cs.block("model_deployments")
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

// SpanBlock builds spans blocks.
type SpanBlock struct {
	ts, startNs, durationNs                                            []int64
	traceID, spanID, parentID, service, operation, kind, code, message []string
	model, version, requestID, cluster, node                           []string
	k8s                                                                k8sCols
	attrs                                                              labelCols
}

// Append adds one row.
func (b *SpanBlock) Append(s *Span) {
	b.ts = append(b.ts, s.Start.Unix())
	b.startNs = append(b.startNs, s.Start.UnixNano())
	b.durationNs = append(b.durationNs, int64(s.Duration))
	b.traceID = append(b.traceID, s.TraceID)
	b.spanID = append(b.spanID, s.SpanID)
	b.parentID = append(b.parentID, s.ParentSpanID)
	b.service = append(b.service, s.Service)
	b.operation = append(b.operation, s.Operation)
	b.kind = append(b.kind, s.Kind)
	b.code = append(b.code, s.StatusCode)
	b.message = append(b.message, s.StatusMessage)
	b.model = append(b.model, s.Model)
	b.version = append(b.version, s.ModelVersion)
	b.requestID = append(b.requestID, s.RequestID)
	b.cluster = append(b.cluster, s.Cluster)
	b.node = append(b.node, s.Node)
	b.k8s.append(&s.K8s)
	b.attrs.append(&s.Attributes)
}

// Len is the number of rows.
func (b *SpanBlock) Len() int { return len(b.ts) }

// Reset empties the builder, keeping its capacity.
func (b *SpanBlock) Reset() {
	b.ts, b.startNs, b.durationNs = b.ts[:0], b.startNs[:0], b.durationNs[:0]
	b.traceID, b.spanID, b.parentID, b.service, b.operation, b.kind, b.code, b.message = b.traceID[:0], b.spanID[:0], b.parentID[:0], b.service[:0], b.operation[:0], b.kind[:0], b.code[:0], b.message[:0]
	b.model, b.version, b.requestID, b.cluster, b.node = b.model[:0], b.version[:0], b.requestID[:0], b.cluster[:0], b.node[:0]
	b.k8s.reset()
	b.attrs.reset()
}

// Block returns the rows as a Block sharing the builder's memory.
func (b *SpanBlock) Block() Block {
	var cs columns
	cs.add("ts", b.ts)
	cs.add("start_ns", b.startNs)
	cs.add("duration_ns", b.durationNs)
	cs.add("trace_id", b.traceID)
	cs.add("span_id", b.spanID)
	cs.add("parent_span_id", b.parentID)
	cs.add("service", b.service)
	cs.add("operation", b.operation)
	cs.add("kind", b.kind)
	cs.add("status_code", b.code)
	cs.add("status_message", b.message)
	cs.add("model", b.model)
	cs.add("model_version", b.version)
	cs.add("request_id", b.requestID)
	cs.add("cluster", b.cluster)
	cs.add("node", b.node)
	b.k8s.addTo(&cs)
	b.attrs.addTo(&cs, "attr")
	return cs.block("spans")
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// DetectionBlock builds detections blocks.
type DetectionBlock struct {
	ts, windowStart                                    []int64
	detector, class, severity, entityType, entity, key []string
	topo                                               topologyCols
	gpuUUID, gpuModel, job, model, version, feature    []string
	value, threshold, pValue                           []float64
	action, summary, evidence                          []string
}

// Append adds one row.
func (b *DetectionBlock) Append(d *fleet.Detection) {
	b.ts = append(b.ts, d.Time.Unix())
	b.windowStart = append(b.windowStart, d.WindowStart.Unix())
	b.detector = append(b.detector, d.Detector)
	b.class = append(b.class, d.Class)
	b.severity = append(b.severity, d.Severity)
	b.entityType = append(b.entityType, d.EntityType)
	b.entity = append(b.entity, d.Entity)
	b.key = append(b.key, d.Key)
	b.topo.append(&d.Topology)
	b.gpuUUID = append(b.gpuUUID, d.GPUUUID)
	b.gpuModel = append(b.gpuModel, d.GPUModel)
	b.job = append(b.job, d.Job)
	b.model = append(b.model, d.Model)
	b.version = append(b.version, d.ModelVersion)
	b.feature = append(b.feature, d.Feature)
	b.value = append(b.value, d.Value)
	b.threshold = append(b.threshold, d.Threshold)
	b.pValue = append(b.pValue, d.PValue)
	b.action = append(b.action, d.Action)
	b.summary = append(b.summary, d.Summary)
	b.evidence = append(b.evidence, d.Evidence)
}

// Len is the number of rows.
func (b *DetectionBlock) Len() int { return len(b.ts) }

// Reset empties the builder, keeping its capacity.
func (b *DetectionBlock) Reset() {
	b.ts, b.windowStart = b.ts[:0], b.windowStart[:0]
	b.detector, b.class, b.severity, b.entityType, b.entity, b.key = b.detector[:0], b.class[:0], b.severity[:0], b.entityType[:0], b.entity[:0], b.key[:0]
	b.topo.reset()
	b.gpuUUID, b.gpuModel, b.job, b.model, b.version, b.feature = b.gpuUUID[:0], b.gpuModel[:0], b.job[:0], b.model[:0], b.version[:0], b.feature[:0]
	b.value, b.threshold, b.pValue = b.value[:0], b.threshold[:0], b.pValue[:0]
	b.action, b.summary, b.evidence = b.action[:0], b.summary[:0], b.evidence[:0]
}

// Block returns the rows as a Block sharing the builder's memory.
func (b *DetectionBlock) Block() Block {
	var cs columns
	cs.add("ts", b.ts)
	cs.add("window_start", b.windowStart)
	cs.add("detector", b.detector)
	cs.add("class", b.class)
	cs.add("severity", b.severity)
	cs.add("entity_type", b.entityType)
	cs.add("entity", b.entity)
	cs.add("key", b.key)
	b.topo.addTo(&cs)
	cs.add("gpu_uuid", b.gpuUUID)
	cs.add("gpu_model", b.gpuModel)
	cs.add("job", b.job)
	cs.add("model", b.model)
	cs.add("model_version", b.version)
	cs.add("feature", b.feature)
	cs.add("value", b.value)
	cs.add("threshold", b.threshold)
	cs.add("p_value", b.pValue)
	cs.add("action", b.action)
	cs.add("summary", b.summary)
	cs.add("evidence", b.evidence)
	return cs.block("detections")
}
