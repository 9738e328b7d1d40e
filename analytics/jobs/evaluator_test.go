package jobs

import (
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// synthJob is a synthetic job: ranks reporting every 5 s, 1 s steps, a
// checkpoint of 20 s every ckptEvery windows; mutate changes the ranks of
// a window from the fault's window on.
type synthJob struct {
	ranks     int
	ckptEvery int
	rng       *rand.Rand
	lastStep  []time.Time
}

func newSynth(ranks int, seed uint64) *synthJob {
	return &synthJob{ranks: ranks, ckptEvery: 3, rng: rand.New(rand.NewPCG(seed, 1)), lastStep: make([]time.Time, ranks)}
}

func window(k int) fleet.Window {
	start := t0.Add(time.Duration(k) * time.Minute)
	return fleet.Window{Start: start, End: start.Add(time.Minute)}
}

// healthy returns window k's ranks of a healthy job.
func (s *synthJob) healthy(k int) []Rank {
	w := window(k)
	out := make([]Rank, s.ranks)
	ckpt := k%s.ckptEvery == 0
	for i := range out {
		last := w.End.Add(-5 * time.Second)
		out[i] = Rank{Job: "llm", Rank: strconv.Itoa(i), GPU: "GPU-" + strconv.Itoa(i), Topology: fleet.Topology{Node: "node-" + strconv.Itoa(i/8)},
			StepSeconds: 1 + 0.01*s.rng.NormFloat64(), Steps: 60, StepPoints: 12,
			FirstPoint: w.End.Add(-30 * time.Minute), LastPoint: last, LastStep: last, CheckpointSeconds: math.NaN()}
		if ckpt {
			out[i].Steps = 40
			out[i].Checkpoints, out[i].CheckpointSeconds = 1, 20*math.Exp(0.1*s.rng.NormFloat64())
		}
	}
	return out
}

// run evaluates windows 0..n-1, the fault's mutation from window at on,
// and returns the detections per window.
func run(t *testing.T, ev *Evaluator, s *synthJob, n, at int, mutate func(k int, rs []Rank)) [][]fleet.Detection {
	t.Helper()
	out := make([][]fleet.Detection, n)
	for k := 0; k < n; k++ {
		rs := s.healthy(k)
		if mutate != nil && k >= at {
			mutate(k, rs)
		}
		out[k] = ev.Evaluate(&Input{Window: window(k), Ranks: rs}).Detections
	}
	return out
}

func newEval(t *testing.T) *Evaluator {
	t.Helper()
	ev, err := NewEvaluator(NewDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	ev.SetLogger(quiet)
	return ev
}

func TestRules(t *testing.T) {
	stallFrom := func(ranks ...int) func(k int, rs []Rank) {
		return func(k int, rs []Rank) {
			for i := range rs {
				if ranks != nil && !containsInt(ranks, i) {
					continue
				}
				rs[i].Steps, rs[i].LastStep = 0, window(20).Start
				rs[i].Checkpoints, rs[i].CheckpointSeconds = 0, math.NaN()
			}
		}
	}
	checkpoints := func(factor float64, fail bool) func(k int, rs []Rank) {
		return func(k int, rs []Rank) {
			for i := range rs {
				if rs[i].Checkpoints == 0 {
					continue
				}
				if fail {
					rs[i].Checkpoints, rs[i].CheckpointFailures, rs[i].CheckpointSeconds = 0, 1, math.NaN()
				} else {
					rs[i].CheckpointSeconds *= factor
				}
			}
		}
	}
	cases := []struct {
		name   string
		at     int
		mutate func(k int, rs []Rank)
		want   string // the rule expected, "" for none
		within int    // windows after at
	}{
		{name: "healthy", want: ""},
		{name: "whole job 30% slower", at: 20, want: RuleRegression, within: 2,
			mutate: func(k int, rs []Rank) { scaleSteps(rs, 1.3) }},
		{name: "whole job 5% slower is below the ratio", at: 20, want: "",
			mutate: func(k int, rs []Rank) { scaleSteps(rs, 1.05) }},
		{name: "one slow rank (health's straggler) moves no median", at: 20, want: "",
			mutate: func(k int, rs []Rank) { rs[3].StepSeconds *= 1.5 }},
		{name: "the whole job stops stepping", at: 20, want: RuleStall, within: 3, mutate: stallFrom()},
		{name: "one rank stops stepping", at: 20, want: RuleStall, within: 3, mutate: stallFrom(5)},
		{name: "checkpoints three times slower", at: 21, want: RuleCheckpointSlow, within: 3, mutate: checkpoints(3, false)},
		{name: "checkpoints 50% slower is below the ratio", at: 21, want: "", mutate: checkpoints(1.5, false)},
		{name: "checkpoint writes fail", at: 21, want: RuleCheckpointFailed, within: 3, mutate: checkpoints(1, true)},
		{name: "regression before min_history is not judged", at: 3, want: "",
			mutate: func(k int, rs []Rank) {
				if k < 9 {
					scaleSteps(rs, 1.3)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 20; seed++ {
				ev := newEval(t)
				dets := run(t, ev, newSynth(16, seed), 40, c.at, c.mutate)
				first := -1
				for k, ds := range dets {
					for _, d := range ds {
						if d.Feature != c.want || (c.mutate != nil && k < c.at) {
							t.Fatalf("seed %d window %d: unexpected %s: %s", seed, k, d.Feature, d.Summary)
						}
						if d.EntityType != "job" || d.Entity != "llm" || d.Job != "llm" {
							t.Fatalf("detection not about the job: %+v", d)
						}
						if first < 0 {
							first = k
						}
					}
				}
				if c.want != "" && (first < 0 || first > c.at+c.within) {
					t.Fatalf("seed %d: %s first raised in window %d, want by %d", seed, c.want, first, c.at+c.within)
				}
			}
		})
	}
}

func scaleSteps(rs []Rank, f float64) {
	for i := range rs {
		rs[i].StepSeconds *= f
		rs[i].Steps /= f
	}
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func TestStallNamesTheRankAndClearsWhenItSteps(t *testing.T) {
	ev := newEval(t)
	s := newSynth(16, 3)
	var got []fleet.Detection
	for k := 0; k < 30; k++ {
		rs := s.healthy(k)
		if k >= 10 && k < 20 {
			rs[5].Steps, rs[5].LastStep = 0, window(10).Start
		}
		res := ev.Evaluate(&Input{Window: window(k), Ranks: rs})
		if k >= 21 && len(res.Detections) > 0 {
			t.Fatalf("window %d: %s after the rank resumed", k, res.Detections[0].Summary)
		}
		got = append(got, res.Detections...)
	}
	if len(got) == 0 {
		t.Fatal("no stall raised")
	}
	d := got[0]
	if !strings.Contains(d.Summary, "1 of 16 ranks (5)") || d.GPUUUID != "GPU-5" || d.Node != "node-0" || d.Class != ClassStalled {
		t.Errorf("stall of one rank: %+v", d)
	}
}

func TestGoodputIsTheShareOfTimeStepping(t *testing.T) {
	ev := newEval(t)
	s := newSynth(4, 1)
	var last []Status
	for k := 0; k < 14; k++ {
		rs := s.healthy(k)
		if k == 13 {
			for i := range rs {
				rs[i].Steps = 30 // half the window without progress
			}
		}
		last = ev.Evaluate(&Input{Window: window(k), Ranks: rs}).Jobs
		if k == 0 && !math.IsNaN(last[0].Goodput) {
			t.Errorf("the first window has goodput %v: the job's earlier progress is unknown", last[0].Goodput)
		}
	}
	if g := last[0].Goodput; math.Abs(g-0.5) > 0.02 {
		t.Errorf("goodput %.3f, want 0.5", g)
	}
	if g := ev.Goodput()["llm"]; g != last[0].Goodput {
		t.Errorf("Goodput() %v, last row %v", g, last[0].Goodput)
	}
}

// A history of identical values has no spread: the relative floor and the
// ratio keep a small change from looking like many σ.
func TestSteadyHistoryCannotCollapseTheSpread(t *testing.T) {
	var b baseline
	for range 20 {
		b.add(20, false, 20, 5)
	}
	j := b.judge(22, 5, 2, 5, 0.10, 20, 5, nil)
	if j.out || j.z > 1.01 {
		t.Errorf("10%% over a flat history: out %v, z %.2f", j.out, j.z)
	}
	if j := b.judge(60, 5, 2, 5, 0.10, 20, 5, nil); !j.out {
		t.Errorf("3× over the history not out: %+v", j)
	}
}

// A lasting change becomes the job's normal after adapt_after.
func TestBaselineAdaptsToALastingChange(t *testing.T) {
	var b baseline
	for range 10 {
		b.add(1, false, 30, 5)
	}
	outs := 0
	for range 8 {
		if b.judge(1.5, 5, 1.1, 5, 0.01, 30, 5, nil).out {
			outs++
		}
	}
	if outs != 5 {
		t.Errorf("%d windows out, want 5 (then the new level is the baseline)", outs)
	}
}

func TestRetriedWindowGivesTheSameResult(t *testing.T) {
	ev := newEval(t)
	s := newSynth(8, 2)
	var rs []Rank
	for k := 0; k < 25; k++ {
		rs = s.healthy(k)
		if k >= 20 {
			scaleSteps(rs, 1.4)
		}
		ev.Evaluate(&Input{Window: window(k), Ranks: rs})
	}
	a := ev.Evaluate(&Input{Window: window(24), Ranks: rs})
	b := ev.Evaluate(&Input{Window: window(24), Ranks: rs})
	if len(a.Detections) != 1 || len(b.Detections) != 1 || a.Detections[0].Summary != b.Detections[0].Summary {
		t.Errorf("a retried window differs:\n%v\n%v", a.Detections, b.Detections)
	}
}

// A restarted evaluator restored from the rows the first one wrote judges
// the next window as the first one would.
func TestRestoreFromRowsContinuesTheJob(t *testing.T) {
	for _, c := range []struct {
		name   string
		mutate func(k int, rs []Rank)
	}{
		{"regression", func(k int, rs []Rank) {
			if k >= 25 {
				scaleSteps(rs, 1.4)
			}
		}},
		{"slow checkpoints", func(k int, rs []Rank) {
			if k >= 24 {
				for i := range rs {
					rs[i].CheckpointSeconds *= 3
				}
			}
		}},
		{"failing checkpoints", func(k int, rs []Rank) {
			if k >= 24 && rs[0].Checkpoints > 0 {
				for i := range rs {
					rs[i].Checkpoints, rs[i].CheckpointFailures = 0, 1
				}
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := newEval(t)
			s := newSynth(8, 4)
			var rows []Row
			var next []Rank
			for k := 0; k <= 28; k++ {
				rs := s.healthy(k)
				c.mutate(k, rs)
				if k == 28 {
					next = rs
					break
				}
				for _, st := range a.Evaluate(&Input{Window: window(k), Ranks: rs}).Jobs {
					rows = append(rows, Row{Window: window(k), Status: st})
				}
			}
			b := newEval(t)
			b.Restore(rows)
			ra, rb := a.Evaluate(&Input{Window: window(28), Ranks: next}), b.Evaluate(&Input{Window: window(28), Ranks: next})
			if len(ra.Detections) == 0 {
				t.Fatal("the fault raised nothing")
			}
			if len(ra.Detections) != len(rb.Detections) || ra.Detections[0].Key != rb.Detections[0].Key || ra.Jobs[0].Flags != rb.Jobs[0].Flags {
				t.Errorf("restored evaluator differs:\n%+v\n%+v", ra.Jobs, rb.Jobs)
			}
		})
	}
}

func TestRulesThatCannotRunAreCounted(t *testing.T) {
	ev := newEval(t)
	s := newSynth(4, 1)
	for k := 0; k < 3; k++ {
		rs := s.healthy(k)
		for i := range rs {
			rs[i].StepPoints = 0
		}
		ev.Evaluate(&Input{Window: window(k), Ranks: rs, Unassigned: map[string]int{SkipNoJob: 2}})
	}
	got := ev.Skipped()
	for k, want := range map[SkipKey]uint64{
		{RuleStall, SkipNoStepCounter}: 3, {RuleGoodput, SkipNoStepCounter}: 3,
		{RuleRegression, SkipShortHistory}: 3, {RuleCheckpointSlow, SkipShortCheckpoints}: 1, {"all", SkipNoJob}: 6,
	} {
		if got[k] != want {
			t.Errorf("%v skipped %d times, want %d (all: %v)", k, got[k], want, got)
		}
	}
}

func TestJobsAreForgotten(t *testing.T) {
	ev := newEval(t)
	s := newSynth(2, 1)
	ev.Evaluate(&Input{Window: window(0), Ranks: s.healthy(0)})
	ev.Evaluate(&Input{Window: window(61)})
	if len(ev.jobs) != 0 || len(ev.Goodput()) != 0 {
		t.Errorf("a job silent for an hour is still kept: %d", len(ev.jobs))
	}
}

func TestConfigValidate(t *testing.T) {
	if err := NewDefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no relative floor", func(c *Config) { c.CheckpointRelFloor = 0 }, "checkpoint_rel_floor"},
		{"ratio at 1", func(c *Config) { c.StepRatio = 1 }, "step_ratio"},
		{"short history", func(c *Config) { c.MinHistory = 2 }, "min_history"},
		{"too few checkpoints", func(c *Config) { c.MinCheckpoints = 40 }, "min_checkpoints"},
		{"lookback shorter than the stall floor", func(c *Config) { c.StallLookback = 3 * time.Minute }, "stall_lookback"},
		{"unknown severity", func(c *Config) { c.Severity.Stall = "page" }, "severity.stall"},
		{"adapt before judging", func(c *Config) { c.AdaptAfter = 5 * time.Minute }, "adapt_after"},
		{"fractional interval", func(c *Config) { c.Interval = 1500 * time.Millisecond }, "interval"},
	} {
		cfg := NewDefaultConfig()
		c.edit(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
