package chexporter

import (
	"context"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/lib/profile"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// eventBatch accumulates the rows of one logs push.
type eventBatch struct {
	gpu        storage.GPUEventBlock
	inference  storage.InferenceEventBlock
	labels     storage.DelayedLabelBlock
	deploys    storage.ModelDeploymentBlock
	outcomes   storage.BusinessOutcomeBlock
	bins       *profile.PrebinBatch
	rejected   map[string]int
	normalized map[string]int
	now        time.Time
}

// ConsumeLogs validates ld, turns its Fleetwatch events into rows and
// queues them; it returns once they are on disk.
func (e *chExporter) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	eb := &eventBatch{rejected: map[string]int{}, normalized: map[string]int{}, now: time.Now(), bins: e.prebinner(ctx).NewBatch()}
	n := ld.LogRecordCount()
	e.received(ctx, n)
	e.mu.Lock()
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		res := resourceOf(rl.Resource().Attributes(), e.cfg.MaxLabelLength)
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				e.event(eb, &res, lrs.At(k))
			}
		}
	}
	e.mu.Unlock()
	rejected := e.account(ctx, eb.rejected, eb.normalized)
	// drift_bins follows inference_events: if a request is queued twice (a
	// sender's retry), drift_bins counts its events twice, which the
	// analyzer detects and bins that window in SQL instead.
	return e.enqueue(ctx, n-rejected, eb.gpu.Block(), eb.inference.Block(), storage.DriftBins(eb.bins.Counts()), eb.labels.Block(), eb.outcomes.Block(), eb.deploys.Block())
}

// eventName is the record's event name: the OTLP field, else the attribute.
func eventName(lr plog.LogRecord) string {
	if n := lr.EventName(); n != "" {
		return n
	}
	if v, ok := lr.Attributes().Get(telemetry.AttrEventName); ok {
		return v.AsString()
	}
	return ""
}

// eventTime is the event's time, else when it was observed, else now; a time
// outside the accepted window is an error.
func (e *chExporter) eventTime(eb *eventBatch, lr plog.LogRecord) (time.Time, bool) {
	ts := lr.Timestamp()
	if ts == 0 {
		ts = lr.ObservedTimestamp()
	}
	if ts == 0 {
		eb.normalized[NormMissingTimestamp]++
		return eb.now, true
	}
	t := ts.AsTime()
	if e.outOfRange(eb.now, t) {
		eb.rejected[ReasonTimeOutOfRange]++
		return t, false
	}
	return t, true
}

// attrs reads typed attributes, truncating strings; norm, when set,
// counts the normalisations made while reading.
type attrs struct {
	m    pcommon.Map
	max  int
	norm map[string]int
}

func (a attrs) str(k string) string {
	if v, ok := a.m.Get(k); ok {
		return truncate(v.AsString(), a.max)
	}
	return ""
}

// num reads a number: a double, an int, or a string holding a number
// (normalisation numeric_string); NaN when absent, and NaN counted as
// bad_number when the value is no number.
func (a attrs) num(k string) (float64, bool) {
	v, ok := a.m.Get(k)
	if !ok {
		return math.NaN(), false
	}
	switch v.Type() {
	case pcommon.ValueTypeDouble:
		return v.Double(), true
	case pcommon.ValueTypeInt:
		return float64(v.Int()), true
	case pcommon.ValueTypeStr:
		if f, err := strconv.ParseFloat(strings.TrimSpace(v.Str()), 64); err == nil {
			a.count(NormNumericString)
			return f, true
		}
	}
	a.count(NormBadNumber)
	return math.NaN(), false
}

// flag reads a boolean: a bool, a number (0 is false) or a string
// (true/false, 1/0, yes/no); def when absent, and def counted as
// bad_number when the value is none of these.
func (a attrs) flag(k string, def bool) bool {
	v, ok := a.m.Get(k)
	if !ok {
		return def
	}
	switch v.Type() {
	case pcommon.ValueTypeBool:
		return v.Bool()
	case pcommon.ValueTypeInt:
		return v.Int() != 0
	case pcommon.ValueTypeDouble:
		return v.Double() != 0
	case pcommon.ValueTypeStr:
		switch strings.ToLower(strings.TrimSpace(v.Str())) {
		case "true", "1", "yes":
			return true
		case "false", "0", "no":
			return false
		}
	}
	a.count(NormBadNumber)
	return def
}

func (a attrs) count(reason string) {
	if a.norm != nil {
		a.norm[reason]++
	}
}

