package route_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/alerting/route"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func sample(key string) incident.Incident {
	return incident.Incident{Key: key, Title: "thermal: rack dc-0/row-0-0/rack-03 — 32 detections on 32 entities",
		Level: incident.LevelRack, Scope: "dc-0/row-0-0/rack-03", Family: "thermal", Class: "gpu_thermal", Severity: "critical",
		Status: incident.StatusOpen, Team: "dc-ops", Oncall: "dc-ops-oncall", Runbook: "https://runbooks.example/cdu",
		OpenedAt: t0, FirstSeen: t0, Labels: map[string]string{"key": key, "class": "gpu_thermal", "level": "rack", "severity": "critical", "team": "dc-ops"},
		Evidence: []incident.Evidence{{Key: "health_thermal/GPU-012-0", Class: "gpu_thermal", Severity: "warning", Entity: "GPU-012-0", Summary: "88 °C",
			Action: "drain the rack", Detail: `{"temperature_c":88,"limit_c":85}`, FirstSeen: t0}}}
}

// recorder keeps attempts in memory.
type recorder struct {
	mu sync.Mutex
	as []route.Attempt
}

func (r *recorder) Record(_ context.Context, as []route.Attempt) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.as = append(r.as, as...)
	return nil
}

func (r *recorder) outcomes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, a := range r.as {
		out = append(out, a.Receiver+":"+string(a.Action)+":"+a.Outcome)
	}
	return out
}

