package canary

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/fleetwatch/fleetwatch/lib/kernels"
)

// Counts is one version's cumulative aggregate since the canary started.
// Canary and baseline must cover the same minutes.
type Counts struct {
	// Requests and Errors are inference requests and those that failed.
	Requests, Errors uint64
	// Trials are requests whose business outcome is known (engagement,
	// CTR-style) and Successes those that succeeded.
	Trials, Successes uint64
	// Labelled are requests whose delayed label has arrived and Correct
	// those the version predicted right (accuracy).
	Labelled, Correct uint64
	// Latency is the latency histogram; nil when not measured.
	Latency *Histogram
	// Predictions is a histogram of the version's predictions over bins
	// shared by both versions; nil when not measured.
	Predictions []float64
	// Features are the version's numeric-feature histograms, all in one
	// slice laid out as the Observation's FeatureBins say; nil when not
	// measured.
	Features []float64
}

// FeatureBins are a canary's feature bins, shared by both versions: the
// first Numeric of Names are numeric features, feature i with Edges[i]
// (the baseline's distinct deciles before the canary), the others
// categorical, feature i with Categories[i] (the baseline's most frequent
// values) and one more bin for any other value. Feature i's bins
// (bins(i)) are Counts.Features[Offsets[i]:Offsets[i+1]].
type FeatureBins struct {
	Names      []string
	Numeric    int
	Edges      [][]float64
	Categories [][]string
	Offsets    []int
	// Found is the number of features the baseline had enough values of;
	// more than len(Names) when the Reader's MaxFeatures capped them.
	Found int
}

// bins returns feature i's number of bins.
func (fb *FeatureBins) bins(i int) int {
	if i < fb.Numeric {
		return len(fb.Edges[i]) + 1
	}
	return len(fb.Categories[i]) + 1
}

// Observation is what the judge looks at: both versions' counts since the
// canary started, Elapsed ago.
type Observation struct {
	Elapsed          time.Duration
	Canary, Baseline Counts
	// Features lays out both versions' Counts.Features; nil: no feature
	// drift.
	Features *FeatureBins
}

// Outcome is a rule's or the canary's verdict.
type Outcome string

// Outcomes. Info marks evidence that does not vote (drift when it is not
// a trigger); NotApplicable a rule without data on either side.
const (
	Pass          Outcome = "pass"
	Fail          Outcome = "fail"
	Inconclusive  Outcome = "inconclusive"
	Info          Outcome = "info"
	NotApplicable Outcome = "n/a"
)

// Rule names.
const (
	RuleErrorRate  = "error_rate"
	RuleEngagement = "engagement"
	RuleAccuracy   = "accuracy"
	RuleLatencyP99 = "latency_p99_ratio"
	RuleGateP50    = "latency_gate_p50"
	RuleGateP99    = "latency_gate_p99"
	RuleDrift      = "prediction_drift"
	// RuleFeatureDrift is the numeric features' drift: the features with
	// the highest PSI, judged like RuleDrift on the worst of them.
	RuleFeatureDrift = "feature_drift"
)

// TopFeatures is how many of the most drifted features feature_drift
// evidence names.
const TopFeatures = 3

// FeaturePSI is one feature's drift between the versions.
type FeaturePSI struct {
	Name string  `json:"name"`
	PSI  float64 `json:"psi"`
}

// Effect units.
const (
	UnitAbsolute = "absolute" // canary − baseline
	UnitRelative = "relative" // canary / baseline − 1
	UnitRatio    = "ratio"    // canary / baseline
	UnitMs       = "ms"       // the canary's value
	UnitPSI      = "psi"
)

