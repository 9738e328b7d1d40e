package analyzer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// scaledObject is the part of KEDA's ScaledObject the test checks.
type scaledObject struct {
	Kind string `yaml:"kind"`
	Spec struct {
		Min      int `yaml:"minReplicaCount"`
		Max      int `yaml:"maxReplicaCount"`
		Triggers []struct {
			Type     string            `yaml:"type"`
			Metadata map[string]string `yaml:"metadata"`
		} `yaml:"triggers"`
	} `yaml:"spec"`
}

// kedaObject reads the ScaledObject documented in docs/DEPLOY.md: the
// first YAML document of the fenced block after the keda-scaledobject
// marker.
func kedaObject(t *testing.T) scaledObject {
	t.Helper()
	doc, err := os.ReadFile("../../docs/DEPLOY.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := bytes.Cut(doc, []byte("<!-- keda-scaledobject -->\n```yaml\n"))
	block, _, ok2 := bytes.Cut(rest, []byte("```"))
	if !ok || !ok2 {
		t.Fatal("docs/DEPLOY.md has no keda-scaledobject block")
	}
	var so scaledObject
	if err := yaml.NewDecoder(bytes.NewReader(block)).Decode(&so); err != nil {
		t.Fatalf("the documented ScaledObject: %v", err)
	}
	if so.Kind != "ScaledObject" || len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "prometheus" {
		t.Fatalf("documented ScaledObject %+v", so)
	}
	return so
}

// TestKEDAQueryOnPrometheus: the analyzer, with the example catalog, reads
// user_embedding_v3 at 2,000 requests/s (20 sampled rows/s kept at
// sample_rate 0.01) and 50 ms from ClickHouse: L = 2000 × 0.05 = 100 in
// flight, / 8 per replica = 12.5 → 13 → 14 in steps of 2, within 10..100.
// Debian's Prometheus scrapes its /metrics and answers the documented
// ScaledObject's query with 14, and KEDA's arithmetic (ceil(value /
// threshold), clamped to the object's min and max) asks for 14 replicas.
func TestKEDAQueryOnPrometheus(t *testing.T) {
	so := kedaObject(t)
	trig := so.Spec.Triggers[0].Metadata
	threshold, err := strconv.ParseFloat(trig["threshold"], 64)
	if err != nil || trig["query"] == "" || trig["serverAddress"] == "" {
		t.Fatalf("trigger metadata %v: %v", trig, err)
	}
	cat, err := catalog.Load("../../deploy/catalog.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if sv := cat.Model("user_embedding_v3").Serving; so.Spec.Min != sv.MinReplicas || so.Spec.Max != sv.MaxReplicas {
		t.Errorf("ScaledObject replicas %d..%d, catalog %d..%d", so.Spec.Min, so.Spec.Max, sv.MinReplicas, sv.MaxReplicas)
	}

	c := chtest.NewDB(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	var ev storage.InferenceEventBlock
	for s := -600; s < 60; s++ {
		for k := range 20 {
			ev.Append(&fleet.InferenceEvent{Time: t0.Add(time.Duration(s) * time.Second), Model: "user_embedding_v3", ModelVersion: "3.2.1",
				RequestID: fmt.Sprint(s, "-", k), LatencyMs: 50, Status: "ok", SampleRate: 0.01})
		}
	}
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, ev.Block()); err != nil {
		t.Fatal(err)
	}

	cfg := NewDefaultConfig()
	cfg.ClickHouse = c.Config()
	cfg.Listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(promtest.FreePort(t)))
	cfg.Drift.Enabled, cfg.SPCModels.Enabled, cfg.SPCLabels.Enabled, cfg.SPCGPU.Enabled = false, false, false, false
	cfg.Health.Enabled, cfg.Jobs.Enabled, cfg.Alerting.Enabled = false, false, false
	cfg.Alerting.Catalog = "../../deploy/catalog.example.yaml"
	cfg.Scaling.Enabled = true
	cfg.Engine.StartAt = t0.Add(-time.Minute)
	a, err := New(ctx, cfg, c, chtest.Logger(t), WithClock(engine.NewManualClock(t0.Add(cfg.Engine.Lateness))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Engine.Step(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })

	prom := promtest.Prometheus(t, time.Second, cfg.Listen)
	got := prom.WaitQuery(t, trig["query"], 30*time.Second, func(s []promtest.Sample) bool { return len(s) == 1 })
	if got[0].Value != 14 {
		t.Errorf("query %q = %v, want 14", trig["query"], got[0].Value)
	}
	replicas := min(max(int(math.Ceil(got[0].Value/threshold)), so.Spec.Min), so.Spec.Max)
	if replicas != 14 {
		t.Errorf("KEDA would ask for %d replicas, want 14", replicas)
	}
	lintScalingMetrics(t, "http://"+cfg.Listen+"/metrics")
	for q, want := range map[string]float64{
		`max(fleetwatch_scaling_requests_per_second{model="user_embedding_v3"})`: 2000,
		`max(fleetwatch_scaling_concurrency{model="user_embedding_v3"})`:         100,
		`max(fleetwatch_scaling_latency_p99_seconds{model="user_embedding_v3"})`: 0.05,
	} {
		s, err := prom.Query(ctx, q)
		if err != nil || len(s) != 1 || math.Abs(s[0].Value-want) > 1e-6*want {
			t.Errorf("%s = %v, %v; want %v", q, s, err, want)
		}
	}
}

func TestScalingConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"off", func(*Config) {}, ""},
		{"on with a catalog", func(c *Config) { c.Scaling.Enabled, c.Alerting.Catalog = true, "catalog.yaml" }, ""},
		{"on without a catalog", func(c *Config) { c.Scaling.Enabled = true }, "scaling: needs the catalog"},
		{"bad window", func(c *Config) {
			c.Scaling.Enabled, c.Alerting.Catalog, c.Scaling.Window = true, "catalog.yaml", 90*time.Second
		}, "scaling window 1m30s"},
		{"name taken", func(c *Config) {
			c.Scaling.Enabled, c.Alerting.Catalog, c.Scaling.Name = true, "catalog.yaml", c.Jobs.Name
		}, "used twice"},
	} {
		cfg := NewDefaultConfig()
		tc.change(&cfg)
		err := cfg.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !bytes.Contains([]byte(err.Error()), []byte(tc.want))) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// lintScalingMetrics runs promtool check metrics on the analyzer's
// fleetwatch_scaling_* families (skipped without promtool).
func lintScalingMetrics(t *testing.T, url string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed: metric names not linted")
		return
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var mine []byte
	n := 0
	for line := range bytes.Lines(body) {
		if bytes.Contains(line, []byte("fleetwatch_scaling_")) {
			mine = append(mine, line...)
			if !bytes.HasPrefix(line, []byte("#")) {
				n++
			}
		}
	}
	if n != 7 {
		t.Errorf("%d fleetwatch_scaling_ samples on /metrics, want 7: the 9 gauges but queue depth and SM activity, unknown here", n)
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = bytes.NewReader(mine)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
