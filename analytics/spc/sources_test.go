package spc_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/analytics/spc"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// The model-metrics source on a window whose answers are known by hand:
// latencies 1..200 ms, half the rows sampled at 1/2 (weight 2), 20 errors
// among the weight-2 rows, three serving GPUs, and one event outside the
// window that must not count.
func TestModelMetricsSourceValues(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	var b storage.InferenceEventBlock
	for i := 0; i < 200; i++ {
		e := fleet.InferenceEvent{Time: t0.Add(time.Duration(i) * 250 * time.Millisecond), Model: "m", ModelVersion: "v2",
			RequestID: fmt.Sprint(i), LatencyMs: float64(i + 1), Status: "ok", SampleRate: 1, GPUUUID: fmt.Sprintf("GPU-%d", i%3),
			Prediction: math.NaN()}
		if i%2 == 1 {
			e.SampleRate = 0.5
			if i < 40 {
				e.Status = "error"
			}
		}
		b.Append(&e)
	}
	b.Append(&fleet.InferenceEvent{Time: t0.Add(time.Minute), Model: "m", ModelVersion: "v3", RequestID: "late", LatencyMs: 1e6,
		Status: "error", SampleRate: 1, GPUUUID: "GPU-x", Prediction: math.NaN()})
	w, _ := c.NewWriter(storage.NewDefaultWriterConfig())
	if err := w.Write(ctx, b.Block()); err != nil {
		t.Fatal(err)
	}
	obs, err := spc.NewModelMetrics(c, 2.5).Observe(ctx, fleet.Window{Start: t0, End: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]spc.Observation{}
	for _, o := range obs {
		got[o.Metric] = o
		if o.Model != "m" || o.ModelVersion != "v2" || o.Key != "model=m/"+o.Metric {
			t.Errorf("%+v", o)
		}
	}
	near := func(metric string, want, tol float64) {
		t.Helper()
		o, ok := got[metric]
		if !ok {
			t.Errorf("%s: no observation", metric)
			return
		}
		if math.Abs(o.Value-want) > tol {
			t.Errorf("%s = %v, want %v ± %v", metric, o.Value, want, tol)
		}
	}
	// Exact quantiles of 1..200 (either neighbour of the ideal position).
	near("latency_p50", 100.5, 0.5)
	near("latency_p95", 190.5, 0.5)
	near("latency_p99", 198.5, 0.5)
	// 100 + 2·100 = 300 requests; 20 errors of weight 2.
	near("error_rate", 40.0/300, 1e-12)
	near("throughput", 300.0/60, 1e-12)
	// 3 GPUs × 1 minute × 2.5 per GPU-hour.
	near("cost", 3*2.5/60, 1e-12)
	if len(obs) != 6 || got["error_rate"].Class != "error_rate" || got["cost"].Class != "cost" || got["latency_p99"].Unit != "ms" {
		t.Fatalf("observations %+v", obs)
	}
	// Without a price there is no cost series.
	obs, err = spc.NewModelMetrics(c, 0).Observe(ctx, fleet.Window{Start: t0, End: t0.Add(time.Minute)})
	if err != nil || len(obs) != 5 {
		t.Fatalf("%d observations without a price (%v)", len(obs), err)
	}
}

// GPU series through the SPC detector against real ClickHouse: a GPU whose
// temperature rises 4 °C at minute 40 is flagged from that window, as its
// GPU and place, while its healthy neighbour raises nothing critical (the
// CUSUM's in-control run length is about 230 windows, so 20 charted windows
// rarely see a false critical; the seed is fixed).
func TestGPUSeriesDetector(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	w, _ := c.NewWriter(storage.NewDefaultWriterConfig())
	var series storage.GPUSeriesBlock
	for s, uuid := range []string{"GPU-ok", "GPU-hot"} {
		series.Append(&storage.GPUSeries{Series: uint64(s + 1), Metric: "DCGM_FI_DEV_GPU_TEMP", Topology: fleet.Topology{Rack: "r1", Node: "n1", Cluster: "c1"},
			GPU: fleet.GPUIdentity{UUID: uuid, ModelName: "H100"}, FirstSeen: t0, LastSeen: t0})
	}
	var samples storage.GPUSampleBlock
	rng := rand.New(rand.NewPCG(1, 6))
	for i := 0; i < 50*60; i += 5 {
		ts := t0.Add(time.Duration(i) * time.Second)
		// Independent noise of 1 °C per 5 s sample.
		for s := uint64(1); s <= 2; s++ {
			v := 60 + rng.NormFloat64()
			if s == 2 && i >= 40*60 {
				v += 4
			}
			samples.Append(&storage.GPUSample{Time: ts, Metric: "DCGM_FI_DEV_GPU_TEMP", Series: s, Value: v})
		}
	}
	for _, b := range []storage.Block{series.Block(), samples.Block()} {
		if err := w.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	d, err := spc.NewDetector(spc.NewDefaultConfig("spc_gpu"), c, spc.NewGPUMetrics(c, []string{"DCGM_FI_DEV_GPU_TEMP"}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, c, engine.NewManualClock(at(52)), d)
	got := detections(t, c)
	hot := map[int]string{}
	for _, g := range got {
		switch g.key {
		case "spc/gpu=0000000000000002/DCGM_FI_DEV_GPU_TEMP":
			hot[g.window] = g.sev
			if g.class != "thermal" {
				t.Errorf("class %q", g.class)
			}
		case "spc/gpu=0000000000000001/DCGM_FI_DEV_GPU_TEMP":
			if g.sev == "critical" {
				t.Errorf("healthy GPU: %+v", g)
			}
		default:
			t.Errorf("unexpected detection %+v", g)
		}
		if g.window < 40 && g.sev == "critical" {
			t.Errorf("critical before the fault: %+v", g)
		}
	}
	for win := 40; win < 50; win++ {
		if hot[win] == "" {
			t.Errorf("window %d: hot GPU not flagged", win)
		}
	}
	if hot[42] != "critical" {
		t.Errorf("hot GPU not critical after 3 windows: %v", hot)
	}
	var gpu, rack string
	db := c.Config().Database
	if err := c.QueryScalar(ctx, "SELECT any(gpu_uuid) FROM "+db+".detections WHERE key = 'spc/gpu=0000000000000002/DCGM_FI_DEV_GPU_TEMP'", &gpu); err != nil || gpu != "GPU-hot" {
		t.Fatalf("gpu_uuid %q (%v)", gpu, err)
	}
	if err := c.QueryScalar(ctx, "SELECT any(rack) FROM "+db+".detections WHERE key = 'spc/gpu=0000000000000002/DCGM_FI_DEV_GPU_TEMP'", &rack); err != nil || rack != "r1" {
		t.Fatalf("rack %q (%v)", rack, err)
	}
}