// Evidence is one rule's finding.
type Evidence struct {
	Rule    string  `json:"rule"`
	Outcome Outcome `json:"outcome"`
	// Canary and Baseline are the metric per version: a rate, or a
	// latency in ms.
	Canary   float64 `json:"canary"`
	Baseline float64 `json:"baseline"`
	// Effect is the canary against the baseline in Unit, and Threshold
	// the effect at which the rule fails (in Unit too).
	Effect    float64 `json:"effect"`
	Unit      string  `json:"unit"`
	Threshold float64 `json:"threshold"`
	// Tested names the quantity the test is on; Lower and Upper are its
	// always-valid bounds, each at 1−Alpha on its own side, and Null its
	// value when the canary is no worse.
	Tested string  `json:"tested"`
	Lower  float64 `json:"lower"`
	Upper  float64 `json:"upper"`
	Null   float64 `json:"null"`
	Alpha  float64 `json:"alpha"`
	// CanarySamples and BaselineSamples are the counts tested.
	CanarySamples   uint64 `json:"canary_samples"`
	BaselineSamples uint64 `json:"baseline_samples"`
	MinSamples      uint64 `json:"min_samples"`
	// Since is when the counts tested begin, after the canary's start: 0,
	// or a Tracker's restart.
	Since time.Duration `json:"since_ns"`
	// TimeLeft is, while inconclusive, the time a decision needs at the
	// observed traffic if the effect stays as estimated; −1 when no
	// decision is in sight (no traffic, or an effect right at the
	// threshold).
	TimeLeft time.Duration `json:"time_left_ns"`
	// Features are, for feature_drift, the most drifted features, worst
	// first (the one whose PSI is Effect; Name empty past the last), of
	// FeaturesJudged compared; FeaturesFound > FeaturesJudged when the
	// Reader's MaxFeatures capped them.
	Features       [TopFeatures]FeaturePSI `json:"features"`
	FeaturesJudged int                     `json:"features_judged"`
	FeaturesFound  int                     `json:"features_found"`
}

// String is the rule and its finding in one line.
func (e Evidence) String() string {
	switch e.Rule {
	case RuleDrift:
		return fmt.Sprintf("%s %s: PSI %.3f (investigate ≥ %.2f), %d canary / %d baseline predictions", e.Rule, e.Outcome, e.Effect, e.Threshold, e.CanarySamples, e.BaselineSamples)
	case RuleFeatureDrift:
		var top strings.Builder
		for i, f := range e.Features {
			if f.Name == "" {
				break
			}
			if i > 0 {
				top.WriteString(", ")
			}
			fmt.Fprintf(&top, "%s %.3f", f.Name, f.PSI)
		}
		capped := ""
		if e.FeaturesFound > e.FeaturesJudged {
			capped = fmt.Sprintf(" (capped at max_features: %d more not compared)", e.FeaturesFound-e.FeaturesJudged)
		}
		return fmt.Sprintf("%s %s: worst PSI %s (investigate ≥ %.2f), %d of %d features compared%s, %d canary / %d baseline values of the worst",
			e.Rule, e.Outcome, top.String(), e.Threshold, e.FeaturesJudged, e.FeaturesFound, capped, e.CanarySamples, e.BaselineSamples)
	case RuleErrorRate, RuleEngagement, RuleAccuracy:
		return fmt.Sprintf("%s %s: canary %.4f vs baseline %.4f, effect %+.4f %s (fail at %+.4f), %s in [%+.5f, %+.5f] (1−α, α=%.4f), n %d/%d (min %d)%s",
			e.Rule, e.Outcome, e.Canary, e.Baseline, e.Effect, e.Unit, e.Threshold, e.Tested, e.Lower, e.Upper, e.Alpha, e.CanarySamples, e.BaselineSamples, e.MinSamples, left(e))
	}
	return fmt.Sprintf("%s %s: canary %.2f ms vs baseline %.2f ms, effect %.3f %s (fail at %.3f), %s in [%.5f, %.5f] vs %.2f (1−α, α=%.4f), n %d/%d (min %d)%s",
		e.Rule, e.Outcome, e.Canary, e.Baseline, e.Effect, e.Unit, e.Threshold, e.Tested, e.Lower, e.Upper, e.Null, e.Alpha, e.CanarySamples, e.BaselineSamples, e.MinSamples, left(e))
}

