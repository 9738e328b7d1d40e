// Package otlp encodes the agent's batches as OTLP export requests, exactly
// as docs/TELEMETRY.md specifies: GPU samples as metrics named after DCGM
// fields with dcgm-exporter's labels, topology as resource attributes, GPU
// events, inference events, delayed labels and deployments as log records.
package otlp

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"

	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// ScopeName is the instrumentation scope of everything the agent sends.
const ScopeName = "github.com/fleetwatch/fleetwatch/agent"

// Encoder turns batches into OTLP requests. It tracks cumulative counters so
// that each series carries a start time that changes when the counter resets
// (a GPU reset or driver reload), as OTLP cumulative sums require. Not safe
// for concurrent use.
type Encoder struct {
	// Version goes into the instrumentation scope.
	Version string
	// Form is where GPU labels go: PerGPU (the default) or PerPoint.
	Form     Form
	counters map[counterKey]counterState
	started  time.Time
}

type counterKey struct {
	host, uuid string
	field      int16
	link       int16
	name       string
}

type counterState struct {
	start time.Time
	last  float64
}

// NewEncoder returns an encoder whose counters start at start (the agent's start).
func NewEncoder(start time.Time, version string) *Encoder {
	return &Encoder{Version: version, counters: map[counterKey]counterState{}, started: start}
}

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func num(k string, v float64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v}}}
}

