package action

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/canary"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
)

// receiver is a rollback webhook that records what it got and fails the
// first failFirst requests with 503.
type receiver struct {
	mu        sync.Mutex
	failFirst int
	got       []RollbackRequest
	keys      []string
	auth      []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.keys = append(rc.keys, r.Header.Get("Idempotency-Key"))
	rc.auth = append(rc.auth, r.Header.Get("Authorization"))
	if rc.failFirst > 0 {
		rc.failFirst--
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	var req RollbackRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.got = append(rc.got, req)
}

// failedVerdict runs the error-spike scenario until the judge fails it.
func failedVerdict(t *testing.T) canary.Verdict {
	t.Helper()
	var s canary.Scenario
	for _, sc := range canary.Scenarios() {
		if sc.Name == "error-spike" {
			s = sc
		}
	}
	cfg, err := canary.NewConfigForType(s.Type)
	if err != nil {
		t.Fatal(err)
	}
	j, err := canary.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := canary.Simulate(s, 1, 10*time.Second, j)
	if r.FailedAt < 0 || r.FailedAt >= 5*time.Minute {
		t.Fatalf("error spike failed at %v, want within 5 min", r.FailedAt)
	}
	return r.Last
}

var ranker = Canary{Model: "ranker", Version: "v8", BaselineVersion: "v7", Started: time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)}

func newRollbacker(t *testing.T, url string, l Ledger) *Rollbacker {
	t.Helper()
	cfg := NewDefaultRollbackConfig()
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.URL, cfg.Backoff, cfg.BearerTokenFile = url, time.Millisecond, tok
	rb, err := NewRollbacker(cfg, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rb
}

// TestRollbackOncePerCanary: a failed canary is rolled back once, with its
// evidence, however often the judge fails it again; retries reuse the key.
func TestRollbackOncePerCanary(t *testing.T) {
	rc := &receiver{failFirst: 2}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	rb := newRollbacker(t, srv.URL, nil)
	v := failedVerdict(t)
	c := ranker
	c.LastKnownGood, c.Evaluation = "v6", &catalog.Evaluation{CodeCommit: "4f2a9c1", DataVersion: "d-2026-12-01", LastKnownGood: "v6", OfflineMetrics: map[string]float64{"auc": 0.94}}
	req := NewRequest(c, v, time.Now())
	for i := range 3 {
		sent, err := rb.Request(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if sent != (i == 0) {
			t.Errorf("call %d: sent %v", i, sent)
		}
	}
	if len(rc.got) != 1 || len(rc.keys) != 3 {
		t.Fatalf("receiver got %d requests in %d attempts, want 1 in 3 (two 503s)", len(rc.got), len(rc.keys))
	}
	for _, k := range rc.keys {
		if k != "ranker/v8@1796518800" {
			t.Errorf("idempotency key %q", k)
		}
	}
	if rc.auth[0] != "Bearer s3cret" {
		t.Errorf("authorization %q", rc.auth[0])
	}
	got := rc.got[0]
	// The rollback names the last-known-good version and the canary's
	// offline evaluation (the catalog's evaluation section).
	if got.LastKnownGood != "v6" || got.Canary.Evaluation == nil || got.Canary.Evaluation.CodeCommit != "4f2a9c1" || got.Canary.Evaluation.OfflineMetrics["auc"] != 0.94 {
		t.Errorf("request without the last-known-good version or evaluation: %+v", got)
	}
	if got.Target != "v7" || len(got.Rules) != 1 || got.Rules[0] != canary.RuleErrorRate || len(got.Evidence) == 0 || !strings.Contains(got.Reason, "error_rate fail") {
		t.Errorf("request %+v", got)
	}
}

// TestRollbackAcrossRestarts: the file ledger keeps a done rollback from
// being asked again after a restart, and sends a pending one again.
func TestRollbackAcrossRestarts(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "rollbacks.ledger")
	req := NewRequest(ranker, failedVerdict(t), time.Now())
	other := ranker
	other.Version = "v9"
	pending := NewRequest(other, failedVerdict(t), time.Now())

	l, err := OpenFileLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	if sent, err := newRollbacker(t, srv.URL, l).Request(context.Background(), req); !sent || err != nil {
		t.Fatalf("first request: %v %v", sent, err)
	}
	// A crash after claiming v9 but before its request went out.
	if err := l.Set(pending.Key, Pending); err != nil {
		t.Fatal(err)
	}
	l.Close()

	l, err = OpenFileLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rb := newRollbacker(t, srv.URL, l)
	if sent, err := rb.Request(context.Background(), req); sent || err != nil {
		t.Errorf("after restart, done canary: sent %v, err %v", sent, err)
	}
	if sent, err := rb.Request(context.Background(), pending); !sent || err != nil {
		t.Errorf("after restart, pending canary: sent %v, err %v", sent, err)
	}
	if len(rc.got) != 2 || rc.got[1].Key != pending.Key {
		t.Errorf("receiver got %d requests", len(rc.got))
	}
}

func TestRollbackGivesUp(t *testing.T) {
	rc := &receiver{failFirst: 100}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	rb := newRollbacker(t, srv.URL, nil)
	_, err := rb.Request(context.Background(), NewRequest(ranker, failedVerdict(t), time.Now()))
	if err == nil || !strings.Contains(err.Error(), "5 attempts") || !strings.Contains(err.Error(), "503") {
		t.Errorf("err %v", err)
	}
}

func TestRollbackConfigValidate(t *testing.T) {
	c := NewDefaultRollbackConfig()
	c.Attempts, c.Timeout = 0, 0
	err := c.Validate()
	for _, w := range []string{"rollback url", "timeout", "attempts"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v lacks %q", err, w)
		}
	}
}

