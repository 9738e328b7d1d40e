package score

import (
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/internal/scoring"
)

// The scoring itself lives in internal/scoring, which `fleetctl backtest
// --truth` shares; these names keep the harness's tests short.
type (
	// Options tune the matching.
	Options = scoring.Options
	// Report is a scored run.
	Report = scoring.Report
	// TypeScore is the score of one fault type.
	TypeScore = scoring.TypeScore
)

// Score matches dets against truths (scoring.Score).
func Score(truths []sim.Truth, dets []fleet.Detection, o Options) Report {
	return scoring.Score(truths, dets, o)
}