func integer(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

// appendNonEmpty adds k=v when v is set.
func appendNonEmpty(kvs []*commonpb.KeyValue, k, v string) []*commonpb.KeyValue {
	if v == "" {
		return kvs
	}
	return append(kvs, str(k, v))
}

// Resource builds the OTLP resource for r.
func Resource(r *record.Resource) *resourcepb.Resource {
	if r == nil {
		r = &record.Resource{}
	}
	service := r.Service
	if service == "" {
		service = "fleetwatch-agent"
	}
	kvs := []*commonpb.KeyValue{str(telemetry.AttrServiceName, service)}
	kvs = appendNonEmpty(kvs, telemetry.AttrHostName, r.Host)
	kvs = appendNonEmpty(kvs, telemetry.AttrDatacenter, r.Datacenter)
	kvs = appendNonEmpty(kvs, telemetry.AttrRow, r.Row)
	kvs = appendNonEmpty(kvs, telemetry.AttrRack, r.Rack)
	kvs = appendNonEmpty(kvs, telemetry.AttrCluster, r.Cluster)
	kvs = appendNonEmpty(kvs, telemetry.AttrK8sNode, r.K8sNode)
	return &resourcepb.Resource{Attributes: kvs}
}

// Form is where a metrics request carries each GPU's identity.
type Form uint8

const (
	// PerGPU, the default, sends one OTLP resource per GPU: its attributes
	// are the node's (topology, service) and the GPU's labels (UUID, index,
	// model, PCI bus, driver, and the workload using it), and its data
	// points carry only the labels that vary under it (the NVLink link,
	// the MIG instance, the last XID's code). The collector reads the GPU's
	// identity once per request instead of once per sample.
	PerGPU Form = iota
	// PerPoint repeats every GPU label on every data point, as
	// dcgm-exporter does, under one resource per node: the agent's form
	// before issue 18, which collectors before it need.
	PerPoint
)

// Form names, as in the agent's configuration (ship.gpu_identity).
const (
	FormPerGPU   = "resource"
	FormPerPoint = "data_points"
)

// ParseForm reads a form's name.
func ParseForm(name string) (Form, error) {
	switch name {
	case FormPerGPU, "":
		return PerGPU, nil
	case FormPerPoint:
		return PerPoint, nil
	}
	return PerGPU, fmt.Errorf("gpu_identity %q: want %s or %s", name, FormPerGPU, FormPerPoint)
}

// String is the form's name.
func (f Form) String() string {
	if f == PerPoint {
		return FormPerPoint
	}
	return FormPerGPU
}

// gpuAttributes are the dcgm-exporter labels of one GPU; host, when set,
// is its Hostname.
func gpuAttributes(g *record.GPU, host string) []*commonpb.KeyValue {
	kvs := make([]*commonpb.KeyValue, 0, 14)
	kvs = append(kvs, str(telemetry.LabelGPU, g.Index), str(telemetry.LabelUUID, g.UUID))
	kvs = appendNonEmpty(kvs, telemetry.LabelPCIBusID, g.PCIBusID)
	kvs = appendNonEmpty(kvs, telemetry.LabelDevice, g.Device)
	kvs = appendNonEmpty(kvs, telemetry.LabelModelName, g.ModelName)
	kvs = appendNonEmpty(kvs, telemetry.LabelHostname, host)
	kvs = appendNonEmpty(kvs, telemetry.LabelDriverVersion, g.DriverVersion)
	kvs = appendNonEmpty(kvs, telemetry.LabelMIGID, g.MIGInstance)
	kvs = appendNonEmpty(kvs, telemetry.LabelMIGProfile, g.MIGProfile)
	var buf [12][2]string
	for _, l := range g.Workload.Labels(buf[:0]) {
		kvs = append(kvs, str(l[0], l[1]))
	}
	return kvs
}

func host(b *record.Batch) string {
	if b.Resource == nil {
		return ""
	}
	return b.Resource.Host
}

// group is one OTLP resource of a metrics request and the labels its
// samples' data points start with, by batch GPU.
type group struct {
	attrs   []*commonpb.KeyValue
	byName  map[string]*metricspb.Metric
	metrics []*metricspb.Metric
}

// layout decides the request's resources: the resource of each sample's
// GPU (by batch GPU; node-level samples use nodeGroup) and the labels its
// data points carry.
type layout struct {
	groups    []*group
	gpuGroup  []int                  // by batch GPU
	gpuLabels [][]*commonpb.KeyValue // by batch GPU: what its data points carry
	nodeGroup int                    // -1 until a node-level sample needs it
	nodeAttrs []*commonpb.KeyValue   // node-level data points' labels
	resource  []*commonpb.KeyValue
}

func (l *layout) newGroup(attrs []*commonpb.KeyValue) int {
	l.groups = append(l.groups, &group{attrs: attrs, byName: map[string]*metricspb.Metric{}})
	return len(l.groups) - 1
}

// perPoint lays out the PerPoint form: one resource, every label on every
// data point.
func perPoint(b *record.Batch, resource []*commonpb.KeyValue) *layout {
	h := host(b)
	l := &layout{resource: resource, gpuGroup: make([]int, len(b.GPUs)), gpuLabels: make([][]*commonpb.KeyValue, len(b.GPUs))}
	l.nodeGroup = l.newGroup(resource)
	for i := range b.GPUs {
		l.gpuLabels[i] = gpuAttributes(&b.GPUs[i], h)
	}
	if h != "" {
		l.nodeAttrs = []*commonpb.KeyValue{str(telemetry.LabelHostname, h)}
	}
	return l
}

// perGPU lays out the PerGPU form: the batch GPUs that are one physical
// GPU (its MIG instances share its UUID and index) share a resource; the
// labels all of them have alike go on it, the others (a MIG instance's
// id, profile and workload) stay on the data points. Hostname is left
// out: the resource's host.name says it.
func perGPU(b *record.Batch, resource []*commonpb.KeyValue) *layout {
	l := &layout{resource: resource, gpuGroup: make([]int, len(b.GPUs)), gpuLabels: make([][]*commonpb.KeyValue, len(b.GPUs)), nodeGroup: -1}
	type physical struct{ index, uuid string }
	members := map[physical][]int{}
	var order []physical
	for i := range b.GPUs {
		k := physical{b.GPUs[i].Index, b.GPUs[i].UUID}
		if _, ok := members[k]; !ok {
			order = append(order, k)
		}
		members[k] = append(members[k], i)
	}
	for _, k := range order {
		ids := members[k]
		labels := make([][]*commonpb.KeyValue, len(ids))
		for j, i := range ids {
			labels[j] = gpuAttributes(&b.GPUs[i], "")
		}
		attrs := slices.Clip(resource)
		shared := len(attrs)
		for _, kv := range labels[0] {
			if sharedBy(kv, labels[1:]) {
				attrs = append(attrs, kv)
			}
		}
		g := l.newGroup(attrs)
		for j, i := range ids {
			l.gpuGroup[i] = g
			if len(ids) > 1 {
				l.gpuLabels[i] = slices.DeleteFunc(labels[j], func(kv *commonpb.KeyValue) bool { return has(attrs[shared:], kv.Key) })
			}
		}
	}
	return l
}

// sharedBy reports whether every list in others has kv's key with kv's value.
func sharedBy(kv *commonpb.KeyValue, others [][]*commonpb.KeyValue) bool {
	for _, o := range others {
		i := slices.IndexFunc(o, func(x *commonpb.KeyValue) bool { return x.Key == kv.Key })
		if i < 0 || o[i].Value.GetStringValue() != kv.Value.GetStringValue() {
			return false
		}
	}
	return true
}

func has(kvs []*commonpb.KeyValue, key string) bool {
	return slices.ContainsFunc(kvs, func(kv *commonpb.KeyValue) bool { return kv.Key == key })
}

// group returns the resource of s and the labels its data point starts with.
func (l *layout) group(s *record.Sample) (*group, []*commonpb.KeyValue) {
	if s.GPU >= 0 && int(s.GPU) < len(l.gpuGroup) {
		return l.groups[l.gpuGroup[s.GPU]], l.gpuLabels[s.GPU]
	}
	if l.nodeGroup < 0 {
		l.nodeGroup = l.newGroup(l.resource)
	}
	return l.groups[l.nodeGroup], l.nodeAttrs
}

// Metrics encodes b's samples in e.Form, or returns nil when it has none.
func (e *Encoder) Metrics(b *record.Batch) *colmetrics.ExportMetricsServiceRequest {
	if len(b.Samples) == 0 {
		return nil
	}
	var l *layout
	if e.Form == PerPoint {
		l = perPoint(b, Resource(b.Resource).Attributes)
	} else {
		l = perGPU(b, Resource(b.Resource).Attributes)
	}
	ts := uint64(b.Time.UnixNano())
	for i := range b.Samples {
		s := &b.Samples[i]
		g, base := l.group(s)
		name := s.MetricName()
		m, ok := g.byName[name]
		if !ok {
			m = e.newMetric(s)
			g.byName[name] = m
			g.metrics = append(g.metrics, m)
		}
		dp := &metricspb.NumberDataPoint{Attributes: sampleAttributes(s, base), TimeUnixNano: ts, Value: &metricspb.NumberDataPoint_AsDouble{AsDouble: s.Value}}
		switch d := m.Data.(type) {
		case *metricspb.Metric_Gauge:
			d.Gauge.DataPoints = append(d.Gauge.DataPoints, dp)
		case *metricspb.Metric_Sum:
			dp.StartTimeUnixNano = uint64(e.counterStart(b, s).UnixNano())
			d.Sum.DataPoints = append(d.Sum.DataPoints, dp)
		}
	}
	req := &colmetrics.ExportMetricsServiceRequest{ResourceMetrics: make([]*metricspb.ResourceMetrics, 0, len(l.groups))}
	for _, g := range l.groups {
		if len(g.metrics) == 0 {
			continue
		}
		req.ResourceMetrics = append(req.ResourceMetrics, &metricspb.ResourceMetrics{
			Resource:     &resourcepb.Resource{Attributes: g.attrs},
			ScopeMetrics: []*metricspb.ScopeMetrics{{Scope: e.scope(), Metrics: g.metrics}},
		})
	}
	return req
}

func (e *Encoder) scope() *commonpb.InstrumentationScope {
	return &commonpb.InstrumentationScope{Name: ScopeName, Version: e.Version}
}

func (e *Encoder) newMetric(s *record.Sample) *metricspb.Metric {
	m := &metricspb.Metric{Name: s.MetricName()}
	if s.Field >= 0 {
		f := telemetry.Fields[s.Field]
		m.Description, m.Unit = f.Help, f.Unit
	}
	if s.MetricKind() == telemetry.Counter {
		m.Data = &metricspb.Metric_Sum{Sum: &metricspb.Sum{
			AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE,
			IsMonotonic:            true,
		}}
	} else {
		m.Data = &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{}}
	}
	return m
}

