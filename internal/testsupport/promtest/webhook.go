package promtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// Notified is one alert of a notification Alertmanager sent to a webhook.
type Notified struct {
	Status      string            `json:"status"`
	Fingerprint string            `json:"fingerprint"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// Webhook is a local webhook receiver for Alertmanager: it keeps every
// alert of every notification it gets.
type Webhook struct {
	URL    string
	mu     sync.Mutex
	alerts []Notified
}

// AlertmanagerWithWebhook starts a webhook receiver and Alertmanager
// sending it every alert at once (grouped by incident_key, resolved ones
// too).
func AlertmanagerWithWebhook(t testing.TB) (*Process, *Webhook) {
	t.Helper()
	h := &Webhook{}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	h.URL = srv.URL
	am := Alertmanager(t, fmt.Sprintf(`route:
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
`, srv.URL))
	return am, h
}

// ServeHTTP implements http.Handler.
func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		Alerts []Notified `json:"alerts"`
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.alerts = append(h.alerts, msg.Alerts...)
}

// Alerts returns the alerts received so far, in order.
func (h *Webhook) Alerts() []Notified {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.alerts)
}

// Has reports whether any alert received so far satisfies cond.
func (h *Webhook) Has(cond func(a Notified) bool) bool {
	return slices.ContainsFunc(h.Alerts(), cond)
}

// WaitFor polls cond until it holds or d passes (a bound for another
// process to act, not a performance assertion).
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %v", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
