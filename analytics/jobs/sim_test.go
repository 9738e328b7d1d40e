package jobs_test

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/analytics/jobs"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// windower turns the simulator's training batches into each window's
// Input, computing in memory what RowsSQL computes in ClickHouse: counter
// increases as the collector stores them (the first point of a series
// counts 0, a fall is a reset), per-window counts, sums, last values and
// increases, and over the stall lookback the step counter's first, last
// and last rising points.
type windower struct {
	interval, lookback time.Duration
	cur                fleet.Window
	series             map[[3]string]*simSeries
}

type simSeries struct {
	p    jobs.Point
	prev float64
	seen bool
	pts  []simPoint
}

type simPoint struct {
	t        time.Time
	v, delta float64
}

func newWindower(start time.Time, cfg jobs.Config) *windower {
	return &windower{interval: cfg.Interval, lookback: cfg.StallLookback, cur: fleet.Align(start, cfg.Interval), series: map[[3]string]*simSeries{}}
}

// add takes one batch and returns the windows it completed.
func (w *windower) add(b *record.Batch) []*jobs.Input {
	var out []*jobs.Input
	for !b.Time.Before(w.cur.End) {
		out = append(out, w.flush())
	}
	for _, s := range b.Samples {
		if s.Field < 0 || s.GPU < 0 {
			continue
		}
		f := telemetry.Fields[s.Field]
		gpu := b.GPUs[s.GPU]
		rank := ""
		for _, l := range s.Extra {
			if l.Key == telemetry.LabelRank {
				rank = l.Value
			}
		}
		k := [3]string{gpu.Workload.Job, rank, f.Name}
		sr := w.series[k]
		if sr == nil {
			sr = &simSeries{p: jobs.Point{Metric: f.Name, Job: gpu.Workload.Job, Rank: rank, GPU: gpu.UUID,
				Topology: fleet.Topology{Datacenter: b.Resource.Datacenter, Row: b.Resource.Row, Rack: b.Resource.Rack, Node: b.Resource.Host}}}
			w.series[k] = sr
		}
		delta := 0.0
		if f.Kind == telemetry.Counter && sr.seen {
			delta = s.Value - sr.prev
			if delta < 0 {
				delta = s.Value
			}
		}
		sr.prev, sr.seen = s.Value, true
		sr.pts = append(sr.pts, simPoint{b.Time.Truncate(time.Second), s.Value, delta})
	}
	return out
}

// flush completes the current window.
func (w *windower) flush() *jobs.Input {
	win := w.cur
	from := win.End.Add(-w.lookback)
	var points []jobs.Point
	for _, sr := range w.series {
		keep := sr.pts[:0]
		for _, p := range sr.pts {
			if !p.t.Before(from) {
				keep = append(keep, p)
			}
		}
		sr.pts = keep
		p := sr.p
		for _, pt := range sr.pts {
			if !pt.t.Before(win.End) {
				continue
			}
			if !pt.t.Before(win.Start) {
				p.N++
				p.Sum += pt.v
				p.Delta += pt.delta
				p.Last = pt.v
			}
			if p.First.IsZero() {
				p.First = pt.t
			}
			p.LastPoint = pt.t
			if pt.delta > 0 {
				p.LastRise = pt.t
			}
		}
		if p.N > 0 {
			points = append(points, p)
		}
	}
	w.cur = fleet.Window{Start: win.End, End: win.End.Add(w.interval)}
	return jobs.Fold(win, points)
}

// simulate runs sc through the simulated fleet (no NVML: only the training
// batches matter) and evaluates every complete window.
func simulate(t *testing.T, sc *sim.Scenario, cfg jobs.Config) ([]jobs.Result, *jobs.Evaluator, *sim.Fleet) {
	t.Helper()
	ev, err := jobs.NewEvaluator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ev.SetLogger(quiet)
	fl := sim.NewFleet(sc)
	w := newWindower(sc.Start, cfg)
	var out []jobs.Result
	end := sc.Start.Add(sc.Duration)
	for ts := sc.Start.Add(sc.Interval); !ts.After(end); ts = ts.Add(sc.Interval) {
		fl.Advance(ts)
		for _, n := range fl.Nodes {
			for _, in := range w.add(fl.TrainingBatch(n, ts)) {
				out = append(out, ev.Evaluate(in))
			}
		}
	}
	return out, ev, fl
}

