package sim_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// run simulates the whole scenario and returns every batch.
func run(t *testing.T, path string) (*sim.Runner, []*record.Batch) {
	t.Helper()
	sc, err := sim.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := sim.New(sc, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	var out []*record.Batch
	if err := r.Run(context.Background(), record.SinkFunc(func(b *record.Batch) { out = append(out, b) }), false); err != nil {
		t.Fatal(err)
	}
	return r, out
}

// series collects (time, value) of one field for one GPU UUID (and link).
func series(bs []*record.Batch, field, uuid string, link int) (ts []time.Time, vs []float64) {
	idx := int16(telemetry.Index(field))
	for _, b := range bs {
		for _, s := range b.Samples {
			if s.Field == idx && s.GPU >= 0 && b.GPUs[s.GPU].UUID == uuid && int(s.Link) == link {
				ts = append(ts, b.Time)
				vs = append(vs, s.Value)
			}
		}
	}
	return ts, vs
}

// at returns the value at the last sample not after t.
func at(ts []time.Time, vs []float64, t time.Time) float64 {
	v := math.NaN()
	for i := range ts {
		if !ts[i].After(t) {
			v = vs[i]
		}
	}
	return v
}

func uuidOf(r *sim.Runner, node string, gpu int) string { return r.Fleet.Node(node).GPUs[gpu].UUID }

func TestEveryFaultLeavesItsSignature(t *testing.T) {
	r, bs := run(t, "testdata/all-faults.yaml")
	start := r.Scenario.Start
	min := func(m int) time.Time { return start.Add(time.Duration(m) * time.Minute) }

	t.Run("gpu fan heats one GPU, not its neighbour", func(t *testing.T) {
		ts, hot := series(bs, telemetry.GPUTemp, uuidOf(r, "node-002", 1), -1)
		ts2, cool := series(bs, telemetry.GPUTemp, uuidOf(r, "node-002", 0), -1)
		if d := at(ts, hot, min(5)) - at(ts, hot, min(1)); d < 15 {
			t.Errorf("fan fault raised the GPU by %.1f°C, want > 15", d)
		}
		if d := at(ts2, cool, min(5)) - at(ts2, cool, min(1)); math.Abs(d) > 3 {
			t.Errorf("neighbour moved %.1f°C", d)
		}
	})
	t.Run("node cooling heats every GPU of the node", func(t *testing.T) {
		for g := 0; g < 4; g++ {
			ts, v := series(bs, telemetry.GPUTemp, uuidOf(r, "node-003", g), -1)
			if d := at(ts, v, min(5)) - at(ts, v, min(1)); d < 12 {
				t.Errorf("GPU %d rose %.1f°C", g, d)
			}
		}
	})
	t.Run("rack CDU heats the rack only", func(t *testing.T) {
		ts, v := series(bs, telemetry.GPUTemp, uuidOf(r, "node-002", 0), -1)   // rack-01
		ts2, v2 := series(bs, telemetry.GPUTemp, uuidOf(r, "node-001", 1), -1) // rack-00
		if d := at(ts, v, min(9)) - at(ts, v, min(7)); d < 12 {
			t.Errorf("rack-01 GPU rose %.1f°C", d)
		}
		if d := at(ts2, v2, min(9)) - at(ts2, v2, min(7)); math.Abs(d) > 3 {
			t.Errorf("rack-00 GPU moved %.1f°C", d)
		}
	})
	t.Run("ECC ramp then XID 48", func(t *testing.T) {
		u := uuidOf(r, "node-000", 2)
		ts, sbe := series(bs, telemetry.ECCSBEVolatile, u, -1)
		if a, b := at(ts, sbe, min(3)), at(ts, sbe, min(5)); !(b > a && b-a > 100) {
			t.Errorf("SBE volatile went %v -> %v", a, b)
		}
		ts, dbe := series(bs, telemetry.ECCDBEVolatile, u, -1)
		if at(ts, dbe, min(4)) != 0 || at(ts, dbe, min(6)) != 1 {
			t.Errorf("DBE before %v, after %v; want 0 then 1", at(ts, dbe, min(4)), at(ts, dbe, min(6)))
		}
		if n := countEvents(bs, u, telemetry.GPUEventXID, 48); n != 1 {
			t.Errorf("%d XID 48 events, want 1", n)
		}
	})
	t.Run("NVLink degradation: errors up, bandwidth down", func(t *testing.T) {
		u := uuidOf(r, "node-001", 0)
		ts, crc := series(bs, telemetry.NVLinkCRCFlitTotal, u, -1)
		if a, b := at(ts, crc, min(2)), at(ts, crc, min(8)); b-a < 1000 {
			t.Errorf("CRC flit errors went %v -> %v", a, b)
		}
		ts, tx := series(bs, telemetry.NVLinkTxBytes, u, -1)
		if a, b := at(ts, tx, min(1)), at(ts, tx, min(7)); b > 0.6*a {
			t.Errorf("NVLink TX %.3g -> %.3g, want below 60%%", a, b)
		}
		if _, v := series(bs, telemetry.NVLinkLinkTxBytes, u, 2); len(v) == 0 {
			t.Error("no per-link NVLink throughput")
		}
	})
	t.Run("straggler: slower with no error and no throttle reason", func(t *testing.T) {
		u := uuidOf(r, "node-000", 3)
		peer := uuidOf(r, "node-000", 1)
		ts, step := series(bs, telemetry.TrainStepSeconds, u, -1)
		ts2, peerStep := series(bs, telemetry.TrainStepSeconds, peer, -1)
		if ratio := at(ts, step, min(6)) / at(ts2, peerStep, min(6)); ratio < 1.25 {
			t.Errorf("straggler step time ratio %.2f, want ~1.33", ratio)
		}
		ts, reasons := series(bs, telemetry.ClockEventReasons, u, -1)
		if v := at(ts, reasons, min(6)); uint64(v)&0xfe != 0 {
			t.Errorf("straggler reports clock-event reasons %#x", uint64(v))
		}
		if n := countEvents(bs, u, "", -1); n != 0 {
			t.Errorf("straggler raised %d events", n)
		}
	})
	t.Run("XID 79: lost GPU stops reporting", func(t *testing.T) {
		u := uuidOf(r, "node-002", 3)
		ts, _ := series(bs, telemetry.GPUTemp, u, -1)
		if last := ts[len(ts)-1]; last.After(min(4).Add(10 * time.Second)) {
			t.Errorf("lost GPU still reported at %v", last)
		}
		if countEvents(bs, u, telemetry.GPUEventXID, 79) != 1 || countEvents(bs, u, telemetry.GPUEventLost, -1) != 1 {
			t.Error("want one XID 79 and one gpu_lost event")
		}
	})
	t.Run("facility temperature heats everything", func(t *testing.T) {
		ts, v := series(bs, telemetry.GPUTemp, uuidOf(r, "node-001", 1), -1)
		if d := at(ts, v, min(10)) - at(ts, v, min(9)); d < 8 {
			t.Errorf("facility event raised %.1f°C", d)
		}
	})
	t.Run("model faults", func(t *testing.T) {
		mean := func(model, feature string, from, to time.Time) float64 {
			var s, n float64
			for _, b := range bs {
				for _, in := range b.Inferences {
					if in.Model == model && !in.Time.Before(from) && in.Time.Before(to) {
						for _, f := range in.Features {
							if f.Name == feature && !f.Missing {
								s += f.Num
								n++
							}
						}
					}
				}
			}
			return s / n
		}
		if a, b := mean("fraud", "amount", min(1), min(4)), mean("fraud", "amount", min(6), min(8)); b-a < 45 {
			t.Errorf("covariate drift moved amount %.1f -> %.1f, want +60", a, b)
		}
		if a, b := mean("churn", "amount", min(1), min(4)), mean("churn", "amount", min(6), min(8)); b-a < 45 {
			t.Errorf("the shared pipeline's drift did not reach churn: %.1f -> %.1f", a, b)
		}
		lat := func(from, to time.Time) float64 {
			var s, n float64
			for _, b := range bs {
				for _, in := range b.Inferences {
					if in.Model == "fraud" && !in.Time.Before(from) && in.Time.Before(to) {
						s += in.LatencyMs
						n++
					}
				}
			}
			return s / n
		}
		if a, b := lat(min(1), min(5)), lat(min(6).Add(30*time.Second), min(8)); b < 2.5*a {
			t.Errorf("latency %.1f -> %.1f ms, want ~3x", a, b)
		}
		errs := 0
		for _, b := range bs {
			for _, in := range b.Inferences {
				if in.Model == "churn" && in.Status == "error" && in.Time.After(min(6)) && in.Time.Before(min(8)) {
					errs++
				}
			}
		}
		if errs < 150 {
			t.Errorf("%d churn errors during the spike, want ~240", errs)
		}
	})
	t.Run("labels and deployments", func(t *testing.T) {
		labels, deploys := 0, 0
		for _, b := range bs {
			labels += len(b.Labels)
			for _, d := range b.Deployments {
				if d.Model == "churn" && d.ModelVersion == "v2" && d.PreviousVersion == "v1" {
					deploys++
				}
			}
		}
		if labels < 4000 || deploys != 1 {
			t.Errorf("%d labels (want ~5,900) and %d deployments (want 1)", labels, deploys)
		}
	})
}

func countEvents(bs []*record.Batch, uuid, kind string, code int64) int {
	n := 0
	for _, b := range bs {
		for _, e := range b.Events {
			if e.GPU >= 0 && b.GPUs[e.GPU].UUID == uuid && (kind == "" || e.Kind == kind) && (code < 0 || e.Code == code) {
				// Clock events of the idle bit are not faults.
				if kind == "" && e.Kind == telemetry.GPUEventClockEvent && e.Code&^1 == 0 {
					continue
				}
				n++
			}
		}
	}
	return n
}

func TestGroundTruthLevels(t *testing.T) {
	r, _ := run(t, "testdata/all-faults.yaml")
	want := map[string]string{"fan": "gpu", "cooling": "node", "cdu": "rack", "ecc": "gpu", "nvlink": "gpu", "slow": "gpu",
		"lost": "gpu", "drift": "pipeline", "slowmodel": "model", "errors": "model", "stale": "model", "heat": "datacenter"}
	truths := r.Fleet.GroundTruth()
	if len(truths) != len(want) {
		t.Fatalf("%d truths, want %d", len(truths), len(want))
	}
	for _, tr := range truths {
		if tr.Level != want[tr.Fault] {
			t.Errorf("%s: level %s, want %s", tr.Fault, tr.Level, want[tr.Fault])
		}
	}
	var buf bytes.Buffer
	if err := sim.WriteTruth(&buf, truths); err != nil {
		t.Fatal(err)
	}
	back, err := sim.ReadTruth(&buf)
	if err != nil || len(back) != len(truths) {
		t.Fatalf("round trip: %d, %v", len(back), err)
	}
	for _, tr := range back {
		switch tr.Fault {
		case "slow":
			if tr.Job != "llm-pretrain" || tr.Rank == nil || tr.GPU == "" || tr.Rack != "rack-00" {
				t.Errorf("straggler truth lacks job/rank/GPU/rack: %+v", tr)
			}
		case "drift":
			if strings.Join(tr.Models, ",") != "fraud,churn" {
				t.Errorf("pipeline drift affects %v", tr.Models)
			}
		case "lost":
			// Without an end in the scenario, a fault lasts to the end of the run.
			if want := r.Scenario.Start.Add(r.Scenario.Duration); !tr.End.Equal(want) {
				t.Errorf("xid79 ends %v, want the run's end %v", tr.End, want)
			}
		}
	}
}

func TestDeterministic(t *testing.T) {
	_, a := run(t, "testdata/all-faults.yaml")
	_, b := run(t, "testdata/all-faults.yaml")
	if len(a) != len(b) {
		t.Fatalf("%d vs %d batches", len(a), len(b))
	}
	for i := range a {
		if len(a[i].Samples) != len(b[i].Samples) {
			t.Fatalf("batch %d differs", i)
		}
		for j := range a[i].Samples {
			if a[i].Samples[j].Value != b[i].Samples[j].Value {
				t.Fatalf("batch %d sample %d: %v vs %v", i, j, a[i].Samples[j].Value, b[i].Samples[j].Value)
			}
		}
	}
}

func TestScenarioValidation(t *testing.T) {
	_, err := sim.Load("testdata/bad.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"gpus_per_node 40", `job "j"`, "sample_rate 2", "values and probs", `unknown type "meteor"`,
		"needs target.node and target.gpu", "needs a known target.model", "end 1m0s is not after start 5m0s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := sim.Parse([]byte("fleet: {gpus: 3}")); err == nil || !strings.Contains(err.Error(), "gpus") {
		t.Errorf("unknown key: %v", err)
	}
}

// newRunner builds a simulator for a scenario given as YAML, logging to log.
func newRunner(t *testing.T, yaml string, log *slog.Logger) (*sim.Scenario, *sim.Runner) {
	t.Helper()
	sc, err := sim.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	r, err := sim.New(sc, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return sc, r
}

func TestRealtimeRunStopsOnCancel(t *testing.T) {
	_, r := newRunner(t, "interval: 20ms\nfleet: {nodes_per_rack: 1, gpus_per_node: 2}\n", quiet)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	n := 0
	start := time.Now()
	if err := r.Run(ctx, record.SinkFunc(func(*record.Batch) { n++ }), true); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("took %v after cancel", el)
	}
	if n < 2 || n > 10 {
		t.Fatalf("%d batches in ~150ms at 20ms per step", n)
	}
}

// An ECC ramp's magnitude is its starting correctable-error rate: ten times
// the default magnitude gives about ten times the errors.
func TestECCRampMagnitudeScalesTheRate(t *testing.T) {
	sbe := func(magnitude string) float64 {
		t.Helper()
		path := filepath.Join(t.TempDir(), "ecc.yaml")
		yml := `{seed: 3, duration: 4m, interval: 5s, start: 2026-11-23T00:00:00Z,
  fleet: {nodes_per_rack: 1, gpus_per_node: 2, nvlinks: 2},
  faults: [{type: ecc_ramp, target: {node: node-000, gpu: 1}, start: 1m, end: 4m` + magnitude + `}]}`
		if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
			t.Fatal(err)
		}
		r, bs := run(t, path)
		ts, v := series(bs, telemetry.ECCSBEVolatile, uuidOf(r, "node-000", 1), -1)
		return at(ts, v, r.Scenario.Start.Add(3*time.Minute))
	}
	def, big := sbe(""), sbe(", magnitude: 0.5")
	// Two minutes of the default ramp: ∫₀¹²⁰ 0.05·e^(4s/180) ds ≈ 30 errors.
	if def < 15 || def > 50 || big < 7*def || big > 13*def {
		t.Errorf("SBE errors after 2 minutes: default %v, magnitude 0.5 %v; want ~30 and ~10×", def, big)
	}
}

// The fields a fleet's GPUs lack are logged once, as one line with the
// number of GPUs per field, not once per GPU and field.
func TestUnsupportedFieldsAreSummarisedOnce(t *testing.T) {
	var logs bytes.Buffer
	sc, r := newRunner(t, "fleet: {racks_per_row: 1, nodes_per_rack: 3, gpus_per_node: 8}\n", slog.New(slog.NewTextHandler(&logs, nil)))
	for i := 1; i <= 3; i++ {
		r.Step(sc.Start.Add(time.Duration(i) * sc.Interval))
	}
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "not support") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], telemetry.RetiredSBE+"=24") || !strings.Contains(lines[0], telemetry.RetiredPending+"=24") {
		t.Fatalf("%d lines about unsupported fields, want one naming %s=24:\n%s", len(lines), telemetry.RetiredSBE, strings.Join(lines, "\n"))
	}
	if u := r.Unsupported(); u[telemetry.RetiredDBE] != 24 {
		t.Fatalf("Unsupported() = %v", u)
	}
}
