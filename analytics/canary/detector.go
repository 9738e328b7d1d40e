package canary

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
)

// Deployment identifies one canary: a model's new version against the
// version it replaces, started at Started (the model_deployments row's
// time, so the same canary has the same identity after a restart).
type Deployment struct {
	Model           string    `json:"model"`
	Version         string    `json:"version"`
	BaselineVersion string    `json:"baseline_version"`
	Started         time.Time `json:"started"`
	// LastKnownGood is the catalog's evaluation.last_known_good of the
	// model: the version a failed rollout returns to when the baseline is
	// not enough (issue 20, item 4); empty when the catalog names none.
	LastKnownGood string `json:"last_known_good,omitempty"`
	// Evaluation is the catalog's evaluation section when the catalog
	// describes this version (model.version equal to Version); nil
	// otherwise.
	Evaluation *catalog.Evaluation `json:"evaluation,omitempty"`
}

// WithCatalog returns d with its model's last-known-good version and, when
// the catalog's entry is this version, its offline evaluation.
func (d Deployment) WithCatalog(cat *catalog.Catalog) Deployment {
	if cat == nil {
		return d
	}
	m := cat.Model(d.Model)
	if m == nil {
		return d
	}
	d.LastKnownGood = m.Evaluation.LastKnownGood
	if m.Version == d.Version {
		ev := m.Evaluation
		d.Evaluation = &ev
	}
	return d
}

// Key is the canary's idempotency key: model/version@start (Unix seconds).
func (d Deployment) Key() string {
	return fmt.Sprintf("%s/%s@%d", d.Model, d.Version, d.Started.Unix())
}

// DetectorConfig configures the canary Detector.
type DetectorConfig struct {
	Name string `yaml:"name"`
	// Interval is how often the judge looks (the engine's window).
	Interval time.Duration `yaml:"interval"`
	// MaxAge is how long after its start a canary is still judged.
	MaxAge time.Duration `yaml:"max_age"`
	// OutcomeWindow is how long after a request its business outcome may
	// come (Reader.OutcomeWindow): requests younger than it are not yet
	// engagement trials.
	OutcomeWindow time.Duration `yaml:"outcome_window"`
	// Outcome, when set, is the one business outcome (click, conversion)
	// that counts as engagement; empty: every success outcome.
	Outcome string `yaml:"outcome"`
	// MaxFeatures is the most numeric features per model whose drift
	// between the versions is reported (feature_drift): those with the
	// most baseline values in the hour before the canary; 0 turns feature
	// drift off.
	MaxFeatures int `yaml:"max_features"`
	// Lateness is how long after a look's time the judge takes that look
	// (fleet.LatenessOverride; 0: the engine's). Short, because every
	// look reads again the rows younger than Settle: rows that land after
	// a look count at the next one. A rollback request goes out this long
	// after the judge's time to fail.
	Lateness time.Duration `yaml:"lateness"`
	// Settle is how old rows must be before the detector reads them for
	// the last time: a canary's counts older than Settle are read once,
	// a minute at a time, and kept, so a look reads only the last Settle
	// and a minute more, however long the canary has run. Rows that
	// arrive more than Settle after their time are not judged. Delayed
	// labels are read in full at every look (they come hours late).
	Settle time.Duration `yaml:"settle"`
}

// NewDefaultDetectorConfig returns looks every 10 s, each taken 10 s
// after its time, canaries judged for up to 24 hours, every success
// outcome within 2 minutes of its request counting as engagement, the
// drift of up to DefaultMaxFeatures (50) numeric features per model, and
// rows a minute old read for the last time.
func NewDefaultDetectorConfig() DetectorConfig {
	return DetectorConfig{Name: "canary", Interval: 10 * time.Second, MaxAge: 24 * time.Hour, OutcomeWindow: DefaultOutcomeWindow, MaxFeatures: DefaultMaxFeatures,
		Lateness: 10 * time.Second, Settle: time.Minute}
}

// settleStep is how much of a canary's settled counts a look reads at
// once.
const settleStep = time.Minute

