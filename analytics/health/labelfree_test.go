package health_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/health"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/labelfree"
)

// shape draws a fleet shape and the seed it runs with: 4 to 6 racks of 4
// to 8 nodes of 4 or 8 GPUs, like fleets from outside the project.
func shape(t *testing.T, rng *rand.Rand) *labelfree.Fleet {
	t.Helper()
	racks, nodes, gpus := 4+rng.IntN(3), 4+rng.IntN(5), []int{4, 8}[rng.IntN(2)]
	seed := rng.Uint64()
	t.Logf("fleet %d racks × %d nodes × %d GPUs, seed %d", racks, nodes, gpus, seed)
	return labelfree.New(racks, nodes, gpus, seed)
}

// run evaluates windows [0, n) and returns every window's detections.
func run(t *testing.T, f *labelfree.Fleet, cfg health.Config, n int) [][]fleet.Detection {
	t.Helper()
	ev, err := health.NewEvaluator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ev.SetLogger(slog.New(slog.DiscardHandler))
	out := make([][]fleet.Detection, n)
	for k := range n {
		out[k] = ev.Evaluate(f.Window(k))
	}
	return out
}

// first is the first window raising key, or −1.
func first(windows [][]fleet.Detection, key string) (int, fleet.Detection) {
	for k, ds := range windows {
		for _, d := range ds {
			if d.Key == key {
				return k, d
			}
		}
	}
	return -1, fleet.Detection{}
}

const seedTrials = 5

// A straggler at 75% of its peers' SM activity, on a fleet with no job and
// no utilization, is found within 3 windows of its start; nothing else is.
func TestLabelFreeStraggler(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 16))
	for range seedTrials {
		f := shape(t, rng)
		r, n, g := rng.IntN(f.Racks), rng.IntN(f.Nodes), rng.IntN(f.GPUs)
		from := 3 + rng.IntN(4)
		f.Faults = []labelfree.Fault{{Kind: labelfree.Straggler, Rack: r, Node: n, GPU: g, From: from, Magnitude: 0.75}}
		windows := run(t, f, health.NewDefaultConfig(), from+8)
		key := "health/" + f.GPU(r, n, g).UUID + "/gray_failure"
		k, d := first(windows, key)
		if k < 0 || k > from+2 {
			t.Fatalf("straggler %s from window %d: first raised in window %d", key, from, k)
		}
		if d.Severity != health.SevError {
			t.Errorf("straggler severity %s, want error", d.Severity)
		}
		for k, ds := range windows {
			for _, d := range ds {
				if d.Key != key {
					t.Errorf("window %d: false alarm %s: %s", k, d.Key, d.Summary)
				}
			}
		}
	}
}

// A hot node inside a hot rack: the node is raised as a node, class
// thermal, within 3 windows of its start, though its node-mates are as hot
// as its GPUs and its rack moved every sibling it has; the rack is raised
// as a rack; none of their GPUs is raised on its own, and nothing outside
// the rack.
func TestLabelFreeHotNodeInHotRack(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 17))
	for range seedTrials {
		f := shape(t, rng)
		r, n := rng.IntN(f.Racks), rng.IntN(f.Nodes)
		rackFrom, nodeFrom := 2+rng.IntN(3), 8+rng.IntN(3)
		rackHeat, nodeHeat := 8+7*rng.Float64(), 8+7*rng.Float64()
		f.Faults = []labelfree.Fault{
			{Kind: labelfree.Hot, Rack: r, Node: -1, GPU: -1, From: rackFrom, Magnitude: rackHeat},
			{Kind: labelfree.Hot, Rack: r, Node: n, GPU: -1, From: nodeFrom, Magnitude: nodeHeat},
		}
		windows := run(t, f, health.NewDefaultConfig(), nodeFrom+6)
		g := f.GPU(r, n, 0)
		rackPath := g.Datacenter + "/" + g.Row + "/" + g.Rack
		nodeKey, rackKey := "health/node/"+rackPath+"/"+g.Node+"/temperature_high", "health/rack/"+rackPath+"/temperature_high"
		if k, d := first(windows[nodeFrom:], nodeKey); k < 0 || k > 2 || d.Class != "thermal" || d.EntityType != "node" {
			t.Errorf("hot node %s (+%.1f°C in a +%.1f°C rack from window %d): first raised %d windows later as %s/%s",
				g.Node, nodeHeat, rackHeat, nodeFrom, k, d.Class, d.EntityType)
		}
		if k, d := first(windows, rackKey); k < 0 || k > rackFrom+2 || d.EntityType != "rack" {
			t.Errorf("hot rack %s (+%.1f°C from window %d): first raised in window %d as %s", g.Rack, rackHeat, rackFrom, k, d.EntityType)
		}
		for _, ds := range windows {
			for _, d := range ds {
				switch {
				case d.Topology.Rack != g.Rack:
					t.Errorf("false alarm outside the hot rack: %s: %s", d.Key, d.Summary)
				case d.Key != nodeKey && d.Key != rackKey:
					t.Errorf("raised %s (%s): the node and the rack explain it", d.Key, d.Summary)
				}
			}
		}
	}
}

