package chexporter

import (
	"context"
	"encoding/binary"
	"math"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/cespare/xxhash/v2"

	"github.com/fleetwatch/fleetwatch/collector/fastotlp"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// resource is the part of an OTLP resource that locates the data.
type resource struct {
	topo    fleet.Topology
	service string
	k8s     fleet.Kubernetes
	// key hashes every resource attribute as sent (see rawKey).
	key uint64

	// attrs are the attributes as sent; labels the GPU labels among them
	// (telemetry.GPULabels), read at most once, when a data point under
	// the resource is not a known series.
	attrs        kvList
	maxLen       int
	read, hasGPU bool
	labels       pointLabels

	// hints are the series of the resource's gauge and sum points, in the
	// order its last request sent them (seriesState.hints); ord is the
	// position of the next point.
	hints []rawHint
	ord   int
}

// hint records that the resource's next gauge or sum point had raw
// identity raw and series se (nil: rejected before it had one), in place
// of what the last request had at that position.
func (r *resource) hint(raw uint64, se *seriesEntry) {
	if r.ord < len(r.hints) {
		r.hints[r.ord] = rawHint{raw: raw, se: se}
	} else {
		r.hints = append(r.hints, rawHint{raw: raw, se: se})
	}
	r.ord++
}

// kvList is an attribute map as sent, values in their string form
// (pcommon.Value.AsString): what the exporter reads of pdata's attributes
// and of the direct decoder's columns alike.
type kvList struct{ keys, values []string }

// fill makes l m's attributes, reusing l's memory.
func (l *kvList) fill(m pcommon.Map) {
	l.keys, l.values = l.keys[:0], l.values[:0]
	for k, v := range m.All() {
		l.keys = append(l.keys, k)
		if v.Type() == pcommon.ValueTypeStr {
			l.values = append(l.values, v.Str())
		} else {
			l.values = append(l.values, v.AsString())
		}
	}
}

func kvOf(m pcommon.Map) kvList {
	var l kvList
	l.fill(m)
	return l
}

// get returns the value of the first attribute named k.
func (l kvList) get(k string) (string, bool) {
	for i, key := range l.keys {
		if key == k {
			return l.values[i], true
		}
	}
	return "", false
}

func resourceOf(attrs pcommon.Map, maxLen int) resource { return resourceOfKV(kvOf(attrs), maxLen) }

// resourceOfKV makes a resource of its attributes, which it keeps.
func resourceOfKV(attrs kvList, maxLen int) resource {
	get := func(k string) string {
		if v, ok := attrs.get(k); ok {
			return truncate(v, maxLen)
		}
		return ""
	}
	return resource{
		topo: fleet.Topology{Datacenter: get(telemetry.AttrDatacenter), Row: get(telemetry.AttrRow), Rack: get(telemetry.AttrRack),
			Node: get(telemetry.AttrHostName), Cluster: get(telemetry.AttrCluster)},
		service: get(telemetry.AttrServiceName),
		k8s:     fleet.Kubernetes{Namespace: get(telemetry.AttrK8sNamespace), Pod: get(telemetry.AttrK8sPod), Container: get(telemetry.AttrK8sContainer)},
		key:     rawKey(0, "", -1, attrs),
		attrs:   attrs,
		maxLen:  maxLen,
	}
}

// gpuLabels are the GPU labels the resource gives its data points and
// events, or nil when it has none.
func (r *resource) gpuLabels() *pointLabels {
	if !r.read {
		r.read = true
		for i, k := range r.attrs.keys {
			if telemetry.IsGPULabel(k) {
				r.labels.add(k, r.attrs.values[i], r.maxLen)
				r.hasGPU = true
			}
		}
		sortKV(r.labels.keys, r.labels.values)
	}
	if !r.hasGPU {
		return nil
	}
	return &r.labels
}

// rawKey hashes a data point's identity as sent: its resource's key, the
// metric name and NVLink link, and its attributes in the order they came.
// Senders repeat the same attributes in the same order, so a known series
// is found by this hash without parsing its labels; a different order only
// costs a second cache entry for the same series. A 64-bit collision, which
// would file a point under another series, is as unlikely as one of
// storage.HashSeries itself (about n²/2⁶⁵ for n series).
func rawKey(resKey uint64, name string, link int, attrs kvList) uint64 {
	var d xxhash.Digest
	d.Reset()
	var buf [10]byte
	binary.LittleEndian.PutUint64(buf[:], resKey)
	buf[8], buf[9] = byte(link), byte(link>>8)
	_, _ = d.Write(buf[:])
	_, _ = d.WriteString(name)
	for i, k := range attrs.keys {
		_, _ = d.Write(sep0[:])
		_, _ = d.WriteString(k)
		_, _ = d.Write(sep1[:])
		_, _ = d.WriteString(attrs.values[i])
	}
	if h := d.Sum64(); h != 0 {
		return h
	}
	return 1 // 0 means "no raw key"
}

var sep0, sep1 = [1]byte{0}, [1]byte{1}

// truncate cuts s to at most n bytes at a UTF-8 boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// pointLabels splits a data point's attributes into the GPU identity and the
// other labels (sorted by name).
type pointLabels struct {
	gpu       fleet.GPUIdentity
	k8s       fleet.Kubernetes
	job, host string
	keys      []string
	values    []string
	truncated int
	// set and cut say which fields (field*) were set and which of those
	// were truncated; cutKeys are the keys whose values were truncated.
	set, cut uint16
	cutKeys  []string
}

// The labels that fill a column of their own rather than the labels map.
const (
	fieldGPU = iota
	fieldUUID
	fieldPCIBusID
	fieldDevice
	fieldModelName
	fieldMIGID
	fieldMIGProfile
	fieldNamespace
	fieldPod
	fieldContainer
	fieldJob
	fieldHost
	numFields
)

// fieldOf is the field label k fills, or -1.
func fieldOf(k string) int {
	switch k {
	case telemetry.LabelGPU:
		return fieldGPU
	case telemetry.LabelUUID, "uuid":
		return fieldUUID
	case telemetry.LabelPCIBusID:
		return fieldPCIBusID
	case telemetry.LabelDevice:
		return fieldDevice
	case telemetry.LabelModelName:
		return fieldModelName
	case telemetry.LabelMIGID:
		return fieldMIGID
	case telemetry.LabelMIGProfile:
		return fieldMIGProfile
	case telemetry.LabelNamespace:
		return fieldNamespace
	case telemetry.LabelPod:
		return fieldPod
	case telemetry.LabelContainer:
		return fieldContainer
	case telemetry.LabelJob, telemetry.LabelJobLegacy: // hpc_job; job from agents before issue 13
		return fieldJob
	case telemetry.LabelHostname, telemetry.LabelHostnameNew:
		return fieldHost
	}
	return -1
}

// field returns a pointer to field f's value.
func (pl *pointLabels) field(f int) *string {
	switch f {
	case fieldGPU:
		return &pl.gpu.Index
	case fieldUUID:
		return &pl.gpu.UUID
	case fieldPCIBusID:
		return &pl.gpu.PCIBusID
	case fieldDevice:
		return &pl.gpu.Device
	case fieldModelName:
		return &pl.gpu.ModelName
	case fieldMIGID:
		return &pl.gpu.Instance
	case fieldMIGProfile:
		return &pl.gpu.Profile
	case fieldNamespace:
		return &pl.k8s.Namespace
	case fieldPod:
		return &pl.k8s.Pod
	case fieldContainer:
		return &pl.k8s.Container
	case fieldJob:
		return &pl.job
	}
	return &pl.host
}

// add takes one label, its value cut to max bytes.
func (pl *pointLabels) add(k, s string, max int) {
	cut := len(s) > max
	if cut {
		s = truncate(s, max)
		pl.truncated++
	}
	if f := fieldOf(k); f >= 0 {
		*pl.field(f) = s
		bit := uint16(1) << f
		pl.set |= bit
		pl.cut &^= bit
		if cut {
			pl.cut |= bit
		}
		return
	}
	pl.keys = append(pl.keys, truncate(k, max))
	pl.values = append(pl.values, s)
	if cut {
		pl.cutKeys = append(pl.cutKeys, pl.keys[len(pl.keys)-1])
	}
}

// inherit fills in the labels of base (a resource's) that pl (a data
// point's, keys sorted) lacks: the point's own value of a label wins.
func (pl *pointLabels) inherit(base *pointLabels) {
	for f := range numFields {
		bit := uint16(1) << f
		if base.set&bit == 0 || pl.set&bit != 0 {
			continue
		}
		*pl.field(f) = *base.field(f)
		pl.set |= bit
		if base.cut&bit != 0 {
			pl.cut |= bit
			pl.truncated++
		}
	}
	if len(base.keys) == 0 {
		return
	}
	if len(pl.keys) == 0 {
		// Shared: nothing changes a labels' slices in place.
		pl.keys, pl.values, pl.cutKeys = base.keys, base.values, base.cutKeys
		pl.truncated += len(base.cutKeys)
		return
	}
	keys := make([]string, 0, len(pl.keys)+len(base.keys))
	values := make([]string, 0, len(pl.keys)+len(base.keys))
	i, j := 0, 0
	for i < len(pl.keys) || j < len(base.keys) {
		switch {
		case j == len(base.keys) || i < len(pl.keys) && pl.keys[i] <= base.keys[j]:
			if j < len(base.keys) && pl.keys[i] == base.keys[j] {
				j++ // the point's own value wins
			}
			keys, values = append(keys, pl.keys[i]), append(values, pl.values[i])
			i++
		default:
			if slices.Contains(base.cutKeys, base.keys[j]) {
				pl.cutKeys = append(pl.cutKeys, base.keys[j])
				pl.truncated++
			}
			keys, values = append(keys, base.keys[j]), append(values, base.values[j])
			j++
		}
	}
	pl.keys, pl.values = keys, values
}

// labelsOf reads a data point's (or event's) attributes, and extra labels
// derived from its metric name, over base, its resource's GPU labels (nil
// for none).
func (e *chExporter) labelsOf(attrs pcommon.Map, extra map[string]string, base *pointLabels) pointLabels {
	if attrs.Len() == 0 && len(extra) == 0 && base != nil {
		return *base // a GPU's own metric sent per GPU: nothing to read
	}
	return e.labelsOfKV(kvOf(attrs), extra, base)
}

// labelsOfKV is labelsOf for attributes as strings.
func (e *chExporter) labelsOfKV(attrs kvList, extra map[string]string, base *pointLabels) pointLabels {
	if len(attrs.keys) == 0 && len(extra) == 0 && base != nil {
		return *base
	}
	var pl pointLabels
	max := e.cfg.MaxLabelLength
	for i, k := range attrs.keys {
		pl.add(k, attrs.values[i], max)
	}
	for k, v := range extra {
		pl.keys = append(pl.keys, k)
		pl.values = append(pl.values, v)
	}
	sortKV(pl.keys, pl.values)
	if base != nil {
		pl.inherit(base)
	}
	return pl
}

// with returns a copy of pl with one more label, in key order; the copy has
// its own key and value slices (series rows keep them).
func (pl pointLabels) with(k, v string) pointLabels {
	i := sort.SearchStrings(pl.keys, k)
	out := pl
	out.keys = slices.Insert(slices.Clone(pl.keys), i, k)
	out.values = slices.Insert(slices.Clone(pl.values), i, v)
	return out
}

type kvSort struct{ k, v []string }

func (s kvSort) Len() int           { return len(s.k) }
func (s kvSort) Less(i, j int) bool { return s.k[i] < s.k[j] }
func (s kvSort) Swap(i, j int) {
	s.k[i], s.k[j] = s.k[j], s.k[i]
	s.v[i], s.v[j] = s.v[j], s.v[i]
}

// metricBatch accumulates the rows of one request.
type metricBatch struct {
	samples storage.GPUSampleBlock
	// kinds and starts extend samples for the queue: how the drain loop
	// computes each row's delta (kindGauge, kindCumulative, kindDelta) and
	// the counter's start time (ns).
	kinds      []uint8
	starts     []int64
	series     storage.GPUSeriesBlock
	rejected   map[string]int
	normalized map[string]int
	now        time.Time
	// described are the series whose gpu_series row this request writes.
	described []*seriesEntry
	// kv is scratch for one data point's attributes.
	kv kvList
}

func (mb *metricBatch) reject(reason string) { mb.rejected[reason]++ }

// samplesBlock is the request's gpu_samples rows with the queue-only columns.
func (mb *metricBatch) samplesBlock() storage.Block {
	b := mb.samples.Block()
	b.Columns = append(b.Columns, colKind, colStart)
	b.Data = append(b.Data, mb.kinds, mb.starts)
	return b
}

// ConsumeMetrics validates md, turns it into rows and queues them; it
// returns once they are on disk. A request the receiver decoded into
// columns comes as an empty md with the columns in ctx (fastotlp.Handoff).
func (e *chExporter) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	if h := fastotlp.FromContext(ctx); h != nil && md.ResourceMetrics().Len() == 0 && h.Take() {
		n := h.Columns.Len()
		e.received(ctx, n)
		return e.queueMetrics(ctx, n, e.convertColumns(h.Columns, time.Now()))
	}
	n := md.DataPointCount()
	e.received(ctx, n)
	return e.queueMetrics(ctx, n, e.convert(md, time.Now()))
}

