package canary

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet/catalog"
)

// ModelType selects the per-type defaults of design document 003 (tables
// 14 and 20).
type ModelType string

// Model types with defaults of their own; TypeGeneric has the document's
// listing-4 triggers and no latency gates.
const (
	TypeGeneric        ModelType = "generic"
	TypeLLM            ModelType = "llm"
	TypeRecommendation ModelType = "recommendation"
	TypeFraud          ModelType = "fraud"
	TypeVision         ModelType = "vision"
	TypeSearch         ModelType = "search"
)

// ModelTypes lists the known types.
var ModelTypes = []ModelType{TypeGeneric, TypeLLM, TypeRecommendation, TypeFraud, TypeVision, TypeSearch}

// TypeOf maps a catalog model's free-form type and domain to a ModelType:
// the first of llm (llm, language, generat, chat), fraud, vision (vision,
// image), search, recommendation (recommend, ranking, retrieval) that
// either contains, else generic.
func TypeOf(modelType, domain string) ModelType {
	s := strings.ToLower(modelType + " " + domain)
	for _, m := range []struct {
		t     ModelType
		words []string
	}{
		{TypeLLM, []string{"llm", "language", "generat", "chat"}},
		{TypeFraud, []string{"fraud"}},
		{TypeVision, []string{"vision", "image"}},
		{TypeSearch, []string{"search"}},
		{TypeRecommendation, []string{"recommend", "ranking", "retrieval"}},
	} {
		for _, w := range m.words {
			if strings.Contains(s, w) {
				return m.t
			}
		}
	}
	return TypeGeneric
}

// RateRule is a rule on a rate (errors or engagement per request).
type RateRule struct {
	// Enabled turns the rule on.
	Enabled bool
	// Threshold is the regression worth a rollback: for the error rate an
	// absolute increase (0.01 = one percentage point), for engagement a
	// relative drop (0.02 = 2% of the baseline's rate).
	Threshold float64
	// Window is the least time the canary must be watched before the rule
	// may pass; failing needs no window (the test is always valid).
	Window time.Duration
	// MinSamples is the least canary requests (trials) before the rule may
	// decide either way.
	MinSamples uint64
}

// LatencyRule is the p99-ratio rule: the canary's p99 against Ratio times
// the baseline's.
type LatencyRule struct {
	Enabled    bool
	Ratio      float64 // 1.5: the canary's p99 over 1.5× the baseline's fails
	Window     time.Duration
	MinSamples uint64
}

// Gates are the absolute latency gates of table 14, in milliseconds; 0
// turns a gate off.
type Gates struct {
	P50Ms, P99Ms float64
	// MinSamples is the least canary requests before a gate may decide.
	MinSamples uint64
}

// DriftRule reports prediction drift between the versions.
type DriftRule struct {
	// Investigate is the PSI marked for investigation in the evidence
	// (0.25, design document 003).
	Investigate float64
	// Fail makes PSI ≥ Investigate a rollback trigger.
	Fail bool
	// MinSamples is the least canary predictions before PSI is reported.
	MinSamples uint64
}

// GateRule is the evaluation gate on a new version's first requests
// (issue 20 item 4, design document 001): the canary may widen only
// after MinRequests requests and a significant error-rate test.
type GateRule struct {
	// MinRequests is the least canary requests before the gate may pass
	// (500).
	MinRequests uint64
}

// Config is the judge's configuration.
type Config struct {
	Type ModelType
	// Alpha is the largest probability that a canary no worse than its
	// baseline is ever failed, however often the judge looks; it is split
	// evenly over the rules in force.
	Alpha      float64
	ErrorRate  RateRule
	Engagement RateRule
	// Accuracy is the delayed-label accuracy rule: Threshold is an
	// absolute drop (0.02 = two points of accuracy).
	Accuracy    RateRule
	LatencyP99  LatencyRule
	LatencyGate Gates
	Drift       DriftRule
	Gate        GateRule
}