// NVLink bandwidth is read from DCGM's total bandwidth (MB/s) when the
// GPU reports no TX/RX totals: a link at 60% with rising CRC errors is a
// gray failure on NVLink bandwidth and an NVLink error prediction, and the
// two together are an error at once.
func TestLabelFreeNVLinkTotalBandwidth(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 18))
	for range seedTrials {
		f := shape(t, rng)
		r, n, g := rng.IntN(f.Racks), rng.IntN(f.Nodes), rng.IntN(f.GPUs)
		from := 3 + rng.IntN(4)
		f.Faults = []labelfree.Fault{{Kind: labelfree.NVLink, Rack: r, Node: n, GPU: g, From: from, Magnitude: 0.6}}
		windows := run(t, f, health.NewDefaultConfig(), from+6)
		uuid := f.GPU(r, n, g).UUID
		// Lost bandwidth with rising link errors is one failing link: an
		// error-level failure prediction carrying the bandwidth ratio, not
		// also a gray failure.
		k, d := first(windows, "health/"+uuid+"/nvlink_errors_rising")
		if k < 0 || k > from+2 || d.Severity != health.SevError {
			t.Fatalf("NVLink at 60%% with errors from window %d: raised in window %d at %q, want error", from, k, d.Severity)
		}
		var ev struct {
			Signals []struct {
				Signal string  `json:"signal"`
				Ratio  float64 `json:"ratio"`
			} `json:"signals"`
		}
		if err := json.Unmarshal([]byte(d.Evidence), &ev); err != nil {
			t.Fatal(err)
		}
		ratio := -1.0
		for _, sg := range ev.Signals {
			if sg.Signal == "nvlink_bandwidth" {
				ratio = sg.Ratio
			}
		}
		if ratio > 0.7 || ratio < 0.5 {
			t.Errorf("bandwidth ratio in the evidence %.3f, want about 0.6 (%s)", ratio, d.Evidence)
		}
		if k, _ := first(windows, "health/"+uuid+"/gray_failure"); k >= 0 {
			t.Errorf("the failing link was also raised as a gray failure in window %d", k)
		}
	}
}

// A rule that cannot run says so: on a fleet reporting no load signal at
// all, the NVLink bandwidth rule is skipped for every GPU of every window,
// counted under reason no_load_signal and logged once.
func TestSkippedRuleCountedAndLoggedOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 19))
	f := shape(t, rng)
	f.NoLoad = true
	windows := 3 + rng.IntN(5)
	ev, err := health.NewEvaluator(health.NewDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	ev.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	for k := range windows {
		ev.Evaluate(f.Window(k))
		ev.Evaluate(f.Window(k)) // evaluated again: not counted again
	}
	gpus := f.Racks * f.Nodes * f.GPUs
	key := health.SkipKey{Rule: "nvlink_bandwidth_low", Reason: "no_load_signal"}
	if got := ev.Skipped()[key]; got != uint64(gpus*windows) {
		t.Errorf("skipped %v: %d, want %d GPUs × %d windows", key, got, gpus, windows)
	}
	if got := strings.Count(logs.String(), "rule=nvlink_bandwidth_low reason=no_load_signal"); got != 1 {
		t.Errorf("logged %d times, want once:\n%s", got, logs.String())
	}
	if ev.Skipped()[health.SkipKey{Rule: "throughput_low", Reason: "no_signal"}] == 0 {
		t.Errorf("throughput_low without SM activity not counted: %v", ev.Skipped())
	}
}

// Hardware degradations escalate: an ECC ramp is a warning while young
// and an error with a drain action once it has been flagged for
// escalate_after, not before; NVLink errors alone the same.
func TestHardwareDegradationEscalates(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 20))
	for range seedTrials {
		f := shape(t, rng)
		cfg := health.NewDefaultConfig()
		cfg.EscalateAfter = time.Duration(3+rng.IntN(8)) * cfg.Interval
		r, n, g := rng.IntN(f.Racks), rng.IntN(f.Nodes), rng.IntN(f.GPUs)
		from := 2 + rng.IntN(3)
		f.Faults = []labelfree.Fault{{Kind: labelfree.ECCRamp, Rack: r, Node: n, GPU: g, From: from, Magnitude: 0.05 + 0.2*rng.Float64()}}
		steps := int(cfg.EscalateAfter / cfg.Interval)
		windows := run(t, f, cfg, from+steps+6)
		key := "health/" + f.GPU(r, n, g).UUID + "/ecc_correctable_rising"
		k0, _ := first(windows, key)
		if k0 < 0 {
			t.Fatalf("ECC ramp from window %d never raised", from)
		}
		for k := k0; k < len(windows); k++ {
			_, d := first(windows[k:k+1], key)
			if d.Key == "" {
				t.Fatalf("window %d: ECC ramp no longer raised", k)
			}
			flaggedFor := time.Duration(k-k0+1) * cfg.Interval
			want := health.SevWarning
			if flaggedFor >= cfg.EscalateAfter {
				want = health.SevError
			}
			if d.Severity != want || (want == health.SevError && d.Action != "drain") {
				t.Errorf("window %d, flagged for %v (escalate_after %v): %s/%s, want %s", k, flaggedFor, cfg.EscalateAfter, d.Severity, d.Action, want)
			}
		}
	}
}
