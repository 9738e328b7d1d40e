package analyzer

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/alerting/route"
	"github.com/fleetwatch/fleetwatch/analytics/canary"
	"github.com/fleetwatch/fleetwatch/analytics/canary/action"
	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/traffic"
	"github.com/fleetwatch/fleetwatch/lib/coord"
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
	writeBadCanary(t, c, t0)
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

	cfg := canaryConfig(c, t0)
	cfg.Canary.Rollback.URL = receiver.URL
	cfg.Canary.Ledger = filepath.Join(t.TempDir(), "rollbacks")
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
	// The model sends no business outcomes and no labels: those rules
	// are counted on /metrics as skipped, with their reasons.
	reg := prometheus.NewRegistry()
	reg.MustRegister(a.collector())
	skipped := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "fleetwatch_analyzer_canary_rules_skipped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			lab := map[string]string{}
			for _, l := range m.GetLabel() {
				lab[l.GetName()] = l.GetValue()
			}
			skipped[lab["rule"]+"/"+lab["reason"]] = m.GetCounter().GetValue()
		}
	}
	if !(skipped["engagement/no_outcomes"] > 0) || !(skipped["accuracy/no_labels"] > 0) || skipped["look/look_failed"] != 0 {
		t.Errorf("fleetwatch_analyzer_canary_rules_skipped_total %v: want engagement/no_outcomes and accuracy/no_labels counted, no failed look", skipped)
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

// nopHandler is a coordination member that holds no units.
type nopHandler struct{}

func (nopHandler) Start(string) error           { return nil }
func (nopHandler) Stop(context.Context, string) {}
func (nopHandler) Lead(ctx context.Context)     { <-ctx.Done() }

// TestSharedRollbackLedger: analyzers sharing the fleet keep the rollback
// ledger in ZooKeeper. The analyzer that judges a canary after a hand-over
// does not ask again for a rollback another one already sent; one that
// finds a request left pending (its sender died mid-send) sends it again,
// under the same idempotency key; without a session nothing is sent.
func TestSharedRollbackLedger(t *testing.T) {
	server := chtest.StartZooKeeper(t)
	var mu sync.Mutex
	keys := map[string]int{}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys[r.Header.Get("Idempotency-Key")]++
		mu.Unlock()
	}))
	defer receiver.Close()

	cfg := NewDefaultCanaryConfig()
	cfg.Rollback.URL = receiver.URL
	if err := cfg.Validate(false); err == nil {
		t.Error("a rollback url with neither a ledger file nor coordination was accepted")
	}
	if err := cfg.Validate(true); err != nil {
		t.Errorf("with coordination the ledger file is optional: %v", err)
	}
	analyzer := func(id string) (*canaryActions, *coord.Member, func()) {
		cc := coord.NewDefaultConfig()
		cc.Servers, cc.Root, cc.MemberID = []string{server.Addr()}, "/fleetwatch", id
		cc.SessionTimeout, cc.Poll = 2*time.Second, 100*time.Millisecond
		m, err := coord.NewMember(cc, "ledgertest", nil, nopHandler{}, chtest.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		a := &Analyzer{log: chtest.Logger(t)}
		ca, err := a.newCanaryActions(cfg, m)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = m.Run(ctx, time.Second) }()
		stop := func() { cancel(); <-done }
		t.Cleanup(stop)
		return ca, m, stop
	}
	ctx := context.Background()
	v := canary.Verdict{Outcome: canary.Fail}
	d1 := canary.Deployment{Model: "ranker", Version: "v8", BaselineVersion: "v7", Started: time.Unix(1796522400, 0)}
	d2 := canary.Deployment{Model: "ranker", Version: "v9", BaselineVersion: "v7", Started: time.Unix(1796526000, 0)}

	a, ma, stopA := analyzer("a")
	if sent, err := a.rollback.Request(ctx, action.NewRequest(d1, v, time.Now())); err == nil || sent {
		t.Errorf("before a session: sent=%v err=%v; want an error and nothing sent", sent, err)
	}
	b, mb, _ := analyzer("b")
	for _, m := range []*coord.Member{ma, mb} {
		for deadline := time.Now().Add(20 * time.Second); !m.Status().Session; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no ZooKeeper session after 20 s")
			}
		}
	}
	if sent, err := a.rollback.Request(ctx, action.NewRequest(d1, v, time.Now())); err != nil || !sent {
		t.Fatalf("first request: sent=%v err=%v", sent, err)
	}
	// a dies while sending d2's request: it recorded pending, nothing reached the receiver.
	if err := (sharedLedger{ma}).Set(action.NewRequest(d2, v, time.Now()).Key, action.Pending); err != nil {
		t.Fatal(err)
	}
	stopA()
	// b takes the canaries over and judges them failed again.
	for _, d := range []canary.Deployment{d1, d2} {
		if _, err := b.rollback.Request(ctx, action.NewRequest(d, v, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	k1, k2 := action.NewRequest(d1, v, time.Now()).Key, action.NewRequest(d2, v, time.Now()).Key
	if keys[k1] != 1 || keys[k2] != 1 || len(keys) != 2 {
		t.Errorf("webhook calls by key %v, want one for %s and one for %s", keys, k1, k2)
	}
	for _, k := range []string{k1, k2} {
		if st, err := (sharedLedger{mb}).State(k); err != nil || st != action.Done {
			t.Errorf("%s: %v %v, want done", k, st, err)
		}
	}
}

// writeBadCanary writes ranker v8's canary, started at t0 against v7, and
// ten minutes of requests: 45/s to v7 with 0.5% errors, 5/s to v8 with 10%.
func writeBadCanary(t *testing.T, c *storage.Client, t0 time.Time) {
	t.Helper()
	dep, ev := traffic.BadCanary(t0, 10*time.Minute)
	chtest.Write(t, c, dep.Block(), ev.Block())
}

// canaryConfig is an analyzer with the canary judge alone, from t0.
func canaryConfig(c *storage.Client, t0 time.Time) Config {
	cfg := NewDefaultConfig()
	cfg.ClickHouse = c.Config()
	cfg.Listen = ""
	cfg.Drift.Enabled, cfg.SPCModels.Enabled, cfg.SPCLabels.Enabled, cfg.SPCGPU.Enabled = false, false, false, false
	cfg.Health.Enabled, cfg.Jobs.Enabled, cfg.Alerting.Enabled, cfg.Freshness.Enabled = false, false, false, false
	cfg.Canary.Enabled = true
	cfg.Engine.StartAt = t0
	cfg.Engine.MaxCatchUp = 1000
	return cfg
}

// TestCanaryIncidentGoesToTheOwner: with alerting and the catalog, a
// failed canary is an incident for the model's owning team, delivered to
// its receiver with the deployment as suspect and the judge's evidence per
// rule (effect, interval, samples) in the notification.
func TestCanaryIncidentGoesToTheOwner(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	writeBadCanary(t, c, t0)
	catPath := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(catPath, []byte(`
models:
  - model: {name: ranker, type: recommendation}
    ownership: {team: ranking, oncall: rank-oncall}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := &hook{got: map[string][]route.WebhookMessage{}}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	cfg := canaryConfig(c, t0)
	cfg.Alerting.Enabled, cfg.Alerting.Catalog, cfg.Alerting.SLO.Enabled = true, catPath, false
	cfg.Alerting.Routing = route.Config{
		Routes:    []route.Rule{{Match: map[string]string{"team": "ranking"}, Receivers: []string{"ranking"}}},
		Receivers: []route.ReceiverConfig{{Name: "ranking", Type: route.TypeWebhook, URL: srv.URL}}}
	a, err := New(ctx, cfg, c, chtest.Logger(t), WithClock(engine.NewManualClock(t0.Add(8*time.Minute+cfg.Engine.Lateness))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Engine.Step(ctx); err != nil {
		t.Fatal(err)
	}
	var msgs []route.WebhookMessage
	for _, m := range rec.triggers() {
		msgs = append(msgs, m...)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d trigger notifications %+v, want one (the canary's)", len(msgs), msgs)
	}
	inc := msgs[0].Incident
	if inc.Team != "ranking" || inc.Oncall != "rank-oncall" || inc.Class != "canary_regression" {
		t.Errorf("incident %s: team %q oncall %q class %q; want ranking's canary_regression", inc.Key, inc.Team, inc.Oncall, inc.Class)
	}
	if !slices.ContainsFunc(inc.Suspects, func(s incident.Suspect) bool {
		return s.Version == "v8" && s.Previous == "v7" && s.Change == "canary"
	}) {
		t.Errorf("suspects %+v, want the v8 canary", inc.Suspects)
	}
	if len(inc.Evidence) == 0 {
		t.Fatal("no evidence")
	}
	e := inc.Evidence[0]
	var detail struct {
		Deployment  canary.Deployment `json:"deployment"`
		FailedRules []string          `json:"failed_rules"`
		Rules       []string          `json:"rules"`
	}
	if err := json.Unmarshal([]byte(e.Detail), &detail); err != nil {
		t.Fatalf("evidence detail %q: %v", e.Detail, err)
	}
	if e.ModelVersion != "v8" || e.Action == "" || detail.Deployment.BaselineVersion != "v7" ||
		!slices.Equal(detail.FailedRules, []string{canary.RuleErrorRate}) || !slices.ContainsFunc(detail.Rules, func(r string) bool {
		return strings.HasPrefix(r, canary.RuleErrorRate+" fail:") && strings.Contains(r, "(min 500)")
	}) {
		t.Errorf("evidence %+v: want v8, the rollback action and the failed error-rate rule with its samples", e)
	}
}
