package sim_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// jobScenario runs four two-node jobs for 30 minutes, one fault each.
const jobScenario = `
seed: 3
start: 2026-11-23T10:00:00Z
duration: 30m
interval: 5s
fleet: {racks_per_row: 4, nodes_per_rack: 2, gpus_per_node: 2}
jobs:
  - {name: slow, first_node: 0, nodes: 2, step_seconds: 1, checkpoint: {every: 3m, seconds: 20}}
  - {name: hang, first_node: 2, nodes: 2, step_seconds: 1, checkpoint: {every: 3m, seconds: 20}}
  - {name: ckpt, first_node: 4, nodes: 2, step_seconds: 1, checkpoint: {every: 3m, seconds: 20}}
  - {name: fail, first_node: 6, nodes: 2, step_seconds: 1, checkpoint: {every: 3m, seconds: 20}}
faults:
  - {name: r, type: job_step_regression, target: {job: slow}, start: 10m, end: 20m}
  - {name: h, type: rank_hang, target: {job: hang, rank: 3}, start: 10m, end: 20m}
  - {name: c, type: checkpoint_slow, target: {job: ckpt}, start: 10m, end: 20m}
  - {name: f, type: checkpoint_failure, target: {job: fail}, start: 10m, end: 20m}
`

// rankSeries collects one metric of one job's rank 0 over the run.
func rankSeries(bs []*record.Batch, metric, job string) (ts []time.Time, vs []float64) {
	idx := int16(telemetry.Index(metric))
	for _, b := range bs {
		for _, s := range b.Samples {
			if s.Field != idx || b.GPUs[s.GPU].Workload.Job != job || s.Extra[0].Value != "0" {
				continue
			}
			ts, vs = append(ts, b.Time), append(vs, s.Value)
		}
	}
	return ts, vs
}

// rise is a counter's increase over [from, to).
func rise(ts []time.Time, vs []float64, from, to time.Time) float64 {
	return at(ts, vs, to.Add(-time.Nanosecond)) - at(ts, vs, from)
}

func TestJobFaultsLeaveTheirSignature(t *testing.T) {
	sc, r := newRunner(t, jobScenario, quiet)
	var bs []*record.Batch
	if err := r.Run(context.Background(), record.SinkFunc(func(b *record.Batch) { bs = append(bs, b) }), false); err != nil {
		t.Fatal(err)
	}
	min := func(m int) time.Time { return sc.Start.Add(time.Duration(m) * time.Minute) }
	before, during, after := [2]time.Time{min(1), min(10)}, [2]time.Time{min(10), min(20)}, [2]time.Time{min(21), min(30)}
	span := func(p [2]time.Time) float64 { return p[1].Sub(p[0]).Seconds() }

	t.Run("healthy progress: about one step a second less checkpoint pauses", func(t *testing.T) {
		ts, vs := rankSeries(bs, telemetry.TrainSteps, "ckpt")
		rate := rise(ts, vs, before[0], before[1]) / span(before)
		if rate < 0.8 || rate > 1.0 {
			t.Errorf("%.3f steps/s, want 0.8 to 1 (1 s steps, 20 s of every 180 s writing)", rate)
		}
		cts, cvs := rankSeries(bs, telemetry.TrainCheckpoints, "ckpt")
		if n := rise(cts, cvs, before[0], before[1]); n < 2 || n > 4 {
			t.Errorf("%v checkpoints in 9 minutes at one per 3 minutes", n)
		}
	})
	t.Run("regression slows every rank's step time", func(t *testing.T) {
		ts, vs := series(bs, telemetry.TrainStepSeconds, r.Fleet.Node("node-001").GPUs[1].UUID, -1)
		if b, d := at(ts, vs, min(9)), at(ts, vs, min(15)); d/b < 1.3 || d/b > 1.5 {
			t.Errorf("step time %.3f before, %.3f during: want ×1.4", b, d)
		}
	})
	t.Run("a hung rank stops the job's counters, gauges keep their value", func(t *testing.T) {
		ts, vs := rankSeries(bs, telemetry.TrainSteps, "hang")
		if n := rise(ts, vs, during[0].Add(30*time.Second), during[1]); n != 0 {
			t.Errorf("%v steps while hung", n)
		}
		if n := rise(ts, vs, after[0], after[1]); n < 400 {
			t.Errorf("%v steps after the hang, want it to resume", n)
		}
		sts, svs := rankSeries(bs, telemetry.TrainStepSeconds, "hang")
		if a, b := at(sts, svs, min(12)), at(sts, svs, min(18)); a != b || a <= 0 {
			t.Errorf("step-time gauge moved while hung: %v then %v", a, b)
		}
	})
	t.Run("slow checkpoints take four times longer", func(t *testing.T) {
		ts, vs := rankSeries(bs, telemetry.TrainCheckpointSeconds, "ckpt")
		b, d := at(ts, vs, min(9)), at(ts, vs, min(19))
		if b < 15 || b > 26 || d/b < 3 || d/b > 5.5 {
			t.Errorf("write time %.1f s before, %.1f s during", b, d)
		}
	})
	t.Run("failing checkpoints count failures and no completions", func(t *testing.T) {
		fts, fvs := rankSeries(bs, telemetry.TrainCheckpointFailures, "fail")
		cts, cvs := rankSeries(bs, telemetry.TrainCheckpoints, "fail")
		if n := rise(fts, fvs, before[0], before[1]); n != 0 {
			t.Errorf("%v failures before the fault", n)
		}
		if n := rise(fts, fvs, during[0].Add(time.Minute), during[1]); n < 2 {
			t.Errorf("%v failures during the fault", n)
		}
		if n := rise(cts, cvs, during[0].Add(time.Minute), during[1]); n != 0 {
			t.Errorf("%v completed checkpoints during the fault", n)
		}
		if first := fvs[0]; first != 0 {
			t.Errorf("the failure counter starts at %v: it must start at 0 so its first failure is an increase", first)
		}
	})
	t.Run("ground truth is at the job level", func(t *testing.T) {
		for _, tr := range r.Fleet.GroundTruth() {
			if tr.Level != "job" || tr.Job == "" || !sim.IsJobFault(tr.Type) {
				t.Errorf("truth %+v", tr)
			}
			if tr.Type == sim.FaultRankHang && (tr.Rank == nil || *tr.Rank != 3 || tr.Node != "node-003" || tr.GPU == "") {
				t.Errorf("hang truth lacks its rank and place: %+v", tr)
			}
		}
	})
}

