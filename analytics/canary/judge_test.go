package canary

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet/catalog"
)

// latency returns a histogram of n latencies spread evenly over the
// log-normal quantiles (median ms, sigma): a noise-free sample, at most
// 100,000 distinct points, each weighted.
func latency(n int, median, sigma float64) *Histogram {
	h := &Histogram{}
	k := min(n, 100000)
	for i := range k {
		u := (float64(i) + 0.5) / float64(k)
		w := n/k + btoi(i < n%k)
		h.AddN(BucketOf(median*math.Exp(sigma*math.Sqrt2*math.Erfinv(2*u-1))), uint64(w))
	}
	return h
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// counts returns a version's counts with exact rates.
func counts(n int, errRate, ctr, median float64) Counts {
	return Counts{
		Requests: uint64(n), Errors: uint64(math.Round(float64(n) * errRate)),
		Trials: uint64(n), Successes: uint64(math.Round(float64(n) * ctr)),
		Latency: latency(n, median, 0.5),
	}
}

func find(t *testing.T, v Verdict, rule string) Evidence {
	t.Helper()
	for _, e := range v.Evidence {
		if e.Rule == rule {
			return e
		}
	}
	t.Fatalf("no evidence for %s in %+v", rule, v.Evidence)
	return Evidence{}
}

func TestJudge(t *testing.T) {
	def := NewDefaultConfig()
	rec, _ := NewConfigForType(TypeRecommendation)
	for _, tc := range []struct {
		name    string
		cfg     Config
		obs     Observation
		want    Outcome
		rule    string  // the rule to inspect
		ruleOut Outcome // its outcome
		check   func(t *testing.T, e Evidence)
	}{
		{
			name: "too few samples: inconclusive with the time left",
			cfg:  def,
			obs:  Observation{Elapsed: 10 * time.Second, Canary: counts(100, 0.05, 0.05, 4), Baseline: counts(2000, 0.005, 0.05, 4)},
			want: Inconclusive, rule: RuleErrorRate, ruleOut: Inconclusive,
			check: func(t *testing.T, e Evidence) {
				// 500 samples at 10 requests/s is 40 s more at least.
				if e.TimeLeft < 40*time.Second || e.TimeLeft > 10*time.Minute {
					t.Errorf("time left %v, want between 40 s and 10 min", e.TimeLeft)
				}
			},
		},
		{
			name: "error spike fails with its evidence",
			cfg:  def,
			obs:  Observation{Elapsed: 2 * time.Minute, Canary: counts(2000, 0.04, 0.05, 4), Baseline: counts(38000, 0.005, 0.05, 4)},
			want: Fail, rule: RuleErrorRate, ruleOut: Fail,
			check: func(t *testing.T, e Evidence) {
				if !(e.Lower > 0) || !(e.Effect >= 0.01) || e.CanarySamples != 2000 || math.Abs(e.Canary-0.04) > 1e-9 || e.Unit != UnitAbsolute {
					t.Errorf("evidence %+v", e)
				}
				if !(e.Lower <= e.Effect && e.Effect <= e.Upper) {
					t.Errorf("interval [%g, %g] misses the effect %g", e.Lower, e.Upper, e.Effect)
				}
			},
		},
		{
			name: "significant but small error increase is not a rollback",
			cfg:  def,
			obs:  Observation{Elapsed: time.Hour, Canary: counts(2000000, 0.008, 0.05, 4), Baseline: counts(38000000, 0.005, 0.05, 4)},
			want: Pass, rule: RuleErrorRate, ruleOut: Pass,
			check: func(t *testing.T, e Evidence) {
				if !(e.Lower > 0) || !(e.Upper < 0.01) {
					t.Errorf("want an interval above 0 and below the 1%% threshold, got [%g, %g]", e.Lower, e.Upper)
				}
			},
		},
		{
			name: "equal versions, engagement short of samples: inconclusive with the time left",
			cfg:  def,
			obs:  Observation{Elapsed: 20 * time.Minute, Canary: counts(200000, 0.005, 0.05, 4), Baseline: counts(3800000, 0.005, 0.05, 4)},
			want: Inconclusive, rule: RuleEngagement, ruleOut: Inconclusive,
			check: func(t *testing.T, e Evidence) {
				// A ±0.1 pp interval on a 5% CTR needs about 10× the
				// samples: hours at this traffic, not minutes.
				if e.TimeLeft < 30*time.Minute || e.TimeLeft > 10*time.Hour {
					t.Errorf("time left %v, want between 30 min and 10 h", e.TimeLeft)
				}
			},
		},
		{
			name: "equal versions pass after the windows",
			cfg:  def,
			obs:  Observation{Elapsed: 20 * time.Minute, Canary: counts(2000000, 0.005, 0.05, 4), Baseline: counts(38000000, 0.005, 0.05, 4)},
			want: Pass, rule: RuleEngagement, ruleOut: Pass,
		},
		{
			name: "equal versions before the engagement window are inconclusive",
			cfg:  def,
			obs:  Observation{Elapsed: 10 * time.Minute, Canary: counts(2000000, 0.005, 0.05, 4), Baseline: counts(38000000, 0.005, 0.05, 4)},
			want: Inconclusive, rule: RuleEngagement, ruleOut: Inconclusive,
			check: func(t *testing.T, e Evidence) {
				if e.TimeLeft != 5*time.Minute {
					t.Errorf("time left %v, want the 5 min left of the window", e.TimeLeft)
				}
			},
		},
		{
			name: "no outcome on either version: engagement does not run, the others pass",
			cfg:  def,
			obs:  Observation{Elapsed: 20 * time.Minute, Canary: counts(2000000, 0.005, 0, 4), Baseline: counts(38000000, 0.005, 0, 4)},
			want: Pass, rule: RuleEngagement, ruleOut: NotApplicable,
		},
		{
			name: "outcomes only on the baseline: the canary's 0% is judged, and fails",
			cfg:  def,
			obs:  Observation{Elapsed: 5 * time.Minute, Canary: counts(75000, 0.005, 0, 4), Baseline: counts(1425000, 0.005, 0.05, 4)},
			want: Fail, rule: RuleEngagement, ruleOut: Fail,
		},
		{
			name: "engagement drop fails, effect relative",
			cfg:  def,
			obs:  Observation{Elapsed: 5 * time.Minute, Canary: counts(75000, 0.005, 0.045, 4), Baseline: counts(1425000, 0.005, 0.05, 4)},
			want: Fail, rule: RuleEngagement, ruleOut: Fail,
			check: func(t *testing.T, e Evidence) {
				if math.Abs(e.Effect-(-0.1)) > 1e-9 || e.Unit != UnitRelative || e.Threshold != -0.02 || !(e.Upper < 0) {
					t.Errorf("evidence %+v", e)
				}
			},
		},
		{
			name: "p99 doubled fails the ratio rule",
			cfg:  def,
			obs:  Observation{Elapsed: 2 * time.Minute, Canary: counts(2000, 0.005, 0.05, 8), Baseline: counts(38000, 0.005, 0.05, 4)},
			want: Fail, rule: RuleLatencyP99, ruleOut: Fail,
			check: func(t *testing.T, e Evidence) {
				if math.Abs(e.Effect-2) > 0.1 || e.Unit != UnitRatio || !(e.Lower > 0.01) {
					t.Errorf("evidence %+v", e)
				}
			},
		},
		{
			name: "p99 1.2× the baseline is not a rollback",
			cfg:  def,
			obs:  Observation{Elapsed: 20 * time.Minute, Canary: counts(2000000, 0.005, 0.05, 4.8), Baseline: counts(38000000, 0.005, 0.05, 4)},
			want: Pass, rule: RuleLatencyP99, ruleOut: Pass,
		},
		{
			name: "recommendation p99 gate of 50 ms",
			cfg:  rec,
			obs:  Observation{Elapsed: 2 * time.Minute, Canary: counts(2000, 0.005, 0.05, 30), Baseline: counts(38000, 0.005, 0.05, 30)},
			want: Fail, rule: RuleGateP99, ruleOut: Fail,
			check: func(t *testing.T, e Evidence) {
				if e.Threshold != 50 || !(e.Canary > 50) {
					t.Errorf("evidence %+v", e)
				}
			},
		},
		{
			name: "no engagement events: the rule does not vote",
			cfg:  def, // and 200,000 canary requests decide the others
			obs: Observation{Elapsed: 20 * time.Minute,
				Canary:   Counts{Requests: 200000, Errors: 1000, Latency: latency(200000, 4, 0.5)},
				Baseline: Counts{Requests: 3800000, Errors: 19000, Latency: latency(3800000, 4, 0.5)}},
			want: Pass, rule: RuleEngagement, ruleOut: NotApplicable,
		},
		{
			name: "nothing measured: inconclusive, no decision in sight",
			cfg:  def,
			obs:  Observation{Elapsed: time.Minute},
			want: Inconclusive, rule: RuleErrorRate, ruleOut: NotApplicable,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			v := j.Judge(tc.obs)
			if v.Outcome != tc.want {
				for _, e := range v.Evidence {
					t.Log(e)
				}
				t.Fatalf("verdict %s, want %s", v.Outcome, tc.want)
			}
			e := find(t, v, tc.rule)
			if e.Outcome != tc.ruleOut {
				t.Errorf("%s: %s, want %s (%v)", tc.rule, e.Outcome, tc.ruleOut, e)
			}
			if tc.check != nil {
				tc.check(t, e)
			}
			if v.Outcome == Fail && len(v.Failed()) == 0 {
				t.Error("fail verdict without a failed rule")
			}
			if _, err := json.Marshal(v); err != nil && !strings.Contains(err.Error(), "Inf") {
				t.Errorf("verdict does not marshal: %v", err)
			}
		})
	}
}

