package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Training-job faults (issue 16): the whole job rather than one GPU. Their
// target names a job (and, for rank_hang, a rank); their ground truth is at
// level "job".
const (
	// FaultJobRegression: every rank of the job steps slower (Magnitude:
	// the step-time factor, default 1.4), e.g. a slower input pipeline or
	// a shared file system; no GPU differs from its peers.
	FaultJobRegression = "job_step_regression"
	// FaultRankHang: one rank stops stepping (a deadlock, a lost
	// collective) and, the job being synchronous, every other rank waits
	// for it at the next collective: the step counters stop, the step-time
	// gauges keep their last value, as a hung trainer's exporter does.
	FaultRankHang = "rank_hang"
	// FaultCheckpointSlow: checkpoint writes take Magnitude times longer
	// (default 4); the job waits for them.
	FaultCheckpointSlow = "checkpoint_slow"
	// FaultCheckpointFailure: checkpoint writes fail (counted per rank in
	// fleetwatch_train_checkpoint_failures_total) after taking their time.
	FaultCheckpointFailure = "checkpoint_failure"
)

var jobFaultTypes = map[string]bool{FaultJobRegression: true, FaultRankHang: true, FaultCheckpointSlow: true, FaultCheckpointFailure: true}

// IsJobFault reports whether typ is a training-job fault type.
func IsJobFault(typ string) bool { return jobFaultTypes[typ] }

// CheckpointSpec is how a job checkpoints: every Every of wall time it
// stops stepping while each rank writes its shard (Seconds, log-normal
// with a 10% spread per rank); the job resumes when the slowest rank is
// done.
type CheckpointSpec struct {
	// Every is the time between checkpoints (default 5m; negative: the job
	// never checkpoints).
	Every time.Duration `yaml:"every"`
	// Seconds is a rank's healthy write time (default 20).
	Seconds float64 `yaml:"seconds"`
}

// setJobDefaults fills the job sections' checkpoint defaults and the
// job faults' magnitudes.
func (sc *Scenario) setJobDefaults() {
	for i := range sc.Jobs {
		c := &sc.Jobs[i].Checkpoint
		if c.Every == 0 {
			c.Every = 5 * time.Minute
		}
		if c.Seconds == 0 {
			c.Seconds = 20
		}
	}
	for i := range sc.Faults {
		ft := &sc.Faults[i]
		if ft.Magnitude == 0 {
			ft.Magnitude = map[string]float64{FaultJobRegression: 1.4, FaultCheckpointSlow: 4}[ft.Type]
		}
	}
}

// validateJobs checks the checkpoint sections and the job faults' targets.
func (sc *Scenario) validateJobs() []error {
	var errs []error
	ranks := map[string]int{}
	for _, j := range sc.Jobs {
		ranks[j.Name] = j.Nodes * sc.Fleet.GPUsPerNode
		if j.Checkpoint.Seconds <= 0 {
			errs = append(errs, fmt.Errorf("job %q: checkpoint.seconds %v must be positive", j.Name, j.Checkpoint.Seconds))
		}
	}
	for _, ft := range sc.Faults {
		if !jobFaultTypes[ft.Type] {
			continue
		}
		n, ok := ranks[ft.Target.Job]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("fault %s: needs a known target.job", ft.Name))
		case ft.Target.Rank != nil && (*ft.Target.Rank < 0 || *ft.Target.Rank >= n):
			errs = append(errs, fmt.Errorf("fault %s: target.rank %d: the job has ranks 0..%d", ft.Name, *ft.Target.Rank, n-1))
		}
		if ft.Type == FaultJobRegression && ft.Magnitude <= 1 {
			errs = append(errs, fmt.Errorf("fault %s: magnitude %v: a step-time factor above 1", ft.Name, ft.Magnitude))
		}
		if ft.Type == FaultCheckpointSlow && ft.Magnitude <= 1 {
			errs = append(errs, fmt.Errorf("fault %s: magnitude %v: a write-time factor above 1", ft.Name, ft.Magnitude))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return []error{errors.Join(errs...)}
}

// jobRun is a job's progress: the steps it completed and its checkpoints.
// A synchronous job advances at the pace of its slowest rank and not at
// all while it writes a checkpoint or hangs.
type jobRun struct {
	rng      *rand.Rand
	progress float64   // steps completed, fractional
	next     time.Time // when the next checkpoint starts
	writing  bool
	end      time.Time // when the current write ends
	fails    bool      // the current write fails
	write    []float64 // the current write's time per rank
	ranks    []rankRun
	gpus     []*GPU // in rank order
}

// rankRun is what one rank reports about its progress.
type rankRun struct {
	ckptSeconds  float64 // the last completed write's time; 0 before the first
	ckpts, fails uint64
}

// startJobs gives every job its run state, each with a random generator of
// its own so that jobs draw nothing from the fleet's (scenarios without
// job faults keep their random sequence), and its first checkpoint at a
// random phase of its period.
func (fl *Fleet) startJobs() {
	for i, j := range fl.jobs {
		run := &jobRun{rng: rand.New(rand.NewPCG(fl.sc.Seed^0x6a6f62, uint64(i))), ranks: make([]rankRun, j.ranks), write: make([]float64, j.ranks)}
		for n := j.spec.FirstNode; n < j.spec.FirstNode+j.spec.Nodes; n++ {
			run.gpus = append(run.gpus, fl.Nodes[n].GPUs...)
		}
		if every := j.spec.Checkpoint.Every; every > 0 {
			run.next = fl.sc.Start.Add(time.Duration((0.5 + 0.5*run.rng.Float64()) * float64(every)))
		}
		j.run = run
	}
}