// randomJobs is a scenario of two jobs whose step time, checkpoint period
// and checkpoint write time are drawn from the seed, not picked by hand.
func randomJobs(t *testing.T, seed uint64, duration time.Duration, faults string) *sim.Scenario {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	job := func(name string, first int) string {
		return fmt.Sprintf("{name: %s, first_node: %d, nodes: 2, step_seconds: %.2f, checkpoint: {every: %ds, seconds: %.0f}}",
			name, first, 0.5+1.5*rng.Float64(), 120+rng.IntN(180), 10+50*rng.Float64())
	}
	yaml := fmt.Sprintf("seed: %d\nstart: 2026-11-23T10:00:00Z\nduration: %s\ninterval: 5s\nfleet: {racks_per_row: 2, nodes_per_rack: 2, gpus_per_node: 4}\njobs: [%s, %s]\n%s",
		seed, duration, job("alpha", 0), job("beta", 2), faults)
	sc, err := sim.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// Healthy jobs, 50 seeds of 90 minutes with their own step times and
// checkpoint cadences, raise nothing, while every rule gets to judge.
func TestHealthyJobsRaiseNothing(t *testing.T) {
	cfg := jobs.NewDefaultConfig()
	judgedSteps, judgedCheckpoints := 0, 0
	goodput := math.Inf(1)
	for seed := uint64(1); seed <= 50; seed++ {
		results, _, _ := simulate(t, randomJobs(t, seed, 90*time.Minute, ""), cfg)
		for _, r := range results {
			for _, d := range r.Detections {
				t.Errorf("seed %d, window %v: false %s: %s", seed, d.WindowStart.Format(time.TimeOnly), d.Feature, d.Summary)
			}
			for _, s := range r.Jobs {
				if !math.IsNaN(s.BaselineStep) {
					judgedSteps++
				}
				if s.Checkpoints > 0 && !math.IsNaN(s.BaselineCheckpoint) {
					judgedCheckpoints++
				}
				if !math.IsNaN(s.Goodput) {
					goodput = min(goodput, s.Goodput)
				}
			}
		}
	}
	t.Logf("50 seeds: %d job windows and %d checkpoints judged against a baseline, none flagged; lowest window goodput %.2f", judgedSteps, judgedCheckpoints, goodput)
	if judgedSteps < 50*2*70 || judgedCheckpoints < 50*2*10 {
		t.Errorf("too little was judged: %d windows, %d checkpoints", judgedSteps, judgedCheckpoints)
	}
}

// Each job fault, injected after the baselines have formed, is found
// within a bounded number of windows, on its job only.
func TestEachJobFaultIsFound(t *testing.T) {
	cfg := jobs.NewDefaultConfig()
	cases := []struct {
		typ, target, rule string
		windows           int
		also              string // a rule that may also fire: a checkpoint slow enough holds the job past the stall threshold
	}{
		{sim.FaultJobRegression, "{job: alpha}, magnitude: 1.25", jobs.RuleRegression, 3, ""},
		{sim.FaultRankHang, "{job: alpha, rank: 5}", jobs.RuleStall, 4, ""},
		{sim.FaultCheckpointSlow, "{job: alpha}", jobs.RuleCheckpointSlow, 0, jobs.RuleStall},
		{sim.FaultCheckpointFailure, "{job: alpha}", jobs.RuleCheckpointFailed, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			for seed := uint64(1); seed <= 5; seed++ {
				sc := randomJobs(t, seed, 75*time.Minute, fmt.Sprintf("faults: [{type: %s, target: %s, start: 50m, end: 70m}]\n", c.typ, c.target))
				results, _, fl := simulate(t, sc, cfg)
				truth := fl.GroundTruth()[0]
				first := time.Time{}
				for _, r := range results {
					for _, d := range r.Detections {
						if d.Feature == c.also && d.Job == "alpha" && !d.Time.Before(truth.Start) {
							continue
						}
						if d.Job != "alpha" || d.Feature != c.rule || d.Time.Before(truth.Start) {
							t.Errorf("seed %d: unexpected %s on %s at %v: %s", seed, d.Feature, d.Job, d.WindowStart.Format(time.TimeOnly), d.Summary)
						}
						if first.IsZero() {
							first = d.Time
						}
					}
				}
				// A checkpoint fault shows when the first checkpoint started
				// after its start is written: at most a period, a write in
				// progress and the slow write (4×) later, plus a window.
				bound := truth.Start.Add(time.Duration(c.windows) * cfg.Interval)
				if c.windows == 0 {
					ck := sc.Jobs[0].Checkpoint
					bound = truth.Start.Add(ck.Every + time.Duration(5*1.5*ck.Seconds)*time.Second + 2*cfg.Interval)
				}
				if first.IsZero() || first.After(bound) {
					t.Errorf("seed %d: %s first raised at %v, want by %v", seed, c.rule, first, bound)
				}
			}
		})
	}
}
