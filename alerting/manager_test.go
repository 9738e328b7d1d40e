package alerting_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting"
	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/alerting/route"
	"github.com/fleetwatch/fleetwatch/alerting/store"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/fixture"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		// This process is the analyzer TestPageSurvivesAKillMidDelivery kills.
		os.Exit(outboxChild())
	}
	os.Exit(chtest.Run(m))
}

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// pages records notifications as "action key" lines.
type pages struct {
	mu  sync.Mutex
	got []string
	by  map[string]string // key → oncall of the trigger
}

func (p *pages) Notify(_ context.Context, ns []route.Notification) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range ns {
		line := string(n.Action) + " " + n.Incident.Key
		if n.Incident.Silenced {
			line += " (silenced)"
		}
		p.got = append(p.got, line)
		if p.by == nil {
			p.by = map[string]string{}
		}
		p.by[n.Incident.Key] = n.Incident.Oncall
	}
	return nil
}

func (p *pages) Enqueue(ctx context.Context, ns []route.Notification) error { return p.Notify(ctx, ns) }

func (p *pages) Refresh(context.Context, []incident.Incident) error { return nil }

func (p *pages) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

// feed runs windows [from, from+n) of detector through m, each with dets
// (re-stamped to the window) when on(i) holds and none otherwise.
func feed(t *testing.T, m *alerting.Manager, detector string, iv time.Duration, from, n int, on func(i int) bool, dets []fleet.Detection) {
	t.Helper()
	for i := from; i < from+n; i++ {
		w := fleet.Window{Start: t0.Add(time.Duration(i) * iv), End: t0.Add(time.Duration(i+1) * iv)}
		var ev []fleet.Detection
		if on(i) {
			for _, d := range dets {
				d.Time, d.WindowStart = w.End, w.Start
				ev = append(ev, d)
			}
		}
		if err := m.Consume(context.Background(), fleet.Evaluation{Detector: detector, Window: w, Detections: ev}); err != nil {
			t.Fatal(err)
		}
	}
}

func always(int) bool { return true }

