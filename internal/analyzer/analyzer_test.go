package analyzer

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

func TestConfigFiles(t *testing.T) {
	cfg, err := LoadConfig("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Engine.Lateness != 3*time.Minute || cfg.Drift.Interval != 10*time.Minute || cfg.Drift.Bins != 20 ||
		len(cfg.Drift.References) != 1 || cfg.SPCModels.Interval != 2*time.Minute || cfg.SPCLabels.Enabled ||
		!cfg.SPCGPU.Enabled || cfg.SPCModels.PricePerGPUHour != 2.5 || cfg.SPCModels.BaselinePoints != 30 {
		t.Fatalf("loaded %+v", cfg)
	}
	// Every problem of the bad file is reported at once.
	bad, err := LoadConfig("testdata/bad.yml")
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "bad.errors", bad.Validate().Error())
	if _, err := LoadConfig("testdata/typo.yml"); err == nil || !strings.Contains(err.Error(), "binz") {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := LoadConfig("testdata/missing.yml"); err == nil {
		t.Fatal("missing file: no error")
	}
}

// The example file shipped in deploy/ loads and is valid.
func TestDeployExampleIsValid(t *testing.T) {
	cfg, err := LoadConfig("../../deploy/analyzer.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Jobs != NewDefaultJobsConfig() {
		t.Errorf("the example's jobs section is not the defaults:\n%+v\n%+v", cfg.Jobs, NewDefaultJobsConfig())
	}
	wantCost := NewDefaultCostConfig()
	wantCost.PriceBook = "/etc/fleetwatch/prices.yaml" // the one key without a default
	if got, want := fmt.Sprintf("%+v", cfg.Cost), fmt.Sprintf("%+v", wantCost); got != want {
		t.Errorf("the example's cost section is not the defaults:\n%s\n%s", got, want)
	}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if got+"\n" != string(want) {
		t.Errorf("%s differs (go test -update rewrites it):\n%s", path, got)
	}
}

// writeSimulation runs the simulator's serving traffic for a scenario and
// writes it to ClickHouse the way the collector would.
func writeSimulation(t *testing.T, c *storage.Client, path string) *sim.Scenario {
	t.Helper()
	sc, err := sim.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	fl := sim.NewFleet(sc)
	srv := sim.NewServing(sc, fl)
	w, _ := c.NewWriter(storage.NewDefaultWriterConfig())
	var ev storage.InferenceEventBlock
	var lb storage.DelayedLabelBlock
	var db storage.ModelDeploymentBlock
	flush := func() {
		for _, b := range []storage.Block{ev.Block(), lb.Block(), db.Block()} {
			if err := w.Write(context.Background(), b); err != nil {
				t.Fatal(err)
			}
		}
		ev.Reset()
		lb.Reset()
		db.Reset()
	}
	for ts := sc.Start.Add(sc.Interval); !ts.After(sc.Start.Add(sc.Duration)); ts = ts.Add(sc.Interval) {
		for _, b := range srv.Batch(ts, sc.Interval) {
			for i := range b.Inferences {
				e := inference(&b.Inferences[i])
				ev.Append(&e)
			}
			for _, l := range b.Labels {
				v := math.NaN()
				if l.HasValue {
					v = l.LabelValue
				}
				lb.Append(&storage.DelayedLabel{Time: l.Time, Model: l.Model, RequestID: l.RequestID, Label: l.Label, LabelValue: v})
			}
			for _, d := range b.Deployments {
				db.Append(&storage.ModelDeployment{Time: d.Time, Model: d.Model, ModelVersion: d.ModelVersion,
					PreviousVersion: d.PreviousVersion, Change: d.Change, Environment: d.Environment, Actor: d.Actor, Note: d.Note})
			}
		}
		if ev.Len() > 50_000 {
			flush()
		}
	}
	flush()
	return sc
}

func inference(in *record.Inference) fleet.InferenceEvent {
	e := fleet.InferenceEvent{Time: in.Time, Model: in.Model, ModelVersion: in.ModelVersion, RequestID: in.RequestID,
		LatencyMs: in.LatencyMs, Status: in.Status, PredictionClass: in.PredictionClass, SampleRate: in.SampleRate,
		GPUUUID: in.GPUUUID, Prediction: math.NaN()}
	if in.HasPrediction {
		e.Prediction = in.Prediction
	}
	for _, f := range in.Features {
		switch {
		case f.IsCat || (f.Missing && f.Str != ""):
			e.CatFeatureNames = append(e.CatFeatureNames, f.Name)
			e.CatFeatureValues = append(e.CatFeatureValues, f.Str)
		case f.Missing:
			e.FeatureNames = append(e.FeatureNames, f.Name)
			e.FeatureValues = append(e.FeatureValues, math.NaN())
		default:
			e.FeatureNames = append(e.FeatureNames, f.Name)
			e.FeatureValues = append(e.FeatureValues, f.Num)
		}
	}
	return e
}

// The analyzer on the simulator's traffic: drift scores and chart state
// are written for every window, and the injected covariate drift and
// latency regression are detected, the drift with nothing raised before it
// and the latency with no critical detection before it.
func TestAnalyzerOnSimulatedTraffic(t *testing.T) {
	c := chtest.NewDB(t)
	sc := writeSimulation(t, c, "testdata/sim.yaml")
	cfg := NewDefaultConfig()
	cfg.ClickHouse = c.Config()
	cfg.Listen = ""
	cfg.Engine.StartAt = sc.Start
	cfg.Engine.MaxCatchUp = 1000
	cfg.Drift.DeploymentReference = 30 * time.Minute
	cfg.SPCLabels.LabelDelay, cfg.SPCLabels.Lateness = 3*time.Minute, 3*time.Minute
	cfg.StateLookback = time.Since(sc.Start) + time.Hour
	end := sc.Start.Add(sc.Duration)
	clock := engine.NewManualClock(end.Add(cfg.SPCLabels.LabelDelay + time.Minute))
	a, err := New(context.Background(), cfg, c, chtest.Logger(t), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Engine.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	db := c.Config().Database
	count := func(sql string) uint64 {
		t.Helper()
		var n uint64
		if err := c.QueryScalar(context.Background(), sql, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Drift: 5-minute windows after the 30-minute reference, 5 columns.
	if n := count("SELECT uniqExact(ts) FROM " + db + ".drift_scores WHERE model = 'fraud' AND feature = 'amount'"); n != 19 {
		t.Errorf("amount scored in %d windows, want 19 (0:30–2:00)", n)
	}
	if n := count("SELECT uniqExact(feature) FROM " + db + ".drift_scores"); n != 5 {
		t.Errorf("%d columns scored, want amount, age, country and both outputs", n)
	}
	if n := count("SELECT uniqExact(ts) FROM " + db + ".spc_state WHERE detector = 'spc_models'"); n != 122 {
		t.Errorf("spc_state has %d windows, want 122 (0:01–2:02)", n)
	}
	if n := count("SELECT count() FROM " + db + ".spc_state WHERE detector = 'spc_labels' AND metric = 'accuracy'"); n != 24 {
		t.Errorf("accuracy charted in %d windows", n)
	}
	first := func(where string) time.Time {
		var ts time.Time
		if err := c.QueryScalar(context.Background(), "SELECT min(ts) FROM "+db+".detections WHERE "+where, &ts); err != nil {
			t.Fatal(err)
		}
		return ts
	}
	if d := first("key = 'drift/fraud/v1/amount'"); d.Before(sc.Start.Add(70*time.Minute)) || d.After(sc.Start.Add(80*time.Minute)) {
		t.Errorf("amount drift first raised at %v; the fault starts at 1:10", d)
	}
	// SPC raises single-window info/warning detections at the rules'
	// in-control rates; critical ones (3 windows out of control, or |z| >= 6)
	// only come with the fault.
	if d := first("class = 'latency' AND severity = 'critical'"); d.Before(sc.Start.Add(80*time.Minute)) || d.After(sc.Start.Add(83*time.Minute)) {
		t.Errorf("latency first critical at %v; the fault starts at 1:20", d)
	}
	if n := count("SELECT count() FROM " + db + ".detections WHERE class = 'covariate_drift' AND feature != 'amount'"); n != 0 {
		t.Errorf("%d drift detections on unshifted features", n)
	}
	st := a.Engine.Stats()
	for _, name := range []string{"drift", "spc_models", "spc_labels"} {
		if st[name].Evaluated == 0 || st[name].Failures != 0 {
			t.Errorf("%s: %+v", name, st[name])
		}
	}
	checkExposition(t, a)
}

// checkExposition checks /metrics carries the latest drift scores and SPC
// state of the simulated traffic: the shifted feature in the action band,
// an unshifted one stable, and charted SPC series.
func checkExposition(t *testing.T, a *Analyzer) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(a.collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string][]*dto.Metric{}
	for _, mf := range mfs {
		series[mf.GetName()] = mf.GetMetric()
	}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	psi := map[string]float64{}
	for _, m := range series["fleetwatch_drift_psi"] {
		psi[label(m, "model")+"/"+label(m, "feature")] = m.GetGauge().GetValue()
	}
	if psi["fraud/amount"] < 0.25 {
		t.Errorf("fraud/amount PSI on /metrics = %v, want the action band (the fault lasts to the end)", psi["fraud/amount"])
	}
	if v, ok := psi["fraud/age"]; !ok || v >= 0.1 {
		t.Errorf("fraud/age PSI on /metrics = %v (present %v), want stable", v, ok)
	}
	bands := 0
	for _, m := range series["fleetwatch_drift_band"] {
		if label(m, "model") == "fraud" && label(m, "feature") == "amount" {
			bands++
			if label(m, "band") != "action" {
				t.Errorf("fraud/amount band %q", label(m, "band"))
			}
		}
	}
	if bands != 1 {
		t.Errorf("fraud/amount has %d band series, want 1", bands)
	}
	if len(series["fleetwatch_spc_z"]) == 0 || len(series["fleetwatch_spc_out_of_control_windows"]) != len(series["fleetwatch_spc_z"]) {
		t.Errorf("SPC series on /metrics: %d z, %d out-of-control", len(series["fleetwatch_spc_z"]), len(series["fleetwatch_spc_out_of_control_windows"]))
	}
	for _, m := range series["fleetwatch_analyzer_state_query_errors_total"] {
		if m.GetCounter().GetValue() != 0 {
			t.Errorf("state query errors: %v", m.GetCounter().GetValue())
		}
	}
}
