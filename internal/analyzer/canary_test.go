package analyzer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/canary"
	"github.com/fleetwatch/fleetwatch/analytics/canary/action"
	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// TestCanaryThroughTheAnalyzer: a bad canary recorded in model_deployments
// is judged by the analyzer's engine every 10 s, rolled back through the
// webhook within 5 minutes of its start, once — also after the analyzer
// restarts — and its verdict is served for Argo Rollouts and recorded in
// canary_verdicts.
func TestCanaryThroughTheAnalyzer(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	var dep storage.ModelDeploymentBlock
	dep.Append(&storage.ModelDeployment{Time: t0, Model: "ranker", ModelVersion: "v8", PreviousVersion: "v7", Change: "canary", Actor: "argo"})
	var ev storage.InferenceEventBlock
	id := 0
	for s := range 600 { // 45 baseline requests/s (0.5% errors), 5 canary (10%)
		ts := t0.Add(time.Duration(s) * time.Second)
		for k := range 50 {
			id++
			version, failed := "v7", id%200 == 0
			if k < 5 {
				version, failed = "v8", (s*5+k)%10 == 0
			}
			status := "ok"
			if failed {
				status = "error"
			}
			ev.Append(&fleet.InferenceEvent{Time: ts, Model: "ranker", ModelVersion: version, RequestID: fmt.Sprint(id), LatencyMs: 5, Status: status})
		}
	}
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []storage.Block{dep.Block(), ev.Block()} {
		if err := w.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var got []action.RollbackRequest
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req action.RollbackRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
	}))
	defer receiver.Close()

	cfg := NewDefaultConfig()
	cfg.ClickHouse = c.Config()
	cfg.Listen = ""
	cfg.Drift.Enabled, cfg.SPCModels.Enabled, cfg.SPCLabels.Enabled, cfg.SPCGPU.Enabled = false, false, false, false
	cfg.Health.Enabled, cfg.Jobs.Enabled, cfg.Alerting.Enabled = false, false, false
	cfg.Canary.Enabled = true
	cfg.Canary.Rollback.URL = receiver.URL
	cfg.Canary.Ledger = filepath.Join(t.TempDir(), "rollbacks")
	cfg.Engine.StartAt = t0
	cfg.Engine.MaxCatchUp = 1000
	run := func(until time.Duration) *Analyzer {
		t.Helper()
		clock := engine.NewManualClock(t0.Add(until + cfg.Engine.Lateness))
		a, err := New(ctx, cfg, c, chtest.Logger(t), WithClock(clock))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Engine.Step(ctx); err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := run(5 * time.Minute)
	mu.Lock()
	if len(got) != 1 || got[0].Key != "ranker/v8@1796522400" || got[0].Target != "v7" || got[0].Rules[0] != canary.RuleErrorRate {
		t.Fatalf("rollback requests %+v, want one for ranker v8", got)
	}
	if got[0].ElapsedSeconds > 300 {
		t.Errorf("rolled back %v s after the canary started, want within 5 min", got[0].ElapsedSeconds)
	}
	mu.Unlock()
	rec := httptest.NewRecorder()
	a.canary.board.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/canary/v1/verdict?model=ranker&version=v8", nil))
	var wv action.WebVerdict
	if err := json.Unmarshal(rec.Body.Bytes(), &wv); err != nil || wv.Outcome != canary.Fail {
		t.Errorf("web verdict %d %s: %v", rec.Code, rec.Body, err)
	}
	if err := a.canary.close(); err != nil {
		t.Fatal(err)
	}
	var n uint64
	if err := c.QueryScalar(ctx, "SELECT count() FROM "+c.Config().Database+".detections WHERE detector = 'canary'", &n); err != nil || n != 1 {
		t.Errorf("%d canary detections (%v), want 1", n, err)
	}
	// Its verdicts are recorded for on-call: a look a minute at least, the
	// last one failed on the error rate.
	var looks uint64
	var outcome string
	if err := c.QueryScalar(ctx, "SELECT count(), toString(argMax(outcome, ts)) FROM "+c.Config().Database+".canary_verdicts WHERE model = 'ranker' AND model_version = 'v8'", &looks, &outcome); err != nil ||
		looks < 5 || outcome != "fail" {
		t.Errorf("canary_verdicts: %d looks, the last %q (%v); want >= 5 and fail", looks, outcome, err)
	}

	// Restarted: it judges the canary again, still failed, and asks for
	// no second rollback.
	b := run(8 * time.Minute)
	defer b.canary.close()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Errorf("%d rollback requests after a restart, want still 1", len(got))
	}
}
