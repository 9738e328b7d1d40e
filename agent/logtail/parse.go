package logtail

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/record"
)

// Line kinds in a model-server log.
const (
	KindInference  = "inference"
	KindLabel      = "label"
	KindDeployment = "deployment"
	KindOutcome    = "outcome"
)

// Drop reasons for malformed lines.
const (
	ReasonInvalidJSON    = "invalid_json"
	ReasonMissingModel   = "missing_model"
	ReasonMissingRequest = "missing_request_id"
	ReasonBadTimestamp   = "bad_timestamp"
	ReasonTimeOutOfRange = "timestamp_out_of_range"
	ReasonBadLatency     = "bad_latency"
	ReasonBadFeature     = "bad_feature"
	ReasonUnknownType    = "unknown_type"
	ReasonLineTooLong    = "line_too_long"
)

// MalformedError says why a line was rejected.
type MalformedError struct {
	Reason string
	Detail string
}

func (e *MalformedError) Error() string { return e.Reason + ": " + e.Detail }

func malformed(reason, format string, args ...any) error {
	return &MalformedError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// line is the JSON shape of one log line (docs/TELEMETRY.md).
type line struct {
	Type            string                     `json:"type"`
	TS              json.RawMessage            `json:"ts"`
	Model           string                     `json:"model"`
	ModelVersion    string                     `json:"model_version"`
	RequestID       string                     `json:"request_id"`
	LatencyMs       *float64                   `json:"latency_ms"`
	Status          string                     `json:"status"`
	Features        map[string]json.RawMessage `json:"features"`
	FeatureUpdated  map[string]json.RawMessage `json:"feature_updated_at"`
	Prediction      *float64                   `json:"prediction"`
	PredictionClass string                     `json:"prediction_class"`
	GPUUUID         string                     `json:"gpu_uuid"`
	Label           string                     `json:"label"`
	LabelValue      *float64                   `json:"label_value"`
	PreviousVersion string                     `json:"previous_version"`
	Change          string                     `json:"change"`
	Environment     string                     `json:"environment"`
	Actor           string                     `json:"actor"`
	Note            string                     `json:"note"`
	Outcome         string                     `json:"outcome"`
	Success         *bool                      `json:"success"`
	Value           *float64                   `json:"value"`
}

// Item is one parsed line: exactly one of its fields is set.
type Item struct {
	Inference  *record.Inference
	Label      *record.DelayedLabel
	Deployment *record.Deployment
	Outcome    *record.Outcome
}

// Window bounds accepted timestamps around the time a line is read.
type Window struct {
	Past, Future time.Duration
}

// ParseLine parses one JSON line. now is when it was read; a line without a
// timestamp gets now, one outside window is rejected.
func ParseLine(data []byte, now time.Time, w Window) (Item, error) {
	var l line
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&l); err != nil {
		return Item{}, malformed(ReasonInvalidJSON, "%v", err)
	}
	if dec.More() {
		return Item{}, malformed(ReasonInvalidJSON, "more than one JSON value on the line")
	}
	ts, err := parseTS(l.TS, now)
	if err != nil {
		return Item{}, err
	}
	if ts.Before(now.Add(-w.Past)) || ts.After(now.Add(w.Future)) {
		return Item{}, malformed(ReasonTimeOutOfRange, "%s is outside [now-%v, now+%v]", ts.Format(time.RFC3339), w.Past, w.Future)
	}
	if l.Model == "" {
		return Item{}, malformed(ReasonMissingModel, "no \"model\"")
	}
	switch l.Type {
	case "", KindInference:
		return parseInference(&l, ts)
	case KindLabel:
		if l.RequestID == "" {
			return Item{}, malformed(ReasonMissingRequest, "no \"request_id\"")
		}
		dl := &record.DelayedLabel{Time: ts, Model: l.Model, RequestID: l.RequestID, Label: l.Label}
		if l.LabelValue != nil {
			if math.IsNaN(*l.LabelValue) || math.IsInf(*l.LabelValue, 0) {
				return Item{}, malformed(ReasonInvalidJSON, "label_value is not finite")
			}
			dl.LabelValue, dl.HasValue = *l.LabelValue, true
		}
		return Item{Label: dl}, nil
	case KindOutcome:
		if l.RequestID == "" {
			return Item{}, malformed(ReasonMissingRequest, "no \"request_id\"")
		}
		o := &record.Outcome{Time: ts, Model: l.Model, ModelVersion: l.ModelVersion, RequestID: l.RequestID, Outcome: l.Outcome, Success: l.Success == nil || *l.Success}
		if l.Value != nil {
			if math.IsNaN(*l.Value) || math.IsInf(*l.Value, 0) {
				return Item{}, malformed(ReasonInvalidJSON, "value is not finite")
			}
			o.Value, o.HasValue = *l.Value, true
		}
		return Item{Outcome: o}, nil
	case KindDeployment:
		return Item{Deployment: &record.Deployment{Time: ts, Model: l.Model, ModelVersion: l.ModelVersion, PreviousVersion: l.PreviousVersion,
			Change: l.Change, Environment: l.Environment, Actor: l.Actor, Note: l.Note}}, nil
	}
	return Item{}, malformed(ReasonUnknownType, "type %q: want inference, label, outcome or deployment", l.Type)
}

