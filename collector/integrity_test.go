package collector_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fleetwatch/fleetwatch/internal/testsupport/disktest"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// series builds one OTLP metric with the given points of one GPU series: a
// gauge, or a cumulative monotonic sum started at start.
func series(name, uuid string, cumulative bool, start time.Time, ts []time.Time, vals []float64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr(telemetry.AttrHostName, "node-i")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(name)
	var dps pmetric.NumberDataPointSlice
	if cumulative {
		s := m.SetEmptySum()
		s.SetIsMonotonic(true)
		s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dps = s.DataPoints()
	} else {
		dps = m.SetEmptyGauge().DataPoints()
	}
	for i := range ts {
		dp := dps.AppendEmpty()
		dp.Attributes().PutStr(telemetry.LabelUUID, uuid)
		if cumulative {
			dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		}
		dp.SetTimestamp(pcommon.NewTimestampFromTime(ts[i]))
		dp.SetDoubleValue(vals[i])
	}
	return md
}

// ramp is n points from t0, step apart, with values v0, v0+dv, ...
func ramp(t0 time.Time, step time.Duration, n int, v0, dv float64) ([]time.Time, []float64) {
	ts, vs := make([]time.Time, n), make([]float64, n)
	for i := range ts {
		ts[i], vs[i] = t0.Add(time.Duration(i)*step), v0+float64(i)*dv
	}
	return ts, vs
}

func export(t *testing.T, c pmetricotlp.GRPCClient, md pmetric.Metrics) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md)); err != nil {
		t.Fatal(err)
	}
}

// totals is what ClickHouse holds of one metric, merged (FINAL): raw rows,
// raw sum(delta), and the one-minute rollup's sample count and increase.
type totals struct {
	rows, rollupSamples uint64
	rawDelta, rollDelta float64
}

func metricTotals(t *testing.T, db *storage.Client, metric string) totals {
	t.Helper()
	ctx := context.Background()
	for _, tbl := range []string{"gpu_samples", "gpu_samples_1m"} {
		if err := db.Exec(ctx, "OPTIMIZE TABLE "+tbl+" FINAL"); err != nil {
			t.Fatal(err)
		}
	}
	var tt totals
	q := fmt.Sprintf(`SELECT (SELECT count() FROM gpu_samples FINAL WHERE metric = '%[1]s'),
  (SELECT sum(delta) FROM gpu_samples FINAL WHERE metric = '%[1]s'),
  (SELECT countMerge(samples) FROM gpu_samples_1m WHERE metric = '%[1]s'),
  (SELECT sumMerge(delta_sum) FROM gpu_samples_1m WHERE metric = '%[1]s')`, metric)
	if err := db.QueryScalar(ctx, q, &tt.rows, &tt.rawDelta, &tt.rollupSamples, &tt.rollDelta); err != nil {
		t.Fatal(err)
	}
	return tt
}

// Finding 1: points of one series within one second were folded into one
// row (ReplacingMergeTree keyed to the second), while the rollup counted
// them all. Every point is a row now, and raw and rollup agree.
func TestPointsWithinOneSecondAreAllKept(t *testing.T) {
	db := chtest.NewDB(t)
	col := startCollector(t, colParams{DSN: db.Config().DSN()})
	client := pmetricotlp.NewGRPCClient(dial(t, col.endpoint))
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	// 2,000 gauge points within one second, in four requests.
	ts, vs := ramp(t0, 400*time.Microsecond, 2000, 0, 1)
	for i := 0; i < 2000; i += 500 {
		export(t, client, series(telemetry.GPUTemp, "GPU-g", false, time.Time{}, ts[i:i+500], vs[i:i+500]))
	}
	// A counter rising by one 1,000 times within one second, in two requests.
	ts, vs = ramp(t0, 900*time.Microsecond, 1000, 1, 1)
	export(t, client, series(telemetry.TotalEnergy, "GPU-c", true, t0.Add(-time.Minute), ts[:500], vs[:500]))
	export(t, client, series(telemetry.TotalEnergy, "GPU-c", true, t0.Add(-time.Minute), ts[500:], vs[500:]))
	waitFor(t, 30*time.Second, "3,000 points", func() bool { return count(t, db, "gpu_samples", "") == 3000 })

	g := metricTotals(t, db, telemetry.GPUTemp)
	if g.rows != 2000 || g.rollupSamples != 2000 {
		t.Errorf("gauge: %d rows, rollup counts %d samples; want 2000 and 2000", g.rows, g.rollupSamples)
	}
	c := metricTotals(t, db, telemetry.TotalEnergy)
	if c.rows != 1000 || c.rawDelta != 999 || c.rollDelta != 999 {
		t.Errorf("counter: %d rows, raw sum(delta) %v, rollup %v; want 1000 rows and 999 both ways", c.rows, c.rawDelta, c.rollDelta)
	}
}

