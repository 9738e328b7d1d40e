package collector_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/internal/testsupport/clienttest"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// telemetrygen, the Collector project's load generator, sends every kind of
// OTLP item as fast as it can — many points of one series within a second —
// over gRPC and HTTP, and every item it sends is accounted for: stored, or
// rejected with a reason it is told about. Raw rows and rollups agree.
func TestTelemetrygenEveryItemAccountedFor(t *testing.T) {
	db := chtest.NewDB(t)
	col := startCollector(t, colParams{DSN: db.Config().DSN(), HTTPPort: promtest.FreePort(t)})
	grpcArgs := []string{"--otlp-insecure", "--otlp-endpoint", col.endpoint, "--rate", "0"}
	httpArgs := []string{"--otlp-insecure", "--otlp-http", "--otlp-endpoint", strings.TrimPrefix(col.httpURL, "http://"), "--rate", "0"}
	metric := func(name string, transport []string, extra ...string) string {
		args := append([]string{"metrics", "--otlp-metric-name", name}, transport...)
		return clienttest.RunTelemetrygen(t, append(args, extra...)...)
	}
	metric("tg_gauge", grpcArgs, "--metric-type", "Gauge", "--metrics", "2000")
	metric("tg_gauge_http", httpArgs, "--metric-type", "Gauge", "--metrics", "500")
	metric("tg_cumulative", grpcArgs, "--metric-type", "Sum", "--aggregation-temporality", "cumulative", "--metrics", "1000")
	metric("tg_delta", httpArgs, "--metric-type", "Sum", "--aggregation-temporality", "delta", "--metrics", "1000")
	metric("tg_hist", grpcArgs, "--metric-type", "Histogram", "--aggregation-temporality", "cumulative", "--metrics", "300")
	// Exponential histograms are not stored: rejected, and the sender is told.
	out := metric("tg_exphist", grpcArgs, "--metric-type", "ExponentialHistogram", "--metrics", "40", "--allow-export-failures")
	if !strings.Contains(out, "unsupported_type") {
		t.Errorf("telemetrygen was not told why its exponential histograms were rejected:\n%s", out)
	}
	// Plain logs are not Fleetwatch events: rejected with that reason, told.
	out = clienttest.RunTelemetrygen(t, append(append([]string{"logs", "--logs", "60"}, httpArgs...), "--allow-export-failures")...)
	if !strings.Contains(out, "not_a_fleetwatch_event") {
		t.Errorf("telemetrygen was not told why its logs were rejected:\n%s", out)
	}
	clienttest.RunTelemetrygen(t, append([]string{"traces", "--traces", "50"}, grpcArgs...)...)

	waitFor(t, 60*time.Second, "every stored item", func() bool {
		return count(t, db, "gpu_samples", "metric LIKE 'tg_%'") >= 2000+500+1000+1000+300*3 && count(t, db, "spans", "") == 100
	})
	// Every point is a row, and the rollup counted each once.
	for name, want := range map[string]uint64{"tg_gauge": 2000, "tg_gauge_http": 500, "tg_cumulative": 1000, "tg_delta": 1000,
		"tg_hist_count": 300, "tg_hist_sum": 300} {
		tt := metricTotals(t, db, name)
		if tt.rows != want || tt.rollupSamples != want {
			t.Errorf("%s: %d rows, rollup counts %d; telemetrygen sent %d", name, tt.rows, tt.rollupSamples, want)
		}
		if !near(tt.rawDelta, tt.rollDelta) {
			t.Errorf("%s: raw sum(delta) %v, rollup %v", name, tt.rawDelta, tt.rollDelta)
		}
	}
	// A cumulative counter's increases add up to its rise; a delta sum's to its values.
	var rise, deltaValues float64
	if err := db.QueryScalar(context.Background(), `SELECT
  (SELECT argMax(value, (ts, ts_ns)) - argMin(value, (ts, ts_ns)) FROM gpu_samples FINAL WHERE metric = 'tg_cumulative'),
  (SELECT sum(value) FROM gpu_samples FINAL WHERE metric = 'tg_delta')`, &rise, &deltaValues); err != nil {
		t.Fatal(err)
	}
	if c := metricTotals(t, db, "tg_cumulative"); !near(c.rawDelta, rise) {
		t.Errorf("tg_cumulative: sum(delta) %v, rise %v", c.rawDelta, rise)
	}
	if d := metricTotals(t, db, "tg_delta"); !near(d.rawDelta, deltaValues) {
		t.Errorf("tg_delta: sum(delta) %v, sum of values %v", d.rawDelta, deltaValues)
	}
	// The rejected items were counted with their reasons.
	for reason, want := range map[string]float64{"unsupported_type": 40, "not_a_fleetwatch_event": 60} {
		if got := col.selfMetric(t, "fleetwatch_exporter_rejected_items", map[string]string{"reason": reason}); got != want {
			t.Errorf("rejected_items{reason=%s} = %v, want %v", reason, got, want)
		}
	}
	if got := count(t, db, "gpu_samples", "metric LIKE 'tg_exphist%'"); got != 0 {
		t.Errorf("%d exponential-histogram rows stored", got)
	}
	received := col.selfMetric(t, "fleetwatch_exporter_received_items", nil)
	queued := col.selfMetric(t, "fleetwatch_exporter_queued_items", nil)
	rejected := col.selfMetric(t, "fleetwatch_exporter_rejected_items", nil)
	if received != queued+rejected {
		t.Errorf("received %v items, queued %v + rejected %v", received, queued, rejected)
	}
	t.Log(fmt.Sprintf("received %v, queued %v, rejected %v", received, queued, rejected))
}

func near(a, b float64) bool {
	d := a - b
	if d < 0 {
		d = -d
	}
	m := 1.0
	if a > m {
		m = a
	} else if -a > m {
		m = -a
	}
	return d <= 1e-9*m
}