func (e *chExporter) event(eb *eventBatch, res *resource, lr plog.LogRecord) {
	name := eventName(lr)
	switch name {
	case telemetry.EventGPU, telemetry.EventInference, telemetry.EventLabel, telemetry.EventDeployment, telemetry.EventOutcome:
	default:
		eb.rejected[ReasonNotAnEvent]++
		return
	}
	t, ok := e.eventTime(eb, lr)
	if !ok {
		return
	}
	a := attrs{lr.Attributes(), e.cfg.MaxLabelLength, eb.normalized}
	switch name {
	case telemetry.EventGPU:
		pl := e.labelsOf(lr.Attributes(), nil, res.gpuLabels())
		if pl.gpu.UUID == "" {
			eb.rejected[ReasonMissingUUID]++
			return
		}
		code, _ := a.num(telemetry.AttrCode)
		count, ok := a.num(telemetry.AttrCount)
		if !ok || count < 1 {
			count = 1
		}
		topo := res.topo
		if topo.Node == "" {
			topo.Node = pl.host
		}
		keys, values := dropKeys(pl.keys, pl.values, telemetry.AttrGPUEvent, telemetry.AttrCode, telemetry.AttrCount, telemetry.AttrSource, telemetry.AttrEventName)
		eb.gpu.Append(&storage.GPUEvent{Time: t, Event: a.str(telemetry.AttrGPUEvent), Code: int64(code), Count: uint32(count),
			Message: truncate(lr.Body().AsString(), 4*e.cfg.MaxLabelLength), Source: a.str(telemetry.AttrSource), Topology: topo,
			GPU: pl.gpu, K8s: pl.k8s, Job: pl.job, Labels: fleet.Labels{Keys: keys, Values: values}})
	case telemetry.EventInference:
		e.inference(eb, res, a, t)
	case telemetry.EventLabel:
		model, req := a.str(telemetry.AttrModel), a.str(telemetry.AttrRequestID)
		if model == "" || req == "" {
			eb.rejected[missingReason(model)]++
			return
		}
		v, _ := a.num(telemetry.AttrLabelValue)
		eb.labels.Append(&storage.DelayedLabel{Time: t, Model: model, RequestID: req, Label: a.str(telemetry.AttrLabel), LabelValue: v})
	case telemetry.EventOutcome:
		model, req := a.str(telemetry.AttrModel), a.str(telemetry.AttrRequestID)
		if model == "" || req == "" {
			eb.rejected[missingReason(model)]++
			return
		}
		outcome := a.str(telemetry.AttrOutcome)
		if outcome == "" {
			outcome = telemetry.OutcomeEngagement
		}
		v, _ := a.num(telemetry.AttrOutcomeValue)
		eb.outcomes.Append(&storage.BusinessOutcome{Time: t, Model: model, ModelVersion: a.str(telemetry.AttrModelVersion), RequestID: req,
			Outcome: outcome, Success: a.flag(telemetry.AttrSuccess, true), Value: v, Service: res.service, Namespace: res.k8s.Namespace})
	case telemetry.EventDeployment:
		model := a.str(telemetry.AttrModel)
		if model == "" {
			eb.rejected[ReasonMissingModel]++
			return
		}
		eb.deploys.Append(&storage.ModelDeployment{Time: t, Model: model, ModelVersion: a.str(telemetry.AttrModelVersion),
			PreviousVersion: a.str(telemetry.AttrPreviousVersion), Change: a.str(telemetry.AttrChange),
			Environment: a.str(telemetry.AttrEnvironment), Actor: a.str(telemetry.AttrActor), Note: truncate(lr.Body().AsString(), 4*e.cfg.MaxLabelLength)})
	}
}

func missingReason(model string) string {
	if model == "" {
		return ReasonMissingModel
	}
	return ReasonMissingRequest
}

// dropKeys removes event attributes that have columns of their own.
func dropKeys(keys, values []string, drop ...string) ([]string, []string) {
	var k2, v2 []string
	for i, k := range keys {
		skip := false
		for _, d := range drop {
			if k == d {
				skip = true
			}
		}
		if !skip {
			k2, v2 = append(k2, k), append(v2, values[i])
		}
	}
	return k2, v2
}