// sampleAttributes are s's data-point labels: base, its link, its extras.
func sampleAttributes(s *record.Sample, base []*commonpb.KeyValue) []*commonpb.KeyValue {
	if s.Link < 0 && len(s.Extra) == 0 {
		return base
	}
	attrs := make([]*commonpb.KeyValue, len(base), len(base)+1+len(s.Extra))
	copy(attrs, base)
	if s.Link >= 0 {
		attrs = append(attrs, str(telemetry.LabelLink, strconv.Itoa(int(s.Link))))
	}
	for _, l := range s.Extra {
		attrs = append(attrs, str(l.Key, l.Value))
	}
	return attrs
}

// counterStart returns the series' start time, moving it to the batch time
// when the counter went backwards (a reset).
func (e *Encoder) counterStart(b *record.Batch, s *record.Sample) time.Time {
	k := counterKey{host: host(b), field: s.Field, link: s.Link}
	if s.Field < 0 {
		k.name = s.Name
	}
	if s.GPU >= 0 && int(s.GPU) < len(b.GPUs) {
		k.uuid = b.GPUs[s.GPU].UUID + "/" + b.GPUs[s.GPU].MIGInstance
	}
	st, ok := e.counters[k]
	switch {
	case !ok:
		st.start = e.started
	case s.Value < st.last:
		st.start = b.Time.Add(-time.Nanosecond)
	}
	st.last = s.Value
	e.counters[k] = st
	return st.start
}