// queueMetrics queues the rows of a request of n items and releases mb.
func (e *chExporter) queueMetrics(ctx context.Context, n int, mb *metricBatch) error {
	rejected := e.account(ctx, mb.rejected, mb.normalized)
	err := e.enqueue(ctx, n-rejected, mb.series.Block(), mb.samplesBlock())
	if err != nil {
		// The series rows were not stored: describe them again next time.
		e.series.mu.Lock()
		for _, se := range mb.described {
			se.written = time.Time{}
		}
		e.series.mu.Unlock()
	}
	mb.release()
	return err
}

// metricBatches keeps request batches for reuse: their columns, grown to a
// request's size once, are refilled instead of grown from nothing on every
// request.
var metricBatches sync.Pool

// maxPooledRows: batches of bigger requests are left to the garbage
// collector rather than kept.
const maxPooledRows = 1 << 16

func newMetricBatch(now time.Time) *metricBatch {
	mb, _ := metricBatches.Get().(*metricBatch)
	if mb == nil {
		mb = &metricBatch{rejected: map[string]int{}, normalized: map[string]int{}}
	}
	mb.now = now
	return mb
}

// release empties mb (dropping its references to the request's strings and
// to series entries) and pools it; mb must not be used after.
func (mb *metricBatch) release() {
	if cap(mb.samples.Ts) > maxPooledRows {
		return
	}
	clear(mb.samples.Metric[:cap(mb.samples.Metric)])
	mb.samples.Reset()
	mb.kinds, mb.starts = mb.kinds[:0], mb.starts[:0]
	mb.series = storage.GPUSeriesBlock{} // rare: not worth keeping
	clear(mb.rejected)
	clear(mb.normalized)
	clear(mb.described)
	mb.described = mb.described[:0]
	clear(mb.kv.keys)
	clear(mb.kv.values)
	mb.kv.keys, mb.kv.values = mb.kv.keys[:0], mb.kv.values[:0]
	metricBatches.Put(mb)
}