// Scenarios without job faults draw the same random numbers as before
// jobs had progress: the fleet's GPUs are unchanged.
func TestJobsDrawFromTheirOwnGenerator(t *testing.T) {
	base := "seed: 5\nstart: 2026-11-23T10:00:00Z\nduration: 2m\ninterval: 5s\nfleet: {nodes_per_rack: 2, gpus_per_node: 2}\njobs: [{name: j, first_node: 0, nodes: 2, %s}]\n"
	temps := func(ck string) []float64 {
		_, r := newRunner(t, strings.Replace(base, "%s", ck, 1), quiet)
		var out []float64
		for _, b := range stepAll(r) {
			for _, s := range b.Samples {
				if s.Field == int16(telemetry.Index(telemetry.GPUTemp)) {
					out = append(out, s.Value)
				}
			}
		}
		return out
	}
	a, b := temps("checkpoint: {every: 30s, seconds: 5}"), temps("checkpoint: {every: -1s}")
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("%d and %d temperatures", len(a), len(b))
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 0 {
			t.Fatalf("temperature %d differs with checkpointing: %v vs %v", i, a[i], b[i])
		}
	}
}

func stepAll(r *sim.Runner) []*record.Batch {
	var out []*record.Batch
	sc := r.Scenario
	for t := sc.Start.Add(sc.Interval); !t.After(sc.Start.Add(sc.Duration)); t = t.Add(sc.Interval) {
		out = append(out, r.Step(t)...)
	}
	return out
}

func TestJobFaultsAreValidated(t *testing.T) {
	for _, c := range []struct{ name, fault, want string }{
		{"unknown job", "{type: rank_hang, target: {job: nope}}", "needs a known target.job"},
		{"rank out of range", "{type: rank_hang, target: {job: j, rank: 4}}", "target.rank 4"},
		{"speed-up", "{type: job_step_regression, target: {job: j}, magnitude: 0.5}", "step-time factor above 1"},
		{"faster checkpoints", "{type: checkpoint_slow, target: {job: j}, magnitude: 0.9}", "write-time factor above 1"},
	} {
		_, err := sim.Parse([]byte("fleet: {nodes_per_rack: 2, gpus_per_node: 2}\njobs: [{name: j, first_node: 0, nodes: 2}]\nduration: 1m\nfaults: [" + c.fault + "]\n"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
