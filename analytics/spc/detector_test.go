package spc_test

import (
	"context"
	"github.com/fleetwatch/fleetwatch/analytics/freshness"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/analytics/spc"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/traffic"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

var t0 = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

func at(window int) time.Time { return t0.Add(time.Duration(window) * time.Minute) }

// detectors builds the model-metrics and labels detectors over c.
func detectors(t *testing.T, c *storage.Client) (*spc.Detector, *spc.Detector) {
	t.Helper()
	models, err := spc.NewDetector(spc.NewDefaultConfig("spc_models"), c, spc.NewModelMetrics(c, 2.5), spc.NewFreshness(freshness.NewReader(c)))
	if err != nil {
		t.Fatal(err)
	}
	lcfg := spc.NewDefaultConfig("spc_labels")
	lcfg.Lateness = 12 * time.Minute
	labels, err := spc.NewDetector(lcfg, c, spc.NewLabels(c, 10*time.Minute, 30))
	if err != nil {
		t.Fatal(err)
	}
	return models, labels
}

func run(t *testing.T, c *storage.Client, clock *engine.ManualClock, dets ...fleet.Detector) {
	t.Helper()
	w, _ := c.NewWriter(storage.NewDefaultWriterConfig())
	cfg := engine.NewDefaultConfig()
	cfg.StartAt = t0
	e, err := engine.New(cfg, c, engine.WithClock(clock), engine.WithLogger(chtest.Logger(t)), engine.WithSink(engine.NewDetectionTable(w)))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dets {
		if err := e.Add(d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
}

type detection struct {
	window            int
	detector, sev     string
	key, class, model string
}

func detections(t *testing.T, c *storage.Client) []detection {
	t.Helper()
	rr, err := c.QueryArrow(context.Background(), "SELECT toUInt32(ts), detector, severity, key, class, model FROM "+c.Config().Database+".detections FINAL ORDER BY ts, key")
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	var out []detection
	for rr.Next() {
		rec := rr.Record()
		for r := 0; r < int(rec.NumRows()); r++ {
			ts := int64(rec.Column(0).(interface{ Value(int) uint32 }).Value(r))
			s := func(i int) string { return rec.Column(i).(interface{ Value(int) string }).Value(r) }
			out = append(out, detection{window: int(time.Unix(ts, 0).Sub(t0)/time.Minute) - 1, detector: s(1), sev: s(2), key: s(3), class: s(4), model: s(5)})
		}
	}
	return out
}

// The analyzer's SPC detectors against real ClickHouse: latency, error-rate,
// traffic, freshness and delayed-label accuracy faults are detected; a restart
// restores every baseline exactly and raises nothing twice.
func TestSPCDetectorsOnTraffic(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	gen := traffic.New(7, traffic.Fleet(2, 3)...)
	gen.Faults.Latency = func(m string, ts time.Time) float64 {
		if m == "model-000" && !ts.Before(at(45)) {
			return 3
		}
		return 1
	}
	gen.Faults.Down = func(m string, ts time.Time) bool { return m == "model-001" && !ts.Before(at(50)) }
	gen.Faults.ErrorRate = func(m string, ts time.Time) float64 {
		if m == "model-001" && !ts.Before(at(45)) {
			return 0.15
		}
		return 0.01
	}
	gen.Faults.Accuracy = func(m string, ts time.Time) float64 {
		if m == "model-000" && !ts.Before(at(45)) {
			return 0.5
		}
		return 0.9
	}
	w, _ := c.NewWriter(storage.NewDefaultWriterConfig())
	if err := gen.Write(ctx, w, t0, at(60), time.Minute, 100, 10*time.Minute); err != nil {
		t.Fatal(err)
	}

	// First process: windows 0–39 (12:40 + 2m lateness).
	clock := engine.NewManualClock(at(42))
	models1, labels1 := detectors(t, c)
	run(t, c, clock, models1, labels1)
	key := "model=model-001/latency_p95"
	mean1, sigma1, ok := models1.Set().Charted(key)
	if !ok {
		t.Fatalf("%s has no baseline after 40 windows", key)
	}

	// Second process, after a restart: the baselines are back exactly.
	clock.Set(at(62))
	models2, labels2 := detectors(t, c)
	if err := models2.Restore(ctx, fleet.Window{Start: at(39), End: at(40)}); err != nil {
		t.Fatal(err)
	}
	if mean2, sigma2, ok := models2.Set().Charted(key); !ok || mean2 != mean1 || sigma2 != sigma1 {
		t.Fatalf("restored %s μ=%v σ=%v, had μ=%v σ=%v", key, mean2, sigma2, mean1, sigma1)
	}
	if models2.Set().Len() != models1.Set().Len() {
		t.Fatalf("restored %d series, had %d", models2.Set().Len(), models1.Set().Len())
	}
	// Series restored before they are observed again still name their
	// model and feature (a silent model's detections need them).
	for i := 0; i < models2.Set().Len(); i++ {
		sr := models2.Set().Series(i)
		if sr.Key == "model=model-001/feature=f000/freshness" && (sr.Model != "model-001" || sr.Feature != "f000" || sr.Unit != "s") {
			t.Errorf("restored %+v", sr)
		}
		if sr.Key == "model=model-001/throughput" && (sr.Model != "model-001" || sr.Unit != "req/s") {
			t.Errorf("restored %+v", sr)
		}
	}
	models2, labels2 = detectors(t, c)
	run(t, c, clock, models2, labels2)

	got := detections(t, c)
	has := func(window int, key, sev string) bool {
		for _, d := range got {
			if d.window == window && d.key == key && (sev == "" || d.sev == sev) {
				return true
			}
		}
		return false
	}
	for win := 45; win < 60; win++ {
		if !has(win, "spc/model=model-000/latency_p50", "") {
			t.Errorf("window %d: latency fault not detected", win)
		}
	}
	if !has(47, "spc/model=model-000/latency_p50", "critical") {
		t.Errorf("latency fault not critical after 3 windows")
	}
	for win := 45; win < 50; win++ {
		if !has(win, "spc/model=model-001/error_rate", "") {
			t.Errorf("window %d: error-rate rise not detected", win)
		}
	}
	if !has(50, "spc/model=model-001/throughput", "") {
		t.Errorf("model-001 going down: throughput not flagged")
	}
	if !has(51, "spc/model=model-001/feature=f000/freshness", "") {
		t.Errorf("model-001 going down: freshness not flagged")
	}
	for win := 45; win < 50; win++ {
		if !has(win, "spc/model=model-000/accuracy", "") {
			t.Errorf("window %d: accuracy drop not detected", win)
		}
	}
	for _, d := range got {
		if d.window < 45 && d.sev == "critical" {
			t.Errorf("false critical detection before the fault: %+v", d)
		}
		if !strings.HasPrefix(d.detector, "spc_") {
			t.Errorf("detector %q", d.detector)
		}
	}
	// Nothing was raised twice: one row per key and window even before FINAL.
	var dup uint64
	db := c.Config().Database
	if err := c.QueryScalar(ctx, "SELECT count() FROM (SELECT key, ts FROM "+db+".detections GROUP BY key, ts HAVING count() > 1)", &dup); err != nil || dup != 0 {
		t.Fatalf("%d detections raised twice (%v)", dup, err)
	}
	// Every series has its state after every evaluated window.
	var windows uint64
	if err := c.QueryScalar(ctx, "SELECT uniqExact(ts) FROM "+db+".spc_state WHERE detector = 'spc_models'", &windows); err != nil || windows != 60 {
		t.Fatalf("spc_state has %d windows (%v)", windows, err)
	}
	t.Logf("%d detections", len(got))
	for _, d := range got {
		if d.window < 45 {
			t.Logf("before the faults: %+v", d)
		}
	}
}

// The GPU source averages each series over the window from the one-minute
// rollup and names its GPU and place.
func TestGPUMetricsSource(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	w, _ := c.NewWriter(storage.NewDefaultWriterConfig())
	var series storage.GPUSeriesBlock
	series.Append(&storage.GPUSeries{Series: 7, Metric: "DCGM_FI_DEV_GPU_TEMP", Topology: fleet.Topology{Rack: "r1", Node: "n1", Cluster: "c1"},
		GPU: fleet.GPUIdentity{UUID: "GPU-a", ModelName: "H100"}, FirstSeen: t0, LastSeen: t0})
	var samples storage.GPUSampleBlock
	for i := 0; i < 180; i++ {
		samples.Append(&storage.GPUSample{Time: t0.Add(time.Duration(i) * time.Second), Metric: "DCGM_FI_DEV_GPU_TEMP", Series: 7, Value: float64(40 + i%3)})
		samples.Append(&storage.GPUSample{Time: t0.Add(time.Duration(i) * time.Second), Metric: "DCGM_FI_DEV_POWER_USAGE", Series: 8, Value: 300})
	}
	for _, b := range []storage.Block{series.Block(), samples.Block()} {
		if err := w.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	obs, err := spc.NewGPUMetrics(c, []string{"DCGM_FI_DEV_GPU_TEMP"}).Observe(ctx, fleet.Window{Start: t0, End: t0.Add(2 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != 1 {
		t.Fatalf("observations %+v", obs)
	}
	o := obs[0]
	if o.Value != 41 || o.Entity != "GPU-a" || o.Class != "thermal" || o.Topology.Rack != "r1" || o.GPUModel != "H100" || o.Key != "gpu=0000000000000007/DCGM_FI_DEV_GPU_TEMP" {
		t.Fatalf("%+v", o)
	}
}