// Validate reports every problem at once.
func (c DetectorConfig) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("canary detector name is empty"))
	}
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("canary interval %v: want > 0", c.Interval))
	}
	if c.MaxAge <= 0 {
		errs = append(errs, fmt.Errorf("canary max_age %v: want > 0", c.MaxAge))
	}
	if c.OutcomeWindow <= 0 || c.OutcomeWindow%time.Second != 0 {
		errs = append(errs, fmt.Errorf("canary outcome_window %v: want > 0 whole seconds", c.OutcomeWindow))
	}
	if c.MaxFeatures < 0 {
		errs = append(errs, fmt.Errorf("canary max_features %d: want >= 0 (0 = no feature drift)", c.MaxFeatures))
	}
	if c.Lateness < 0 {
		errs = append(errs, fmt.Errorf("canary lateness %v: want >= 0 (0 = the engine's)", c.Lateness))
	}
	if c.Settle < 0 {
		errs = append(errs, fmt.Errorf("canary settle %v: want >= 0", c.Settle))
	}
	return errors.Join(errs...)
}

// Detector is the canary fleet.Detector: each window it finds the models
// whose latest model_deployments change is "canary", reads both versions'
// counts since the canary started (Reader), judges them with a Tracker per
// canary (the model's catalog configuration) and returns one detection per
// failed canary, at its first failed look. Every verdict goes to OnVerdict
// (the assembly's Board and Rollbacker).
//
// A rule that cannot run on a canary (no data on either version: a model
// without business outcomes, delayed labels or latencies) is counted in
// Skipped at every look, per rule and reason, and logged once. A canary
// whose look fails (a query error, a bad catalog entry) is counted and
// logged too, and does not stop the others being judged; only when every
// canary's look failed does Evaluate fail (and the window come again).
type Detector struct {
	cfg    DetectorConfig
	client *storage.Client
	reader *Reader
	cat    *catalog.Catalog
	log    *slog.Logger
	// OnVerdict, when set, receives every canary's verdict at every look.
	OnVerdict func(ctx context.Context, d Deployment, v Verdict)
	running   map[string]*running
	out       BlockWriter // nil: verdicts not recorded
	skips     fleet.Skips
}

// Reasons a rule could not run, by rule: neither version had the data it
// tests. A look that failed is counted as rule SkipLook.
var skipReasons = map[string]string{
	RuleErrorRate:    "no_requests",
	RuleEngagement:   "no_outcomes",
	RuleAccuracy:     "no_labels",
	RuleLatencyP99:   "no_latencies",
	RuleGateP50:      "no_latencies",
	RuleGateP99:      "no_latencies",
	RuleDrift:        "no_predictions",
	RuleFeatureDrift: "no_features",
}

// SkipLook is the rule under which Skipped counts a canary not judged at a
// look, with reason "look_failed" (its look failed), "no_baseline_version"
// (nothing to compare with) or "no_baseline_traffic" (the baseline serves
// no requests).
const SkipLook = "look"

// Skipped returns, per rule and reason, how many canary looks a rule could
// not run in: the fleetwatch_analyzer_canary_rules_skipped_total counter.
func (d *Detector) Skipped() map[fleet.SkipKey]uint64 { return d.skips.Counts() }

// countSkips counts v's rules that could not run on dep.
func (d *Detector) countSkips(dep Deployment, v *Verdict) {
	for _, e := range v.Evidence {
		if e.Outcome != NotApplicable {
			continue
		}
		why := skipReasons[e.Rule]
		if why == "" {
			why = "no_data"
		}
		d.skips.Add(d.log, "canary rule cannot run: neither version has its data (logged once per rule and reason; counted in fleetwatch_analyzer_canary_rules_skipped_total)",
			fleet.SkipKey{Rule: e.Rule, Reason: why}, 1, "detector", d.cfg.Name, "canary", dep.Key())
	}
}

// BlockWriter writes rows (storage.Writer).
type BlockWriter interface {
	Write(ctx context.Context, b storage.Block) error
}

// RecordTo makes the detector write its verdicts to canary_verdicts
// through w: a canary's look when its verdict or gate changed, and at
// least every RecordEvery (the on-call views read them).
func (d *Detector) RecordTo(w BlockWriter) { d.out = w }