// Logs encodes b's events, inference events, labels, outcomes and
// deployments, or returns nil when it has none.
func (e *Encoder) Logs(b *record.Batch) *collogs.ExportLogsServiceRequest {
	n := len(b.Events) + len(b.Inferences) + len(b.Labels) + len(b.Outcomes) + len(b.Deployments)
	if n == 0 {
		return nil
	}
	h := host(b)
	observed := uint64(b.Time.UnixNano())
	recs := make([]*logspb.LogRecord, 0, n)
	for i := range b.Events {
		recs = append(recs, gpuEventRecord(&b.Events[i], b, h, observed))
	}
	for i := range b.Inferences {
		recs = append(recs, InferenceRecord(&b.Inferences[i], observed))
	}
	for i := range b.Labels {
		recs = append(recs, LabelRecord(&b.Labels[i], observed))
	}
	for i := range b.Outcomes {
		recs = append(recs, OutcomeRecord(&b.Outcomes[i], observed))
	}
	for i := range b.Deployments {
		recs = append(recs, DeploymentRecord(&b.Deployments[i], observed))
	}
	return &collogs.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		Resource:  Resource(b.Resource),
		ScopeLogs: []*logspb.ScopeLogs{{Scope: e.scope(), LogRecords: recs}},
	}}}
}

func event(name string, t time.Time, observed uint64, attrs []*commonpb.KeyValue) *logspb.LogRecord {
	return &logspb.LogRecord{
		TimeUnixNano:         uint64(t.UnixNano()),
		ObservedTimeUnixNano: observed,
		SeverityNumber:       logspb.SeverityNumber_SEVERITY_NUMBER_INFO,
		EventName:            name,
		Attributes:           append(attrs, str(telemetry.AttrEventName, name)),
	}
}

func gpuEventRecord(ev *record.Event, b *record.Batch, host string, observed uint64) *logspb.LogRecord {
	var attrs []*commonpb.KeyValue
	if ev.GPU >= 0 && int(ev.GPU) < len(b.GPUs) {
		attrs = gpuAttributes(&b.GPUs[ev.GPU], host)
	}
	count := ev.Count
	if count == 0 {
		count = 1
	}
	attrs = append(attrs, str(telemetry.AttrGPUEvent, ev.Kind), integer(telemetry.AttrCode, ev.Code),
		integer(telemetry.AttrCount, int64(count)), str(telemetry.AttrSource, b.Source))
	r := event(telemetry.EventGPU, ev.Time, observed, attrs)
	r.Body = &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: ev.Message}}
	switch ev.Kind {
	case telemetry.GPUEventXID, telemetry.GPUEventECCDBE, telemetry.GPUEventLost:
		r.SeverityNumber = logspb.SeverityNumber_SEVERITY_NUMBER_ERROR
	case telemetry.GPUEventECCSBE, telemetry.GPUEventClockEvent, telemetry.GPUEventRowRemap:
		r.SeverityNumber = logspb.SeverityNumber_SEVERITY_NUMBER_WARN
	}
	return r
}