// jobFault returns the strength of the strongest fault of type typ on job j.
func (fl *Fleet) jobFault(j *jobState, typ string) float64 {
	var best float64
	for _, f := range fl.faults {
		if f.spec.Type == typ && f.spec.Target.Job == j.spec.Name {
			best = max(best, f.strength(fl.now))
		}
	}
	return best
}

// stepRank sets the step time and throughput g's rank reports. A hung
// job's ranks keep reporting their last values. The noise is drawn from
// the fleet's generator whatever happens, as before job faults existed.
func (fl *Fleet) stepRank(g *GPU, tp float64, rng *rand.Rand) {
	noise := rng.NormFloat64()
	if g.stepSec > 0 && fl.jobFault(g.job, FaultRankHang) > 0 {
		return
	}
	slow := 1.0
	if s := fl.jobFault(g.job, FaultJobRegression); s > 0 {
		slow = 1 + s*(fl.jobMagnitude(g.job, FaultJobRegression)-1)
	}
	g.stepSec = g.job.spec.StepSeconds / tp * slow * (1 + noise*0.015)
	g.tput = float64(g.job.spec.BatchPerRank) / g.stepSec
}

// jobMagnitude is the magnitude of the first active fault of type typ on j.
func (fl *Fleet) jobMagnitude(j *jobState, typ string) float64 {
	for _, f := range fl.faults {
		if f.spec.Type == typ && f.spec.Target.Job == j.spec.Name && f.strength(fl.now) > 0 {
			return f.spec.Magnitude
		}
	}
	return 1
}

// advanceJobs moves every job dt seconds on: a checkpoint write finishes
// or starts, or the job steps at its slowest rank's pace.
func (fl *Fleet) advanceJobs(dt float64) {
	for _, j := range fl.jobs {
		run := j.run
		if run.writing {
			if fl.now.Before(run.end) {
				continue
			}
			run.writing = false
			for r := range run.ranks {
				if run.fails {
					run.ranks[r].fails++
				} else {
					run.ranks[r].ckpts++
					run.ranks[r].ckptSeconds = run.write[r]
				}
			}
			run.next = fl.now.Add(j.spec.Checkpoint.Every)
		}
		hung := fl.jobFault(j, FaultRankHang) > 0
		if !hung && !run.next.IsZero() && !fl.now.Before(run.next) {
			fl.startCheckpoint(j)
			continue
		}
		if hung {
			continue
		}
		slowest := 0.0
		for _, g := range run.gpus {
			if !g.lost {
				slowest = max(slowest, g.stepSec)
			}
		}
		if slowest > 0 {
			run.progress += dt / slowest
		}
	}
}

// startCheckpoint begins a write of every rank of j; it lasts as long as
// the slowest rank's.
func (fl *Fleet) startCheckpoint(j *jobState) {
	run := j.run
	factor := 1.0
	if s := fl.jobFault(j, FaultCheckpointSlow); s > 0 {
		factor = 1 + s*(fl.jobMagnitude(j, FaultCheckpointSlow)-1)
	}
	longest := 0.0
	for r := range run.write {
		run.write[r] = j.spec.Checkpoint.Seconds * factor * math.Exp(0.1*run.rng.NormFloat64())
		longest = max(longest, run.write[r])
	}
	run.writing, run.fails = true, fl.jobFault(j, FaultCheckpointFailure) > 0
	run.end = fl.now.Add(time.Duration(longest * float64(time.Second)))
}

// jobSamples appends what g's rank reports about its progress: its step
// counter and checkpoint counters (from 0, so that the first step or
// failure is an increase), and the last checkpoint's write time once
// there is one.
func (fl *Fleet) jobSamples(dst []record.Sample, g *GPU, gi int32, extra []record.Label) []record.Sample {
	run, rr := g.job.run, &g.job.run.ranks[g.rank]
	dst = append(dst,
		record.Sample{Field: jobFields.steps, GPU: gi, Link: -1, Value: math.Floor(run.progress), Extra: extra},
		record.Sample{Field: jobFields.ckpts, GPU: gi, Link: -1, Value: float64(rr.ckpts), Extra: extra},
		record.Sample{Field: jobFields.fails, GPU: gi, Link: -1, Value: float64(rr.fails), Extra: extra})
	if rr.ckpts > 0 {
		dst = append(dst, record.Sample{Field: jobFields.ckptSeconds, GPU: gi, Link: -1, Value: rr.ckptSeconds, Extra: extra})
	}
	return dst
}

var jobFields = struct{ steps, ckpts, fails, ckptSeconds int16 }{
	int16(telemetry.Index(telemetry.TrainSteps)), int16(telemetry.Index(telemetry.TrainCheckpoints)),
	int16(telemetry.Index(telemetry.TrainCheckpointFailures)), int16(telemetry.Index(telemetry.TrainCheckpointSeconds)),
}

// jobTruth is the ground truth of a job fault: the job, and for a hung
// rank, the rank and where it runs.
func (fl *Fleet) jobTruth(f *activeFault) Truth {
	t := Truth{Fault: f.spec.Name, Type: f.spec.Type, Level: "job", Start: f.start, End: f.end, Job: f.spec.Target.Job}
	if f.spec.Type != FaultRankHang {
		return t
	}
	rank := 0
	if f.spec.Target.Rank != nil {
		rank = *f.spec.Target.Rank
	}
	t.Rank = &rank
	for _, j := range fl.jobs {
		if j.spec.Name == t.Job && rank < j.ranks {
			g := j.run.gpus[rank]
			t.fillNode(g.node)
			t.GPU, t.GPUIndex = g.UUID, &g.Index
		}
	}
	return t
}