// RecordEvery is the longest a judged canary goes without a recorded
// verdict.
const RecordEvery = time.Minute

type running struct {
	tr     *Tracker
	failed bool
	seen   bool
	v      Verdict
	// edges are the canary's prediction bin edges (Reader.PredictionEdges);
	// nil: no prediction drift.
	edges []float64
	// features are its numeric-feature bins (Reader.FeatureEdges); nil:
	// no feature drift.
	features *FeatureBins
	// recorded is the last recorded look, with its verdict and gate.
	recorded        time.Time
	recOut, recGate Outcome
	// settled holds the counts read for the last time: requests,
	// predictions and features before settledAt, engagement of the
	// requests before settledAt − OutcomeWindow; never accuracy. cur is a
	// look's observation, settled plus what the look read.
	settled, cur Observation
	settledAt    time.Time
}

// NewDetector returns the detector reading c and judging with each
// model's configuration from cat (models missing from it get the generic
// defaults).
func NewDetector(cfg DetectorConfig, c *storage.Client, cat *catalog.Catalog, log *slog.Logger) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	r := NewReader(c)
	r.OutcomeWindow, r.Outcome, r.MaxFeatures = cfg.OutcomeWindow, cfg.Outcome, cfg.MaxFeatures
	return &Detector{cfg: cfg, client: c, reader: r, cat: cat, log: log, running: map[string]*running{}}, nil
}

// Name implements fleet.Detector.
func (d *Detector) Name() string { return d.cfg.Name }

// Interval implements fleet.Detector.
func (d *Detector) Interval() time.Duration { return d.cfg.Interval }

// Lateness implements fleet.LatenessOverride.
func (d *Detector) Lateness() time.Duration { return d.cfg.Lateness }

var _ fleet.LatenessOverride = (*Detector)(nil)

// CanariesSQL returns the query for the canaries running at end: per
// model, the latest change within maxAge when it is a canary.
func CanariesSQL(database string, end time.Time, maxAge time.Duration) string {
	return fmt.Sprintf("SELECT toString(model) AS m, toString(argMax(model_version, ts)) AS v, toString(argMax(previous_version, ts)) AS pv, "+
		"toString(argMax(change, ts)) AS ch, max(ts) AS t FROM %s WHERE %s GROUP BY model HAVING ch = 'canary' ORDER BY m",
		chsql.Ident(database, "model_deployments"), chsql.Between("ts", end.Add(-maxAge), end.Add(time.Second)))
}

// Canaries returns the canaries running at end.
func (d *Detector) Canaries(ctx context.Context, end time.Time) ([]Deployment, error) {
	var res chsql.Result
	m, v, pv, t := res.Str("m"), res.Str("v"), res.Str("pv"), res.Time("t")
	var out []Deployment
	err := res.ForRows(ctx, d.client, CanariesSQL(d.client.Config().Database, end, d.cfg.MaxAge), func(r int) {
		dep := Deployment{Model: m.At(r), Version: v.At(r), BaselineVersion: pv.At(r), Started: time.Unix(t.Seconds(r), 0).UTC()}
		dep = dep.WithCatalog(d.cat)
		if dep.BaselineVersion == "" && dep.LastKnownGood != dep.Version {
			// The sender named no previous version: judge against the
			// catalog's last known good one, when it has one.
			dep.BaselineVersion = dep.LastKnownGood
		}
		out = append(out, dep)
	})
	if err != nil {
		return nil, fmt.Errorf("running canaries: %w", err)
	}
	return out, nil
}

func (d *Detector) config(model string) (Config, error) {
	if d.cat == nil {
		return NewDefaultConfig(), nil
	}
	if m := d.cat.Model(model); m != nil {
		return ConfigForModel(m)
	}
	return NewDefaultConfig(), nil
}