// InferenceRecord encodes one inference event; instrumented services may use
// it to build the same records the agent sends.
func InferenceRecord(in *record.Inference, observed uint64) *logspb.LogRecord {
	attrs := []*commonpb.KeyValue{
		str(telemetry.AttrModel, in.Model),
		str(telemetry.AttrModelVersion, in.ModelVersion),
		str(telemetry.AttrRequestID, in.RequestID),
		num(telemetry.AttrLatencyMs, in.LatencyMs),
		str(telemetry.AttrStatus, in.Status),
	}
	if in.HasPrediction {
		attrs = append(attrs, num(telemetry.AttrPrediction, in.Prediction))
	}
	attrs = appendNonEmpty(attrs, telemetry.AttrPredictionClass, in.PredictionClass)
	if in.SampleRate > 0 && in.SampleRate != 1 {
		attrs = append(attrs, num(telemetry.AttrSampleRate, in.SampleRate))
	}
	attrs = appendNonEmpty(attrs, telemetry.AttrGPUUUID, in.GPUUUID)
	if len(in.Features) > 0 {
		fs := make([]*commonpb.KeyValue, 0, len(in.Features))
		for _, f := range in.Features {
			kv := &commonpb.KeyValue{Key: f.Name, Value: &commonpb.AnyValue{}}
			switch {
			case f.Missing:
				// An empty AnyValue is a missing feature.
			case f.IsCat:
				kv.Value.Value = &commonpb.AnyValue_StringValue{StringValue: f.Str}
			default:
				kv.Value.Value = &commonpb.AnyValue_DoubleValue{DoubleValue: f.Num}
			}
			fs = append(fs, kv)
		}
		sort.Slice(fs, func(i, j int) bool { return fs[i].Key < fs[j].Key })
		attrs = append(attrs, &commonpb.KeyValue{Key: telemetry.AttrFeatures,
			Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: fs}}}})
	}
	if len(in.FeatureUpdatedAt) > 0 {
		us := make([]*commonpb.KeyValue, 0, len(in.FeatureUpdatedAt))
		for _, u := range in.FeatureUpdatedAt {
			kv := &commonpb.KeyValue{Key: u.Name, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: u.Unix}}}
			if u.IsStr {
				kv.Value.Value = &commonpb.AnyValue_StringValue{StringValue: u.Str}
			}
			us = append(us, kv)
		}
		attrs = append(attrs, &commonpb.KeyValue{Key: telemetry.AttrFeatureUpdatedAt,
			Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: us}}}})
	}
	return event(telemetry.EventInference, in.Time, observed, attrs)
}

// LabelRecord encodes one delayed label.
func LabelRecord(l *record.DelayedLabel, observed uint64) *logspb.LogRecord {
	attrs := []*commonpb.KeyValue{str(telemetry.AttrModel, l.Model), str(telemetry.AttrRequestID, l.RequestID)}
	attrs = appendNonEmpty(attrs, telemetry.AttrLabel, l.Label)
	if l.HasValue {
		attrs = append(attrs, num(telemetry.AttrLabelValue, l.LabelValue))
	}
	return event(telemetry.EventLabel, l.Time, observed, attrs)
}

// OutcomeRecord encodes one business outcome.
func OutcomeRecord(o *record.Outcome, observed uint64) *logspb.LogRecord {
	attrs := []*commonpb.KeyValue{str(telemetry.AttrModel, o.Model), str(telemetry.AttrRequestID, o.RequestID)}
	attrs = appendNonEmpty(attrs, telemetry.AttrModelVersion, o.ModelVersion)
	attrs = appendNonEmpty(attrs, telemetry.AttrOutcome, o.Outcome)
	attrs = append(attrs, &commonpb.KeyValue{Key: telemetry.AttrSuccess, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: o.Success}}})
	if o.HasValue {
		attrs = append(attrs, num(telemetry.AttrOutcomeValue, o.Value))
	}
	return event(telemetry.EventOutcome, o.Time, observed, attrs)
}

// DeploymentRecord encodes one deployment marker.
func DeploymentRecord(d *record.Deployment, observed uint64) *logspb.LogRecord {
	attrs := []*commonpb.KeyValue{str(telemetry.AttrModel, d.Model), str(telemetry.AttrModelVersion, d.ModelVersion)}
	attrs = appendNonEmpty(attrs, telemetry.AttrPreviousVersion, d.PreviousVersion)
	attrs = appendNonEmpty(attrs, telemetry.AttrChange, d.Change)
	attrs = appendNonEmpty(attrs, telemetry.AttrEnvironment, d.Environment)
	attrs = appendNonEmpty(attrs, telemetry.AttrActor, d.Actor)
	r := event(telemetry.EventDeployment, d.Time, observed, attrs)
	if d.Note != "" {
		r.Body = &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: d.Note}}
	}
	return r
}