// NewDefaultConfig returns the design document's triggers (listing 4):
// error rate +1% absolute over 5 min with ≥ 500 samples, p99 > 1.5× the
// baseline over 5 min with ≥ 100, engagement −2% relative over 15 min with
// ≥ 1,000; delayed-label accuracy −2 points absolute over 15 min with ≥
// 500 labelled requests (the documents give no accuracy trigger: two
// points is the engagement rule's 2% at the accuracies classifiers serve
// at, and 15 min its window, labels arriving late); no latency gates; α =
// 0.01.
func NewDefaultConfig() Config {
	return Config{
		Type:        TypeGeneric,
		Alpha:       0.01,
		ErrorRate:   RateRule{Enabled: true, Threshold: 0.01, Window: 5 * time.Minute, MinSamples: 500},
		Engagement:  RateRule{Enabled: true, Threshold: 0.02, Window: 15 * time.Minute, MinSamples: 1000},
		Accuracy:    RateRule{Enabled: true, Threshold: 0.02, Window: 15 * time.Minute, MinSamples: 500},
		LatencyP99:  LatencyRule{Enabled: true, Ratio: 1.5, Window: 5 * time.Minute, MinSamples: 100},
		LatencyGate: Gates{MinSamples: 100},
		Drift:       DriftRule{Investigate: 0.25, MinSamples: 1000},
		Gate:        GateRule{MinRequests: 500},
	}
}

// TypeDefaults is one row of the per-type defaults.
type TypeDefaults struct {
	Type ModelType
	// GateP50Ms, GateP99Ms are table 14's latency gates.
	GateP50Ms, GateP99Ms float64
	// EngagementDrop is table 20's alert threshold on the primary metric
	// as a relative drop; 0 keeps listing 4's 2%.
	EngagementDrop float64
	// Cadence is table 20's monitoring frequency of the type's quality
	// metric. The judge's own rules look every few seconds for every type;
	// the cadence is for the delayed quality metrics (accuracy, quality
	// scores) a caller judges on its own schedule.
	Cadence time.Duration
}

// TypeTable is the documents' per-type defaults: table 14 (latency gates)
// and table 20 (thresholds, cadence; "per-model calibration" and
// "dataset-specific" keep the generic 2%).
var TypeTable = []TypeDefaults{
	{Type: TypeGeneric, Cadence: time.Minute},
	{Type: TypeLLM, GateP50Ms: 500, GateP99Ms: 2000, Cadence: time.Hour},
	{Type: TypeRecommendation, GateP50Ms: 10, GateP99Ms: 50, EngagementDrop: 0.05, Cadence: 10 * time.Second},
	{Type: TypeFraud, GateP50Ms: 5, GateP99Ms: 20, EngagementDrop: 0.01, Cadence: 10 * time.Second},
	{Type: TypeVision, GateP50Ms: 50, GateP99Ms: 200, Cadence: 24 * time.Hour},
	{Type: TypeSearch, EngagementDrop: 0.02, Cadence: 10 * time.Second},
}

// Defaults returns the row of TypeTable for t, or false.
func Defaults(t ModelType) (TypeDefaults, bool) {
	for _, d := range TypeTable {
		if d.Type == t {
			return d, true
		}
	}
	return TypeDefaults{}, false
}

// NewConfigForType returns NewDefaultConfig with t's gates and engagement
// threshold.
func NewConfigForType(t ModelType) (Config, error) {
	d, ok := Defaults(t)
	if !ok {
		return Config{}, fmt.Errorf("model type %q: want one of %v", t, ModelTypes)
	}
	c := NewDefaultConfig()
	c.Type = t
	c.LatencyGate.P50Ms, c.LatencyGate.P99Ms = d.GateP50Ms, d.GateP99Ms
	if d.EngagementDrop > 0 {
		c.Engagement.Threshold = d.EngagementDrop
	}
	return c, nil
}

// applyOverrides returns c with a catalog model's non-zero canary
// settings.
func applyOverrides(c Config, o catalog.Canary) Config {
	set := func(dst *float64, v float64) {
		if v != 0 {
			*dst = v
		}
	}
	setD := func(dst *time.Duration, v time.Duration) {
		if v != 0 {
			*dst = v
		}
	}
	set(&c.Alpha, o.Alpha)
	set(&c.ErrorRate.Threshold, o.ErrorRateIncrease)
	set(&c.Engagement.Threshold, o.EngagementDrop)
	set(&c.Accuracy.Threshold, o.AccuracyDrop)
	set(&c.LatencyP99.Ratio, o.LatencyP99Ratio)
	set(&c.LatencyGate.P50Ms, o.GateP50Ms)
	set(&c.LatencyGate.P99Ms, o.GateP99Ms)
	setD(&c.ErrorRate.Window, o.ErrorRateWindow)
	setD(&c.Engagement.Window, o.EngagementWindow)
	setD(&c.Accuracy.Window, o.AccuracyWindow)
	setD(&c.LatencyP99.Window, o.LatencyWindow)
	if o.GateMinRequests > 0 {
		c.Gate.MinRequests = uint64(o.GateMinRequests)
	}
	c.Drift.Fail = c.Drift.Fail || o.DriftIsRollback
	c.Engagement.Enabled = c.Engagement.Enabled && !o.DisableEngagement
	c.Accuracy.Enabled = c.Accuracy.Enabled && !o.DisableAccuracy
	c.LatencyP99.Enabled = c.LatencyP99.Enabled && !o.DisableLatencyRatio
	return c
}

