package alerting_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting"
	"github.com/fleetwatch/fleetwatch/alerting/route"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/fixture"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
)

// offsetClock is the wall clock moved by an offset the test sets: the
// router's resend interval passes without waiting for it.
type offsetClock struct {
	mu sync.Mutex
	d  time.Duration
}

func (c *offsetClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.d)
}

func (c *offsetClock) set(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.d = d
}

// amAlert is the part of Alertmanager's API v2 gettableAlert we check.
type amAlert struct {
	Fingerprint  string            `json:"fingerprint"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	GeneratorURL string            `json:"generatorURL"`
	Status       struct {
		State string `json:"state"`
	} `json:"status"`
}

// amAlerts lists the alerts Alertmanager holds for an incident key
// (GET /api/v2/alerts leaves out alerts whose endsAt has passed).
func amAlerts(t *testing.T, base, key string) []amAlert {
	t.Helper()
	resp, err := http.Get(base + "/api/v2/alerts?filter=" + url.QueryEscape(fmt.Sprintf("incident_key=%q", key)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v2/alerts: %s: %s", resp.Status, body)
	}
	var out []amAlert
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// An incident whose severity and class change while it fires is one alert
// in Debian's Alertmanager, and the resolve resolves that alert at once,
// not when its endsAt runs out.
func TestAlertmanagerSeesOneAlertPerIncident(t *testing.T) {
	am, hook := promtest.AlertmanagerWithWebhook(t)
	clock := &offsetClock{}
	cfg := alerting.NewDefaultConfig()
	cfg.Routing.Default = []string{"am"}
	cfg.Routing.Receivers = []route.ReceiverConfig{{Name: "am", Type: route.TypeAlertmanager, URL: am.URL, ResendInterval: time.Minute}}
	cfg.Routing.ExternalURL = "https://grafana.example/d/fleetwatch-investigation"
	router, err := route.New(cfg.Routing, route.WithClock(clock.now, nil))
	if err != nil {
		t.Fatal(err)
	}
	m := newManager(t, cfg, alerting.Deps{Inventory: testFleet.Inventory(), Notifier: router})
	gpu := testFleet.Select(func(g fixture.GPU) bool { return g.UUID == "GPU-009-4" })
	const key = "thermal/gpu/dc-0/row-0-0/rack-02/node-009/GPU-009-4"
	hot := fixture.Thermal("health_thermal", "gpu_thermal", "error", t0, gpu)
	feed(t, m, "health_thermal", 30*time.Second, 0, 3, always, hot)
	first := amAlerts(t, am.URL, key)
	if len(first) != 1 || first[0].Labels["severity"] != "error" || first[0].Labels["class"] != "gpu_thermal" {
		t.Fatalf("after the trigger Alertmanager holds %+v, want one alert with severity error and class gpu_thermal", first)
	}
	if first[0].GeneratorURL != cfg.Routing.ExternalURL {
		t.Errorf("generatorURL %q, want the external URL %q", first[0].GeneratorURL, cfg.Routing.ExternalURL)
	}
	// The GPU's cooling fails too: the incident turns critical and its
	// main class becomes cooling. A minute later (the resend interval) it
	// is re-sent.
	cooling := fixture.Thermal("spc_gpu", "cooling", "critical", t0, gpu)
	worse := []fleet.Detection{hot[0], cooling[0]}
	worse[0].Severity = "critical"
	clock.set(2 * time.Minute)
	feed(t, m, "health_thermal", 30*time.Second, 3, 1, always, worse)
	clock.set(0)
	feed(t, m, "health_thermal", 30*time.Second, 4, 2, always, worse)
	if inc := m.Incidents()[0]; inc.Severity != "critical" || inc.Class != "cooling" {
		t.Fatalf("incident severity %s, class %s: the test needs them changed", inc.Severity, inc.Class)
	}
	now := amAlerts(t, am.URL, key)
	if len(now) != 1 || now[0].Fingerprint != first[0].Fingerprint {
		t.Fatalf("after the change Alertmanager holds %d alerts %+v, want the one alert of the trigger", len(now), now)
	}
	if now[0].Annotations["severity"] != "critical" || now[0].Annotations["class"] != "cooling" {
		t.Errorf("annotations %v: want the current severity and class", now[0].Annotations)
	}
	// Cooling restored: resolved after three clear windows and
	// keep_firing_for (10 minutes: 20 windows).
	feed(t, m, "health_thermal", 30*time.Second, 6, 21, func(int) bool { return false }, nil)
	if left := amAlerts(t, am.URL, key); len(left) != 0 {
		t.Errorf("right after the resolve Alertmanager still holds %+v firing", left)
	}
	promtest.WaitFor(t, 30*time.Second, "Alertmanager to notify the alert resolved", func() bool {
		return hook.Has(func(a promtest.Notified) bool { return a.Status == "resolved" && a.Fingerprint == first[0].Fingerprint })
	})
	for _, a := range hook.Alerts() {
		if a.Fingerprint != first[0].Fingerprint {
			t.Errorf("Alertmanager notified a second alert %+v for the incident", a)
		}
	}
}
