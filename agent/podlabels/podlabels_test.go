package podlabels

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/kubeapi/kubeapitest"
	"github.com/fleetwatch/fleetwatch/agent/record"
)

// holders is a fixed GPU → pod map.
type holders struct {
	mu sync.Mutex
	by map[string]record.Workload
	// more are further holders of a shared GPU
	more map[string][]record.Workload
}

func (h *holders) Holders(uuid string) []record.Workload {
	h.mu.Lock()
	defer h.mu.Unlock()
	if w, ok := h.by[uuid]; ok {
		return append([]record.Workload{w}, h.more[uuid]...)
	}
	return nil
}

func (h *holders) Pods() []record.Workload {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []record.Workload
	seen := map[string]bool{}
	all := []record.Workload{}
	for uuid, w := range h.by {
		all = append(append(all, w), h.more[uuid]...)
	}
	for _, w := range all {
		if !seen[w.Namespace+"/"+w.Pod] {
			seen[w.Namespace+"/"+w.Pod] = true
			out = append(out, w)
		}
	}
	return out
}

// apiPods serves pods by "ns/name" (a JSON object), 403 for the pods in
// forbidden, and records the query of each request.
type apiPods struct {
	mu        sync.Mutex
	pods      map[string]string
	forbidden map[string]bool
	queries   []string
}

func (a *apiPods) handle(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.queries = append(a.queries, r.URL.RawQuery)
	ns, name, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/api/v1/namespaces/"), "/pods/")
	if !ok || !kubeapitest.Authorized(r) {
		http.Error(w, `{"kind":"Status","code":401}`, http.StatusUnauthorized)
		return
	}
	if a.forbidden[ns+"/"+name] {
		http.Error(w, `{"kind":"Status","reason":"Forbidden","code":403}`, http.StatusForbidden)
		return
	}
	body, ok := a.pods[ns+"/"+name]
	if !ok {
		http.Error(w, `{"kind":"Status","reason":"NotFound","code":404}`, http.StatusNotFound)
		return
	}
	w.Write([]byte(body))
}

func (a *apiPods) set(key, body string) {
	a.mu.Lock()
	a.pods[key] = body
	a.mu.Unlock()
}

const (
	trainerPod = `{"kind":"Pod","metadata":{"name":"trainer-0","namespace":"ml","uid":"6b1f0c3e-1111-4a2b-9c3d-000000000001",
		"labels":{"team":"search","example.com/cost-center":"cc-4711","model":"ranker","app":"trainer"}}}`
	trainerPodMoved = `{"kind":"Pod","metadata":{"name":"trainer-0","namespace":"ml","uid":"6b1f0c3e-1111-4a2b-9c3d-000000000001",
		"labels":{"team":"ads","example.com/cost-center":"cc-9000","model":"ranker"}}}`
	scorerPod = `{"kind":"Pod","metadata":{"name":"scorer","namespace":"fraud","uid":"u-scorer","labels":{"team":"fraud","environment":"prod"}}}`
)

type fixture struct {
	l     *Labeller
	api   *apiPods
	src   *holders
	calls func() int32
	logs  *bytes.Buffer
	clock *time.Time
}

func start(t *testing.T, cfg Config) *fixture {
	t.Helper()
	api := &apiPods{pods: map[string]string{"ml/trainer-0": trainerPod, "fraud/scorer": scorerPod}, forbidden: map[string]bool{}}
	s := kubeapitest.Start(t, api.handle)
	src := &holders{by: map[string]record.Workload{
		"GPU-a": {Namespace: "ml", Pod: "trainer-0", Container: "trainer"},
		"GPU-b": {Namespace: "ml", Pod: "trainer-0", Container: "trainer"},
		"GPU-c": {Namespace: "fraud", Pod: "scorer", Container: "scorer"},
	}}
	var logs bytes.Buffer
	l, err := New(cfg, s.Client, src, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.api.Close)
	clock := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return clock }
	return &fixture{l: l, api: api, src: src, calls: s.Calls.Load, logs: &logs, clock: &clock}
}

func TestLabelsAreCopied(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.Labels = []string{"team", "cost_center=example.com/cost-center", "environment", "model"}
	f := start(t, cfg)
	if got := f.l.Workload("GPU-a"); got.Team != "" || got.PodUID != "" || got.Pod != "trainer-0" {
		t.Errorf("before the first read: %+v", got)
	}
	f.l.Sync(context.Background())
	for uuid, want := range map[string]record.Workload{
		"GPU-a": {Namespace: "ml", Pod: "trainer-0", Container: "trainer", PodUID: "6b1f0c3e-1111-4a2b-9c3d-000000000001",
			Team: "search", CostCenter: "cc-4711", Model: "ranker"},
		"GPU-c": {Namespace: "fraud", Pod: "scorer", Container: "scorer", PodUID: "u-scorer", Team: "fraud", Environment: "prod"},
		"GPU-x": {},
	} {
		if got := f.l.Workload(uuid); got != want {
			t.Errorf("%s: %+v, want %+v", uuid, got, want)
		}
	}
	if f.calls() != 2 {
		t.Errorf("%d reads for 2 pods holding 3 GPUs, want 2", f.calls())
	}
	for _, q := range f.api.queries {
		if q != "resourceVersion=0" {
			t.Errorf("query %q, want resourceVersion=0 (served from the API server's cache)", q)
		}
	}
	if n := len(f.l.Errors()); n != 0 {
		t.Errorf("errors %v", f.l.Errors())
	}
}