func parseInference(l *line, ts time.Time) (Item, error) {
	if l.RequestID == "" {
		return Item{}, malformed(ReasonMissingRequest, "no \"request_id\"")
	}
	in := &record.Inference{Time: ts, Model: l.Model, ModelVersion: l.ModelVersion, RequestID: l.RequestID,
		Status: l.Status, PredictionClass: l.PredictionClass, GPUUUID: l.GPUUUID, SampleRate: 1}
	if in.Status == "" {
		in.Status = "ok"
	}
	if l.LatencyMs != nil {
		if *l.LatencyMs < 0 || *l.LatencyMs > 86_400_000 {
			return Item{}, malformed(ReasonBadLatency, "latency_ms %v is negative or over a day", *l.LatencyMs)
		}
		in.LatencyMs = *l.LatencyMs
	} else {
		in.LatencyMs = math.NaN()
	}
	if l.Prediction != nil {
		in.Prediction, in.HasPrediction = *l.Prediction, true
	}
	names := make([]string, 0, len(l.Features))
	for name := range l.Features {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f, err := parseFeature(name, l.Features[name])
		if err != nil {
			return Item{}, err
		}
		in.Features = append(in.Features, f)
	}
	in.FeatureUpdatedAt = featureUpdates(l.FeatureUpdated)
	return Item{Inference: in}, nil
}

// featureUpdates forwards feature_updated_at: numbers as Unix seconds,
// strings as they are, anything else as its JSON text. The collector
// validates the entries and counts the ones it drops (a bad update time
// loses that entry, never the event), so both ingest paths judge alike.
func featureUpdates(m map[string]json.RawMessage) []record.FeatureUpdate {
	if len(m) == 0 {
		return nil
	}
	out := make([]record.FeatureUpdate, 0, len(m))
	for name, raw := range m {
		raw = bytes.TrimSpace(raw)
		u := record.FeatureUpdate{Name: name}
		if v, err := strconv.ParseFloat(string(raw), 64); err == nil {
			u.Unix = v
		} else if err := json.Unmarshal(raw, &u.Str); err == nil {
			u.IsStr = true
		} else {
			u.Str, u.IsStr = string(raw), true
		}
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func parseFeature(name string, raw json.RawMessage) (record.Feature, error) {
	f := record.Feature{Name: name}
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
		f.Missing = true
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return f, malformed(ReasonBadFeature, "feature %q: %v", name, err)
		}
		f.IsCat, f.Str = true, s
		f.Missing = s == ""
	case raw[0] == 't' || raw[0] == 'f':
		f.IsCat, f.Str = true, string(raw)
	case raw[0] == '{' || raw[0] == '[':
		return f, malformed(ReasonBadFeature, "feature %q is an object or array; want a number, string, boolean or null", name)
	default:
		v, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return f, malformed(ReasonBadFeature, "feature %q: %v", name, err)
		}
		f.Num = v
	}
	return f, nil
}

// parseTS accepts RFC 3339 strings and Unix seconds (with a fraction).
func parseTS(raw json.RawMessage, now time.Time) (time.Time, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return now, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, malformed(ReasonBadTimestamp, "%v", err)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, malformed(ReasonBadTimestamp, "ts %q is not RFC 3339", s)
		}
		return t.UTC(), nil
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > 1e11 {
		return time.Time{}, malformed(ReasonBadTimestamp, "ts %s is neither RFC 3339 nor Unix seconds", raw)
	}
	sec, frac := math.Modf(v)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}