func left(e Evidence) string {
	since := ""
	if e.Since > 0 {
		since = fmt.Sprintf(", counts from %v after the start", e.Since)
	}
	switch {
	case e.Outcome != Inconclusive:
		return since
	case e.TimeLeft < 0:
		return since + ", no decision in sight"
	}
	return since + fmt.Sprintf(", decision in ~%v", e.TimeLeft.Round(time.Second))
}

// JSONSafe returns a copy of ev with the ±Inf and NaN that JSON cannot
// carry (the open intervals of rules without data, an undefined relative
// effect) replaced by 0: the outcome n/a or inconclusive says why.
func JSONSafe(ev []Evidence) []Evidence {
	out := make([]Evidence, len(ev))
	for i, e := range ev {
		for _, f := range []*float64{&e.Canary, &e.Baseline, &e.Effect, &e.Lower, &e.Upper, &e.Threshold, &e.Null} {
			if math.IsNaN(*f) || math.IsInf(*f, 0) {
				*f = 0
			}
		}
		out[i] = e
	}
	return out
}

// Gate reasons: what decided a GateVerdict (constants, so that a look
// allocates nothing).
const (
	GateRuleFailed    = "a rule failed"
	GateTooFew        = "fewer canary requests than the gate's minimum"
	GateSignificant   = "error rate significantly below baseline + threshold (always-valid interval)"
	GateNoErrorRule   = "enough requests; the error-rate rule is off"
	GateNotYetSignif  = "error-rate test not yet significant"
	GateNoBaselineYet = "no baseline requests yet"
)

// GateVerdict is the evaluation gate on a new version's first requests
// (issue 20 item 4, design document 001): may the canary widen? Fail when
// any rule failed; pass after Gate.MinRequests canary requests once the
// error-rate rule's always-valid interval lies wholly below the baseline's
// rate + its threshold (the judge's count test, without waiting for the
// rule's window); inconclusive until then.
type GateVerdict struct {
	Outcome     Outcome `json:"outcome"`
	Requests    uint64  `json:"requests"`
	MinRequests uint64  `json:"min_requests"`
	Reason      string  `json:"reason"`
}

// String is the gate in one line.
func (g GateVerdict) String() string {
	return fmt.Sprintf("gate %s: %d/%d requests, %s", g.Outcome, g.Requests, g.MinRequests, g.Reason)
}

// Verdict is the judge's answer at one look.
type Verdict struct {
	Outcome Outcome `json:"outcome"`
	// Gate says whether the canary may widen beyond its first requests.
	Gate    GateVerdict   `json:"gate"`
	Elapsed time.Duration `json:"elapsed_ns"`
	// TimeLeft is, while inconclusive, the time until every voting rule
	// has decided at the observed traffic (the longest rule's); −1 when
	// some rule has no decision in sight.
	TimeLeft time.Duration `json:"time_left_ns"`
	Evidence []Evidence    `json:"evidence"`
}

// Failed returns the rules that failed.
func (v *Verdict) Failed() []string {
	var out []string
	for _, e := range v.Evidence {
		if e.Outcome == Fail {
			out = append(out, e.Rule)
		}
	}
	return out
}

// Judge evaluates observations against a Config. It is stateless and safe
// for concurrent use.
type Judge struct {
	cfg   Config
	alpha float64 // per rule
}

// New returns a judge, or the configuration's problems.
func New(cfg Config) (*Judge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("canary config: %w", err)
	}
	return &Judge{cfg: cfg, alpha: cfg.Alpha / float64(max(cfg.rules(), 1))}, nil
}

// Config returns the judge's configuration.
func (j *Judge) Config() Config { return j.cfg }

