package jobs

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/lib/kernels"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Detection classes: one family, training_job, in alerting's defaults.
const (
	ClassRegression       = "job_step_regression"
	ClassStalled          = "job_stalled"
	ClassCheckpointSlow   = "checkpoint_slow"
	ClassCheckpointFailed = "checkpoint_failed"
)

// Rules, as named in skip counters and detections' feature.
const (
	RuleRegression       = "step_regression"
	RuleStall            = "stall"
	RuleCheckpointSlow   = "checkpoint_slow"
	RuleCheckpointFailed = "checkpoint_failed"
	RuleGoodput          = "goodput"
)

// Skip reasons: why a rule could not run for a job in a window.
const (
	// SkipNoStepTime: no rank reported fleetwatch_train_step_seconds.
	SkipNoStepTime = "no_step_time"
	// SkipShortHistory: fewer windows of the job than min_history.
	SkipShortHistory = "short_history"
	// SkipNoStepCounter: ranks reported a step time but no
	// fleetwatch_train_steps_total (a producer of the older contract).
	SkipNoStepCounter = "no_step_counter"
	// SkipShortCheckpoints: fewer earlier checkpoints than min_checkpoints.
	SkipShortCheckpoints = "short_checkpoint_history"
	// SkipFirstWindow: the job's first window (its progress before the
	// window is unknown).
	SkipFirstWindow = "first_window"
	// SkipBeyondLookback: the stall threshold is longer than
	// stall_lookback, so no stall can show.
	SkipBeyondLookback = "threshold_beyond_lookback"
	// SkipNoJob and SkipNoRank: series of training metrics without a job,
	// or without a rank and a GPU.
	SkipNoJob  = "no_job"
	SkipNoRank = "no_rank"
)

// Flags of a job_health row.
const (
	FlagStepOut          = 1
	FlagRegression       = 2
	FlagStalled          = 4
	FlagCheckpointSlow   = 8
	FlagCheckpointFailed = 16
)

// Status is one job's view of one window: a row of job_health.
type Status struct {
	Job                string
	Ranks              int
	StepSeconds        float64
	BaselineStep       float64
	StepZ              float64
	Steps              float64
	Goodput            float64
	Stalled            int
	StallSeconds       float64
	Checkpoints        float64
	CheckpointSeconds  float64
	BaselineCheckpoint float64
	Failures           float64
	Flags              uint8
}

// Result is what one window gave.
type Result struct {
	Detections []fleet.Detection
	Jobs       []Status
}

// SkipKey is a rule and the reason it could not run.
type SkipKey struct{ Rule, Reason string }

// jobState is what the evaluator keeps of one job between windows.
type jobState struct {
	steps, ckpt baseline
	seen        time.Time // end of the last window with reports
	slow        *slowCheckpoint
	failing     *failingCheckpoints
}

type slowCheckpoint struct{ seconds, median, z float64 }

type failingCheckpoints struct {
	since    time.Time
	failures float64
}

func (s *jobState) clone() *jobState {
	c := *s
	c.steps, c.ckpt = s.steps.clone(), s.ckpt.clone()
	return &c
}

// Evaluator judges windows of training jobs. Evaluate calls come in
// window order; the same window again (a retry) is judged from the state
// before its first evaluation.
type Evaluator struct {
	cfg     Config
	jobs    map[string]*jobState
	last    fleet.Window
	before  map[string]*jobState
	scratch []float64
	log     *slog.Logger

	mu      sync.Mutex
	skipped map[SkipKey]uint64
	goodput map[string]float64
}

// NewEvaluator validates cfg.
func NewEvaluator(cfg Config) (*Evaluator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Evaluator{cfg: cfg, jobs: map[string]*jobState{}, log: slog.Default(), skipped: map[SkipKey]uint64{}, goodput: map[string]float64{}}, nil
}

// SetLogger sets where the evaluator logs (default slog.Default()).
func (e *Evaluator) SetLogger(l *slog.Logger) { e.log = l }

// Skipped returns, per rule and reason, how many times (job or rank ×
// window) a rule could not run.
func (e *Evaluator) Skipped() map[SkipKey]uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.skipped)
}

// Goodput returns each job's goodput in its last window with one.
func (e *Evaluator) Goodput() map[string]float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.goodput)
}

