package health

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

func TestGroupStats(t *testing.T) {
	nan := math.NaN()
	vals := []float64{1, 2, 3, 100, nan, 10, 10, 10, 13, 7}
	ids := []int32{0, 0, 0, 0, 0, 1, 1, 1, 1, -1}
	var g Grouping
	g.Build(ids, 2)
	var st Stats
	var scratch []float64
	GroupStats(vals, &g, &st, &scratch)
	// Group 0: 1, 2, 3, 100 (NaN skipped): median 2.5, |dev| 1.5 .5 .5 97.5 → MAD 1.
	// Group 1: 10, 10, 10, 13: median 10, MAD 0. Row 9 is in no group.
	want := Stats{Median: []float64{2.5, 10}, Sigma: []float64{madScale, 0}, N: []int32{4, 4}}
	if !slices.Equal(st.Median, want.Median) || !slices.Equal(st.Sigma, want.Sigma) || !slices.Equal(st.N, want.N) {
		t.Errorf("got %+v, want %+v", st, want)
	}
}

func TestPoissonTail(t *testing.T) {
	for _, tc := range []struct{ k, lambda, want float64 }{
		{0, 3, 1},
		{1, 0.5, 1 - math.Exp(-0.5)},
		{3, 0.003, math.Exp(-0.003) * (4.5e-9 + 0.003*4.5e-9/4)}, // e^−λ (λ³/3! + λ⁴/4!); the rest is negligible
		{2, 2, 1 - 3*math.Exp(-2)},                               // λ ≥ k: from the head
		{5, 0, 0},
	} {
		got := PoissonTail(tc.k, tc.lambda)
		if math.Abs(got-tc.want) > 1e-3*tc.want+1e-15 {
			t.Errorf("P(X ≥ %v | λ=%v) = %.6g, want %.6g", tc.k, tc.lambda, got, tc.want)
		}
	}
}