func (e *chExporter) inference(eb *eventBatch, res *resource, a attrs, t time.Time) {
	model, req := a.str(telemetry.AttrModel), a.str(telemetry.AttrRequestID)
	if model == "" || req == "" {
		eb.rejected[missingReason(model)]++
		return
	}
	in := fleet.InferenceEvent{Time: t, Model: model, ModelVersion: a.str(telemetry.AttrModelVersion), RequestID: req,
		Status: a.str(telemetry.AttrStatus), PredictionClass: a.str(telemetry.AttrPredictionClass), Service: res.service,
		Datacenter: res.topo.Datacenter, Cluster: res.topo.Cluster, Node: res.topo.Node, GPUUUID: a.str(telemetry.AttrGPUUUID),
		Namespace: res.k8s.Namespace, Pod: res.k8s.Pod}
	if in.Status == "" {
		in.Status = "ok"
	}
	in.LatencyMs, _ = a.num(telemetry.AttrLatencyMs)
	in.Prediction, _ = a.num(telemetry.AttrPrediction)
	if rate, ok := a.num(telemetry.AttrSampleRate); ok && rate > 0 && rate <= 1 {
		in.SampleRate = rate
	} else {
		in.SampleRate = 1
	}
	if fm, ok := e.features(eb, a); ok {
		fm.Range(func(name string, fv pcommon.Value) bool {
			key := featureKey{model, name}
			switch fv.Type() {
			case pcommon.ValueTypeDouble:
				in.FeatureNames, in.FeatureValues = append(in.FeatureNames, name), append(in.FeatureValues, fv.Double())
			case pcommon.ValueTypeInt:
				in.FeatureNames, in.FeatureValues = append(in.FeatureNames, name), append(in.FeatureValues, float64(fv.Int()))
			case pcommon.ValueTypeStr, pcommon.ValueTypeBool:
				e.cat[key] = true
				in.CatFeatureNames = append(in.CatFeatureNames, name)
				in.CatFeatureValues = append(in.CatFeatureValues, truncate(fv.AsString(), e.cfg.MaxLabelLength))
			case pcommon.ValueTypeEmpty:
				// Missing: in the column family the feature was last seen in.
				if e.cat[key] {
					in.CatFeatureNames, in.CatFeatureValues = append(in.CatFeatureNames, name), append(in.CatFeatureValues, "")
				} else {
					in.FeatureNames, in.FeatureValues = append(in.FeatureNames, name), append(in.FeatureValues, math.NaN())
				}
			default:
				eb.normalized[NormFeatureWrongType]++
			}
			return true
		})
	}
	e.featureUpdates(eb, a, &in)
	eb.inference.Append(&in)
	eb.bins.Add(&in)
}

// Feature update times outside [minFeatureUpdate, event time + maxUpdateSkew]
// are no update times: a served value cannot have been updated after it was
// served (beyond clock skew between the pipeline and the server).
var minFeatureUpdate = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

const maxUpdateSkew = 5 * time.Minute

// featureUpdates reads fleetwatch.feature_updated_at into in, sorted by
// name. Each entry that is no time is dropped and counted
// (feature_update_dropped); the event is kept either way. An attribute
// that is no map drops every entry, counted once.
func (e *chExporter) featureUpdates(eb *eventBatch, a attrs, in *fleet.InferenceEvent) {
	v, ok := a.m.Get(telemetry.AttrFeatureUpdatedAt)
	if !ok {
		return
	}
	if v.Type() != pcommon.ValueTypeMap {
		eb.normalized[NormBadFeatureUpdate]++
		return
	}
	latest := in.Time.Add(maxUpdateSkew)
	for name, uv := range v.Map().All() {
		t, ok := updateTime(uv)
		if !ok || t.Before(minFeatureUpdate) || t.After(latest) {
			eb.normalized[NormBadFeatureUpdate]++
			continue
		}
		in.FeatureUpdateNames = append(in.FeatureUpdateNames, name)
		in.FeatureUpdateTimes = append(in.FeatureUpdateTimes, float64(t.UnixNano())/1e9)
	}
	sort.Sort(byUpdateName{in.FeatureUpdateNames, in.FeatureUpdateTimes})
}

// updateTime reads one update time: Unix seconds (double or int) or an
// RFC 3339 string.
func updateTime(v pcommon.Value) (time.Time, bool) {
	var secs float64
	switch v.Type() {
	case pcommon.ValueTypeDouble:
		secs = v.Double()
	case pcommon.ValueTypeInt:
		secs = float64(v.Int())
	case pcommon.ValueTypeStr:
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(v.Str()))
		return t, err == nil
	default:
		return time.Time{}, false
	}
	if math.IsNaN(secs) || math.IsInf(secs, 0) || secs > 1e11 {
		return time.Time{}, false
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)), true
}

// byUpdateName sorts aligned update names and times by name.
type byUpdateName struct {
	names []string
	ts    []float64
}

func (b byUpdateName) Len() int           { return len(b.names) }
func (b byUpdateName) Less(i, j int) bool { return b.names[i] < b.names[j] }
func (b byUpdateName) Swap(i, j int) {
	b.names[i], b.names[j] = b.names[j], b.names[i]
	b.ts[i], b.ts[j] = b.ts[j], b.ts[i]
}

// features returns the event's feature map: the attribute as a map, or a
// string holding a JSON object (normalisation features_json). Anything
// else is counted (bad_features) and the event is stored without features.
func (e *chExporter) features(eb *eventBatch, a attrs) (pcommon.Map, bool) {
	v, ok := a.m.Get(telemetry.AttrFeatures)
	if !ok {
		return pcommon.Map{}, false
	}
	switch v.Type() {
	case pcommon.ValueTypeMap:
		return v.Map(), true
	case pcommon.ValueTypeStr:
		var raw map[string]any
		if err := json.Unmarshal([]byte(v.Str()), &raw); err == nil {
			m := pcommon.NewMap()
			if err := m.FromRaw(raw); err == nil {
				eb.normalized[NormFeaturesJSON]++
				return m, true
			}
		}
	}
	eb.normalized[NormBadFeatures]++
	return pcommon.Map{}, false
}