// skip counts a rule that could not run n times and logs the rule and
// reason the first time.
func (e *Evaluator) skip(rule, reason, job string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := SkipKey{rule, reason}
	if _, seen := e.skipped[k]; !seen {
		e.log.Warn("training-job rule cannot run (logged once per rule and reason; counted in fleetwatch_analyzer_jobs_rules_skipped_total)",
			"detector", e.cfg.Name, "rule", rule, "reason", reason, "first_job", job)
	}
	e.skipped[k] += uint64(n)
}

// Evaluate judges one window.
func (e *Evaluator) Evaluate(in *Input) Result {
	if in.Window == e.last && e.before != nil {
		e.jobs = e.copyJobs(e.before)
	}
	e.before, e.last = e.copyJobs(e.jobs), in.Window
	for _, reason := range slices.Sorted(maps.Keys(in.Unassigned)) {
		e.skip("all", reason, "", in.Unassigned[reason])
	}
	byJob := map[string][]*Rank{}
	for i := range in.Ranks {
		r := &in.Ranks[i]
		byJob[r.Job] = append(byJob[r.Job], r)
	}
	var res Result
	for _, job := range slices.Sorted(maps.Keys(byJob)) {
		st := e.jobs[job]
		if st == nil {
			st = &jobState{}
			e.jobs[job] = st
		}
		status, dets := e.judge(in.Window, job, st, byJob[job])
		res.Jobs = append(res.Jobs, status)
		res.Detections = append(res.Detections, dets...)
	}
	for job, st := range e.jobs {
		if in.Window.End.Sub(st.seen) >= e.cfg.ForgetAfter && byJob[job] == nil {
			delete(e.jobs, job)
			e.mu.Lock()
			delete(e.goodput, job)
			e.mu.Unlock()
		}
	}
	return res
}

func (e *Evaluator) copyJobs(m map[string]*jobState) map[string]*jobState {
	out := make(map[string]*jobState, len(m))
	for k, v := range m {
		out[k] = v.clone()
	}
	return out
}