// RuleAlpha returns the false-fail rate allotted to each rule.
func (j *Judge) RuleAlpha() float64 { return j.alpha }

// rules counts the statistical rules in force (those sharing Alpha).
func (c Config) rules() int {
	n := 0
	for _, on := range []bool{c.ErrorRate.Enabled, c.Engagement.Enabled, c.Accuracy.Enabled, c.LatencyP99.Enabled, c.LatencyGate.P50Ms > 0, c.LatencyGate.P99Ms > 0} {
		if on {
			n++
		}
	}
	return n
}

// Judge returns the verdict on o.
func (j *Judge) Judge(o Observation) Verdict {
	var v Verdict
	j.Evaluate(&o, &v)
	return v
}

// Evaluate writes the verdict on o into v, reusing v.Evidence's memory: a
// look allocates nothing once v has held a verdict.
func (j *Judge) Evaluate(o *Observation, v *Verdict) {
	v.Evidence = v.Evidence[:0]
	v.Elapsed = o.Elapsed
	c := &j.cfg
	if c.ErrorRate.Enabled {
		v.Evidence = append(v.Evidence, j.rate(o, RuleErrorRate, c.ErrorRate, o.Canary.Errors, o.Canary.Requests, o.Baseline.Errors, o.Baseline.Requests, higherWorse))
	}
	if c.Engagement.Enabled {
		v.Evidence = append(v.Evidence, j.rate(o, RuleEngagement, c.Engagement, o.Canary.Successes, o.Canary.Trials, o.Baseline.Successes, o.Baseline.Trials, lowerWorseRelative))
	}
	if c.Accuracy.Enabled {
		v.Evidence = append(v.Evidence, j.rate(o, RuleAccuracy, c.Accuracy, o.Canary.Correct, o.Canary.Labelled, o.Baseline.Correct, o.Baseline.Labelled, lowerWorseAbsolute))
	}
	if c.LatencyP99.Enabled {
		v.Evidence = append(v.Evidence, j.p99Ratio(o))
	}
	if c.LatencyGate.P50Ms > 0 {
		v.Evidence = append(v.Evidence, j.gate(o, RuleGateP50, c.LatencyGate.P50Ms, 0.5))
	}
	if c.LatencyGate.P99Ms > 0 {
		v.Evidence = append(v.Evidence, j.gate(o, RuleGateP99, c.LatencyGate.P99Ms, 0.99))
	}
	if o.Canary.Predictions != nil && o.Baseline.Predictions != nil {
		v.Evidence = append(v.Evidence, j.drift(o))
	}
	if o.Features != nil && o.Canary.Features != nil && o.Baseline.Features != nil {
		v.Evidence = append(v.Evidence, j.featureDrift(o))
	}
	v.Gate = j.gateVerdict(o, v.Evidence)
	v.Outcome, v.TimeLeft = Pass, 0
	voting := 0
	for _, e := range v.Evidence {
		switch e.Outcome {
		case Fail:
			v.Outcome, v.TimeLeft = Fail, 0
			return
		case Inconclusive:
			voting++
			v.Outcome = Inconclusive
			if v.TimeLeft >= 0 {
				if e.TimeLeft < 0 {
					v.TimeLeft = -1
				} else {
					v.TimeLeft = max(v.TimeLeft, e.TimeLeft)
				}
			}
		case Pass:
			voting++
		}
	}
	if voting == 0 {
		v.Outcome, v.TimeLeft = Inconclusive, -1
	}
}

