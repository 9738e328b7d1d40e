package alerting_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting"
	"github.com/fleetwatch/fleetwatch/alerting/route"
	"github.com/fleetwatch/fleetwatch/alerting/store"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/fixture"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// A GPU fell off the bus (XID 79): a critical GPU incident, the page at
// stake in the outbox tests.
const xidKey = "gpu_failure/gpu/dc-0/row-0-0/rack-02/node-009/GPU-009-4"

func xid79() []fleet.Detection {
	return fixture.Thermal("fleet_health", "gpu_hard_fault", "critical", t0, testFleet.Select(func(g fixture.GPU) bool { return g.UUID == "GPU-009-4" }))
}

// hookRequest is one request a webhook receiver saw.
type hookRequest struct {
	idem, action, key string
	answered          bool
}

// hook is a webhook receiver that, while hang is set, holds every request
// until its client gives up, or else answers the scripted statuses first,
// then 200.
type hook struct {
	mu      sync.Mutex
	hang    bool
	script  []int
	entered chan struct{}
	reqs    []hookRequest
}

func newHook() *hook { return &hook{entered: make(chan struct{})} }

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var msg route.WebhookMessage
	if err := json.Unmarshal(body, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := hookRequest{idem: r.Header.Get("Idempotency-Key"), action: string(msg.Action), key: msg.Incident.Key}
	if req.idem != msg.IdempotencyKey {
		req.idem = "header " + req.idem + " != body " + msg.IdempotencyKey
	}
	h.mu.Lock()
	if h.hang {
		h.reqs = append(h.reqs, req)
		select {
		case <-h.entered:
		default:
			close(h.entered)
		}
		h.mu.Unlock()
		<-r.Context().Done()
		return
	}
	code := http.StatusOK
	if len(h.script) > 0 {
		code, h.script = h.script[0], h.script[1:]
	}
	req.answered = code == http.StatusOK
	h.reqs = append(h.reqs, req)
	h.mu.Unlock()
	w.WriteHeader(code)
}

func (h *hook) requests() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.reqs...)
}

// checkOnePage checks that the receiver acted on exactly one trigger of
// xidKey: every request was that trigger, under one idempotency key, and
// exactly one was answered 200.
func checkOnePage(t *testing.T, reqs []hookRequest) {
	t.Helper()
	answered := 0
	for _, r := range reqs {
		if r.action != "trigger" || r.key != xidKey || r.idem != reqs[0].idem {
			t.Errorf("request %+v: want only the trigger of %s, all under idempotency key %q", r, xidKey, reqs[0].idem)
		}
		if r.answered {
			answered++
		}
	}
	if answered != 1 {
		t.Errorf("the receiver accepted %d pages (%+v), want exactly 1", answered, reqs)
	}
}