// track returns a canary's Tracker; a canary first seen after some of its
// restarts (an analyzer restart) gets its counts at those restarts read
// back first, so its restarted tests are the same as if it had never
// stopped.
func (d *Detector) track(ctx context.Context, dep Deployment, end time.Time) (*running, error) {
	if r := d.running[dep.Key()]; r != nil {
		return r, nil
	}
	cfg, err := d.config(dep.Model)
	if err != nil {
		return nil, err
	}
	tr, err := NewDefaultTracker(cfg)
	if err != nil {
		return nil, err
	}
	r := &running{tr: tr, settled: newObservation(), cur: newObservation(), settledAt: dep.Started}
	if r.edges, err = d.reader.PredictionEdges(ctx, dep.Model, dep.BaselineVersion, dep.Started); err != nil {
		return nil, err
	}
	if r.features, err = d.reader.FeatureEdges(ctx, dep.Model, dep.BaselineVersion, dep.Started); err != nil {
		return nil, err
	}
	last := int(end.Sub(dep.Started) / DefaultEpoch)
	for k := max(1, last-DefaultSegments+1); k <= last; k++ {
		at := dep.Started.Add(time.Duration(k) * DefaultEpoch)
		o, err := d.observe(ctx, dep, r, at)
		if err != nil {
			return nil, err
		}
		tr.Evaluate(&o, &r.v)
	}
	d.running[dep.Key()] = r
	return r, nil
}

// look judges dep as of at.
func (d *Detector) look(ctx context.Context, dep Deployment, at time.Time) (*running, error) {
	r, err := d.track(ctx, dep, at)
	if err != nil {
		return nil, fmt.Errorf("canary %s: %w", dep.Key(), err)
	}
	o, err := d.observe(ctx, dep, r, at)
	if err != nil {
		return nil, err
	}
	r.tr.Evaluate(&o, &r.v)
	return r, nil
}

// observe reads dep's counts as of at, predictions and features
// included: the settled counts, after adding what has settled since the
// last look, plus the rows since they end; delayed labels in full.
func (d *Detector) observe(ctx context.Context, dep Deployment, r *running, at time.Time) (Observation, error) {
	if to := dep.Started.Add((at.Sub(dep.Started) - d.cfg.Settle) / settleStep * settleStep); to.After(r.settledAt) {
		if err := d.readRows(ctx, dep, r, &r.settled, r.settledAt, to); err != nil {
			return Observation{}, err
		}
		// The engagement of requests in [from − W, to − W), their outcomes
		// up to to.
		if err := d.reader.ObserveEngagement(ctx, &r.settled, dep.Model, dep.Version, dep.BaselineVersion, d.engagementFrom(dep, r.settledAt), to); err != nil {
			return Observation{}, err
		}
		r.settledAt = to
	}
	o := snapshot(&r.settled, &r.cur)
	o.Elapsed = at.Sub(dep.Started)
	if err := d.readRows(ctx, dep, r, o, r.settledAt, at); err != nil {
		return Observation{}, err
	}
	if err := d.reader.ObserveEngagement(ctx, o, dep.Model, dep.Version, dep.BaselineVersion, d.engagementFrom(dep, r.settledAt), at); err != nil {
		return Observation{}, err
	}
	if err := d.reader.ObserveAccuracy(ctx, o, dep.Model, dep.Version, dep.BaselineVersion, dep.Started, at); err != nil {
		return Observation{}, err
	}
	return *o, nil
}

// engagementFrom is where the unsettled requests' engagement begins when
// the other counts have settled up to settled: OutcomeWindow earlier, as a
// request's engagement is known that long after it.
func (d *Detector) engagementFrom(dep Deployment, settled time.Time) time.Time {
	from := settled.Add(-d.reader.OutcomeWindow)
	if from.Before(dep.Started) {
		return dep.Started
	}
	return from
}

// readRows adds to o dep's requests, predictions and features in [from,
// to).
func (d *Detector) readRows(ctx context.Context, dep Deployment, r *running, o *Observation, from, to time.Time) error {
	if err := d.reader.ObserveRequests(ctx, o, dep.Model, dep.Version, dep.BaselineVersion, from, to); err != nil {
		return err
	}
	if err := d.reader.ObservePredictions(ctx, o, dep.Model, dep.Version, dep.BaselineVersion, r.edges, from, to); err != nil {
		return err
	}
	return d.reader.ObserveFeatures(ctx, o, dep.Model, dep.Version, dep.BaselineVersion, r.features, from, to)
}