// gateVerdict decides the evaluation gate from the rules' evidence.
func (j *Judge) gateVerdict(o *Observation, ev []Evidence) GateVerdict {
	g := GateVerdict{Outcome: Inconclusive, Requests: o.Canary.Requests, MinRequests: j.cfg.Gate.MinRequests, Reason: GateTooFew}
	for _, e := range ev {
		if e.Outcome == Fail {
			g.Outcome, g.Reason = Fail, GateRuleFailed
			return g
		}
	}
	if g.Requests < g.MinRequests {
		return g
	}
	if !j.cfg.ErrorRate.Enabled {
		g.Outcome, g.Reason = Pass, GateNoErrorRule
		return g
	}
	for _, e := range ev {
		if e.Rule != RuleErrorRate {
			continue
		}
		switch {
		case e.BaselineSamples == 0:
			g.Reason = GateNoBaselineYet
		case e.Upper < e.Threshold:
			g.Outcome, g.Reason = Pass, GateSignificant
		default:
			g.Reason = GateNotYetSignif
		}
	}
	return g
}

// decision is the common end of every statistical rule: the bad-direction
// estimate d̂ with its information, failing when d̂ − radius > 0 and d̂ ≥
// failAt, passing when d̂ + radius < failAt with the samples and window.
type decision struct {
	d, info, tau, failAt float64
	n, minN              uint64
	window               time.Duration
}

func (j *Judge) decide(o *Observation, s decision) (Outcome, float64, time.Duration) {
	r := radius(s.info, s.tau, j.alpha)
	enough := s.n >= s.minN
	switch {
	case enough && s.d-r > 0 && s.d >= s.failAt:
		return Fail, r, 0
	case enough && s.d+r < s.failAt && o.Elapsed >= s.window:
		return Pass, r, 0
	}
	// Time left at the observed canary traffic, the effect staying put.
	if s.n == 0 || o.Elapsed <= 0 {
		return Inconclusive, r, -1
	}
	margin := s.failAt - s.d // toward a pass
	if s.d >= s.failAt {
		margin = s.d // toward a fail
	}
	need := infoFor(margin, s.tau, j.alpha)
	if math.IsInf(need, 1) {
		return Inconclusive, r, -1
	}
	n := float64(s.n)
	needN := max(n*need/s.info, float64(s.minN))
	perSec := n / o.Elapsed.Seconds()
	t := time.Duration((needN - n) / perSec * float64(time.Second))
	t = max(t, 0)
	if s.d < s.failAt {
		t = max(t, s.window-o.Elapsed)
	}
	if t > 100*365*24*time.Hour {
		return Inconclusive, r, -1
	}
	return Inconclusive, r, t.Round(time.Second)
}

// rateSense is which way a rate is worse and how its threshold is read.
type rateSense int

const (
	higherWorse        rateSense = iota // errors: an absolute increase
	lowerWorseRelative                  // engagement: a drop relative to the baseline's rate
	lowerWorseAbsolute                  // accuracy: a drop in points
)

// rate judges a difference of two rates: errors (bad = higher),
// engagement (bad = lower, threshold relative to the baseline's rate) or
// accuracy (bad = lower, threshold absolute).
func (j *Judge) rate(o *Observation, name string, rule RateRule, xc, nc, xb, nb uint64, sense rateSense) Evidence {
	e := Evidence{Rule: name, CanarySamples: nc, BaselineSamples: nb, MinSamples: rule.MinSamples, Alpha: j.alpha, Tested: "canary − baseline rate", TimeLeft: -1}
	if nc == 0 || nb == 0 {
		e.Outcome = NotApplicable
		if nb > 0 || nc > 0 {
			e.Outcome = Inconclusive // one side has traffic: the other's is coming
		}
		e.Lower, e.Upper = math.Inf(-1), math.Inf(1)
		return e
	}
	if sense == lowerWorseRelative && xc == 0 && xb == 0 {
		// Requests but no outcome on either version: the model sends no
		// business outcomes, and 0% against 0% is no evidence.
		e.Outcome = NotApplicable
		e.Lower, e.Upper = math.Inf(-1), math.Inf(1)
		return e
	}
	e.Canary, e.Baseline = float64(xc)/float64(nc), float64(xb)/float64(nb)
	est, info := twoSample(float64(xc), float64(nc), float64(xb), float64(nb))
	thr := rule.Threshold
	e.Unit, e.Effect, e.Threshold = UnitAbsolute, est, thr
	d := est
	switch sense {
	case lowerWorseAbsolute:
		d = -est
		e.Threshold = -thr
	case lowerWorseRelative:
		// The relative drop is fixed against the baseline's rate, which
		// the baseline's (much larger) sample pins down.
		thr = rule.Threshold * max(e.Baseline, shrunk(float64(xb), float64(nb)))
		d = -est
		e.Unit, e.Threshold = UnitRelative, -rule.Threshold
		e.Effect = math.NaN()
		if e.Baseline > 0 {
			e.Effect = e.Canary/e.Baseline - 1
		}
	}
	var r float64
	e.Outcome, r, e.TimeLeft = j.decide(o, decision{d: d, info: info, tau: thr, failAt: thr, n: nc, minN: rule.MinSamples, window: rule.Window})
	e.Lower, e.Upper = est-r, est+r
	return e
}

