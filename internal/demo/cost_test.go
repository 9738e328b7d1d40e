package demo

import (
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"strings"
	"testing"
	"time"
)

// The backfill ends with the day the cost detectors judge first: the
// latest day complete lateness after its midnight.
func TestCostDay(t *testing.T) {
	for _, c := range []struct {
		now      string
		lateness time.Duration
		want     string
	}{
		{"2026-12-06T18:20:00Z", time.Hour, "2026-12-05"},
		{"2026-12-06T00:30:00Z", time.Hour, "2026-12-04"}, // yesterday is not complete yet
		{"2026-12-06T01:00:00Z", time.Hour, "2026-12-05"},
		{"2026-12-06T00:00:00Z", 0, "2026-12-05"},
	} {
		now, _ := time.Parse(time.RFC3339, c.now)
		if got := costDay(now, c.lateness).Format(time.DateOnly); got != c.want {
			t.Errorf("costDay(%s, %v) = %s, want %s", c.now, c.lateness, got, c.want)
		}
	}
}

// Each finding of oncall_cost_findings prints as the demo promises: an
// anomaly with its scope, class and evidence; an idle GPU with its holder
// and hours, parsed from the waste detector's summary.
func TestCostFindingLine(t *testing.T) {
	for _, c := range []struct {
		f    costFinding
		want string
	}{
		{costFinding{Detector: "cost", Class: "traffic", EntityType: "model", Entity: "ranker", Cost: 480, Evidence: "requests ×2.00"},
			"cost anomaly: model/ranker traffic: $480.00; requests ×2.00"},
		{costFinding{Detector: "cost_waste", Class: "idle_held", EntityType: "gpu", Entity: "GPU-N", Cost: 20,
			Summary: "GPU GPU-N idle_held for 8 h by notebook-1 (team research): $20.00", Evidence: "mean SM activity 0.010"},
			"idle GPU: GPU-N held by notebook-1 (team research) for 8 h (idle_held, $20.00; mean SM activity 0.010)"},
		{costFinding{Detector: "cost_waste", Class: "zombie_model", Entity: "old", Summary: "model old holds 2 GPUs"},
			"cost waste: zombie_model old: model old holds 2 GPUs"},
		{costFinding{Detector: "cost_budget", EntityType: "team", Entity: "nlp", Cost: 1400, Summary: "over"},
			"cost budget: team/nlp forecast $1400.00: over"},
	} {
		if got := c.f.line(); !strings.HasPrefix(got, c.want) {
			t.Errorf("line() = %q, want %q", got, c.want)
		}
	}
}

// An incident about a model whose canary is worse than its baseline is the
// canary's doing, not an unexplained incident; one about another model is.
func TestExplainedByCanaries(t *testing.T) {
	models := []sim.ModelSpec{{Name: "bad", LatencyMs: 20}, {Name: "good", LatencyMs: 20}}
	deps := []sim.DeploymentSpec{{Model: "bad", Version: "v2", Change: sim.ChangeCanary, LatencyMs: 60}, {Model: "good", Version: "v2", Change: sim.ChangeCanary}}
	rows := []incidentRow{{Level: "model", Scope: "model bad"}, {Level: "model", Scope: "model good"}, {Level: "gpu", Scope: "gpu bad-node"}}
	rest, canaried := explainedByCanaries(deps, models, rows)
	if len(canaried) != 1 || canaried[0].Scope != "model bad" || len(rest) != 2 {
		t.Errorf("canaried %v, rest %v", canaried, rest)
	}
}