func newManager(t *testing.T, cfg alerting.Config, deps alerting.Deps) *alerting.Manager {
	t.Helper()
	m, err := alerting.NewManager(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var testFleet = fixture.Fleet{Datacenters: 1, Rows: 2, Racks: 4, Nodes: 4, GPUs: 8}

func TestRackCoolingFailureIsOneRackIncident(t *testing.T) {
	p := &pages{}
	m := newManager(t, alerting.NewDefaultConfig(), alerting.Deps{Inventory: testFleet.Inventory(), Notifier: p})
	// The CDU fails: first two nodes' GPUs heat up, then the whole rack.
	rack := testFleet.Select(func(g fixture.GPU) bool { return g.Rack == "rack-02" })
	early := fixture.Thermal("health_thermal", "gpu_thermal", "warning", t0, rack[:3])
	all := fixture.Thermal("health_thermal", "gpu_thermal", "warning", t0, rack)
	feed(t, m, "health_thermal", 30*time.Second, 0, 1, always, early)
	feed(t, m, "health_thermal", 30*time.Second, 1, 10, always, all)
	want := []string{"trigger thermal/rack/dc-0/row-0-0/rack-02"}
	if got := p.lines(); !slices.Equal(got, want) {
		t.Fatalf("pages %v, want %v", got, want)
	}
	incs := m.Incidents()
	if len(incs) != 1 || len(incs[0].Evidence) != 32 || incs[0].Severity != "critical" || incs[0].Status != incident.StatusOpen {
		t.Fatalf("incidents %+v: want one open critical rack incident with 32 GPUs as evidence", incs)
	}
	// Cooling restored: resolved once, after 3 clear windows and
	// keep_firing_for (10 minutes: 20 windows).
	feed(t, m, "health_thermal", 30*time.Second, 11, 19, func(int) bool { return false }, nil)
	if got := p.lines(); !slices.Equal(got, want) {
		t.Fatalf("pages %v before keep_firing_for, want %v", got, want)
	}
	feed(t, m, "health_thermal", 30*time.Second, 30, 2, func(int) bool { return false }, nil)
	want = append(want, "resolve thermal/rack/dc-0/row-0-0/rack-02")
	if got := p.lines(); !slices.Equal(got, want) {
		t.Errorf("pages %v, want %v", got, want)
	}
}

func TestOneGPUFanIsOneGPUIncident(t *testing.T) {
	p := &pages{}
	m := newManager(t, alerting.NewDefaultConfig(), alerting.Deps{Inventory: testFleet.Inventory(), Notifier: p})
	gpu := testFleet.Select(func(g fixture.GPU) bool { return g.UUID == "GPU-009-4" })
	feed(t, m, "health_thermal", 30*time.Second, 0, 20, always, fixture.Thermal("health_thermal", "gpu_thermal", "critical", t0, gpu))
	want := []string{"trigger thermal/gpu/dc-0/row-0-0/rack-02/node-009/GPU-009-4"}
	if got := p.lines(); !slices.Equal(got, want) {
		t.Errorf("pages %v, want %v", got, want)
	}
}

func TestLifecycle(t *testing.T) {
	gpu := testFleet.Select(func(g fixture.GPU) bool { return g.UUID == "GPU-009-4" })
	dets := fixture.Thermal("health_thermal", "gpu_thermal", "critical", t0, gpu)
	const key = "thermal/gpu/dc-0/row-0-0/rack-02/node-009/GPU-009-4"
	cases := []struct {
		name    string
		on      func(i int) bool
		windows int
		want    []string
	}{
		{"a one-window blip never pages", func(i int) bool { return i == 3 }, 20, nil},
		{"gaps shorter than resolve_after keep one incident", func(i int) bool { return i%3 != 2 }, 30, []string{"trigger " + key}},
		{"resolve after 3 clear windows and keep_firing_for", func(i int) bool { return i < 5 }, 30, []string{"trigger " + key, "resolve " + key}},
		{"not before keep_firing_for", func(i int) bool { return i < 5 }, 23, []string{"trigger " + key}},
		{"flapping within keep_firing_for: one incident, one page", func(i int) bool { return i%16 < 4 }, 80, []string{"trigger " + key}},
		{"back after it resolved: reopened under its key", func(i int) bool { return i%40 < 4 }, 60,
			[]string{"trigger " + key, "resolve " + key, "trigger " + key}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &pages{}
			m := newManager(t, alerting.NewDefaultConfig(), alerting.Deps{Inventory: testFleet.Inventory(), Notifier: p})
			feed(t, m, "health_thermal", 30*time.Second, 0, tc.windows, tc.on, dets)
			if got := p.lines(); !slices.Equal(got, tc.want) {
				t.Errorf("pages %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSilenceByLabels(t *testing.T) {
	cfg := alerting.NewDefaultConfig()
	cfg.Silences = []alerting.Silence{{Matchers: []string{"rack=~rack-0[0-3]", "family=thermal"}, Starts: t0, Ends: t0.Add(time.Hour), Comment: "CDU maintenance"}}
	p := &pages{}
	m := newManager(t, cfg, alerting.Deps{Inventory: testFleet.Inventory(), Notifier: p})
	rack := testFleet.Select(func(g fixture.GPU) bool { return g.Rack == "rack-02" })
	feed(t, m, "health_thermal", 30*time.Second, 0, 4, always, fixture.Thermal("health_thermal", "gpu_thermal", "warning", t0, rack))
	want := []string{"trigger thermal/rack/dc-0/row-0-0/rack-02 (silenced)"}
	if got := p.lines(); !slices.Equal(got, want) {
		t.Errorf("pages %v, want %v", got, want)
	}
}

func pipelineCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.Parse([]byte(fixture.PipelineCatalog()))
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// webhooks is a set of local webhook receivers, one per path.
type webhooks struct {
	mu  sync.Mutex
	got []string // "path action key"
}

func (h *webhooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var msg route.WebhookMessage
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, r.URL.Path+" "+string(msg.Action)+" "+msg.Incident.Key)
}

func TestPipelineDriftIsOneIncidentRoutedToItsOwner(t *testing.T) {
	hooks := &webhooks{}
	srv := httptest.NewServer(hooks)
	t.Cleanup(srv.Close)
	cfg := alerting.NewDefaultConfig()
	cfg.Routing = route.Config{
		Routes: []route.Rule{
			{Match: map[string]string{"team": "feature-platform"}, Receivers: []string{"feature-platform"}},
			{Match: map[string]string{"domain": "recsys"}, Receivers: []string{"recsys"}},
		},
		Default: []string{"catchall"},
		Receivers: []route.ReceiverConfig{
			{Name: "feature-platform", Type: route.TypeWebhook, URL: srv.URL + "/feature-platform"},
			{Name: "recsys", Type: route.TypeWebhook, URL: srv.URL + "/recsys"},
			{Name: "catchall", Type: route.TypeWebhook, URL: srv.URL + "/catchall"},
		},
	}
	router, err := route.New(cfg.Routing)
	if err != nil {
		t.Fatal(err)
	}
	m := newManager(t, cfg, alerting.Deps{Catalog: pipelineCatalog(t), Notifier: router})
	dets := fixture.Models("psi", "covariate_drift", "critical", t0, fixture.Names("recsys", 0, 12))
	feed(t, m, "psi", 5*time.Minute, 0, 6, always, dets)
	want := []string{"/feature-platform trigger drift/upstream/feature_store/user_features_v2"}
	if !slices.Equal(hooks.got, want) {
		t.Errorf("webhooks got %v, want %v", hooks.got, want)
	}
	incs := m.Incidents()
	if len(incs) != 1 || len(incs[0].Models) != 12 || incs[0].Oncall != "feature-platform-oncall" {
		t.Errorf("incidents %+v", incs)
	}
}

func TestLatencyIncidentLinksToHardwareOnItsServingGPUs(t *testing.T) {
	p := &pages{}
	m := newManager(t, alerting.NewDefaultConfig(), alerting.Deps{Catalog: pipelineCatalog(t), Inventory: testFleet.Inventory(), Notifier: p})
	node := testFleet.Select(func(g fixture.GPU) bool { return g.Node == "node-000" })
	feed(t, m, "health_thermal", time.Minute, 0, 3, always, fixture.Thermal("health_thermal", "gpu_thermal", "critical", t0, node))
	feed(t, m, "slo_burn", time.Minute, 3, 3, always, fixture.Models("slo_burn", "latency", "critical", t0, []string{"recsys-00"}))
	var lat incident.Incident
	for _, inc := range m.Incidents() {
		if inc.Key == "latency/model/recsys-00" {
			lat = inc
		}
	}
	if lat.Cause != "thermal/node/dc-0/row-0-0/rack-00/node-000" || lat.Oncall != "recsys-oncall" {
		t.Errorf("latency incident cause %q, oncall %q: want the node's thermal incident and the model's owner", lat.Cause, lat.Oncall)
	}
}

func TestRestartResumesWithoutRepaging(t *testing.T) {
	db := chtest.NewDB(t)
	st, err := store.New(db)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dep := storage.ModelDeploymentBlock{}
	dep.Append(&storage.ModelDeployment{Time: t0.Add(-time.Hour), Model: "recsys-03", ModelVersion: "1.1.0", PreviousVersion: "1.0.0", Change: "rollout", Actor: "ci"})
	w, err := db.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, dep.Block()); err != nil {
		t.Fatal(err)
	}
	hooks := &webhooks{}
	srv := httptest.NewServer(hooks)
	t.Cleanup(srv.Close)
	cfg := alerting.NewDefaultConfig()
	cfg.Routing = route.Config{Default: []string{"hook"}, Receivers: []route.ReceiverConfig{{Name: "hook", Type: route.TypeWebhook, URL: srv.URL + "/hook"}}}
	start := func() *alerting.Manager {
		router, err := route.New(cfg.Routing, route.WithRecorder(st), route.WithOutbox(st))
		if err != nil {
			t.Fatal(err)
		}
		m := newManager(t, cfg, alerting.Deps{Catalog: pipelineCatalog(t), Inventory: testFleet.Inventory(), Store: st, Notifier: router, Deployments: st})
		if err := m.Restore(ctx, t0); err != nil {
			t.Fatal(err)
		}
		return m
	}
	rack := fixture.Thermal("health_thermal", "gpu_thermal", "warning", t0, testFleet.Select(func(g fixture.GPU) bool { return g.Rack == "rack-05" }))
	drift := fixture.Models("psi", "covariate_drift", "critical", t0, fixture.Names("recsys", 0, 12))
	m := start()
	feed(t, m, "health_thermal", time.Minute, 0, 3, always, rack)
	feed(t, m, "psi", time.Minute, 0, 3, always, drift)
	// The analyzer restarts; the engine replays the last window and goes on.
	m = start()
	if n := len(m.Incidents()); n != 2 {
		t.Fatalf("restored %d incidents, want 2", n)
	}
	feed(t, m, "health_thermal", time.Minute, 2, 4, always, rack)
	feed(t, m, "psi", time.Minute, 2, 4, always, drift)
	want := []string{"/hook trigger thermal/rack/dc-0/row-0-1/rack-05", "/hook trigger drift/upstream/feature_store/user_features_v2"}
	if !slices.Equal(hooks.got, want) {
		t.Errorf("webhook got %v, want %v (no page again after the restart)", hooks.got, want)
	}
	var triggers uint64
	if err := db.QueryScalar(ctx, "SELECT count() FROM "+db.Config().Database+".notifications WHERE action = 'trigger' AND outcome = 'sent'", &triggers); err != nil {
		t.Fatal(err)
	}
	if triggers != 2 {
		t.Errorf("notifications table has %d sent triggers, want 2", triggers)
	}
	var evidence uint64
	if err := db.QueryScalar(ctx, "SELECT count(DISTINCT detection_key) FROM "+db.Config().Database+".incident_evidence WHERE incident_key = 'drift/upstream/feature_store/user_features_v2'", &evidence); err != nil {
		t.Fatal(err)
	}
	if evidence != 12 {
		t.Errorf("incident_evidence has %d detections for the pipeline incident, want 12", evidence)
	}
	for _, inc := range m.Incidents() {
		if inc.Level == incident.LevelUpstream && (len(inc.Suspects) != 1 || inc.Suspects[0].Version != "1.1.0") {
			t.Errorf("pipeline incident suspects %+v, want recsys-03's deployment of 1.1.0", inc.Suspects)
		}
	}
	// fleetctl acknowledges; the analyzer picks it up and notifies once.
	if err := st.Acknowledge(ctx, "thermal/rack/dc-0/row-0-1/rack-05", "alice", t0.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	feed(t, m, "health_thermal", time.Minute, 6, 2, always, rack)
	if got := hooks.got[len(hooks.got)-1]; got != "/hook acknowledge thermal/rack/dc-0/row-0-1/rack-05" {
		t.Errorf("last webhook %q, want the acknowledgement", got)
	}
}

// stuck is a receiver that hangs on its first delivery until released.
type stuck struct {
	entered, release chan struct{}
	once             sync.Once
}

func (s *stuck) Notify(context.Context, []route.Notification) error {
	s.once.Do(func() { close(s.entered); <-s.release })
	return nil
}

func (s *stuck) Enqueue(context.Context, []route.Notification) error { return nil }

func (s *stuck) Refresh(context.Context, []incident.Incident) error { return nil }

// A receiver that hangs does not hold up readers of the incidents (the
// analyzer's /metrics), and deliveries keep their order: another
// detector's window is advanced at once and delivered after the hung one.
func TestSlowReceiverDoesNotBlockReaders(t *testing.T) {
	s := &stuck{entered: make(chan struct{}), release: make(chan struct{})}
	m := newManager(t, alerting.NewDefaultConfig(), alerting.Deps{Inventory: testFleet.Inventory(), Notifier: s})
	gpu := testFleet.Select(func(g fixture.GPU) bool { return g.UUID == "GPU-009-4" })
	dets := fixture.Thermal("health_thermal", "gpu_thermal", "critical", t0, gpu)
	done := make(chan struct{})
	go func() {
		defer close(done)
		feed(t, m, "health_thermal", 30*time.Second, 0, 5, always, dets) // pages, and the page hangs
	}()
	select {
	case <-s.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no notification was sent")
	}
	read := make(chan int, 1)
	go func() { read <- len(m.Incidents()) }()
	select {
	case n := <-read:
		if n != 1 {
			t.Errorf("%d incidents while the page hangs, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Incidents() waited for the hung receiver")
	}
	other := make(chan struct{})
	go func() {
		defer close(other)
		w := fleet.Window{Start: t0, End: t0.Add(time.Minute)}
		if err := m.Consume(context.Background(), fleet.Evaluation{Detector: "spc_models", Window: w}); err != nil {
			t.Error(err)
		}
	}()
	close(s.release)
	for _, c := range []chan struct{}{done, other} {
		select {
		case <-c:
		case <-time.After(10 * time.Second):
			t.Fatal("a window never finished after the receiver answered")
		}
	}
}

// A telemetry gap that widens from one node to its row is one pipeline
// incident at the wider scope; the node's resolves as merged into it.
func TestWideningTelemetryGapMergesIntoTheWiderScope(t *testing.T) {
	p := &pages{}
	m := newManager(t, alerting.NewDefaultConfig(), alerting.Deps{Inventory: testFleet.Inventory(), Notifier: p})
	gap := func(keep func(g fixture.GPU) bool) []fleet.Detection {
		return fixture.Thermal("fleet_health", "telemetry_gap", "warning", t0, testFleet.Select(keep))
	}
	feed(t, m, "fleet_health", 30*time.Second, 0, 3, always, gap(func(g fixture.GPU) bool { return g.Node == "node-005" }))
	feed(t, m, "fleet_health", 30*time.Second, 3, 3, always, gap(func(g fixture.GPU) bool { return g.Row == "row-0-0" }))
	const node, row = "telemetry_gap/pipeline/dc-0/row-0-0/rack-01/node-005", "telemetry_gap/pipeline/dc-0/row-0-0"
	want := []string{"trigger " + node, "resolve " + node, "trigger " + row}
	if got := p.lines(); !slices.Equal(got, want) {
		t.Errorf("pages %v, want %v", got, want)
	}
}

// Stale features of one pipeline (the freshness detector names the
// pipeline, not the models) and the drift they cause in some consumers are
// one incident, paged once to the pipeline's on-call, however many
// features breach and windows pass.
func TestStalePipelineFeaturesPageThePipelineOnce(t *testing.T) {
	p := &pages{}
	m := newManager(t, alerting.NewDefaultConfig(), alerting.Deps{Catalog: pipelineCatalog(t), Notifier: p})
	var dets []fleet.Detection
	for _, f := range []string{"purchases_30d", "session_clicks", "cart_value"} {
		dets = append(dets, fleet.Detection{Detector: "feature_freshness", Class: "freshness", Severity: "error",
			EntityType: "pipeline", Entity: "feature_store/user_features_v2", Key: "freshness/feature_store/user_features_v2/" + f,
			Feature: f, Value: 7200, Threshold: 3600})
	}
	feed(t, m, "feature_freshness", time.Minute, 0, 10, always, dets)
	feed(t, m, "psi", 5*time.Minute, 0, 3, always, fixture.Models("psi", "covariate_drift", "warning", t0, fixture.Names("recsys", 0, 1)))
	want := []string{"trigger drift/upstream/feature_store/user_features_v2"}
	if got := p.lines(); !slices.Equal(got, want) {
		t.Errorf("pages %v, want %v", got, want)
	}
	if p.by["drift/upstream/feature_store/user_features_v2"] != "feature-platform-oncall" {
		t.Errorf("paged %q, want the pipeline's on-call", p.by["drift/upstream/feature_store/user_features_v2"])
	}
	incs := m.Incidents()
	if len(incs) != 1 || !slices.Equal(incs[0].Models, fixture.Names("recsys", 0, 1)) {
		t.Errorf("incidents %+v, want one with the drifting consumer", incs)
	}
}