// Judge returns dep's verdict as of at, as the analyzer would reach it
// (fleetctl canary status). Looks must come in time order.
func (d *Detector) Judge(ctx context.Context, dep Deployment, at time.Time) (Verdict, error) {
	r, err := d.look(ctx, dep, at)
	if err != nil {
		return Verdict{}, err
	}
	return r.v, nil
}

// Evaluate implements fleet.Detector.
func (d *Detector) Evaluate(ctx context.Context, w fleet.Window) ([]fleet.Detection, error) {
	deps, err := d.Canaries(ctx, w.End)
	if err != nil {
		return nil, err
	}
	for _, r := range d.running {
		r.seen = false
	}
	var out []fleet.Detection
	var rec storage.CanaryVerdictBlock
	var failed []error
	looked := 0
	for _, dep := range deps {
		if dep.BaselineVersion == "" || dep.BaselineVersion == dep.Version {
			// Nothing to compare with: counted and logged once, not a
			// failed look (it will not get better by retrying).
			d.skips.Add(d.log, "canary cannot be judged: its model_deployments row names no previous version, or its own, and the catalog has no other last_known_good (logged once; counted in fleetwatch_analyzer_canary_rules_skipped_total)",
				fleet.SkipKey{Rule: SkipLook, Reason: "no_baseline_version"}, 1, "detector", d.cfg.Name, "canary", dep.Key())
			continue
		}
		looked++
		r, err := d.look(ctx, dep, w.End)
		if err != nil {
			// Keep what the canary's tracker holds: the next look
			// continues it.
			if r := d.running[dep.Key()]; r != nil {
				r.seen = true
			}
			failed = append(failed, err)
			d.skips.Add(d.log, "canary look failed (counted in fleetwatch_analyzer_canary_rules_skipped_total; every failure is logged)",
				fleet.SkipKey{Rule: SkipLook, Reason: "look_failed"}, 1)
			d.log.Warn("canary not judged at this look", "detector", d.cfg.Name, "canary", dep.Key(), "window", w.String(), "err", err)
			continue
		}
		r.seen = true
		d.countSkips(dep, &r.v)
		if r.cur.Baseline.Requests == 0 && r.cur.Canary.Requests > 0 {
			d.skips.Add(d.log, "canary has requests but its baseline version has none: the rules wait for both (logged once; counted in fleetwatch_analyzer_canary_rules_skipped_total)",
				fleet.SkipKey{Rule: SkipLook, Reason: "no_baseline_traffic"}, 1, "detector", d.cfg.Name, "canary", dep.Key(), "baseline", dep.BaselineVersion)
		}
		if d.out != nil && (r.recorded.IsZero() || w.End.Sub(r.recorded) >= RecordEvery || r.v.Outcome != r.recOut || r.v.Gate.Outcome != r.recGate) {
			appendVerdict(&rec, d.cfg.Name, w.End, dep, &r.v)
			r.recorded, r.recOut, r.recGate = w.End, r.v.Outcome, r.v.Gate.Outcome
		}
		if d.OnVerdict != nil {
			d.OnVerdict(ctx, dep, r.v)
		}
		if r.v.Outcome == Fail && !r.failed {
			r.failed = true
			out = append(out, detection(d.cfg.Name, w, dep, r.v))
		}
	}
	if len(failed) > 0 && len(failed) == looked {
		return nil, fmt.Errorf("every canary's look failed: %w", errors.Join(failed...))
	}
	for k, r := range d.running {
		if !r.seen {
			delete(d.running, k) // promoted, rolled back or too old
		}
	}
	if rec.Len() > 0 {
		if err := d.out.Write(ctx, rec.Block()); err != nil {
			// The verdicts were acted on; only the on-call record is late.
			d.log.Error("canary verdicts not recorded", "canaries", rec.Len(), "err", err)
			for _, r := range d.running {
				r.recorded = time.Time{}
			}
		}
	}
	return out, nil
}

