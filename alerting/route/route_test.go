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
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func sample(key string) incident.Incident {
	return incident.Incident{Key: key, Title: "thermal: rack dc-0/row-0-0/rack-03 — 32 detections on 32 entities",
		Level: incident.LevelRack, Scope: "dc-0/row-0-0/rack-03", Family: "thermal", Class: "gpu_thermal", Severity: "critical",
		Status: incident.StatusOpen, Team: "dc-ops", Oncall: "dc-ops-oncall", Runbook: "https://runbooks.example/cdu",
		OpenedAt: t0, FirstSeen: t0, Labels: map[string]string{"key": key, "class": "gpu_thermal", "level": "rack", "severity": "critical", "team": "dc-ops"},
		Evidence: []incident.Evidence{{Key: "health_thermal/GPU-012-0", Class: "gpu_thermal", Severity: "warning", Entity: "GPU-012-0", Summary: "88 °C", FirstSeen: t0}}}
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

func newRouter(t *testing.T, cfg route.Config, rec *recorder, slept *[]time.Duration) *route.Router {
	t.Helper()
	var mu sync.Mutex
	r, err := route.New(cfg, route.WithRecorder(rec), route.WithClock(time.Now, func(_ context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		if d > 0 {
			*slept = append(*slept, d)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPagerDutyEventsAndRetries(t *testing.T) {
	pd := &pagerDuty{script: []int{http.StatusTooManyRequests, http.StatusBadGateway}}
	srv := httptest.NewServer(pd)
	t.Cleanup(srv.Close)
	cfg := route.Config{
		Routes:    []route.Rule{{Match: map[string]string{"team": "dc-ops"}, Receivers: []string{"pd"}}},
		Receivers: []route.ReceiverConfig{{Name: "pd", Type: route.TypePagerDuty, URL: srv.URL + "/v2/enqueue", RoutingKey: routingKey, InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Second}},
	}
	rec := &recorder{}
	var slept []time.Duration
	r := newRouter(t, cfg, rec, &slept)
	inc := sample("thermal/rack/dc-0/row-0-0/rack-03")
	ctx := context.Background()
	for _, a := range []incident.Action{incident.ActionTrigger, incident.ActionAcknowledge, incident.ActionResolve} {
		if err := r.Notify(ctx, []route.Notification{{Action: a, Incident: inc}}); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
	}
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
		t.Errorf("PagerDuty got %v", actions)
	}
	pl := pd.events[0]["payload"].(map[string]any)
	if pl["severity"] != "critical" || pl["component"] != inc.Scope || pl["group"] != "rack" || pl["class"] != "gpu_thermal" {
		t.Errorf("payload %v", pl)
	}
	cd := pl["custom_details"].(map[string]any)
	if cd["runbook"] != inc.Runbook || len(cd["evidence"].([]any)) != 1 {
		t.Errorf("custom_details %v: want the runbook and the evidence", cd)
	}
	want := []string{"pd:trigger:retry", "pd:trigger:retry", "pd:trigger:sent", "pd:acknowledge:sent", "pd:resolve:sent"}
	if got := rec.outcomes(); !slices.Equal(got, want) {
		t.Errorf("recorded attempts %v, want %v", got, want)
	}
	if len(slept) < 2 || slept[0] < time.Second {
		t.Errorf("backoff sleeps %v: want two, the first honouring Retry-After: 1", slept)
	}
}

func TestPermanentErrorsAreNotRetried(t *testing.T) {
	pd := &pagerDuty{script: []int{http.StatusBadRequest}}
	srv := httptest.NewServer(pd)
	t.Cleanup(srv.Close)
	cfg := route.Config{Default: []string{"pd"},
		Receivers: []route.ReceiverConfig{{Name: "pd", Type: route.TypePagerDuty, URL: srv.URL + "/v2/enqueue", RoutingKey: routingKey, InitialBackoff: time.Millisecond}}}
	rec := &recorder{}
	var slept []time.Duration
	r := newRouter(t, cfg, rec, &slept)
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
	var slept []time.Duration
	r := newRouter(t, cfg, &recorder{}, &slept)
	var ns []route.Notification
	for _, k := range []string{"k1", "k2"} {
		ns = append(ns, route.Notification{Action: incident.ActionTrigger, Incident: sample(k)})
	}
	if err := r.Notify(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	// Four events on one key at 3/min: the fourth waits about 20 s.
	if len(slept) != 1 || slept[0] < 15*time.Second || slept[0] > 21*time.Second {
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