// convert turns md into rows, as of now.
func (e *chExporter) convert(md pmetric.Metrics, now time.Time) *metricBatch {
	mb := e.startConvert(now)
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		res := e.openResource(kvOf(rm.Resource().Attributes()))
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				e.metric(mb, &res, ms.At(k))
			}
		}
		e.closeResource(&res)
	}
	e.endConvert(mb)
	return mb
}

// startConvert locks the exporter's state for converting a request, as of
// now, into the batch it returns; endConvert unlocks it.
func (e *chExporter) startConvert(now time.Time) *metricBatch {
	mb := newMetricBatch(now)
	e.mu.Lock()
	e.series.mu.Lock()
	return mb
}

func (e *chExporter) endConvert(mb *metricBatch) {
	e.series.sweep(mb.now)
	e.series.mu.Unlock()
	e.mu.Unlock()
}

// openResource starts a resource of a request with its hints;
// closeResource keeps the hints of what it sent.
func (e *chExporter) openResource(attrs kvList) resource {
	res := resourceOfKV(attrs, e.cfg.MaxLabelLength)
	res.hints = e.series.hints[res.key]
	return res
}

func (e *chExporter) closeResource(res *resource) {
	if res.ord > 0 {
		e.series.hints[res.key] = res.hints[:res.ord]
	}
}