// p99Ratio judges the canary's p99 against Ratio × the baseline's: the
// canary's share of requests slower than that edge against 1%.
func (j *Judge) p99Ratio(o *Observation) Evidence {
	rule := j.cfg.LatencyP99
	hc, hb := o.Canary.Latency, o.Baseline.Latency
	e := Evidence{Rule: RuleLatencyP99, Unit: UnitRatio, Threshold: rule.Ratio, CanarySamples: hc.Count(), BaselineSamples: hb.Count(),
		MinSamples: rule.MinSamples, Alpha: j.alpha, Null: 0.01, TimeLeft: -1, Tested: "canary share slower than ratio × baseline p99"}
	if hc.Count() == 0 || hb.Count() == 0 {
		e.Outcome = NotApplicable
		if hc.Count()+hb.Count() > 0 {
			e.Outcome = Inconclusive
		}
		e.Lower, e.Upper = math.Inf(-1), math.Inf(1)
		return e
	}
	e.Canary, e.Baseline = hc.Quantile(0.99), hb.Quantile(0.99)
	e.Effect = e.Canary / e.Baseline
	return j.share(o, e, BucketOf(rule.Ratio*e.Baseline), 0.99, rule.MinSamples, rule.Window)
}

// gate judges an absolute latency gate: the canary's share slower than the
// gate against 1−q.
func (j *Judge) gate(o *Observation, name string, gateMs, q float64) Evidence {
	hc := o.Canary.Latency
	e := Evidence{Rule: name, Unit: UnitMs, Threshold: gateMs, CanarySamples: hc.Count(), BaselineSamples: o.Baseline.Latency.Count(),
		MinSamples: j.cfg.LatencyGate.MinSamples, Alpha: j.alpha, Null: 1 - q, TimeLeft: -1, Tested: "canary share slower than the gate"}
	if hc.Count() == 0 {
		e.Outcome = NotApplicable
		e.Lower, e.Upper = math.Inf(-1), math.Inf(1)
		return e
	}
	e.Canary, e.Baseline = hc.Quantile(q), o.Baseline.Latency.Quantile(q)
	e.Effect = e.Canary
	return j.share(o, e, BucketOf(gateMs), q, j.cfg.LatencyGate.MinSamples, 0)
}

// share finishes a one-sample exceedance rule: the canary's share of
// requests in buckets after edge against 1−q. Latencies in the edge's own
// bucket are not counted as slower, so the share errs low by at most one
// bucket (2%) of resolution.
func (j *Judge) share(o *Observation, e Evidence, edge int, q float64, minN uint64, window time.Duration) Evidence {
	h := o.Canary.Latency
	n := float64(h.Count())
	q0 := 1 - q
	est, info := oneSample(float64(h.Above(edge)), n, q0)
	var r float64
	e.Outcome, r, e.TimeLeft = j.decide(o, decision{d: est, info: info, tau: q0, failAt: 0, n: h.Count(), minN: minN, window: window})
	e.Lower, e.Upper = q0+est-r, q0+est+r
	return e
}