// appendVerdict adds a look's verdict to b: every rule's evidence as one
// element of each per-rule array.
func appendVerdict(b *storage.CanaryVerdictBlock, detector string, at time.Time, dep Deployment, v *Verdict) {
	ev := JSONSafe(v.Evidence)
	n := len(ev)
	rule, outcome, unit := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	cv, bv, eff, thr, cn, bn := make([]float64, 0, n), make([]float64, 0, n), make([]float64, 0, n), make([]float64, 0, n), make([]float64, 0, n), make([]float64, 0, n)
	lines := make([]string, 0, n)
	for i, e := range ev {
		rule, outcome, unit = append(rule, e.Rule), append(outcome, string(e.Outcome)), append(unit, e.Unit)
		cv, bv, eff, thr = append(cv, e.Canary), append(bv, e.Baseline), append(eff, e.Effect), append(thr, e.Threshold)
		cn, bn = append(cn, float64(e.CanarySamples)), append(bn, float64(e.BaselineSamples))
		lines = append(lines, v.Evidence[i].String())
	}
	failed := v.Failed()
	if failed == nil {
		failed = []string{}
	}
	left := -1.0
	if v.TimeLeft >= 0 {
		left = v.TimeLeft.Seconds()
	}
	b.Ts = append(b.Ts, at.Unix())
	b.Detector = append(b.Detector, detector)
	b.Model = append(b.Model, dep.Model)
	b.ModelVersion = append(b.ModelVersion, dep.Version)
	b.BaselineVersion = append(b.BaselineVersion, dep.BaselineVersion)
	b.Started = append(b.Started, dep.Started.Unix())
	b.Outcome = append(b.Outcome, string(v.Outcome))
	b.Gate = append(b.Gate, string(v.Gate.Outcome))
	b.GateReason = append(b.GateReason, v.Gate.Reason)
	b.ElapsedS = append(b.ElapsedS, v.Elapsed.Seconds())
	b.TimeLeftS = append(b.TimeLeftS, left)
	b.FailedRules = append(b.FailedRules, failed)
	b.LastKnownGood = append(b.LastKnownGood, dep.LastKnownGood)
	b.Rule = append(b.Rule, rule)
	b.RuleOutcome = append(b.RuleOutcome, outcome)
	b.CanaryValue = append(b.CanaryValue, cv)
	b.BaselineValue = append(b.BaselineValue, bv)
	b.Effect = append(b.Effect, eff)
	b.Unit = append(b.Unit, unit)
	b.Threshold = append(b.Threshold, thr)
	b.CanarySamples = append(b.CanarySamples, cn)
	b.BaselineSamples = append(b.BaselineSamples, bn)
	b.Evidence = append(b.Evidence, strings.Join(lines, "\n"))
}

// detection is the incident's evidence: the deployment, the failed rules,
// every rule's line (JSON, like the other detectors' evidence).
func detection(name string, w fleet.Window, dep Deployment, v Verdict) fleet.Detection {
	var failed Evidence
	lines := make([]string, 0, len(v.Evidence))
	for _, e := range v.Evidence {
		if e.Outcome == Fail && failed.Rule == "" {
			failed = e
		}
		lines = append(lines, e.String())
	}
	ev, _ := json.Marshal(map[string]any{"deployment": dep, "failed_rules": v.Failed(), "elapsed": v.Elapsed.String(), "rules": lines, "gate": v.Gate})
	action := fmt.Sprintf("roll %s back from %s to %s", dep.Model, dep.Version, dep.BaselineVersion)
	if dep.LastKnownGood != "" && dep.LastKnownGood != dep.BaselineVersion {
		action += fmt.Sprintf(" (last known good: %s)", dep.LastKnownGood)
	}
	return fleet.Detection{
		Time: w.End, WindowStart: w.Start, Detector: name, Class: "canary_regression", Severity: "critical",
		EntityType: "model", Entity: dep.Model, Key: "canary/" + dep.Key(), Model: dep.Model, ModelVersion: dep.Version,
		Value: failed.Effect, Threshold: failed.Threshold, PValue: math.NaN(),
		Action: action,
		Summary: fmt.Sprintf("canary %s %s failed %s after %v against %s", dep.Model, dep.Version, strings.Join(v.Failed(), ", "),
			v.Elapsed.Round(time.Second), dep.BaselineVersion),
		Evidence: string(ev),
	}
}