// TestBoardServesArgoAndFlagger: the web metric document and the Flagger
// hooks' status codes for each verdict.
func TestBoardServesArgoAndFlagger(t *testing.T) {
	b := &Board{}
	srv := httptest.NewServer(b.Handler())
	defer srv.Close()
	failed := failedVerdict(t)
	passed := canary.Verdict{Outcome: canary.Pass, Elapsed: 20 * time.Minute}
	passed.Gate.Outcome = canary.Pass
	open := canary.Verdict{Outcome: canary.Inconclusive, Elapsed: time.Minute, TimeLeft: 90 * time.Second}
	// Inconclusive overall, but its first requests passed the gate: the
	// canary may widen (gate hook 200), not be promoted (confirm 409).
	gated := open
	gated.Gate = canary.GateVerdict{Outcome: canary.Pass, Requests: 1000, MinRequests: 500, Reason: canary.GateSignificant}
	for _, tc := range []struct {
		v                       canary.Verdict
		rollback, confirm, gate int
		wantPass, wantFailed    bool
	}{
		{v: failed, rollback: 200, confirm: 409, gate: 409, wantFailed: true},
		{v: passed, rollback: 409, confirm: 200, gate: 200, wantPass: true},
		{v: open, rollback: 409, confirm: 409, gate: 409},
		{v: gated, rollback: 409, confirm: 409, gate: 200},
	} {
		b.Set(ranker, tc.v, time.Now())
		resp, err := http.Get(srv.URL + "/canary/v1/verdict?model=ranker&version=v8")
		if err != nil {
			t.Fatal(err)
		}
		var wv WebVerdict
		err = json.NewDecoder(resp.Body).Decode(&wv)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: status %d, %v", tc.v.Outcome, resp.StatusCode, err)
		}
		// Argo's jsonPath "{$.outcome}" with result == "pass" / "fail".
		if wv.Outcome != tc.v.Outcome || wv.Pass != tc.wantPass || wv.Fail != tc.wantFailed || wv.RollbackRequired != tc.wantFailed || wv.BaselineVersion != "v7" {
			t.Errorf("%s: web verdict %+v", tc.v.Outcome, wv)
		}
		if tc.wantFailed && (len(wv.Evidence) == 0 || wv.FailedRules[0] != canary.RuleErrorRate) {
			t.Errorf("fail verdict without its evidence: %+v", wv)
		}
		if wv.Gate != tc.v.Gate {
			t.Errorf("%s: gate %+v, want %+v", tc.v.Outcome, wv.Gate, tc.v.Gate)
		}
		if tc.v.Outcome == canary.Inconclusive && wv.TimeLeftSeconds != 90 {
			t.Errorf("time left %v", wv.TimeLeftSeconds)
		}
		for path, want := range map[string]int{"rollback": tc.rollback, "confirm": tc.confirm, "gate": tc.gate} {
			body := `{"name":"ranker","namespace":"prod","phase":"Progressing","checksum":"85d557f47b","metadata":{"version":"v8"}}`
			resp, err := http.Post(srv.URL+"/canary/v1/flagger/"+path, "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("%s: flagger %s hook answered %d, want %d", tc.v.Outcome, path, resp.StatusCode, want)
			}
		}
	}
	for _, u := range []string{"/canary/v1/verdict?model=ranker&version=v1"} {
		resp, err := http.Get(srv.URL + u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", u, resp.StatusCode)
		}
	}
	resp, err := http.Post(srv.URL+"/canary/v1/flagger/rollback", "application/json", strings.NewReader("{"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("bad hook body: %d, want 400", resp.StatusCode)
	}
}