// count runs a count() query.
func count(t *testing.T, db *storage.Client, query string) uint64 {
	t.Helper()
	var n uint64
	if err := db.QueryScalar(context.Background(), fmt.Sprintf(query, db.Config().Database), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// outboxState is the current state of the trigger of xidKey.
func outboxState(t *testing.T, db *storage.Client) string {
	t.Helper()
	var st string
	q := fmt.Sprintf("SELECT argMax(state, version) FROM %s.notification_outbox WHERE incident_key = '%s' AND action = 'trigger' GROUP BY id",
		db.Config().Database, xidKey)
	if err := db.QueryScalar(context.Background(), q, &st); err != nil {
		t.Fatalf("outbox state of the trigger: %v", err)
	}
	return st
}

func hookRouting(url string, timeout time.Duration) route.Config {
	return route.Config{Default: []string{"pager"}, Receivers: []route.ReceiverConfig{{Name: "pager", Type: route.TypeWebhook, URL: url,
		Timeout: timeout, InitialBackoff: time.Second, MaxBackoff: time.Minute}}}
}

// analyzer is what a (re)started analyzer builds over db: the store, the
// router with its outbox resumed, the manager with its incidents restored.
func analyzer(t *testing.T, db *storage.Client, routing route.Config, opts ...route.Option) (*alerting.Manager, *route.Router) {
	t.Helper()
	ctx := context.Background()
	st, err := store.New(db)
	if err != nil {
		t.Fatal(err)
	}
	router, err := route.New(routing, append([]route.Option{route.WithRecorder(st), route.WithOutbox(st)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := router.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := alerting.NewDefaultConfig()
	cfg.Routing = routing
	m := newManager(t, cfg, alerting.Deps{Inventory: testFleet.Inventory(), Store: st, Notifier: router})
	if err := m.Restore(ctx, t0); err != nil {
		t.Fatal(err)
	}
	return m, router
}

// The environment that makes this test binary the analyzer that is killed
// (see TestMain).
const (
	childEnv  = "FLEETWATCH_OUTBOX_CHILD_DSN"
	childHook = "FLEETWATCH_OUTBOX_CHILD_HOOK"
)

// outboxChild is the analyzer of TestPageSurvivesAKillMidDelivery: on the
// test's ClickHouse it opens the XID 79 incident and starts delivering its
// page to a receiver that never answers (timeout one hour) until the test
// kills the process. It returns only if something went wrong.
func outboxChild() int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "outbox child: "+format+"\n", args...)
		return 1
	}
	ctx := context.Background()
	cfg, err := storage.ParseDSN(os.Getenv(childEnv))
	if err != nil {
		return fail("%v", err)
	}
	db, err := storage.Open(ctx, cfg)
	if err != nil {
		return fail("%v", err)
	}
	st, err := store.New(db)
	if err != nil {
		return fail("%v", err)
	}
	routing := hookRouting(os.Getenv(childHook), time.Hour)
	router, err := route.New(routing, route.WithRecorder(st), route.WithOutbox(st))
	if err != nil {
		return fail("%v", err)
	}
	acfg := alerting.NewDefaultConfig()
	acfg.Routing = routing
	m, err := alerting.NewManager(acfg, alerting.Deps{Inventory: testFleet.Inventory(), Store: st, Notifier: router})
	if err != nil {
		return fail("%v", err)
	}
	go func() { _ = router.Run(ctx) }()
	for i := 0; i < 3; i++ {
		w := fleet.Window{Start: t0.Add(time.Duration(i) * 30 * time.Second), End: t0.Add(time.Duration(i+1) * 30 * time.Second)}
		dets := xid79()
		for j := range dets {
			dets[j].Time, dets[j].WindowStart = w.End, w.Start
		}
		if err := m.Consume(ctx, fleet.Evaluation{Detector: "fleet_health", Window: w, Detections: dets}); err != nil {
			return fail("%v", err)
		}
	}
	time.Sleep(10 * time.Minute) // the delivery hangs; the test kills us long before
	return fail("not killed")
}

// The pager endpoint hangs and the analyzer is killed (SIGKILL) in the
// middle of delivering a critical XID 79 page. The page was recorded in the
// outbox before the attempt; an analyzer started on the same ClickHouse
// resumes it and the receiver gets it once, under the same idempotency
// key, and no second page when the windows replay.
func TestPageSurvivesAKillMidDelivery(t *testing.T) {
	db := chtest.NewDB(t)
	h := newHook()
	h.hang = true
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	var out bytes.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+db.Config().DSN(), childHook+"="+srv.URL)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-h.entered:
	case err := <-exited:
		t.Fatalf("the analyzer exited before delivering (%v):\n%s", err, out.String())
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("the page never reached the receiver:\n%s", out.String())
	}
	if st := outboxState(t, db); st != route.StatePending {
		t.Fatalf("while the first attempt hangs the outbox says %q, want pending: recorded before it was sent", st)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	if n := count(t, db, "SELECT count() FROM %s.notifications"); n != 0 {
		t.Fatalf("the killed analyzer recorded %d attempts, want none (it died in its first)", n)
	}

	// The endpoint recovers; the analyzer restarts on the same ClickHouse
	// and the engine replays the last window and goes on.
	h.mu.Lock()
	h.hang = false
	h.mu.Unlock()
	m, router := analyzer(t, db, hookRouting(srv.URL, time.Minute))
	if err := router.Dispatch(context.Background()); err != nil {
		t.Fatal(err)
	}
	feed(t, m, "fleet_health", 30*time.Second, 2, 4, always, xid79())
	checkOnePage(t, h.requests())
	if len(h.requests()) != 2 {
		t.Errorf("the receiver saw %d requests, want 2: the hung one and the resumed one", len(h.requests()))
	}
	if st := outboxState(t, db); st != route.StateSent {
		t.Errorf("outbox state %q, want sent", st)
	}
	if n := count(t, db, "SELECT count() FROM %s.notifications WHERE action = 'trigger' AND outcome = 'sent'"); n != 1 {
		t.Errorf("notifications has %d sent triggers, want 1", n)
	}
}

// A receiver that fails three times (503) and then answers gets exactly one
// page; every attempt is recorded, and counted with its reason.
func TestRetriesUntilDeliveredExactlyOnce(t *testing.T) {
	db := chtest.NewDB(t)
	h := newHook()
	h.script = []int{http.StatusServiceUnavailable, http.StatusServiceUnavailable, http.StatusServiceUnavailable}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	clock := &offsetClock{}
	m, router := analyzer(t, db, hookRouting(srv.URL, time.Minute), route.WithClock(clock.now, nil))
	feed(t, m, "fleet_health", 30*time.Second, 0, 3, always, xid79())
	// Each pass comes after the longest backoff, without waiting for it.
	for i := 1; i <= 5 && router.Stats().Pending["pager"] > 0; i++ {
		clock.set(time.Duration(i) * time.Minute)
		if err := router.Dispatch(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	feed(t, m, "fleet_health", 30*time.Second, 3, 3, always, xid79())
	reqs := h.requests()
	checkOnePage(t, reqs)
	if len(reqs) != 4 {
		t.Errorf("the receiver saw %d requests, want 4 (3 refused, 1 accepted)", len(reqs))
	}
	if st := outboxState(t, db); st != route.StateSent {
		t.Errorf("outbox state %q, want sent", st)
	}
	if n := count(t, db, "SELECT count() FROM %s.notifications WHERE outcome = 'retry' AND http_status = 503"); n != 3 {
		t.Errorf("notifications has %d recorded 503 retries, want 3", n)
	}
	stats := router.Stats()
	if a, f := stats.Attempts[route.Key{Receiver: "pager", Label: route.OutcomeSent}], stats.Failures[route.Key{Receiver: "pager", Label: route.Reason5xx}]; a != 1 || f != 3 {
		t.Errorf("counted %d sent and %d http_5xx failures, want 1 and 3", a, f)
	}
}

// failingOutbox refuses every write: the analyzer dies before its outbox
// entry is stored, after the incident was.
type failingOutbox struct{ route.Outbox }

func (failingOutbox) Put(context.Context, []route.Entry) error { return errors.New("disk full") }

// The incident's opening is stored, but the outbox cannot record its page,
// so nothing is sent (nothing leaves before it is recorded), and the
// analyzer stops. The restarted analyzer finds the stored transition with
// no outbox entry and pages it, once.
func TestStoredTransitionWithoutOutboxEntryIsPagedAfterRestart(t *testing.T) {
	db := chtest.NewDB(t)
	h := newHook()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	st, err := store.New(db)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := analyzer(t, db, hookRouting(srv.URL, time.Minute), route.WithOutbox(failingOutbox{st}))
	feed(t, m, "fleet_health", 30*time.Second, 0, 3, always, xid79())
	if n := len(h.requests()); n != 0 {
		t.Fatalf("%d requests reached the receiver although the outbox could not record the page", n)
	}
	if n := count(t, db, "SELECT count() FROM %s.incidents WHERE status = 'open'"); n == 0 {
		t.Fatal("the open incident was not stored")
	}
	m, router := analyzer(t, db, hookRouting(srv.URL, time.Minute))
	if err := router.Dispatch(context.Background()); err != nil {
		t.Fatal(err)
	}
	feed(t, m, "fleet_health", 30*time.Second, 2, 4, always, xid79())
	checkOnePage(t, h.requests())
	if st := outboxState(t, db); st != route.StateSent {
		t.Errorf("outbox state %q, want sent", st)
	}
}