func TestClassifyXID(t *testing.T) {
	for _, tc := range []struct {
		code           int
		kind, sev, act string
		hardware       bool
	}{
		{13, KindApplication, SevInfo, telemetry.ActionRestartApp, false},
		{31, KindApplication, SevInfo, telemetry.ActionRestartApp, false},
		{43, KindApplication, SevInfo, telemetry.ActionRestartApp, false},
		{45, KindApplication, SevInfo, telemetry.ActionRestartApp, false},
		{68, KindApplication, SevInfo, telemetry.ActionRestartApp, false},
		{48, KindUncorrectableECC, SevCritical, telemetry.ActionResetGPU, true},
		{63, KindRowRemapPending, SevWarning, telemetry.ActionResetGPU, true},
		{64, KindRowRemapFailure, SevCritical, telemetry.ActionRMA, true},
		{74, KindNVLink, SevCritical, telemetry.ActionResetGPU, true},
		{79, KindFellOffBus, SevCritical, telemetry.ActionReboot, true},
		{94, KindContainedECC, SevWarning, telemetry.ActionRestartApp, true},
		{95, KindUncorrectableECC, SevCritical, telemetry.ActionResetGPU, true},
		{9999, KindUnknownXID, SevWarning, telemetry.ActionInvestigate, false},
	} {
		p := ClassifyXID(tc.code)
		if p.Kind != tc.kind || p.Severity != tc.sev || p.Action != tc.act || IsHardware(p.Kind) != tc.hardware || p.Steps == "" {
			t.Errorf("XID %d: %+v (hardware %v)", tc.code, p, IsHardware(p.Kind))
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := NewDefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := NewDefaultConfig()
	c.PersistK, c.ThroughputRatio, c.Interval, c.Heartbeat = 4, 1.5, 1500*time.Millisecond, ""
	err := c.Validate()
	for _, want := range []string{"persist_k 4 of persist_n 3", "throughput_ratio 1.5", "interval: 1.5s", "heartbeat"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

// window builds one window's input: 8 GPUs of job "j" with the given
// throughput for GPU 0 (the others 100), plus extra rows.
func window(k int, tput0 float64, extra ...Row) *Input {
	start := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC).Add(time.Duration(k) * 30 * time.Second)
	in := &Input{Window: fleet.Window{Start: start, End: start.Add(30 * time.Second)}}
	for i := 0; i < 8; i++ {
		g := GPU{UUID: "GPU-" + string(rune('a'+i)), Model: "H100", Job: "j", Rank: string(rune('0' + i))}
		g.Node = "n1"
		v := 100 + float64(i%3)*0.3
		if i == 0 {
			v = tput0
		}
		in.Rows = append(in.Rows,
			Row{GPU: g, Metric: telemetry.TrainThroughput, Mean: v, Max: v, Samples: 6},
			Row{GPU: g, Metric: telemetry.GPUTemp, Mean: 60 + float64(i%3)*0.5, Max: 60.5 + float64(i%3)*0.5, Samples: 6},
			Row{GPU: g, Metric: telemetry.GPUUtil, Mean: 93, Samples: 6})
	}
	in.Rows = append(in.Rows, extra...)
	return in
}

// Persistence: a GPU at 80% throughput is raised only in the second of
// two consecutive slow windows, not after one, and re-evaluating a window
// gives the same answer.
func TestGrayFailurePersistence(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tputs []float64 // GPU 0's throughput per window
		want  []bool    // raised in that window
	}{
		{"steady", []float64{100, 100, 100}, []bool{false, false, false}},
		{"one blip", []float64{100, 80, 100, 100}, []bool{false, false, false, false}},
		{"persistent", []float64{100, 80, 80, 80}, []bool{false, false, true, true}},
		{"2 of 3", []float64{80, 100, 80}, []bool{false, false, true}},
		// Peers spread by σ ≈ 0.44%: 91% is within two standard errors
		// of 90% (at the threshold), 92% is not.
		{"at 90% within the noise", []float64{91, 91, 91}, []bool{false, true, true}},
		{"clearly above 90%", []float64{92, 92, 92}, []bool{false, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := NewEvaluator(NewDefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			for k, tp := range tc.tputs {
				got := hasKey(ev.Evaluate(window(k, tp)), "health/GPU-a/gray_failure")
				again := hasKey(ev.Evaluate(window(k, tp)), "health/GPU-a/gray_failure")
				if got != tc.want[k] || again != got {
					t.Errorf("window %d (throughput %v): raised %v, again %v; want %v", k, tp, got, again, tc.want[k])
				}
			}
		})
	}
}

// Hard faults raise at once, one detection per GPU and kind, with the
// recommended action; application XIDs are not hardware.
func TestHardFaults(t *testing.T) {
	ev, err := NewEvaluator(NewDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	dbe := Row{GPU: GPU{UUID: "GPU-b"}, Metric: telemetry.ECCDBEVolatile, Delta: 1, Samples: 6}
	remap := Row{GPU: GPU{UUID: "GPU-c"}, Metric: telemetry.RowRemapFailure, Max: 1, Samples: 6}
	in := window(0, 100, dbe, remap)
	at := in.Window.Start.Add(5 * time.Second)
	in.Events = []Event{
		{Time: at, Kind: telemetry.GPUEventXID, Code: 79, Count: 1, GPU: GPU{UUID: "GPU-a"}},
		{Time: at, Kind: telemetry.GPUEventLost, Code: 79, Count: 1, GPU: GPU{UUID: "GPU-a"}},
		{Time: at, Kind: telemetry.GPUEventXID, Code: 13, Count: 2, GPU: GPU{UUID: "GPU-d"}},
	}
	in.Missing = []GPU{{UUID: "GPU-x", Topology: fleet.Topology{Node: "n9"}}}
	got := map[string]string{}
	for _, d := range ev.Evaluate(in) {
		got[d.Key] = d.Class + "/" + d.Severity + "/" + d.Action
	}
	want := map[string]string{
		"health/GPU-a/fell_off_bus":      "gpu_hard_fault/critical/reboot",
		"health/GPU-b/uncorrectable_ecc": "gpu_hard_fault/critical/reset_gpu",
		"health/GPU-c/row_remap_failure": "gpu_hard_fault/critical/rma",
		"health/GPU-d/application_error": "gpu_application_error/info/restart_app",
		// GPU-x's node reports nothing in the window: the node, its agent
		// or the telemetry pipeline is the suspect, not the GPU.
		"health/GPU-x/not_reporting": "telemetry_gap/warning/investigate",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d detections, want %d: %v", len(got), len(want), got)
	}
}

func hasKey(ds []fleet.Detection, key string) bool {
	return slices.ContainsFunc(ds, func(d fleet.Detection) bool { return d.Key == key })
}

// A slow error ramp — two correctable ECC errors a window, none of them
// improbable alone at the floor rate — is improbable over the last
// windows together and is raised in the second; a GPU without errors is
// not.
func TestRateRuleAccumulatesWindows(t *testing.T) {
	ev, err := NewEvaluator(NewDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	const key = "health/GPU-a/ecc_correctable_rising"
	var raised []bool
	for k := range 4 {
		in := window(k, 100)
		for i := range 8 {
			n := 0.0
			if i == 0 {
				n = 2
			}
			g := GPU{UUID: "GPU-" + string(rune('a'+i)), Model: "H100", Job: "j", Rank: string(rune('0' + i))}
			in.Rows = append(in.Rows, Row{GPU: g, Metric: telemetry.ECCSBEVolatile, Delta: n, Samples: 6})
		}
		dets := ev.Evaluate(in)
		raised = append(raised, hasKey(dets, key))
		for _, d := range dets {
			if d.Key != key {
				t.Errorf("window %d: raised %s", k, d.Key)
			}
		}
	}
	if want := []bool{false, true, true, true}; !slices.Equal(raised, want) {
		t.Errorf("raised %v, want %v", raised, want)
	}
}