func TestRefreshAndPodsLeaving(t *testing.T) {
	f := start(t, NewDefaultConfig())
	ctx := context.Background()
	f.l.Sync(ctx)
	f.api.set("ml/trainer-0", trainerPodMoved)
	*f.clock = f.clock.Add(4 * time.Minute)
	f.l.Sync(ctx)
	if got := f.l.Workload("GPU-a").Team; got != "search" || f.calls() != 2 {
		t.Errorf("before the refresh: team %q after %d reads, want search after 2", got, f.calls())
	}
	*f.clock = f.clock.Add(time.Minute)
	f.l.Sync(ctx)
	if got := f.l.Workload("GPU-b"); got.Team != "ads" || got.CostCenter != "" || f.calls() != 4 {
		t.Errorf("after 5 minutes: %+v after %d reads, want team ads (cost_center is not copied by default) after 4", got, f.calls())
	}
	// The scorer finishes: it leaves the cache.
	f.src.mu.Lock()
	delete(f.src.by, "GPU-c")
	f.src.mu.Unlock()
	f.l.Sync(ctx)
	if n := f.l.Cached(); n != 1 {
		t.Errorf("%d pods cached after the scorer left, want 1", n)
	}
}

func TestForbiddenIsCountedAndLoggedOnce(t *testing.T) {
	f := start(t, NewDefaultConfig())
	f.api.forbidden["ml/trainer-0"] = true
	ctx := context.Background()
	f.l.Sync(ctx)
	if got := f.l.Workload("GPU-a"); got.Team != "" || got.Pod != "trainer-0" {
		t.Errorf("a forbidden pod: %+v", got)
	}
	if got := f.l.Workload("GPU-c").Team; got != "fraud" {
		t.Errorf("the readable pod: team %q", got)
	}
	f.l.Sync(ctx) // not due again yet
	*f.clock = f.clock.Add(time.Minute)
	f.l.Sync(ctx)
	if n := f.l.Errors()["forbidden"]; n != 2 {
		t.Errorf("forbidden counted %d times, want 2 (retried after a minute, not at every sync)", n)
	}
	if n := strings.Count(f.logs.String(), "needs RBAC get on pods"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, f.logs.String())
	}
	// RBAC fixed: the labels come at the next retry.
	f.api.mu.Lock()
	f.api.forbidden = map[string]bool{}
	f.api.mu.Unlock()
	*f.clock = f.clock.Add(time.Minute)
	f.l.Sync(ctx)
	if got := f.l.Workload("GPU-a").Team; got != "search" {
		t.Errorf("after RBAC was fixed: team %q", got)
	}
}

func TestErrorReasons(t *testing.T) {
	f := start(t, NewDefaultConfig())
	f.api.set("fraud/scorer", `{"metadata": [`)
	delete(f.api.pods, "ml/trainer-0")
	f.l.Sync(context.Background())
	if e := f.l.Errors(); e["not_found"] != 1 || e["decode"] != 1 {
		t.Errorf("errors %v, want not_found 1 and decode 1", e)
	}
}

func TestCacheIsBounded(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.MaxPods = 1
	f := start(t, cfg)
	f.l.Sync(context.Background())
	if n := f.l.Cached(); n != 1 {
		t.Errorf("%d pods cached, want 1", n)
	}
	if n := f.l.Errors()["cache_full"]; n != 1 {
		t.Errorf("cache_full %d, want 1", n)
	}
}

func TestRunReadsANewPodAtOnce(t *testing.T) {
	f := start(t, NewDefaultConfig())
	f.l.now = time.Now
	scorer := f.src.by["GPU-c"]
	delete(f.src.by, "GPU-c")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.l.Run(ctx, time.Hour) }() // no tick during the test
	deadline := time.Now().Add(10 * time.Second)
	for f.l.Workload("GPU-a").Team != "search" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// The scorer is scheduled: its first sample asks for its labels.
	f.src.mu.Lock()
	f.src.by["GPU-c"] = scorer
	f.src.mu.Unlock()
	for f.l.Workload("GPU-c").Team != "fraud" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := f.l.Workload("GPU-c").Team; got != "fraud" {
		t.Errorf("team %q after Run", got)
	}
}

func TestConfig(t *testing.T) {
	if err := NewDefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	off := NewDefaultConfig()
	off.Labels = nil
	off.Refresh = 0
	if off.Enabled() || off.Validate() != nil {
		t.Errorf("empty pod_labels: enabled %v, %v", off.Enabled(), off.Validate())
	}
	bad := NewDefaultConfig()
	bad.Labels = []string{"team", "app", "team=example.com/team", "model="}
	bad.Refresh = time.Second
	err := bad.Validate()
	for _, want := range []string{`"app" is not one of`, `"team" is copied twice`, `no pod label key`, "below 10s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

// A GPU time-sliced between two pods gets each pod's labels on its own
// holder.
func TestSharedGPUHoldersKeepTheirLabels(t *testing.T) {
	f := start(t, NewDefaultConfig())
	f.src.more = map[string][]record.Workload{"GPU-a": {{Namespace: "fraud", Pod: "scorer", Container: "scorer"}}}
	f.l.Sync(context.Background())
	hs := f.l.Holders("GPU-a")
	if len(hs) != 2 || hs[0].Team != "search" || hs[1].Team != "fraud" || hs[1].Environment != "prod" || hs[1].PodUID != "u-scorer" {
		t.Errorf("holders %+v, want trainer-0 (search) then scorer (fraud, prod)", hs)
	}
	if w := f.l.Workload("GPU-a"); w != hs[0] {
		t.Errorf("Workload %+v, want the first holder %+v", w, hs[0])
	}
	if hs := f.l.Holders("GPU-x"); hs != nil {
		t.Errorf("an unknown GPU has holders %+v", hs)
	}
}
