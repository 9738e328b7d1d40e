package analyzer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/fleetwatch/fleetwatch/alerting"
	"github.com/fleetwatch/fleetwatch/alerting/correlate"
	"github.com/fleetwatch/fleetwatch/alerting/route"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// /metrics counts open incidents by level, class and severity, from the
// alerting manager the analyzer runs.
func TestOpenIncidentsOnMetrics(t *testing.T) {
	topo := fleet.Topology{Datacenter: "dc-0", Row: "row-0", Rack: "rack-01", Node: "node-001"}
	inv := correlate.NewInventory()
	for _, uuid := range []string{"GPU-a", "GPU-b", "GPU-c", "GPU-d"} {
		inv.Add(topo, uuid)
	}
	m, err := alerting.NewManager(alerting.NewDefaultConfig(), alerting.Deps{Inventory: inv})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 3; i++ { // an incident opens after open_after (2) windows
		w := fleet.Window{Start: t0.Add(time.Duration(i) * 30 * time.Second), End: t0.Add(time.Duration(i+1) * 30 * time.Second)}
		d := fleet.Detection{Time: w.End, WindowStart: w.Start, Detector: "fleet_health", Class: "gpu_hard_fault", Severity: "critical",
			EntityType: "gpu", Entity: "GPU-a", Key: "fleet_health/GPU-a", Topology: topo, GPUUUID: "GPU-a"}
		if err := m.Consume(context.Background(), fleet.Evaluation{Detector: "fleet_health", Window: w, Detections: []fleet.Detection{d}}); err != nil {
			t.Fatal(err)
		}
	}
	a := &Analyzer{state: newStateCache(chtest.NewDB(t), time.Hour), alert: &alertingStage{manager: m}}
	reg := prometheus.NewRegistry()
	reg.MustRegister(stateOnly{a})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []*dto.Metric
	for _, mf := range mfs {
		if mf.GetName() == "fleetwatch_incidents_open" {
			got = mf.GetMetric()
		}
	}
	if len(got) != 1 || got[0].GetGauge().GetValue() != 1 {
		t.Fatalf("fleetwatch_incidents_open = %v, want one series at 1", got)
	}
	labels := map[string]string{}
	for _, l := range got[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["level"] != "gpu" || labels["class"] != "gpu_hard_fault" || labels["severity"] != "critical" {
		t.Errorf("labels %v, want level gpu, class gpu_hard_fault, severity critical", labels)
	}
}

// stateOnly collects the state series alone (the engine's need an engine).
type stateOnly struct{ a *Analyzer }

func (stateOnly) Describe(chan<- *prometheus.Desc) {} // unchecked

func (s stateOnly) Collect(ch chan<- prometheus.Metric) { collector{s.a}.collectState(ch) }

// /metrics counts notification attempts by outcome, failures by reason,
// expiries, and what waits in the outbox, per receiver.
func TestNotificationDeliveryOnMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	t.Cleanup(srv.Close)
	cfg := alerting.NewDefaultConfig()
	cfg.Routing.Default = []string{"hook"}
	cfg.Routing.Receivers = []route.ReceiverConfig{{Name: "hook", Type: route.TypeWebhook, URL: srv.URL}}
	router, err := route.New(cfg.Routing)
	if err != nil {
		t.Fatal(err)
	}
	m, err := alerting.NewManager(cfg, alerting.Deps{Notifier: router})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 3; i++ { // opens after two windows: one trigger, refused with 503
		w := fleet.Window{Start: t0.Add(time.Duration(i) * 30 * time.Second), End: t0.Add(time.Duration(i+1) * 30 * time.Second)}
		d := fleet.Detection{Time: w.End, WindowStart: w.Start, Detector: "fleet_health", Class: "gpu_hard_fault", Severity: "critical",
			EntityType: "gpu", Entity: "GPU-a", Key: "fleet_health/GPU-a", GPUUUID: "GPU-a"}
		if err := m.Consume(context.Background(), fleet.Evaluation{Detector: "fleet_health", Window: w, Detections: []fleet.Detection{d}}); err != nil {
			t.Fatal(err)
		}
	}
	stage := &alertingStage{manager: m, router: router}
	reg := prometheus.NewRegistry()
	reg.MustRegister(alertingOnly{stage})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range mt.GetLabel() {
				name += " " + l.GetName() + "=" + l.GetValue()
			}
			got[name] = mt.GetCounter().GetValue() + mt.GetGauge().GetValue()
		}
	}
	for series, want := range map[string]float64{
		"fleetwatch_alerting_notification_attempts_total outcome=retry receiver=hook":   1,
		"fleetwatch_alerting_notification_failures_total reason=http_5xx receiver=hook": 1,
		"fleetwatch_alerting_outbox_pending receiver=hook":                              1,
		"fleetwatch_alerting_notifications_expired_total receiver=hook":                 0,
		"fleetwatch_alerting_outbox_write_errors_total":                                 0,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v; got %v", series, v, ok, want, got)
		}
	}
}

// alertingOnly collects the alerting delivery series alone.
type alertingOnly struct{ s *alertingStage }

func (alertingOnly) Describe(chan<- *prometheus.Desc) {} // unchecked

func (a alertingOnly) Collect(ch chan<- prometheus.Metric) { a.s.collect(ch) }