// validatePagerDuty checks an Events API v2 request against the schema
// PagerDuty documents, returning the problems.
func validatePagerDuty(body []byte) []string {
	var p []string
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil {
		return []string{"not JSON: " + err.Error()}
	}
	for k := range ev {
		if !slices.Contains([]string{"routing_key", "event_action", "dedup_key", "payload", "images", "links", "client", "client_url"}, k) {
			p = append(p, "unknown field "+k)
		}
	}
	if rk, _ := ev["routing_key"].(string); len(rk) != 32 {
		p = append(p, "routing_key must be the 32-character integration key")
	}
	action, _ := ev["event_action"].(string)
	if !slices.Contains([]string{"trigger", "acknowledge", "resolve"}, action) {
		p = append(p, "event_action "+action)
	}
	if dk, _ := ev["dedup_key"].(string); dk == "" || len(dk) > 255 {
		p = append(p, "dedup_key must be 1-255 characters")
	}
	if action != "trigger" {
		if _, ok := ev["payload"]; ok {
			p = append(p, action+" must not carry a payload")
		}
		return p
	}
	pl, ok := ev["payload"].(map[string]any)
	if !ok {
		return append(p, "trigger needs a payload")
	}
	for k := range pl {
		if !slices.Contains([]string{"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}, k) {
			p = append(p, "unknown payload field "+k)
		}
	}
	if s, _ := pl["summary"].(string); s == "" || len(s) > 1024 {
		p = append(p, "payload.summary must be 1-1024 characters")
	}
	if s, _ := pl["source"].(string); s == "" {
		p = append(p, "payload.source is required")
	}
	if s, _ := pl["severity"].(string); !slices.Contains([]string{"critical", "error", "warning", "info"}, s) {
		p = append(p, "payload.severity "+s)
	}
	if ts, ok := pl["timestamp"].(string); ok {
		if _, err := time.Parse(time.RFC3339, ts); err != nil {
			p = append(p, "payload.timestamp is not ISO 8601")
		}
	}
	if _, ok := pl["custom_details"].(map[string]any); !ok {
		p = append(p, "payload.custom_details should be an object")
	}
	if links, ok := ev["links"].([]any); ok {
		for _, l := range links {
			if m, _ := l.(map[string]any); m == nil || m["href"] == "" {
				p = append(p, "link without href")
			}
		}
	}
	return p
}

// pagerDuty is a local Events API v2 endpoint answering with the scripted
// statuses first, then 202.
type pagerDuty struct {
	mu       sync.Mutex
	script   []int
	events   []map[string]any
	problems []string
}

func (pd *pagerDuty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	pd.mu.Lock()
	defer pd.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/v2/enqueue" || r.Header.Get("Content-Type") != "application/json" {
		pd.problems = append(pd.problems, "bad request line or content type")
	}
	pd.problems = append(pd.problems, validatePagerDuty(body)...)
	if len(pd.script) > 0 {
		code := pd.script[0]
		pd.script = pd.script[1:]
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(code)
		return
	}
	var ev map[string]any
	_ = json.Unmarshal(body, &ev)
	pd.events = append(pd.events, ev)
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"status":"success","message":"Event processed","dedup_key":"x"}`))
}

const routingKey = "R0123456789abcdef0123456789abcde"

// manualClock moves only when a test says so or the router sleeps (for its
// rate limit), which it records.
type manualClock struct {
	mu    sync.Mutex
	t     time.Time
	slept []time.Duration
}

func (c *manualClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.slept = append(c.slept, d)
		c.t = c.t.Add(d)
	}
	return nil
}

func (c *manualClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func newRouter(t *testing.T, cfg route.Config, rec *recorder, opts ...route.Option) (*route.Router, *manualClock) {
	t.Helper()
	clock := &manualClock{t: t0}
	r, err := route.New(cfg, append([]route.Option{route.WithRecorder(rec), route.WithClock(clock.now, clock.sleep)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r, clock
}

// drain moves the clock to each next retry and runs a delivery pass until
// nothing is pending (at most n passes); it returns the waits.
func drain(t *testing.T, r *route.Router, clock *manualClock, n int) []time.Duration {
	t.Helper()
	var waits []time.Duration
	for i := 0; i < n; i++ {
		q := route.Queue(r)
		if len(q) == 0 {
			return waits
		}
		// The first entry of each receiver and incident is the one due
		// next; those behind it wait for it.
		next, head := q[0].NextAt, map[string]bool{}
		for _, e := range q {
			if k := e.Receiver + " " + e.Incident.Key; !head[k] {
				head[k] = true
				if e.NextAt.Before(next) {
					next = e.NextAt
				}
			}
		}
		waits = append(waits, next.Sub(clock.now()))
		clock.set(next)
		if err := r.Dispatch(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("still pending after %d passes: %+v", n, route.Queue(r))
	return nil
}

// Trigger, acknowledge and resolve reach PagerDuty in order, as valid
// Events v2 events with the incident key as dedup_key; 429 and 502 are
// retried from the outbox, the first retry after Retry-After, and the
// acknowledgement waits for its trigger.
func TestPagerDutyEventsAndRetries(t *testing.T) {
	pd := &pagerDuty{script: []int{http.StatusTooManyRequests, http.StatusBadGateway}}
	srv := httptest.NewServer(pd)
	t.Cleanup(srv.Close)
	cfg := route.Config{
		Routes:    []route.Rule{{Match: map[string]string{"team": "dc-ops"}, Receivers: []string{"pd"}}},
		Receivers: []route.ReceiverConfig{{Name: "pd", Type: route.TypePagerDuty, URL: srv.URL + "/v2/enqueue", RoutingKey: routingKey, InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Second}},
	}
	rec := &recorder{}
	r, clock := newRouter(t, cfg, rec)
	inc := sample("thermal/rack/dc-0/row-0-0/rack-03")
	ctx := context.Background()
	for _, a := range []incident.Action{incident.ActionTrigger, incident.ActionAcknowledge, incident.ActionResolve} {
		inc.Transitions++
		if err := r.Notify(ctx, []route.Notification{{Action: a, Incident: inc}}); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
	}
	waits := drain(t, r, clock, 5)
	if len(pd.problems) > 0 {
		t.Errorf("payloads violate the Events v2 schema: %v", pd.problems)
	}
	var actions []string
	for _, ev := range pd.events {
		actions = append(actions, ev["event_action"].(string))
		if ev["dedup_key"] != inc.Key {
			t.Errorf("dedup_key %v, want the incident key", ev["dedup_key"])
		}
	}
	if !slices.Equal(actions, []string{"trigger", "acknowledge", "resolve"}) {
		t.Fatalf("PagerDuty got %v", actions)
	}
	pl := pd.events[0]["payload"].(map[string]any)
	if pl["severity"] != "critical" || pl["component"] != inc.Scope || pl["group"] != "rack" || pl["class"] != "gpu_thermal" {
		t.Errorf("payload %v", pl)
	}
	cd := pl["custom_details"].(map[string]any)
	if cd["runbook"] != inc.Runbook || len(cd["evidence"].([]any)) != 1 {
		t.Fatalf("custom_details %v: want the runbook and the evidence", cd)
	}
	// The detection's own evidence travels as JSON, not as a quoted string.
	if ev := cd["evidence"].([]any)[0].(map[string]any); ev["action"] != "drain the rack" ||
		ev["detail"].(map[string]any)["limit_c"] != 85.0 {
		t.Errorf("evidence item %v: want the action and the detail as an object", ev)
	}
	want := []string{"pd:trigger:retry", "pd:trigger:retry", "pd:trigger:sent", "pd:acknowledge:sent", "pd:resolve:sent"}
	if got := rec.outcomes(); !slices.Equal(got, want) {
		t.Errorf("recorded attempts %v, want %v", got, want)
	}
	if len(waits) != 2 || waits[0] < time.Second {
		t.Errorf("waits before the retries %v: want two, the first honouring Retry-After: 1", waits)
	}
}

func TestPermanentErrorsAreNotRetried(t *testing.T) {
	pd := &pagerDuty{script: []int{http.StatusBadRequest}}
	srv := httptest.NewServer(pd)
	t.Cleanup(srv.Close)
	cfg := route.Config{Default: []string{"pd"},
		Receivers: []route.ReceiverConfig{{Name: "pd", Type: route.TypePagerDuty, URL: srv.URL + "/v2/enqueue", RoutingKey: routingKey, InitialBackoff: time.Millisecond}}}
	rec := &recorder{}
	r, _ := newRouter(t, cfg, rec)
	if err := r.Notify(context.Background(), []route.Notification{{Action: incident.ActionTrigger, Incident: sample("k")}}); err == nil {
		t.Error("a 400 should be reported")
	}
	if got := rec.outcomes(); !slices.Equal(got, []string{"pd:trigger:dropped"}) {
		t.Errorf("attempts %v", got)
	}
}

func TestRateLimitPerRoutingKey(t *testing.T) {
	pd := &pagerDuty{}
	srv := httptest.NewServer(pd)
	t.Cleanup(srv.Close)
	cfg := route.Config{Default: []string{"a", "b"}, Receivers: []route.ReceiverConfig{
		{Name: "a", Type: route.TypePagerDuty, URL: srv.URL + "/v2/enqueue", RoutingKey: routingKey, RatePerMinute: 3},
		{Name: "b", Type: route.TypePagerDuty, URL: srv.URL + "/v2/enqueue", RoutingKey: routingKey, RatePerMinute: 3},
	}}
	r, clock := newRouter(t, cfg, &recorder{})
	var ns []route.Notification
	for _, k := range []string{"k1", "k2"} {
		ns = append(ns, route.Notification{Action: incident.ActionTrigger, Incident: sample(k)})
	}
	if err := r.Notify(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	// Four events on one key at 3/min: the fourth waits about 20 s.
	if slept := clock.slept; len(slept) != 1 || slept[0] < 15*time.Second || slept[0] > 21*time.Second {
		t.Errorf("rate-limit waits %v, want one of about 20s", slept)
	}
}

func TestRoutingRules(t *testing.T) {
	cfg := route.Config{
		Routes: []route.Rule{
			{Match: map[string]string{"severity": "critical"}, MatchRE: map[string]string{"level": "rack|row|datacenter"}, Receivers: []string{"facility"}, Continue: true},
			{Match: map[string]string{"team": "dc-ops"}, Receivers: []string{"ops"}},
			{MatchRE: map[string]string{"domain": "recsys|ads"}, Receivers: []string{"recsys"}},
		},
		Default: []string{"catchall"},
	}
	for _, n := range []string{"facility", "ops", "recsys", "catchall"} {
		cfg.Receivers = append(cfg.Receivers, route.ReceiverConfig{Name: n, Type: route.TypeWebhook, URL: "http://127.0.0.1:1/" + n})
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		labels map[string]string
		want   []string
	}{
		{map[string]string{"severity": "critical", "level": "rack", "team": "dc-ops"}, []string{"facility", "ops"}},
		{map[string]string{"severity": "critical", "level": "gpu", "team": "dc-ops"}, []string{"ops"}},
		{map[string]string{"severity": "error", "level": "model", "domain": "recsys"}, []string{"recsys"}},
		{map[string]string{"severity": "error", "level": "model", "domain": "recsys2"}, []string{"catchall"}},
	}
	for _, tc := range cases {
		if got := route.Receivers(&cfg, tc.labels); !slices.Equal(got, tc.want) {
			t.Errorf("labels %v → %v, want %v", tc.labels, got, tc.want)
		}
	}
	bad := route.Config{Default: []string{"nope"}, Routes: []route.Rule{{MatchRE: map[string]string{"x": "("}}},
		Receivers: []route.ReceiverConfig{{Name: "p", Type: route.TypePagerDuty}, {Name: "p", Type: "sms"}}}
	err := bad.Validate()
	for _, want := range []string{"unknown receiver \"nope\"", "match_re x", "needs routing_key", "defined twice", "type \"sms\""} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to mention %s", err, want)
		}
	}
}

// Notifications route on the labels the incident opened with: a severity
// that rose since does not send its resolve to receivers that never got
// its trigger.
func TestFollowUpsRouteLikeTheTrigger(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	cfg := route.Config{
		Routes:  []route.Rule{{Match: map[string]string{"severity": "critical"}, Receivers: []string{"pager"}}},
		Default: []string{"tickets"},
		Receivers: []route.ReceiverConfig{{Name: "pager", Type: route.TypeWebhook, URL: srv.URL + "/pager"},
			{Name: "tickets", Type: route.TypeWebhook, URL: srv.URL + "/tickets"}},
	}
	r, err := route.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inc := sample("k")
	inc.PageLabels = map[string]string{"key": "k", "severity": "error"}
	inc.Status = incident.StatusResolved
	if err := r.Notify(context.Background(), []route.Notification{{Action: incident.ActionResolve, Incident: inc}}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"/tickets"}) {
		t.Errorf("resolve went to %v, want /tickets, where the trigger (severity error) went", got)
	}
}

// A receiver that hangs costs one timed-out attempt per delivery pass: the
// other receiver gets its notifications in the same pass, and the hung
// one's keep waiting in the outbox for the next.
func TestHungReceiverDoesNotHoldUpOthers(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // then a client that gives up ends r.Context()
		mu.Lock()
		got[r.URL.Path]++
		mu.Unlock()
		if r.URL.Path == "/hung" {
			<-r.Context().Done()
		}
	}))
	t.Cleanup(srv.Close)
	cfg := route.Config{Default: []string{"hung", "ok"}, Receivers: []route.ReceiverConfig{
		{Name: "hung", Type: route.TypeWebhook, URL: srv.URL + "/hung", Timeout: 50 * time.Millisecond},
		{Name: "ok", Type: route.TypeWebhook, URL: srv.URL + "/ok"}}}
	r, _ := newRouter(t, cfg, &recorder{})
	var ns []route.Notification
	for _, k := range []string{"k1", "k2"} {
		ns = append(ns, route.Notification{Action: incident.ActionTrigger, Incident: sample(k)})
	}
	if err := r.Notify(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got["/ok"] != 2 || got["/hung"] != 1 {
		t.Errorf("requests %v: want both notifications at /ok and one attempt at /hung", got)
	}
	st := r.Stats()
	if st.Pending["hung"] != 2 || st.Pending["ok"] != 0 || st.Failures[route.Key{Receiver: "hung", Label: route.ReasonTimeout}] != 1 {
		t.Errorf("pending %v, failures %v: want hung's two waiting and one timeout counted", st.Pending, st.Failures)
	}
}

// Each retry of a webhook carries the same Idempotency-Key; an entry past
// expire_after expires, counted, instead of being retried for ever.
func TestWebhookRetriesKeepTheirKeyUntilExpiry(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		w.WriteHeader(http.StatusBadGateway)
	}))
	t.Cleanup(srv.Close)
	cfg := route.Config{Default: []string{"hook"}, Receivers: []route.ReceiverConfig{
		{Name: "hook", Type: route.TypeWebhook, URL: srv.URL, ExpireAfter: 10 * time.Minute, MaxBackoff: time.Minute}}}
	rec := &recorder{}
	r, clock := newRouter(t, cfg, rec)
	inc := sample("k")
	inc.Transitions = 1
	if err := r.Notify(context.Background(), []route.Notification{{Action: incident.ActionTrigger, Incident: inc}}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 11 && len(route.Queue(r)) > 0; i++ {
		clock.set(t0.Add(time.Duration(i) * time.Minute))
		err := r.Dispatch(context.Background())
		if i == 10 && (err == nil || !strings.Contains(err.Error(), "expired")) {
			t.Errorf("pass at expire_after returned %v, want the expiry", err)
		}
	}
	if len(keys) < 2 || slices.Compact(slices.Clone(keys))[0] != "k#1/trigger" || len(slices.Compact(slices.Clone(keys))) != 1 {
		t.Errorf("Idempotency-Keys %v: want every attempt under k#1/trigger", keys)
	}
	if n := len(route.Queue(r)); n != 0 {
		t.Errorf("%d entries still pending after expire_after", n)
	}
	if st := r.Stats(); st.Expired["hook"] != 1 {
		t.Errorf("expired %v, want 1 for hook", st.Expired)
	}
}

// Run retries a failed delivery when the retry falls due.
func TestRunDeliversAndRetries(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	cfg := route.Config{Default: []string{"hook"}, Receivers: []route.ReceiverConfig{
		{Name: "hook", Type: route.TypeWebhook, URL: srv.URL, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}}}
	rec := &recorder{}
	r, err := route.New(cfg, route.WithRecorder(rec))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	// Whether Notify or Run makes the first attempt, only Run retries.
	if err := r.Notify(ctx, []route.Notification{{Action: incident.ActionTrigger, Incident: sample("k")}}); err != nil {
		t.Fatal(err)
	}
	promtest.WaitFor(t, 30*time.Second, "the retried delivery", func() bool { return slices.Contains(rec.outcomes(), "hook:trigger:sent") })
	if got := rec.outcomes(); !slices.Equal(got, []string{"hook:trigger:retry", "hook:trigger:sent"}) {
		t.Errorf("attempts %v, want one retry then sent", got)
	}
}