// validName accepts Prometheus-style and OTel-style (dotted) metric names.
func validName(n string) bool {
	if n == "" || len(n) > 256 {
		return false
	}
	for i, r := range n {
		ok := r == '_' || r == ':' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && (r >= '0' && r <= '9' || r == '.')
		if !ok {
			return false
		}
	}
	return true
}

func (e *chExporter) accepted(name string) bool {
	for _, g := range e.cfg.Exclude {
		if ok, _ := path.Match(g, name); ok {
			return false
		}
	}
	if len(e.cfg.Include) == 0 {
		return true
	}
	for _, g := range e.cfg.Include {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// metricAs checks a metric's name against the naming rule and the
// include and exclude filters, counting its count points rejected if it
// fails, and returns how its points are stored.
func (e *chExporter) metricAs(mb *metricBatch, name string, count int) (numberMetric, bool) {
	if !validName(name) {
		mb.rejected[ReasonBadMetricName] += count
		return numberMetric{}, false
	}
	if !e.accepted(name) {
		mb.rejected[ReasonFiltered] += count
		return numberMetric{}, false
	}
	factor, link := 1.0, -1
	if f, fac, l, ok := telemetry.Canonical(name); ok {
		name, factor, link = f.Name, fac, l
	}
	nm := numberMetric{name: name, factor: factor, link: link, isDCGM: strings.HasPrefix(name, "DCGM_FI_")}
	if link >= 0 {
		nm.extra = map[string]string{telemetry.LabelLink: strconv.Itoa(link)}
	}
	return nm, true
}

func (e *chExporter) metric(mb *metricBatch, res *resource, m pmetric.Metric) {
	nm, ok := e.metricAs(mb, m.Name(), dataPoints(m))
	if !ok {
		return
	}
	name := nm.name
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		e.numberPoints(mb, res, nm, m.Gauge().DataPoints())
	case pmetric.MetricTypeSum:
		s := m.Sum()
		temporality := s.AggregationTemporality()
		nm.counter = s.IsMonotonic() && temporality == pmetric.AggregationTemporalityCumulative
		nm.delta = s.IsMonotonic() && temporality == pmetric.AggregationTemporalityDelta
		e.numberPoints(mb, res, nm, s.DataPoints())
	case pmetric.MetricTypeHistogram:
		e.histogram(mb, res, name, m.Histogram())
	case pmetric.MetricTypeSummary:
		e.summary(mb, res, name, m.Summary())
	default:
		mb.rejected[ReasonUnsupportedType] += dataPoints(m)
	}
}

func dataPoints(m pmetric.Metric) int {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return m.Gauge().DataPoints().Len()
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints().Len()
	case pmetric.MetricTypeHistogram:
		return m.Histogram().DataPoints().Len()
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().DataPoints().Len()
	case pmetric.MetricTypeSummary:
		return m.Summary().DataPoints().Len()
	}
	return 0
}

