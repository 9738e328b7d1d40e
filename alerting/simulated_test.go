package alerting_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/alerting"
	"github.com/fleetwatch/fleetwatch/alerting/correlate"
	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/analytics/health"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/score"
)

// healthRun feeds windows through the fleet-health evaluator into a
// manager, as the analyzer does.
type healthRun struct {
	t    *testing.T
	m    *alerting.Manager
	cfg  health.Config
	ev   *health.Evaluator
	last fleet.Window
}

func newHealthRun(t *testing.T, m *alerting.Manager) *healthRun {
	cfg := health.NewDefaultConfig()
	ev, err := health.NewEvaluator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &healthRun{t: t, m: m, cfg: cfg, ev: ev}
}

// consume evaluates one window and hands its detections to the manager.
func (r *healthRun) consume(in *health.Input) {
	r.last = fleet.Window{Start: in.Window.Start, End: in.Window.End}
	if err := r.m.Consume(context.Background(), fleet.Evaluation{Detector: r.cfg.Name, Window: r.last, Detections: r.ev.Evaluate(in)}); err != nil {
		r.t.Fatal(err)
	}
}

// simulate runs sc's telemetry through the windows of the evaluator.
func (r *healthRun) simulate(sc *sim.Scenario) {
	w := score.NewWindower(r.cfg)
	if _, err := score.Simulate(sc, slog.New(slog.NewTextHandler(io.Discard, nil)), func(b *record.Batch) {
		for _, in := range w.Add(b) {
			r.consume(in)
		}
	}); err != nil {
		r.t.Fatal(err)
	}
}

// simScenario: a rack's CDU fails and, elsewhere, one GPU's fan. The hot
// rack is a quarter of its peer group (the idle GPUs of racks 2-5): peer
// comparison sees a rack only while it is a minority of its peers; a rack
// that is most of its peer group needs each GPU charted against its own
// history (the analyzer's spc_gpu detector).
const simScenario = `name: rack-and-fan
seed: 5
start: 2026-11-23T00:00:00Z
duration: 22m
interval: 5s
fleet: {racks_per_row: 6, nodes_per_rack: 4, gpus_per_node: 8, nvlinks: 4}
jobs:
  - {name: pretrain, first_node: 0, nodes: 8, step_seconds: 1.1}
faults:
  - {name: cdu, type: rack_cdu, target: {rack: rack-02}, start: 3m, end: 9m}
  - {name: fan, type: gpu_fan, target: {node: node-001, gpu: 3}, start: 3m, end: 9m}
`

// TestSimulatedFaultsPageOncePerCause runs the simulator's telemetry through
// the fleet-health detector and alerting: the failing CDU pages once, as a
// rack incident, the failing fan once, as a GPU incident, and nothing else
// pages.
func TestSimulatedFaultsPageOncePerCause(t *testing.T) {
	sc, err := sim.Parse([]byte(simScenario))
	if err != nil {
		t.Fatal(err)
	}
	inv := correlate.NewInventory()
	var fanUUID string
	for _, n := range sim.NewFleet(sc).Nodes {
		for _, g := range n.GPUs {
			inv.Add(fleet.Topology{Datacenter: n.Resource.Datacenter, Row: n.Resource.Row, Rack: n.Resource.Rack,
				Node: n.Name, Cluster: n.Resource.Cluster}, g.UUID)
			if n.Name == "node-001" && g.Index == 3 {
				fanUUID = g.UUID
			}
		}
	}
	p := &pages{}
	m := newManager(t, alerting.NewDefaultConfig(), alerting.Deps{Inventory: inv, Notifier: p})
	newHealthRun(t, m).simulate(sc)
	var rack, fan, other []string
	for _, line := range p.lines() {
		action, key, _ := strings.Cut(line, " ")
		switch {
		case strings.Contains(key, "/rack/dc-0/row-0-0/rack-02"):
			rack = append(rack, action)
		case strings.Contains(key, "/gpu/") && strings.HasSuffix(key, "/node-001/"+fanUUID):
			fan = append(fan, action)
		default:
			other = append(other, line)
		}
	}
	if strings.Join(rack, ",") != "trigger,resolve" {
		t.Errorf("rack-02 CDU: %v, want one trigger and one resolve", rack)
	}
	if strings.Join(fan, ",") != "trigger,resolve" {
		t.Errorf("node-001 GPU 3 fan: %v, want one trigger and one resolve", fan)
	}
	if len(other) > 0 {
		t.Errorf("other notifications: %v", other)
	}
}

// TestFleetThatStopsReportingIsOnePipelineIncident: the simulated fleet
// (deploy/scenarios/small.yaml's shape, 64 GPUs in one row) reports, then
// its agent stops. That is one incident about the telemetry pipeline,
// owned by its owner and naming the scope and how much went silent, not a
// hardware page for 64 GPUs.
func TestFleetThatStopsReportingIsOnePipelineIncident(t *testing.T) {
	sc, err := sim.Parse([]byte(`name: agent-stops
seed: 7
start: 2026-11-23T00:00:00Z
duration: 3m
interval: 5s
fleet: {racks_per_row: 2, nodes_per_rack: 4, gpus_per_node: 8}
`))
	if err != nil {
		t.Fatal(err)
	}
	inv := correlate.NewInventory()
	var all []health.GPU
	for _, n := range sim.NewFleet(sc).Nodes {
		topo := fleet.Topology{Datacenter: n.Resource.Datacenter, Row: n.Resource.Row, Rack: n.Resource.Rack, Node: n.Name, Cluster: n.Resource.Cluster}
		for _, g := range n.GPUs {
			inv.Add(topo, g.UUID)
			all = append(all, health.GPU{UUID: g.UUID, Topology: topo})
		}
	}
	p := &pages{}
	m := newManager(t, alerting.NewDefaultConfig(), alerting.Deps{Inventory: inv, Notifier: p})
	run := newHealthRun(t, m)
	run.simulate(sc)
	// The agent stops: every GPU reported within lost_after before each
	// window and none in it.
	for i := 0; i < 6; i++ {
		iv := run.last.End.Sub(run.last.Start)
		run.consume(&health.Input{Window: fleet.Window{Start: run.last.End, End: run.last.End.Add(iv)}, Missing: all})
	}
	const key = "telemetry_gap/pipeline/dc-0/row-0-0"
	if got := p.lines(); !slices.Equal(got, []string{"trigger " + key}) {
		t.Fatalf("pages %v, want one trigger of %s", got, key)
	}
	incs := m.Incidents()
	if len(incs) != 1 {
		t.Fatalf("%d incidents, want 1", len(incs))
	}
	inc := incs[0]
	if inc.Level != incident.LevelPipeline || inc.Oncall != "observability-oncall" || inc.Team != "observability" || inc.Class != "telemetry_gap" {
		t.Errorf("incident %s: level %s, owner %s/%s, class %s; want the pipeline, owned by observability", inc.Key, inc.Level, inc.Team, inc.Oncall, inc.Class)
	}
	if !strings.Contains(inc.Title, "dc-0/row-0-0 — 64 detections on 64 entities of 8 nodes") {
		t.Errorf("title %q: want the scope and the count", inc.Title)
	}
}