// ConfigFor returns the configuration for a model of the given catalog
// type and domain: its type's defaults (o.ModelType, else TypeOf) with the
// catalog's overrides o.
func ConfigFor(modelType, domain string, o catalog.Canary) (Config, error) {
	t := ModelType(o.ModelType)
	if t == "" {
		t = TypeOf(modelType, domain)
	}
	c, err := NewConfigForType(t)
	if err != nil {
		return Config{}, err
	}
	c = applyOverrides(c, o)
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// ConfigForModel is ConfigFor a catalog model.
func ConfigForModel(m *catalog.Model) (Config, error) {
	c, err := ConfigFor(m.Type, m.Domain, m.Canary)
	if err != nil {
		return Config{}, fmt.Errorf("model %s: %w", m.Name, err)
	}
	return c, nil
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if _, ok := Defaults(c.Type); !ok {
		errs = append(errs, fmt.Errorf("model type %q: want one of %v", c.Type, ModelTypes))
	}
	if !(c.Alpha > 0 && c.Alpha < 0.5) {
		errs = append(errs, fmt.Errorf("alpha %v: want in (0, 0.5)", c.Alpha))
	}
	if c.ErrorRate.Enabled && !(c.ErrorRate.Threshold > 0 && c.ErrorRate.Threshold < 1) {
		errs = append(errs, fmt.Errorf("error rate threshold %v: want an absolute increase in (0, 1)", c.ErrorRate.Threshold))
	}
	if c.Engagement.Enabled && !(c.Engagement.Threshold > 0 && c.Engagement.Threshold < 1) {
		errs = append(errs, fmt.Errorf("engagement threshold %v: want a relative drop in (0, 1)", c.Engagement.Threshold))
	}
	if c.Accuracy.Enabled && !(c.Accuracy.Threshold > 0 && c.Accuracy.Threshold < 1) {
		errs = append(errs, fmt.Errorf("accuracy threshold %v: want an absolute drop in (0, 1)", c.Accuracy.Threshold))
	}
	if c.LatencyP99.Enabled && !(c.LatencyP99.Ratio > 1) || math.IsInf(c.LatencyP99.Ratio, 0) {
		errs = append(errs, fmt.Errorf("latency p99 ratio %v: want > 1", c.LatencyP99.Ratio))
	}
	for name, w := range map[string]time.Duration{"error rate": c.ErrorRate.Window, "engagement": c.Engagement.Window, "accuracy": c.Accuracy.Window, "latency p99": c.LatencyP99.Window} {
		if w < 0 {
			errs = append(errs, fmt.Errorf("%s window %v: want >= 0", name, w))
		}
	}
	if !(c.LatencyGate.P50Ms >= 0) || !(c.LatencyGate.P99Ms >= 0) {
		errs = append(errs, fmt.Errorf("latency gates p50 %v ms, p99 %v ms: want >= 0 (0 = off)", c.LatencyGate.P50Ms, c.LatencyGate.P99Ms))
	}
	if c.LatencyGate.P50Ms > 0 && c.LatencyGate.P99Ms > 0 && c.LatencyGate.P50Ms > c.LatencyGate.P99Ms {
		errs = append(errs, fmt.Errorf("latency gate p50 %v ms above p99 %v ms", c.LatencyGate.P50Ms, c.LatencyGate.P99Ms))
	}
	if !(c.Drift.Investigate > 0) {
		errs = append(errs, fmt.Errorf("drift investigate PSI %v: want > 0", c.Drift.Investigate))
	}
	if c.Gate.MinRequests < 1 {
		errs = append(errs, errors.New("gate min requests 0: want >= 1"))
	}
	return errors.Join(errs...)
}