// point is one value ready to store.
type point struct {
	name      string
	labels    *pointLabels
	value     float64
	counter   bool
	delta     float64
	hasDelta  bool
	start, ts pcommon.Timestamp
	raw       uint64 // rawKey, or 0 when the point is not cached
}

// timeOf checks a point's timestamp; a missing one is normalised to now.
func (e *chExporter) timeOf(mb *metricBatch, ts pcommon.Timestamp) (time.Time, bool) {
	if ts == 0 {
		mb.normalized[NormMissingTimestamp]++
		return mb.now, true
	}
	t := ts.AsTime()
	if e.outOfRange(mb.now, t) {
		mb.reject(ReasonTimeOutOfRange)
		return t, false
	}
	return t, true
}

// outOfRange reports whether t is older than max_age or further than
// max_future ahead of now.
func (e *chExporter) outOfRange(now, t time.Time) bool {
	return t.Before(now.Add(-e.cfg.MaxAge)) || t.After(now.Add(e.cfg.MaxFuture))
}

func numberValue(dp pmetric.NumberDataPoint) float64 {
	if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
		return float64(dp.IntValue())
	}
	return dp.DoubleValue()
}

// numberMetric is what a gauge's or sum's points share: the stored name
// and the factor and NVLink link of telemetry.Canonical, the link as an
// extra label, and how the points count: cumulative counters (counter) and
// monotonic delta sums (delta: the increase is the value).
type numberMetric struct {
	name           string
	factor         float64
	link           int
	extra          map[string]string
	isDCGM         bool
	counter, delta bool
}

