package collector_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/fleetwatch/fleetwatch/collector"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/clienttest"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestMain(m *testing.M) {
	code := chtest.Run(m)
	clienttest.Cleanup()
	os.Exit(code)
}

// colParams fill the test configuration.
type colParams struct {
	DSN, QueueDir         string
	GRPCPort, MetricsPort int
	// HTTPPort, when set, opens the receiver's OTLP/HTTP listener too.
	HTTPPort int
	// Persistent fsyncs the queue before acknowledging (the default config);
	// otherwise the kernel flushes it.
	Persistent   bool
	BatchTimeout string
	// QueueBytes, when set, bounds each signal's queue (SegmentBytes its files).
	QueueBytes, SegmentBytes int64
	LogLevel                 string
	// TLSCert, TLSKey and TokenFile, when set, turn on TLS and bearer-token
	// auth on both OTLP listeners, as the shipped configuration does.
	TLSCert, TLSKey, TokenFile string
	// MaxAge, when set, is the exporter's max_age (a backfill's).
	MaxAge string
	// Decoder, when set, is the receiver's metrics_decoder (default auto,
	// which is direct for this configuration's pipelines).
	Decoder string
}

var colConfig = template.Must(template.New("cfg").Parse(`
{{- define "security"}}{{if .TokenFile}}
        tls:
          cert_file: {{.TLSCert}}
          key_file: {{.TLSKey}}
        auth:
          authenticator: bearertokenauth
{{- end}}{{end}}
{{- if .TokenFile}}
extensions:
  bearertokenauth:
    filename: {{.TokenFile}}
{{- end}}
receivers:
  fleetwatch_otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{{.GRPCPort}}
{{- template "security" .}}
{{- if .HTTPPort}}
      http:
        endpoint: 127.0.0.1:{{.HTTPPort}}
{{- template "security" .}}
{{- end}}
{{- if .Decoder}}
    metrics_decoder: {{.Decoder}}
{{- end}}
exporters:
  fleetwatch_clickhouse:
    dsn: {{.DSN}}
{{- if .MaxAge}}
    max_age: {{.MaxAge}}
{{- end}}
    queue:
      directory: {{.QueueDir}}
      fsync: {{if .Persistent}}always{{else}}never{{end}}
{{- if .QueueBytes}}
      max_bytes: {{.QueueBytes}}
      segment_bytes: {{.SegmentBytes}}
{{- end}}
      block_timeout: 2s
    batch:
      flush_rows: 8192
      max_delay: {{.BatchTimeout}}
    retry:
      initial_interval: 100ms
      max_interval: 500ms
service:
{{- if .TokenFile}}
  extensions: [bearertokenauth]
{{- end}}
  pipelines:
    metrics: {receivers: [fleetwatch_otlp], exporters: [fleetwatch_clickhouse]}
    logs: {receivers: [fleetwatch_otlp], exporters: [fleetwatch_clickhouse]}
    traces: {receivers: [fleetwatch_otlp], exporters: [fleetwatch_clickhouse]}
  telemetry:
    logs:
      level: {{.LogLevel}}
    metrics:
      level: detailed
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: {{.MetricsPort}}
`))

// running is a collector started by a test.
type running struct {
	col      *collector.Running
	endpoint string
	httpURL  string // http://host:port of OTLP/HTTP, when opened
	metrics  string
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.col == nil {
		return
	}
	if err := r.col.Stop(60 * time.Second); err != nil {
		t.Errorf("collector: %v", err)
	}
	r.col = nil
}

func startCollector(t *testing.T, p colParams) *running {
	t.Helper()
	if p.GRPCPort == 0 {
		p.GRPCPort = promtest.FreePort(t)
	}
	if p.MetricsPort == 0 {
		p.MetricsPort = promtest.FreePort(t)
	}
	if p.QueueDir == "" {
		p.QueueDir = t.TempDir()
	}
	if p.LogLevel == "" {
		p.LogLevel = "error"
	}
	if p.BatchTimeout == "" {
		p.BatchTimeout = "100ms"
	}
	var cfg strings.Builder
	if err := colConfig.Execute(&cfg, p); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	col, err := collector.Start(ctx, cfg.String(), "test")
	if err != nil {
		t.Fatal(err)
	}
	r := &running{col: col, endpoint: "127.0.0.1:" + strconv.Itoa(p.GRPCPort),
		metrics: "http://127.0.0.1:" + strconv.Itoa(p.MetricsPort) + "/metrics"}
	if p.HTTPPort != 0 {
		scheme := "http://"
		if p.TLSCert != "" {
			scheme = "https://"
		}
		r.httpURL = scheme + "127.0.0.1:" + strconv.Itoa(p.HTTPPort)
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

// selfMetric sums the collector's own metric name whose labels contain all of want.
func (r *running) selfMetric(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	v, err := promtest.Sum(r.metrics, name, want)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// count returns rows in table, de-duplicated (FINAL).
func count(t *testing.T, c *storage.Client, table, where string) uint64 {
	t.Helper()
	var n uint64
	q := "SELECT count() FROM " + c.Config().Database + "." + table + " FINAL"
	if where != "" {
		q += " WHERE " + where
	}
	if err := c.QueryScalar(context.Background(), q, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
