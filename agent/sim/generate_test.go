package sim

import (
	"reflect"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Generate is a function of its seed and parameters, and the scenarios it
// draws over seeds 1 to 60 keep its promises: valid, one fault per GPU,
// intermittent faults on for 2 minutes or more at least twice, and
// between them every hardware fault type, 10%-slow stragglers, two GPU
// models in one fleet, co-tenants, noise, and faults nested in a
// concurrent fault one level up.
func TestGenerateKeepsItsPromises(t *testing.T) {
	seen := map[string]bool{}
	for seed := uint64(1); seed <= 60; seed++ {
		sc, err := Generate(seed, NewGenParams())
		if err != nil {
			t.Fatal(err)
		}
		again, _ := Generate(seed, NewGenParams())
		if !reflect.DeepEqual(sc, again) {
			t.Fatalf("seed %d: two draws differ", seed)
		}
		gpus := map[string]bool{}
		for _, f := range sc.Faults {
			seen[f.Type] = true
			if f.Target.GPU != nil {
				k := f.Target.Node + "/" + string(rune('0'+*f.Target.GPU))
				if gpus[k] {
					t.Errorf("seed %d: two faults on GPU %s", seed, k)
				}
				gpus[k] = true
			}
			if f.Type == FaultStraggler && f.Magnitude == 0.9 {
				seen["10% slow"] = true
			}
			if f.Every > 0 {
				seen["intermittent"] = true
				if f.For < 2*time.Minute || f.End-f.Start < f.Every+f.For {
					t.Errorf("seed %d: %s on for %v every %v from %v to %v: want 2 minutes or more, twice", seed, f.Name, f.For, f.Every, f.Start, f.End)
				}
			}
			for _, o := range sc.Faults {
				if o.Type == FaultRackCDU && f.Type == FaultNodeCooling && f.Start < o.End && o.Start < f.End && sc.Fleet.rackOf(f.Target.Node) == o.Target.Rack {
					seen["node in hot rack"] = true
				}
			}
		}
		if len(sc.Fleet.ModelByRack) > 0 {
			seen["two models"] = true
		}
		if len(sc.CoTenants) > 0 {
			seen["co-tenants"] = true
		}
		if sc.Noise.DropScrapes > 0 && sc.Noise.Late > 0 {
			seen["noise"] = true
		}
	}
	for _, want := range []string{FaultGPUFan, FaultNodeCooling, FaultRackCDU, FaultECCRamp, FaultNVLink, FaultStraggler, FaultXID79,
		"10% slow", "intermittent", "two models", "co-tenants", "noise", "node in hot rack"} {
		if !seen[want] {
			t.Errorf("no scenario of seeds 1-60 has %s", want)
		}
	}
}

// rackOf is the rack of a node of the fleet.
func (f *FleetSpec) rackOf(node string) string {
	fl := NewFleet(&Scenario{Fleet: *f, Seed: 1})
	if n := fl.Node(node); n != nil {
		return n.Resource.Rack
	}
	return ""
}

// Noise garbles what the runner returns, and says so: lost scrapes, late
// batches, counters that restart from zero, nodes without utilization or
// job labels, jobs without step times.
func TestNoiseGarblesTelemetry(t *testing.T) {
	sc, err := Parse([]byte(`name: noisy
seed: 3
start: 2026-11-23T00:00:00Z
duration: 10m
interval: 5s
fleet: {racks_per_row: 1, nodes_per_rack: 4, gpus_per_node: 4, nvlinks: 2}
jobs: [{name: train, first_node: 0, nodes: 2}]
noise: {drop_scrapes: 0.2, late: 0.2, late_by: 30s, counter_resets_per_hour: 30, no_utilization: 1, no_job_labels: 1, uninstrumented: [train]}
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(sc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	util := int16(telemetry.Index(telemetry.GPUUtil))
	last := map[string]float64{}
	late, resets := 0, 0
	for ts := sc.Start.Add(sc.Interval); !ts.After(sc.Start.Add(sc.Duration)); ts = ts.Add(sc.Interval) {
		for _, b := range r.Step(ts) {
			if b.Source == "train" {
				t.Fatalf("a step-time batch of an uninstrumented job")
			}
			if b.Time.Before(ts) {
				late++
			}
			for _, g := range b.GPUs {
				if g.Job != "" {
					t.Fatalf("GPU %s carries job %q", g.UUID, g.Job)
				}
			}
			for _, s := range b.Samples {
				if s.Field == util {
					t.Fatalf("utilization reported")
				}
				if s.MetricName() == telemetry.TotalEnergy && !b.Time.Before(ts) {
					k := b.GPUs[s.GPU].UUID
					if s.Value < last[k] {
						resets++
					}
					last[k] = s.Value
				}
			}
		}
	}
	st := r.Noise()
	if st.DroppedScrapes == 0 || st.LateBatches == 0 || st.CounterResets == 0 || late == 0 || resets == 0 ||
		st.NoUtilizationNodes != 4 || st.NoJobLabelNodes != 4 {
		t.Errorf("noise %+v, %d late batches seen, %d counter resets seen", st, late, resets)
	}
}

// A co-tenant loads the GPUs of its node that no job holds, warms the
// node and slows the node's training ranks a little; it is no fault, so
// the ground truth does not name it.
func TestCoTenantIsNoFault(t *testing.T) {
	sc, err := Parse([]byte(`name: neighbours
seed: 4
start: 2026-11-23T00:00:00Z
duration: 3m
interval: 5s
fleet: {racks_per_row: 1, nodes_per_rack: 3, gpus_per_node: 4, nvlinks: 2}
jobs: [{name: train, first_node: 0, nodes: 2}]
co_tenants:
  - {node: node-001, load: 0.5, slowdown: 0.04}
  - {node: node-002, load: 0.6, heat_c: 3}
`))
	if err != nil {
		t.Fatal(err)
	}
	fl := NewFleet(sc)
	var shared, quiet float64
	for ts := sc.Start.Add(sc.Interval); !ts.After(sc.Start.Add(sc.Duration)); ts = ts.Add(sc.Interval) {
		fl.Advance(ts)
		for i := range 4 {
			shared, quiet = shared+fl.Node("node-001").GPUs[i].stepSec, quiet+fl.Node("node-000").GPUs[i].stepSec
		}
	}
	if idle := fl.Node("node-002").GPUs[0]; idle.load < 0.5 || idle.load > 0.7 {
		t.Errorf("co-tenant GPU load %.2f, want about 0.6", idle.load)
	}
	if r := shared / quiet; r < 1.015 || r > 1.025 {
		t.Errorf("step time on the shared node %.4f of the quiet one's, want 1/(1−0.5·0.04) ≈ 1.020", r)
	}
	if truth := fl.GroundTruth(); len(truth) != 0 {
		t.Errorf("ground truth %+v, want none", truth)
	}
}