// Finding 5 and replays: a counter's increase across a collector restart is
// counted (the first point after the restart continues from the last stored
// point), and requests sent again — by a retrying sender, before and after
// the restart — store nothing twice: raw rows, raw increases and the
// rollup all stay exact.
func TestCountersSurviveRestartsAndRepeatsAreNotCountedTwice(t *testing.T) {
	db := chtest.NewDB(t)
	p := colParams{DSN: db.Config().DSN(), Persistent: true, QueueDir: t.TempDir()}
	col := startCollector(t, p)
	client := pmetricotlp.NewGRPCClient(dial(t, col.endpoint))
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	start := t0.Add(-time.Hour)
	ts, vs := ramp(t0, 10*time.Second, 12, 100, 7) // 100, 107, ..., 177
	first := series(telemetry.TotalEnergy, "GPU-r", true, start, ts[:6], vs[:6])
	export(t, client, first)
	waitFor(t, 30*time.Second, "the first six points", func() bool { return count(t, db, "gpu_samples", "") == 6 })
	for i := 0; i < 3; i++ { // a sender that did not hear the answer sends again
		export(t, client, first)
	}
	col.stop(t)

	col = startCollector(t, p) // a new process: no series state in memory
	client = pmetricotlp.NewGRPCClient(dial(t, col.endpoint))
	export(t, client, first) // and once more after the restart
	export(t, client, series(telemetry.TotalEnergy, "GPU-r", true, start, ts[6:], vs[6:]))
	waitFor(t, 30*time.Second, "twelve points", func() bool { return count(t, db, "gpu_samples", "") == 12 })
	waitFor(t, 30*time.Second, "the repeats to be handled", func() bool {
		return col.selfMetric(t, "fleetwatch_exporter_duplicate_rows", map[string]string{"table": "gpu_samples"}) >= 6
	})
	c := metricTotals(t, db, telemetry.TotalEnergy)
	if c.rows != 12 || c.rawDelta != 77 || c.rollDelta != 77 || c.rollupSamples != 12 {
		t.Errorf("%d rows, raw increase %v, rollup increase %v over %d samples; want 12 rows, 77 (177-100), 77, 12",
			c.rows, c.rawDelta, c.rollDelta, c.rollupSamples)
	}
}

// Finding 3: with ClickHouse away and the queue's disk full, requests are
// refused with a retryable status (the sender keeps its data), nothing the
// collector acknowledged is lost, and it takes data again by itself once
// there is space.
func TestFullQueueDiskPushesBackAndLosesNothing(t *testing.T) {
	dir := disktest.Tmpfs(t, "3m")
	ballast := filepath.Join(dir, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 512<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := chtest.StartServer(t)
	db := chtest.OpenDB(t, srv, true)
	col := startCollector(t, colParams{DSN: db.Config().DSN(), Persistent: true, QueueDir: filepath.Join(dir, "queue")})
	srv.Kill()
	client := pmetricotlp.NewGRPCClient(dial(t, col.endpoint))
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	accepted, refused := 0, 0
	send := func(i int) error {
		ts, vs := ramp(t0.Add(time.Duration(i)*time.Second), time.Millisecond, 500, float64(i), 0)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := client.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(series(telemetry.GPUTemp, "GPU-f", false, time.Time{}, ts, vs)))
		return err
	}
	i := 0
	for ; refused < 5 && i < 2000; i++ {
		err := send(i)
		switch status.Code(err) {
		case codes.OK:
			accepted += 500
		case codes.Unavailable:
			refused++
		default:
			t.Fatalf("request %d: %v; want OK or UNAVAILABLE (retryable)", i, err)
		}
	}
	if refused == 0 || accepted == 0 {
		t.Fatalf("accepted %d points, refused %d requests: the disk never filled", accepted, refused)
	}
	if got := col.selfMetric(t, "fleetwatch_exporter_refused_items", map[string]string{"reason": "disk_full"}); got < 5*500 {
		t.Errorf("refused_items{reason=disk_full} = %v, want at least %d", got, 5*500)
	}
	// Space returns and ClickHouse comes back: everything acknowledged lands
	// and new requests are taken without a restart.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, fmt.Sprintf("the %d acknowledged points", accepted), func() bool {
		return count(t, db, "gpu_samples", "") == uint64(accepted)
	})
	waitFor(t, 30*time.Second, "a request accepted again", func() bool { return send(i+1) == nil })
	waitFor(t, 60*time.Second, "the request after recovery", func() bool {
		return count(t, db, "gpu_samples", "") == uint64(accepted+500)
	})
	// Every item that reached the exporter is accounted for.
	received := col.selfMetric(t, "fleetwatch_exporter_received_items", map[string]string{"signal": "metrics"})
	queued := col.selfMetric(t, "fleetwatch_exporter_queued_items", map[string]string{"signal": "metrics"})
	refusedItems := col.selfMetric(t, "fleetwatch_exporter_refused_items", map[string]string{"signal": "metrics"})
	if queued != float64(accepted+500) || received != queued+refusedItems {
		t.Errorf("received %v, queued %v, refused %v: want queued = %d accepted and received = queued + refused", received, queued, refusedItems, accepted+500)
	}
	// The counter moves just after the insert returns: give it a moment,
	// then it must be exactly the queued count (a retried insert counted
	// twice would pass it).
	var written float64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		written = col.selfMetric(t, "fleetwatch_exporter_written_rows", map[string]string{"table": "gpu_samples"})
		if written >= queued || time.Now().After(deadline) {
			break
		}
	}
	if written != queued {
		t.Errorf("written_rows{gpu_samples} = %v, want %v: retried inserts must not count twice", written, queued)
	}
}