// judge applies every rule to one job's ranks.
func (e *Evaluator) judge(w fleet.Window, job string, st *jobState, ranks []*Rank) (Status, []fleet.Detection) {
	cfg := &e.cfg
	s := Status{Job: job, Ranks: len(ranks), StepSeconds: math.NaN(), BaselineStep: math.NaN(), StepZ: math.NaN(), Goodput: math.NaN(),
		CheckpointSeconds: math.NaN(), BaselineCheckpoint: math.NaN(), Steps: math.NaN()}
	continuing := st.seen.Equal(w.Start)
	st.seen = w.End
	var dets []fleet.Detection

	// The job's step time: the median of its ranks', against its history.
	times := e.scratch[:0]
	for _, r := range ranks {
		if !math.IsNaN(r.StepSeconds) && r.StepSeconds > 0 {
			times = append(times, r.StepSeconds)
		}
	}
	ref := math.NaN() // the job's healthy step time: its baseline, else this window's
	if len(times) == 0 {
		e.skip(RuleRegression, SkipNoStepTime, job, 1)
	} else {
		s.StepSeconds = kernels.Median(times)
		j := st.steps.judge(s.StepSeconds, cfg.MinHistory, cfg.StepRatio, cfg.MinZ, cfg.RelFloor, cfg.History, cfg.adaptWindows(), e.scratch)
		ref = s.StepSeconds
		if j.ready {
			s.BaselineStep, s.StepZ, ref = j.med, j.z, j.med
		} else {
			e.skip(RuleRegression, SkipShortHistory, job, 1)
		}
		if j.out {
			s.Flags |= FlagStepOut
			if run := len(st.steps.run); run >= cfg.Persist {
				s.Flags |= FlagRegression
				dets = append(dets, e.regression(w, job, &s, run))
			}
		}
	}
	e.scratch = times[:0]

	// Checkpoints: write times against the job's earlier ones; failures
	// until one completes.
	for _, r := range ranks {
		s.Checkpoints = max(s.Checkpoints, r.Checkpoints)
		s.Failures = max(s.Failures, r.CheckpointFailures)
		if r.Checkpoints > 0 && !math.IsNaN(r.CheckpointSeconds) {
			s.CheckpointSeconds = maxNaN(s.CheckpointSeconds, r.CheckpointSeconds)
		}
	}
	if s.Checkpoints > 0 && !math.IsNaN(s.CheckpointSeconds) {
		j := st.ckpt.judge(s.CheckpointSeconds, cfg.MinCheckpoints, cfg.CheckpointRatio, cfg.MinZ, cfg.CheckpointRelFloor,
			cfg.CheckpointHistory, cfg.CheckpointAdapt, e.scratch)
		st.slow = nil
		if !j.ready {
			e.skip(RuleCheckpointSlow, SkipShortCheckpoints, job, 1)
		} else if s.BaselineCheckpoint = j.med; j.out {
			st.slow = &slowCheckpoint{seconds: s.CheckpointSeconds, median: j.med, z: j.z}
		}
	}
	if st.slow != nil {
		s.Flags |= FlagCheckpointSlow
		s.BaselineCheckpoint = st.slow.median
		dets = append(dets, e.checkpointSlow(w, job, st.slow))
	}
	switch {
	case s.Failures > 0:
		if st.failing == nil {
			st.failing = &failingCheckpoints{since: w.Start}
		}
		st.failing.failures += s.Failures
	case s.Checkpoints > 0:
		st.failing = nil
	}
	if st.failing != nil {
		s.Flags |= FlagCheckpointFailed
		dets = append(dets, e.checkpointFailed(w, job, st.failing))
	}

	// Stalls and goodput need the step counter.
	var counted []*Rank
	for _, r := range ranks {
		if r.StepPoints > 0 {
			counted = append(counted, r)
		}
	}
	switch {
	case len(counted) == 0:
		e.skip(RuleStall, SkipNoStepCounter, job, 1)
		e.skip(RuleGoodput, SkipNoStepCounter, job, 1)
	case math.IsNaN(ref):
		e.skip(RuleStall, SkipNoStepTime, job, 1)
		e.skip(RuleGoodput, SkipNoStepTime, job, 1)
	default:
		if d, ok := e.stalls(w, job, st, ref, counted, &s); ok {
			dets = append(dets, d)
		}
		s.Steps = counted[0].Steps
		for _, r := range counted[1:] {
			s.Steps = min(s.Steps, r.Steps)
		}
		if continuing {
			s.Goodput = min(1, s.Steps*ref/w.End.Sub(w.Start).Seconds())
			e.mu.Lock()
			e.goodput[job] = s.Goodput
			e.mu.Unlock()
		} else {
			e.skip(RuleGoodput, SkipFirstWindow, job, 1)
		}
	}
	return s, dets
}

// stalls finds the job's ranks whose step counter has not risen for longer
// than the stall threshold, as of each rank's last report.
func (e *Evaluator) stalls(w fleet.Window, job string, st *jobState, ref float64, ranks []*Rank, s *Status) (fleet.Detection, bool) {
	cfg := &e.cfg
	var stalled []*Rank
	var gaps []float64
	threshold := 0.0
	for _, r := range ranks {
		last := r.LastStep
		if last.IsZero() {
			last = r.FirstPoint
		}
		gap := r.LastPoint.Sub(last).Seconds()
		report := w.End.Sub(w.Start).Seconds() / float64(r.StepPoints)
		thr := max(cfg.StallSteps*ref, cfg.StallReports*report, cfg.MinStall.Seconds(), cfg.StallCheckpoints*st.ckpt.longest())
		threshold = max(threshold, thr)
		s.StallSeconds = max(s.StallSeconds, gap)
		if thr >= cfg.StallLookback.Seconds() {
			e.skip(RuleStall, SkipBeyondLookback, job, 1)
			continue
		}
		if gap > thr {
			stalled, gaps = append(stalled, r), append(gaps, gap)
		}
	}
	s.Stalled = len(stalled)
	if len(stalled) == 0 {
		return fleet.Detection{}, false
	}
	s.Flags |= FlagStalled
	return e.stall(w, job, stalled, gaps, len(ranks), threshold, ref), true
}

func maxNaN(a, b float64) float64 {
	if math.IsNaN(a) {
		return b
	}
	return max(a, b)
}

