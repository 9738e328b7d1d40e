package route_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/alerting/route"
	"github.com/fleetwatch/fleetwatch/internal/promtest"
)

// amWebhook is the receiver Alertmanager forwards to: it keeps each
// notification's status and alerts' incident keys.
type amWebhook struct {
	mu   sync.Mutex
	msgs []string // "status incident_key"
}

func (h *amWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		Status string `json:"status"`
		Alerts []struct {
			Status      string            `json:"status"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"alerts"`
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range msg.Alerts {
		h.msgs = append(h.msgs, a.Status+" "+a.Labels["incident_key"]+" "+a.Labels["team"]+" "+a.Annotations["runbook_url"])
	}
}

func (h *amWebhook) has(s string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs {
		if m == s {
			return true
		}
	}
	return false
}

// startAlertmanager runs Alertmanager forwarding every alert to
// webhookURL and returns its base URL.
func startAlertmanager(t *testing.T, webhookURL string) string {
	t.Helper()
	return promtest.Alertmanager(t, fmt.Sprintf(`route:
  receiver: hook
  group_by: [incident_key]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %s
        send_resolved: true
`, webhookURL)).URL
}

// waitFor polls cond until it holds or the deadline passes (a generous
// bound for a process to start, not a performance assertion).
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %v", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRealAlertmanagerForwardsToWebhook(t *testing.T) {
	hook := &amWebhook{}
	hsrv := httptest.NewServer(hook)
	t.Cleanup(hsrv.Close)
	base := startAlertmanager(t, hsrv.URL)
	rec := &recorder{}
	r, err := route.New(route.Config{Default: []string{"am"},
		Receivers: []route.ReceiverConfig{{Name: "am", Type: route.TypeAlertmanager, URL: base, ResendInterval: time.Minute}}},
		route.WithRecorder(rec))
	if err != nil {
		t.Fatal(err)
	}
	inc := sample("thermal/rack/dc-0/row-0-0/rack-03")
	ctx := context.Background()
	if err := r.Notify(ctx, []route.Notification{{Action: incident.ActionTrigger, Incident: inc}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the firing alert at the webhook", func() bool {
		return hook.has("firing " + inc.Key + " dc-ops https://runbooks.example/cdu")
	})
	// Within the resend interval a refresh sends nothing.
	if err := r.Refresh(ctx, []incident.Incident{inc}); err != nil {
		t.Fatal(err)
	}
	inc.Status = incident.StatusResolved
	if err := r.Notify(ctx, []route.Notification{{Action: incident.ActionResolve, Incident: inc}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the resolved alert at the webhook", func() bool {
		return hook.has("resolved " + inc.Key + " dc-ops https://runbooks.example/cdu")
	})
	want := []string{"am:trigger:sent", "am:resolve:sent"}
	if got := rec.outcomes(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("attempts %v, want %v", got, want)
	}
}