// drift reports the PSI of the canary's predictions against the
// baseline's.
func (j *Judge) drift(o *Observation) Evidence {
	return j.psi(RuleDrift, o.Canary.Predictions, o.Baseline.Predictions)
}

// psi is a drift rule's evidence on one histogram per version: the PSI of
// the canary's (cur) against the baseline's (ref), info unless Drift.Fail
// makes it a trigger.
func (j *Judge) psi(rule string, cur, ref []float64) Evidence {
	e := Evidence{Rule: rule, Unit: UnitPSI, Threshold: j.cfg.Drift.Investigate, MinSamples: j.cfg.Drift.MinSamples, TimeLeft: -1, Tested: "PSI(canary | baseline)"}
	var nc, nb float64
	for _, x := range cur {
		nc += x
	}
	for _, x := range ref {
		nb += x
	}
	e.CanarySamples, e.BaselineSamples = uint64(nc), uint64(nb)
	if len(cur) != len(ref) || nc == 0 || nb == 0 {
		e.Outcome = NotApplicable
		return e
	}
	psi, _ := kernels.PSI(ref, cur, kernels.DefaultAlpha)
	e.Effect, e.Lower, e.Upper = psi, psi, psi
	e.Outcome = Info
	switch {
	case e.CanarySamples < e.MinSamples:
		if j.cfg.Drift.Fail {
			e.Outcome = Inconclusive
		}
	case j.cfg.Drift.Fail && psi >= e.Threshold:
		e.Outcome = Fail
	case j.cfg.Drift.Fail:
		e.Outcome = Pass
	}
	return e
}

// featureDrift reports the numeric features' drift: each feature's PSI
// (psi), the evidence being the worst feature's — the highest PSI among
// those with Drift.MinSamples canary values, else the highest of all —
// with the TopFeatures worst named.
func (j *Judge) featureDrift(o *Observation) Evidence {
	fb := o.Features
	worst := Evidence{Rule: RuleFeatureDrift, Outcome: NotApplicable, Unit: UnitPSI, Threshold: j.cfg.Drift.Investigate, MinSamples: j.cfg.Drift.MinSamples,
		TimeLeft: -1, Tested: "PSI(canary | baseline)"}
	var top [TopFeatures]Evidence
	var names [TopFeatures]string
	n := 0
	for i, name := range fb.Names {
		lo, hi := fb.Offsets[i], fb.Offsets[i+1]
		if hi > len(o.Canary.Features) || hi > len(o.Baseline.Features) {
			break
		}
		e := j.psi(RuleFeatureDrift, o.Canary.Features[lo:hi], o.Baseline.Features[lo:hi])
		if e.Outcome == NotApplicable {
			continue
		}
		// Insert e into the worst TopFeatures, worst first.
		k := min(n, TopFeatures)
		for k > 0 && worse(&e, &top[k-1]) {
			if k < TopFeatures {
				top[k], names[k] = top[k-1], names[k-1]
			}
			k--
		}
		if k < TopFeatures {
			top[k], names[k] = e, name
		}
		n++
	}
	if n > 0 {
		worst = top[0]
	}
	for k := range min(n, TopFeatures) {
		worst.Features[k] = FeaturePSI{Name: names[k], PSI: top[k].Effect}
	}
	worst.FeaturesJudged, worst.FeaturesFound = len(fb.Names), max(fb.Found, len(fb.Names))
	return worst
}

// worse reports whether feature evidence a is worse than b: enough canary
// values before fewer, then the higher PSI.
func worse(a, b *Evidence) bool {
	ea, eb := a.CanarySamples >= a.MinSamples, b.CanarySamples >= b.MinSamples
	if ea != eb {
		return ea
	}
	return a.Effect > b.Effect
}