// numberPoints stores a gauge's or sum's points.
func (e *chExporter) numberPoints(mb *metricBatch, res *resource, nm numberMetric, dps pmetric.NumberDataPointSlice) {
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		mb.kv.fill(dp.Attributes())
		e.numberPoint(mb, res, &nm, numberValue(dp), dp.StartTimestamp(), dp.Timestamp(), mb.kv)
	}
}

// numberPoint stores one gauge or sum point of value v (before the
// metric's factor) with attributes attrs.
func (e *chExporter) numberPoint(mb *metricBatch, res *resource, nm *numberMetric, v float64, start, ts pcommon.Timestamp, attrs kvList) {
	v *= nm.factor
	if math.IsNaN(v) || math.IsInf(v, 0) {
		mb.reject(ReasonNonFinite)
		return
	}
	p := point{name: nm.name, value: v, counter: nm.counter || nm.delta, start: start, ts: ts,
		raw: rawKey(res.key, nm.name, nm.link, attrs)}
	if nm.delta {
		p.delta, p.hasDelta = v, true
	}
	se := e.series.hinted(res, p.raw, mb.now)
	if se == nil {
		se = e.series.cached(p.raw, mb.now)
	}
	if se != nil {
		// A known series: no labels to parse.
		res.hint(p.raw, se)
		if t, ok := e.timeOf(mb, p.ts); ok {
			e.appendSample(mb, se, &p, t)
		}
		return
	}
	pl := e.labelsOfKV(attrs, nm.extra, res.gpuLabels())
	if nm.isDCGM && pl.gpu.UUID == "" {
		mb.reject(ReasonMissingUUID)
		res.hint(p.raw, nil)
		return
	}
	p.labels = &pl
	res.hint(p.raw, e.store(mb, res, p))
}

// histogram stores Prometheus-style _bucket (with le), _sum and _count
// cumulative series.
func (e *chExporter) histogram(mb *metricBatch, res *resource, name string, h pmetric.Histogram) {
	cumulative := h.AggregationTemporality() == pmetric.AggregationTemporalityCumulative
	dps := h.DataPoints()
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		bounds, counts := dp.ExplicitBounds(), dp.BucketCounts()
		pl := e.labelsOf(dp.Attributes(), nil, res.gpuLabels()) // once per point; each bucket adds le
		var acc uint64
		for b := 0; b < counts.Len(); b++ {
			acc += counts.At(b)
			le := "+Inf"
			if b < bounds.Len() {
				le = strconv.FormatFloat(bounds.At(b), 'g', -1, 64)
			}
			bl := pl.with("le", le)
			e.store(mb, res, point{name: name + "_bucket", labels: &bl, value: float64(acc), counter: true,
				delta: float64(acc), hasDelta: !cumulative, start: dp.StartTimestamp(), ts: dp.Timestamp()})
		}
		if dp.HasSum() && !math.IsNaN(dp.Sum()) && !math.IsInf(dp.Sum(), 0) {
			e.store(mb, res, point{name: name + "_sum", labels: &pl, value: dp.Sum(), counter: true,
				delta: dp.Sum(), hasDelta: !cumulative, start: dp.StartTimestamp(), ts: dp.Timestamp()})
		}
		e.store(mb, res, point{name: name + "_count", labels: &pl, value: float64(dp.Count()), counter: true,
			delta: float64(dp.Count()), hasDelta: !cumulative, start: dp.StartTimestamp(), ts: dp.Timestamp()})
	}
}