// detection is the common part of the detector's detections: about the
// job, keyed by detector, job and rule.
func (e *Evaluator) detection(w fleet.Window, job, rule, class, severity string, value, threshold float64, summary string, evidence any) fleet.Detection {
	ev, _ := json.Marshal(evidence)
	return fleet.Detection{Time: w.End, WindowStart: w.Start, Detector: e.cfg.Name, Class: class, Severity: severity,
		EntityType: "job", Entity: job, Key: e.cfg.Name + "/" + job + "/" + rule, Job: job, Feature: rule,
		Value: value, Threshold: threshold, PValue: math.NaN(), Action: telemetry.ActionInvestigate, Summary: summary, Evidence: string(ev)}
}

func (e *Evaluator) regression(w fleet.Window, job string, s *Status, windows int) fleet.Detection {
	return e.detection(w, job, RuleRegression, ClassRegression, e.cfg.Severity.Regression, s.StepSeconds, e.cfg.StepRatio*s.BaselineStep,
		fmt.Sprintf("job %s steps in %.3gs, %.0f%% slower than its own median %.3gs (z %.1f) for %d windows", job, s.StepSeconds,
			100*(s.StepSeconds/s.BaselineStep-1), s.BaselineStep, s.StepZ, windows),
		map[string]any{"step_seconds": s.StepSeconds, "baseline_step_seconds": s.BaselineStep, "z": s.StepZ, "windows": windows, "ranks": s.Ranks})
}

func (e *Evaluator) stall(w fleet.Window, job string, stalled []*Rank, gaps []float64, ranks int, threshold, ref float64) fleet.Detection {
	longest := slices.Max(gaps)
	who := fmt.Sprintf("every rank (%d)", ranks)
	type where struct {
		Rank, Node, GPU string
		StallSeconds    float64 `json:"stall_seconds"`
	}
	var list []where
	var names []string
	for i, r := range stalled {
		list = append(list, where{r.Rank, r.Node, r.GPU, gaps[i]})
		names = append(names, r.Rank)
	}
	if len(stalled) < ranks {
		who = fmt.Sprintf("%d of %d ranks (%s)", len(stalled), ranks, strings.Join(firstN(names, 8), ", "))
	}
	d := e.detection(w, job, RuleStall, ClassStalled, e.cfg.Severity.Stall, longest, threshold,
		fmt.Sprintf("job %s made no progress: %s without a step for %.0fs (threshold %.0fs, %.0f× its median step time %.3gs)",
			job, who, longest, threshold, longest/ref, ref),
		map[string]any{"stalled": list, "ranks": ranks, "threshold_s": threshold, "median_step_seconds": ref})
	if len(stalled) == 1 {
		d.Topology, d.GPUUUID = stalled[0].Topology, stalled[0].GPU
	}
	d.Action = telemetry.ActionRestartApp // from the last checkpoint
	return d
}

func (e *Evaluator) checkpointSlow(w fleet.Window, job string, s *slowCheckpoint) fleet.Detection {
	ev := map[string]any{"checkpoint_seconds": s.seconds, "baseline_checkpoint_seconds": s.median}
	if !math.IsNaN(s.z) { // not kept across a restart
		ev["z"] = s.z
	}
	return e.detection(w, job, RuleCheckpointSlow, ClassCheckpointSlow, e.cfg.Severity.CheckpointSlow, s.seconds, e.cfg.CheckpointRatio*s.median,
		fmt.Sprintf("job %s's last checkpoint took %.0fs to write, %.1f× the median %.0fs of its earlier ones", job, s.seconds, s.seconds/s.median, s.median), ev)
}

func (e *Evaluator) checkpointFailed(w fleet.Window, job string, f *failingCheckpoints) fleet.Detection {
	return e.detection(w, job, RuleCheckpointFailed, ClassCheckpointFailed, e.cfg.Severity.CheckpointFailed, f.failures, 0,
		fmt.Sprintf("job %s: %.0f checkpoint writes failed since %s and none completed since", job, f.failures, f.since.UTC().Format(time.RFC3339)),
		map[string]any{"failures": f.failures, "since": f.since.UTC().Format(time.RFC3339)})
}

func firstN(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(slices.Clip(s[:n]), "…")
}
