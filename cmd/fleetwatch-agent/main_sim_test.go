//go:build simulator

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
)

func TestSimulateWritesTruthAndStops(t *testing.T) {
	dir := t.TempDir()
	sc := filepath.Join(dir, "s.yaml")
	os.WriteFile(sc, []byte("duration: 2s\ninterval: 1s\nfleet: {nodes_per_rack: 1, gpus_per_node: 1}\n"+
		"faults: [{name: f, type: gpu_fan, target: {node: node-000, gpu: 0}, start: 1s}]\n"), 0o644)
	truth := filepath.Join(dir, "truth.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	// No collector listens there: the data stays buffered and the agent still stops cleanly.
	code := run(ctx, []string{"--simulate", sc, "--fast", "--truth", truth, "--data-dir", dir, "--listen", "off",
		"--collector", "127.0.0.1:1", "--log-level", "warn"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	f, err := os.Open(truth)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr, err := sim.ReadTruth(f)
	if err != nil || len(tr) != 1 || tr[0].Level != "gpu" {
		t.Fatalf("truth %+v, %v", tr, err)
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "buffer", "*.seg")); len(segs) == 0 {
		t.Fatal("nothing buffered for the unreachable collector")
	}
}