// summary stores _sum and _count (cumulative) and one gauge per quantile.
func (e *chExporter) summary(mb *metricBatch, res *resource, name string, s pmetric.Summary) {
	dps := s.DataPoints()
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		pl := e.labelsOf(dp.Attributes(), nil, res.gpuLabels())
		e.store(mb, res, point{name: name + "_sum", labels: &pl, value: dp.Sum(), counter: true, start: dp.StartTimestamp(), ts: dp.Timestamp()})
		e.store(mb, res, point{name: name + "_count", labels: &pl, value: float64(dp.Count()), counter: true, start: dp.StartTimestamp(), ts: dp.Timestamp()})
		qs := dp.QuantileValues()
		for q := 0; q < qs.Len(); q++ {
			ql := pl.with("quantile", strconv.FormatFloat(qs.At(q).Quantile(), 'g', -1, 64))
			e.store(mb, res, point{name: name, labels: &ql, value: qs.At(q).Value(), start: dp.StartTimestamp(), ts: dp.Timestamp()})
		}
	}
}

// store appends one sample (and, when due, its series row).
func (e *chExporter) store(mb *metricBatch, res *resource, p point) *seriesEntry {
	if math.IsNaN(p.value) || math.IsInf(p.value, 0) {
		mb.reject(ReasonNonFinite)
		return nil
	}
	t, ok := e.timeOf(mb, p.ts)
	if !ok {
		return nil
	}
	node := res.topo.Node
	if node == "" {
		node = p.labels.host
	}
	id := seriesID(p.name, res, node, p.labels)
	se, due := e.series.entry(id, p.raw, mb.now)
	se.truncated = p.labels.truncated
	e.appendSample(mb, se, &p, t)
	if due {
		mb.described = append(mb.described, se)
		topo := res.topo
		topo.Node = node
		k8s := p.labels.k8s
		if k8s == (fleet.Kubernetes{}) {
			k8s = res.k8s
		}
		mb.series.Append(&storage.GPUSeries{Series: id, Metric: p.name, Counter: p.counter, Topology: topo, GPU: p.labels.gpu,
			K8s: k8s, Job: p.labels.job, Labels: fleet.Labels{Keys: p.labels.keys, Values: p.labels.values},
			FirstSeen: mb.now, LastSeen: mb.now})
	}
	return se
}

// appendSample appends p, at time t, to series se.
func (e *chExporter) appendSample(mb *metricBatch, se *seriesEntry, p *point, t time.Time) {
	if se.truncated > 0 {
		mb.normalized[NormLabelTruncated]++
	}
	kind, delta := kindGauge, 0.0
	switch {
	case p.hasDelta:
		kind, delta = kindDelta, p.delta
	case p.counter:
		kind = kindCumulative // its increase is computed when it is written
	}
	mb.samples.Append(&storage.GPUSample{Time: t, Metric: p.name, Series: se.id, Value: p.value, Delta: delta})
	mb.kinds = append(mb.kinds, kind)
	mb.starts = append(mb.starts, int64(p.start))
}

// seriesID hashes everything that identifies a series.
func seriesID(name string, res *resource, node string, pl *pointLabels) uint64 {
	parts := make([]string, 0, 16+2*len(pl.keys))
	parts = append(parts, name, res.topo.Datacenter, res.topo.Row, res.topo.Rack, res.topo.Cluster, node, res.service,
		pl.gpu.UUID, pl.gpu.Instance, pl.gpu.Index, pl.k8s.Namespace, pl.k8s.Pod, pl.k8s.Container, pl.job)
	for i := range pl.keys {
		parts = append(parts, pl.keys[i], pl.values[i])
	}
	return storage.HashSeries(parts...)
}