// The queue's byte bound pushes back the same way while ClickHouse is away.
func TestFullQueuePushesBack(t *testing.T) {
	srv := chtest.StartServer(t)
	db := chtest.OpenDB(t, srv, true)
	col := startCollector(t, colParams{DSN: db.Config().DSN(), QueueBytes: 256 << 10, SegmentBytes: 64 << 10})
	srv.Kill()
	client := pmetricotlp.NewGRPCClient(dial(t, col.endpoint))
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	accepted := 0
	var last error
	for i := 0; i < 200 && last == nil; i++ {
		ts, vs := ramp(t0.Add(time.Duration(i)*time.Second), time.Millisecond, 200, 1, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, last = client.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(series(telemetry.GPUTemp, "GPU-q", false, time.Time{}, ts, vs)))
		cancel()
		if last == nil {
			accepted += 200
		}
	}
	if status.Code(last) != codes.Unavailable {
		t.Fatalf("a full queue answered %v, want UNAVAILABLE", last)
	}
	if got := col.selfMetric(t, "fleetwatch_exporter_refused_items", map[string]string{"reason": "queue_full"}); got != 200 {
		t.Errorf("refused_items{reason=queue_full} = %v, want 200", got)
	}
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the accepted points", func() bool { return count(t, db, "gpu_samples", "") == uint64(accepted) })
}

// Finding 7: numbers sent as strings are parsed, and a feature map sent as
// a JSON string is read; both are counted as normalisations.
func TestNumbersAndFeaturesSentAsStrings(t *testing.T) {
	db := chtest.NewDB(t)
	col := startCollector(t, colParams{DSN: db.Config().DSN()})
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr(telemetry.AttrServiceName, "svc")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetEventName(telemetry.EventInference)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	a := lr.Attributes()
	a.PutStr(telemetry.AttrModel, "m")
	a.PutStr(telemetry.AttrRequestID, "r1")
	a.PutStr(telemetry.AttrLatencyMs, "12.5")
	a.PutStr(telemetry.AttrPrediction, "not a number")
	a.PutStr(telemetry.AttrFeatures, `{"amount": 3.25, "country": "FR"}`)
	if _, err := plogotlp.NewGRPCClient(dial(t, col.endpoint)).Export(context.Background(), plogotlp.NewExportRequestFromLogs(ld)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the event", func() bool { return count(t, db, "inference_events", "") == 1 })
	var latency float64
	var names, cats []string
	if err := db.QueryScalar(context.Background(), "SELECT latency_ms, feature_names, cat_feature_values FROM inference_events", &latency, &names, &cats); err != nil {
		t.Fatal(err)
	}
	if latency != 12.5 || len(names) != 1 || names[0] != "amount" || len(cats) != 1 || cats[0] != "FR" {
		t.Errorf("latency %v, numeric features %v, categorical values %v; want 12.5, [amount], [FR]", latency, names, cats)
	}
	for reason, want := range map[string]float64{"numeric_string": 1, "bad_number": 1, "features_json": 1} {
		if got := col.selfMetric(t, "fleetwatch_exporter_normalized_items", map[string]string{"reason": reason}); got != want {
			t.Errorf("normalized_items{reason=%s} = %v, want %v", reason, got, want)
		}
	}
}

// A fleet's worth of series new to the collector in one batch (a restart
// under load, a large first push): the lookups of their last stored points
// are split so that no query passes ClickHouse's max_query_size. Before,
// 15,000 new series made one query of ~300 KiB that ClickHouse refused, and
// the batch was retried forever.
func TestManyNewSeriesInOneBatch(t *testing.T) {
	db := chtest.NewDB(t)
	col := startCollector(t, colParams{DSN: db.Config().DSN()})
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr(telemetry.AttrHostName, "node-big")
	dps := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	dps.SetName("fleet_series_probe")
	pts := dps.SetEmptyGauge().DataPoints()
	ts := pcommon.NewTimestampFromTime(time.Now().Add(-time.Minute))
	const n = 15000
	for i := 0; i < n; i++ {
		dp := pts.AppendEmpty()
		dp.Attributes().PutInt("i", int64(i))
		dp.SetTimestamp(ts)
		dp.SetDoubleValue(float64(i))
	}
	export(t, pmetricotlp.NewGRPCClient(dial(t, col.endpoint)), md)
	waitFor(t, 60*time.Second, "15,000 new series", func() bool { return count(t, db, "gpu_samples", "") == n })
}
