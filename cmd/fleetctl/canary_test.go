package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// TestCanaryPlanGolden: fleetctl canary plan reproduces design document
// 003's worked example (10,000 samples at 1M requests/h: 1 h at 1%, 12 min
// at 5%) and sizes a CTR test from equation 6 with the judge's sequential
// test beside it.
func TestCanaryPlanGolden(t *testing.T) {
	out := golden(t, "canary_plan_document", "canary", "plan", "--rate", "1000000", "--samples", "10000", "--stages", "1,5")
	if !strings.Contains(out, "1h") || !strings.Contains(out, "12m") {
		t.Errorf("document's stage durations missing:\n%s", out)
	}
	golden(t, "canary_plan_ctr", "canary", "plan", "--rps", "5000", "--baseline-rate", "0.05", "--effect", "0.1", "--relative")
	golden(t, "canary_plan_errors", "canary", "plan", "--rate", "1000000", "--stages", "1,150")
	golden(t, "canary_plan_bad_config", "canary", "plan", "--rate", "1000000", "--alpha", "2")
	golden(t, "canary_plan_no_traffic", "canary", "plan", "--samples", "10")
	golden(t, "canary_no_subcommand", "canary", "frobnicate")
}

func TestCanaryPlanJSON(t *testing.T) {
	code, out, errOut := fleetctl(t, "canary", "plan", "--rate", "1000000", "--baseline-rate", "0.05", "--effect", "0.005", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got struct {
		Samples float64
		Stages  []struct {
			Share              float64
			Duration           int64 `json:"duration_ns"`
			SequentialDuration int64 `json:"sequential_duration_ns"`
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if got.Samples != 29826 || len(got.Stages) != 4 || got.Stages[1].Share != 0.05 || !(got.Stages[1].SequentialDuration > got.Stages[1].Duration) {
		t.Errorf("plan %+v", got)
	}
}

// TestCanaryPlanObservedRate: --model reads the model's traffic from
// inference_events over --over, each row standing for 1/sample_rate
// requests.
func TestCanaryPlanObservedRate(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	now := time.Now().UTC()
	var b storage.InferenceEventBlock
	// One row a second, sampled at 50%, from 59 to 1 minutes ago: 3,480
	// rows, 6,960 requests in the hour; another model alongside.
	for s := 60; s < 3540; s++ {
		ts := now.Add(-time.Duration(s) * time.Second)
		b.Append(&fleet.InferenceEvent{Time: ts, Model: "ranker", ModelVersion: "v7", RequestID: fmt.Sprint(s), LatencyMs: 5, Status: "ok", SampleRate: 0.5})
		b.Append(&fleet.InferenceEvent{Time: ts, Model: "fraud", ModelVersion: "v1", RequestID: fmt.Sprint("f", s), LatencyMs: 1, Status: "ok", SampleRate: 1})
	}
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, b.Block()); err != nil {
		t.Fatal(err)
	}
	dsn := "clickhouse://" + c.Config().Addrs[0] + "/" + c.Config().Database
	code, out, errOut := fleetctl(t, "canary", "plan", "--model", "ranker", "--over", "1h", "--samples", "6960", "--stages", "50", "--dsn", dsn)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// 6,960 samples at half of 6,960 requests/h: 2 h.
	if !strings.Contains(out, "traffic: 6960 requests/h") || !strings.Contains(out, "2h") {
		t.Errorf("output:\n%s", out)
	}
	code, _, errOut = fleetctl(t, "canary", "plan", "--model", "nobody", "--samples", "10", "--dsn", dsn)
	if code != 1 || !strings.Contains(errOut, "model nobody had no requests") {
		t.Errorf("unknown model: exit %d, %s", code, errOut)
	}
	code, _, errOut = fleetctl(t, "canary", "plan", "--model", "ranker", "--rate", "5", "--samples", "10")
	if code != 2 || !strings.Contains(errOut, "one of --rate") {
		t.Errorf("two rates: exit %d, %s", code, errOut)
	}
}

// TestCanaryStatus: fleetctl canary status finds the running canary in
// model_deployments and prints the analyzer's verdict with its evidence.
func TestCanaryStatus(t *testing.T) {
	c := chtest.NewDB(t)
	t0 := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	var dep storage.ModelDeploymentBlock
	dep.Append(&storage.ModelDeployment{Time: t0, Model: "ranker", ModelVersion: "v8", PreviousVersion: "v7", Change: "canary"})
	var ev storage.InferenceEventBlock
	// Each second 20 baseline requests at 10 ms and 4 canary requests at
	// 40 ms: the canary's p99 is 4× the baseline's.
	for s := range 300 {
		ts := t0.Add(time.Duration(s) * time.Second)
		for k := range 24 {
			version, lat := "v7", 10.0
			if k < 4 {
				version, lat = "v8", 40
			}
			ev.Append(&fleet.InferenceEvent{Time: ts, Model: "ranker", ModelVersion: version, RequestID: fmt.Sprint(s, "/", k), LatencyMs: lat, Status: "ok"})
		}
	}
	chtest.Write(t, c, dep.Block(), ev.Block())
	dsn := "clickhouse://" + c.Config().Addrs[0] + "/" + c.Config().Database
	catPath := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(catPath, []byte(`
model: {name: ranker, version: v8, type: ranking}
evaluation: {offline_metrics: {ndcg: 0.41, recall_at_100: 0.62}, data_version: d1, code_commit: 4f2a9c1, last_known_good: v6}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := fleetctl(t, "canary", "status", "--at", "2026-12-06T02:05:00Z", "--dsn", dsn, "--catalog", catPath)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"ranker v8 vs v7, started 2026-12-06T02:00:00Z (5m0s ago): FAIL", "latency_p99_ratio fail", "error_rate ",
		"gate fail: 1200/500 requests, a rule failed", "last known good: v6", "evaluation: data d1, commit 4f2a9c1, ndcg 0.41, recall_at_100 0.62"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = fleetctl(t, "canary", "status", "--at", "2026-12-04T00:00:00Z", "--dsn", dsn, "--format", "json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("before the canary: exit %d, %q", code, out)
	}
	if code, _, errOut := fleetctl(t, "canary", "status", "--at", "yesterday"); code != 2 || !strings.Contains(errOut, "--at") {
		t.Errorf("bad --at: exit %d, %s", code, errOut)
	}
}