// TestTimeLeft: the time left that an inconclusive look predicts is when
// the decision comes if the traffic and the effect stay the same.
func TestTimeLeft(t *testing.T) {
	j, err := New(NewDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	// 14 canary and 264 baseline requests/s; the canary fails 2.5% of
	// them against the baseline's 0.5%.
	at := func(d time.Duration) Observation {
		s := d.Seconds()
		c, b := int(14*s), int(264*s)
		return Observation{Elapsed: d,
			Canary:   Counts{Requests: uint64(c), Errors: uint64(0.025 * float64(c))},
			Baseline: Counts{Requests: uint64(b), Errors: uint64(0.005 * float64(b))}}
	}
	v := j.Judge(at(40 * time.Second))
	e := find(t, v, RuleErrorRate)
	if e.Outcome != Inconclusive || e.TimeLeft <= 0 {
		t.Fatalf("at 40 s: %v", e)
	}
	due := 40*time.Second + e.TimeLeft
	if got := find(t, j.Judge(at(due*9/10)), RuleErrorRate); got.Outcome != Inconclusive {
		t.Errorf("decided at 90%% of the predicted %v: %v", due, got)
	}
	if got := find(t, j.Judge(at(due*11/10)), RuleErrorRate); got.Outcome != Fail {
		t.Errorf("not failed at 110%% of the predicted %v: %v", due, got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error; none = valid
	}{
		{name: "defaults", edit: func(*Config) {}},
		{name: "alpha", edit: func(c *Config) { c.Alpha = 0 }, want: []string{"alpha"}},
		{name: "several at once", edit: func(c *Config) { c.ErrorRate.Threshold = 2; c.LatencyP99.Ratio = 0.9; c.Type = "toaster" },
			want: []string{"error rate threshold", "latency p99 ratio", "model type"}},
		{name: "gates", edit: func(c *Config) { c.LatencyGate.P50Ms, c.LatencyGate.P99Ms = 60, 50 }, want: []string{"p50 60 ms above p99"}},
		{name: "disabled rule's threshold is not checked", edit: func(c *Config) { c.Engagement.Enabled, c.Engagement.Threshold = false, 0 }},
		{name: "window", edit: func(c *Config) { c.ErrorRate.Window = -time.Second }, want: []string{"error rate window"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewDefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %v", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestTypeDefaults(t *testing.T) {
	for _, tc := range []struct {
		catalogType, domain string
		want                ModelType
		p50, p99, drop      float64
	}{
		{"llm", "assistant", TypeLLM, 500, 2000, 0.02},
		{"ranking", "recommendation", TypeRecommendation, 10, 50, 0.05},
		{"classifier", "fraud", TypeFraud, 5, 20, 0.01},
		{"image_classifier", "safety", TypeVision, 50, 200, 0.02},
		{"classifier", "search", TypeSearch, 0, 0, 0.02},
		{"embedding_model", "payments", TypeGeneric, 0, 0, 0.02},
	} {
		got := TypeOf(tc.catalogType, tc.domain)
		if got != tc.want {
			t.Errorf("TypeOf(%q, %q) = %s, want %s", tc.catalogType, tc.domain, got, tc.want)
			continue
		}
		c, err := ConfigFor(tc.catalogType, tc.domain, catalog.Canary{})
		if err != nil {
			t.Fatal(err)
		}
		if c.LatencyGate.P50Ms != tc.p50 || c.LatencyGate.P99Ms != tc.p99 || c.Engagement.Threshold != tc.drop {
			t.Errorf("%s: gates %v/%v drop %v, want %v/%v %v", got, c.LatencyGate.P50Ms, c.LatencyGate.P99Ms, c.Engagement.Threshold, tc.p50, tc.p99, tc.drop)
		}
	}
	cat, err := catalog.Parse([]byte(`
model: {name: ranker, version: "8", type: ranking, domain: recommendation}
canary: {gate_p99_ms: 80, error_rate_increase: 0.002, drift_is_rollback: true, disable_engagement: true, latency_window: 2m}
`))
	if err != nil {
		t.Fatal(err)
	}
	m := cat.Model("ranker")
	c, err := ConfigForModel(m)
	if err != nil {
		t.Fatal(err)
	}
	if c.LatencyGate.P99Ms != 80 || c.LatencyGate.P50Ms != 10 || c.ErrorRate.Threshold != 0.002 || !c.Drift.Fail || c.Engagement.Enabled || c.LatencyP99.Window != 2*time.Minute {
		t.Errorf("overrides not applied: %+v", c)
	}
	if _, err := ConfigFor("ranking", "", catalog.Canary{ErrorRateIncrease: 3}); err == nil {
		t.Error("an invalid override was accepted")
	}
}

func TestHistogram(t *testing.T) {
	for _, ms := range []float64{0, 1e-4, 1e-3, 0.0011, 1, 4.2, 50, 2000, 1e6, 1e9} {
		i := BucketOf(ms)
		if ms > UpperEdge(i) || (i > 0 && ms <= UpperEdge(i-1) && ms > histMin) {
			t.Errorf("BucketOf(%g) = %d, edges (%g, %g]", ms, i, UpperEdge(i-1), UpperEdge(i))
		}
	}
	h := latency(100000, 10, 0.5)
	for _, q := range []float64{0.5, 0.9, 0.99} {
		want := 10 * math.Exp(0.5*math.Sqrt2*math.Erfinv(2*q-1))
		if got := h.Quantile(q); got < want || got > want*gamma*1.001 {
			t.Errorf("q%g = %g, want within 2%% above %g", q, got, want)
		}
	}
	p99 := h.QuantileBucket(0.99)
	if above := h.Above(p99); above > 1000 || above < 900 {
		t.Errorf("above the p99 bucket: %d of 100000, want about 1%%", above)
	}
	var m Histogram
	m.Merge(h)
	m.Merge(h)
	if m.Count() != 200000 || m.Quantile(0.99) != h.Quantile(0.99) {
		t.Errorf("merged: %d, p99 %g vs %g", m.Count(), m.Quantile(0.99), h.Quantile(0.99))
	}
	if e := (&Histogram{}).Quantile(0.5); !math.IsNaN(e) {
		t.Errorf("empty quantile %g", e)
	}
}

// FuzzJudge: any counts give a verdict without NaN intervals around a
// finite estimate, an interval that holds the estimate, and a fail only
// with a failed rule.
func FuzzJudge(f *testing.F) {
	f.Add(uint64(1000), uint64(30), uint64(20000), uint64(100), uint64(50), uint64(1000), 60.0, 4.0, 8.0)
	f.Add(uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), 0.0, 0.0, 0.0)
	f.Add(uint64(5), uint64(5), uint64(1), uint64(1), uint64(5), uint64(0), 1e9, 1e9, 1e-9)
	j, err := New(NewDefaultConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, nc, xc, nb, xb, sc, sb uint64, secs, mc, mb float64) {
		nc, nb = nc%1e9, nb%1e9
		xc, xb = min(xc, nc), min(xb, nb)
		sc, sb = min(sc, nc), min(sb, nb)
		hc, hb := &Histogram{}, &Histogram{}
		hc.AddN(BucketOf(mc), nc)
		hb.AddN(BucketOf(mb), nb)
		o := Observation{Elapsed: time.Duration(math.Mod(math.Abs(secs), 1e6) * float64(time.Second)),
			Canary:   Counts{Requests: nc, Errors: xc, Trials: nc, Successes: sc, Latency: hc},
			Baseline: Counts{Requests: nb, Errors: xb, Trials: nb, Successes: sb, Latency: hb}}
		v := j.Judge(o)
		switch v.Outcome {
		case Pass, Fail, Inconclusive:
		default:
			t.Fatalf("verdict %q", v.Outcome)
		}
		if v.Outcome == Fail && len(v.Failed()) == 0 {
			t.Fatal("fail without a failed rule")
		}
		for _, e := range v.Evidence {
			if math.IsNaN(e.Lower) || math.IsNaN(e.Upper) || e.Lower > e.Upper {
				t.Fatalf("%s: interval [%g, %g]", e.Rule, e.Lower, e.Upper)
			}
			if e.Outcome == Inconclusive && e.TimeLeft < -1 {
				t.Fatalf("%s: time left %v", e.Rule, e.TimeLeft)
			}
		}
	})
}

// TestExampleCatalog: the example catalog's models get their type's
// defaults and their own overrides.
func TestExampleCatalog(t *testing.T) {
	cat, err := catalog.Load("../../deploy/catalog.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		model     string
		typ       ModelType
		gateP99Ms float64
	}{
		{"ranking_ensemble_v2", TypeRecommendation, 40},
		{"candidate_retrieval_v4", TypeRecommendation, 50},
		{"fraud_detector", TypeFraud, 20},
		{"user_embedding_v3", TypeRecommendation, 50}, // embedding_model in the recommendation domain
	} {
		c, err := ConfigForModel(cat.Model(tc.model))
		if err != nil {
			t.Fatal(err)
		}
		if c.Type != tc.typ || c.LatencyGate.P99Ms != tc.gateP99Ms {
			t.Errorf("%s: type %s gate p99 %v, want %s %v", tc.model, c.Type, c.LatencyGate.P99Ms, tc.typ, tc.gateP99Ms)
		}
	}
}

// TestEvidenceJSON: a verdict with rules without data marshals once made
// JSONSafe (rollback payloads, the web metric).
func TestEvidenceJSON(t *testing.T) {
	j, err := New(NewDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	v := j.Judge(Observation{Elapsed: time.Minute, Canary: Counts{Requests: 10}, Baseline: Counts{Requests: 100}})
	if _, err := json.Marshal(v.Evidence); err == nil {
		t.Fatal("the open intervals marshalled: the test no longer covers JSONSafe")
	}
	if _, err := json.Marshal(JSONSafe(v.Evidence)); err != nil {
		t.Errorf("JSONSafe evidence: %v", err)
	}
}

// TestFeatureDrift: the feature_drift evidence is the worst feature's PSI
// among those with enough canary values, the TopFeatures worst named in
// order, info unless drift is a rollback trigger.
func TestFeatureDrift(t *testing.T) {
	same := []float64{1000, 1000, 1000, 1000}
	shifted := []float64{100, 400, 1000, 2500}
	tiny := []float64{1, 1, 1, 97} // the worst shape, too few values
	for _, c := range []struct {
		name     string
		canary   [][]float64
		fail     bool
		found    int
		want     string
		outcome  Outcome
		overFive bool // the worst PSI is above 0.25
	}{
		{"one shifted", [][]float64{same, shifted, same, same}, false, 4, "b c a", Info, true},
		{"none shifted", [][]float64{same, same, same, same}, false, 4, "c a b", Info, false},
		{"too few values rank last", [][]float64{tiny, same, shifted, same}, false, 4, "c b d", Info, true},
		{"a trigger", [][]float64{same, shifted, same, same}, true, 4, "b c a", Fail, true},
		{"a trigger, no drift", [][]float64{same, same, same, same}, true, 9, "c a b", Pass, false},
	} {
		cfg := NewDefaultConfig()
		cfg.Drift.Fail = c.fail
		j, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		fb := &FeatureBins{Names: []string{"a", "b", "c", "d"}, Numeric: 4, Edges: make([][]float64, 4), Offsets: []int{0, 4, 8, 12, 16}, Found: c.found}
		o := Observation{Elapsed: time.Hour, Features: fb}
		for i, h := range c.canary {
			ref := same
			if i == 2 {
				ref = []float64{1000, 1000, 1000, 1001} // c: a hair off, ranks above the identical
			}
			o.Canary.Features = append(o.Canary.Features, h...)
			o.Baseline.Features = append(o.Baseline.Features, ref...)
		}
		var e Evidence
		for _, x := range j.Judge(o).Evidence {
			if x.Rule == RuleFeatureDrift {
				e = x
			}
		}
		var names []string
		for _, f := range e.Features {
			names = append(names, f.Name)
		}
		if got := strings.Join(names, " "); got != c.want || e.Outcome != c.outcome || (e.Effect > 0.25) != c.overFive || e.Effect != e.Features[0].PSI ||
			e.FeaturesJudged != 4 || e.FeaturesFound != c.found || strings.Contains(e.String(), "capped") != (c.found > 4) {
			t.Errorf("%s: %s (features %s)", c.name, e, got)
		}
	}
}
