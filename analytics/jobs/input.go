package jobs

import (
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
)

// Rank is what one rank of a training job reported in a window. Values a
// rank did not report are NaN (means) or zero (counts, times).
type Rank struct {
	Job, Rank string
	// Where the rank runs, when its series say (UUID and Hostname labels).
	fleet.Topology
	GPU string
	// StepSeconds is the mean of fleetwatch_train_step_seconds in the window.
	StepSeconds float64
	// Steps is the increase of fleetwatch_train_steps_total in the window
	// and StepPoints its number of points there (0: the rank sent no step
	// counter in the window).
	Steps      float64
	StepPoints int
	// FirstPoint and LastPoint are the step counter's first and last
	// points within the stall lookback; LastStep its last point that rose
	// there (zero: none did).
	FirstPoint, LastPoint, LastStep time.Time
	// Checkpoints and CheckpointFailures are the increases of
	// fleetwatch_train_checkpoints_total and
	// fleetwatch_train_checkpoint_failures_total; CheckpointSeconds the
	// last value of fleetwatch_train_checkpoint_seconds in the window.
	Checkpoints, CheckpointFailures float64
	CheckpointSeconds               float64
}

// Input is one window of every job's ranks.
type Input struct {
	Window fleet.Window
	Ranks  []Rank
	// Unassigned counts series of training metrics in the window that name
	// no job, or no rank and no GPU: no rule can use them.
	Unassigned map[string]int
}
