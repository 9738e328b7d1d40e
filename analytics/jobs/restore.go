package jobs

import (
	"math"

	"github.com/fleetwatch/fleetwatch/fleet"
)

// Row is a job's Status as stored for one window.
type Row struct {
	Window fleet.Window
	Status
}

// Reset forgets every job.
func (e *Evaluator) Reset() {
	e.jobs, e.before, e.last = map[string]*jobState{}, nil, fleet.Window{}
}

// Restore rebuilds the jobs' state from their stored rows, each job's in
// window order: the step-time and checkpoint baselines (with the runs out
// of them, as flagged), whether the last checkpoint was slow, and the
// failed checkpoints since the last one that completed.
func (e *Evaluator) Restore(rows []Row) {
	cfg := &e.cfg
	for _, r := range rows {
		st := e.jobs[r.Job]
		if st == nil {
			st = &jobState{}
			e.jobs[r.Job] = st
		}
		st.seen = r.Window.End
		if !math.IsNaN(r.StepSeconds) {
			st.steps.add(r.StepSeconds, r.Flags&FlagStepOut != 0, cfg.History, cfg.adaptWindows())
		}
		if r.Checkpoints > 0 && !math.IsNaN(r.CheckpointSeconds) {
			st.slow = nil
			st.ckpt.add(r.CheckpointSeconds, r.Flags&FlagCheckpointSlow != 0, cfg.CheckpointHistory, cfg.CheckpointAdapt)
			if r.Flags&FlagCheckpointSlow != 0 {
				st.slow = &slowCheckpoint{seconds: r.CheckpointSeconds, median: r.BaselineCheckpoint, z: math.NaN()}
			}
		}
		switch {
		case r.Flags&FlagCheckpointFailed == 0:
			st.failing = nil
		case st.failing == nil:
			st.failing = &failingCheckpoints{since: r.Window.Start, failures: r.Failures}
		default:
			st.failing.failures += r.Failures
		}
	}
}
