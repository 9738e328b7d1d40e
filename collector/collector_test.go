package collector_test

import (
	"context"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fleetwatch/fleetwatch/agent"
	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/collector"
	"github.com/fleetwatch/fleetwatch/examples/modelservice"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func dial(t testing.TB, endpoint string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// The example model service → collector → inference_events, spans and the
// latency histogram's series in gpu_samples.
func TestExampleServiceLandsInTheRightTables(t *testing.T) {
	db := chtest.NewDB(t)
	col := startCollector(t, colParams{DSN: db.Config().DSN()})
	ctx := context.Background()
	svc, err := modelservice.New(ctx, modelservice.Config{Endpoint: col.endpoint, Model: "fraud-detector", Version: "v7",
		Cluster: "serve-a", Node: "web-1", MetricInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 49; i++ {
		if _, err := svc.Predict(ctx, modelservice.Request{Amount: float64(50 + i), Country: "DE", Extra: map[string]float64{"age": 30}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.Predict(ctx, modelservice.Request{RequestID: "bad-1", Amount: -5, Country: "US"}); err == nil {
		t.Fatal("negative amount accepted")
	}
	time.Sleep(400 * time.Millisecond) // let the periodic metric reader export once more
	if err := svc.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "50 inference events and 150 spans", func() bool {
		return count(t, db, "inference_events", "") == 50 && count(t, db, "spans", "") == 150
	})
	var model, version, status, service, node string
	var latency, amount, prediction float64
	var nFeatures, nCat uint64
	err = db.QueryScalar(ctx, `SELECT model, model_version, status, service, node, latency_ms, feature_values[indexOf(feature_names, 'amount')],
		prediction, length(feature_names), length(cat_feature_names) FROM inference_events WHERE request_id = 'bad-1'`,
		&model, &version, &status, &service, &node, &latency, &amount, &prediction, &nFeatures, &nCat)
	if err != nil {
		t.Fatal(err)
	}
	if model != "fraud-detector" || version != "v7" || status != "error" || service != "model-service" || node != "web-1" ||
		amount != -5 || latency < 0 || prediction <= 0 || nFeatures != 1 || nCat != 1 {
		t.Fatalf("row: %s %s %s %s %s lat=%v amount=%v pred=%v features=%d/%d", model, version, status, service, node, latency, amount, prediction, nFeatures, nCat)
	}
	// Spans keep their tree: each stage's parent is its request's root span.
	var orphans uint64
	if err := db.QueryScalar(ctx, `SELECT count() FROM spans AS c ANY LEFT JOIN (SELECT span_id AS parent_span_id, operation AS parent_op FROM spans) AS p
		USING parent_span_id WHERE c.operation != 'predict' AND p.parent_op != 'predict'`, &orphans); err != nil {
		t.Fatal(err)
	}
	if orphans != 0 {
		t.Fatalf("%d stage spans without their predict parent", orphans)
	}
	if n := count(t, db, "spans", "operation = 'predict' AND status_code = 'error' AND request_id = 'bad-1'"); n != 1 {
		t.Fatalf("%d error root spans for the bad request", n)
	}
	// The latency histogram arrives as Prometheus-style cumulative series.
	var total float64
	if err := db.QueryScalar(ctx, `SELECT max(value) FROM gpu_samples WHERE metric = 'model_request_duration_ms_count'`, &total); err != nil {
		t.Fatal(err)
	}
	if total != 49 {
		// 49 ok + 1 error, split by the status attribute: the ok series counts 49.
		t.Fatalf("histogram count %v, want 49 for status=ok", total)
	}
	if n := count(t, db, "gpu_series", "metric = 'model_request_duration_ms_bucket' AND has(label_keys, 'le')"); n < 10 {
		t.Fatalf("%d bucket series", n)
	}
}

// The agent with a simulated fleet → collector → ClickHouse: every sample
// and every record the agent collected is in its table.
func TestAgentFleetIsAccountedFor(t *testing.T) {
	db := chtest.NewDB(t)
	col := startCollector(t, colParams{DSN: db.Config().DSN()})
	sc, err := sim.Parse([]byte(`
duration: 90s
interval: 1s
fleet: {racks_per_row: 1, nodes_per_rack: 2, gpus_per_node: 4, nvlinks: 2}
jobs: [{name: train, nodes: 1}]
models: [{name: fraud, rps: 10, label_delay: 5s, label_fraction: 0.5, features: [{name: amount, mean: 10, sd: 2}, {name: country, values: [DE, US], probs: [0.5, 0.5]}]}]
deployments: [{model: fraud, version: v2, at: 30s}]
faults: [{type: xid79, target: {node: node-001, gpu: 2}, start: 20s}, {type: ecc_ramp, target: {node: node-000, gpu: 1}, start: 10s, end: 60s}]
`))
	if err != nil {
		t.Fatal(err)
	}
	runner, err := sim.New(sc, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer runner.Close()
	var samples, events, inferences, labels, deploys atomic.Int64
	counting := record.SinkFunc(nil)
	acfg := agent.NewDefaultConfig()
	acfg.DataDir, acfg.NVML.Enabled, acfg.Listen = t.TempDir(), false, ""
	acfg.Ship.Endpoint = col.endpoint
	var a *agent.Agent
	counting = func(b *record.Batch) {
		samples.Add(int64(len(b.Samples)))
		events.Add(int64(len(b.Events)))
		inferences.Add(int64(len(b.Inferences)))
		labels.Add(int64(len(b.Labels)))
		deploys.Add(int64(len(b.Deployments)))
		a.Put(b)
	}
	a, err = agent.New(acfg, agent.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	if err := runner.Run(ctx, counting, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "every sample in ClickHouse", func() bool {
		return count(t, db, "gpu_samples", "") == uint64(samples.Load()) && count(t, db, "inference_events", "") == uint64(inferences.Load()) &&
			count(t, db, "delayed_labels", "") == uint64(labels.Load())
	})
	cancel()
	<-done
	ctx = context.Background()
	if n := count(t, db, "gpu_events", ""); n != uint64(events.Load()) {
		t.Errorf("gpu_events %d, agent collected %d", n, events.Load())
	}
	if n := count(t, db, "model_deployments", "model_version = 'v2'"); n != uint64(deploys.Load()) || n != 1 {
		t.Errorf("deployments %d, agent collected %d", n, deploys.Load())
	}
	if n := count(t, db, "gpu_events", "event = 'xid' AND code = 79"); n != 1 {
		t.Errorf("%d XID 79 events", n)
	}
	// Every sample's series is described, with its GPU and place.
	var undescribed uint64
	if err := db.QueryScalar(ctx, `SELECT count() FROM (SELECT DISTINCT series FROM gpu_samples)
		WHERE series NOT IN (SELECT series FROM gpu_series WHERE node != '' AND (uuid != '' OR metric NOT LIKE 'DCGM%'))`, &undescribed); err != nil {
		t.Fatal(err)
	}
	if undescribed != 0 {
		t.Errorf("%d series without a gpu_series row", undescribed)
	}
	// Counter increases: for each ECC series, the sum of deltas is the rise of the total.
	var bad uint64
	if err := db.QueryScalar(ctx, `SELECT count() FROM (SELECT series, sum(delta) AS d, max(value) - min(value) AS rise FROM gpu_samples FINAL
		WHERE metric = 'DCGM_FI_DEV_ECC_SBE_VOL_TOTAL' GROUP BY series) WHERE abs(d - rise) > 1e-9`, &bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Errorf("%d ECC series whose deltas do not add up to their rise", bad)
	}
	var rise float64
	if err := db.QueryScalar(ctx, `SELECT sum(delta) FROM gpu_samples FINAL WHERE metric = 'DCGM_FI_DEV_ECC_SBE_VOL_TOTAL'`, &rise); err != nil {
		t.Fatal(err)
	}
	if rise < 10 {
		t.Errorf("the ECC ramp shows a rise of only %v", rise)
	}
	t.Logf("samples %d, events %d, inferences %d, labels %d: all present", samples.Load(), events.Load(), inferences.Load(), labels.Load())
}

// gauge builds a metrics payload of n distinct points (ids from..from+n).
func gauge(from, n int, ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr(telemetry.AttrHostName, "load-1")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(telemetry.GPUTemp)
	dps := m.SetEmptyGauge().DataPoints()
	for i := from; i < from+n; i++ {
		dp := dps.AppendEmpty()
		dp.Attributes().PutStr(telemetry.LabelUUID, "GPU-load")
		dp.SetTimestamp(pcommon.NewTimestampFromTime(ts.Add(time.Duration(i) * time.Second)))
		dp.SetDoubleValue(float64(i))
	}
	return md
}

// withCounter adds to md an energy counter point beside every gauge point
// (value 1000 + 3i at the same time), to check that increases survive replays.
func withCounter(md pmetric.Metrics, from, n int, ts time.Time) pmetric.Metrics {
	m := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty()
	m.SetName(telemetry.TotalEnergy)
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for i := from; i < from+n; i++ {
		dp := sum.DataPoints().AppendEmpty()
		dp.Attributes().PutStr(telemetry.LabelUUID, "GPU-load")
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(ts))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(ts.Add(time.Duration(i) * time.Second)))
		dp.SetDoubleValue(float64(1000 + 3*i))
	}
	return md
}

// ClickHouse dies mid-stream and comes back: every point the collector
// accepted is stored, once, and a counter's increases add up across the
// retries.
func TestClickHouseKilledMidStream(t *testing.T) {
	srv := chtest.StartServer(t)
	db := chtest.OpenDB(t, srv, true)
	col := startCollector(t, colParams{DSN: db.Config().DSN(), Persistent: true})
	client := pmetricotlp.NewGRPCClient(dial(t, col.endpoint))
	ts := time.Now().Add(-6 * time.Hour).Truncate(time.Second) // 15,000 one-second points end 2 hours ago
	accepted := 0
	send := func(from, n int) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := client.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(withCounter(gauge(from, n, ts), from, n, ts))); err == nil {
			accepted += n
		}
	}
	const per = 500
	for i := 0; i < 10; i++ {
		send(i*per, per)
	}
	srv.Kill()
	for i := 10; i < 20; i++ {
		send(i*per, per)
	}
	time.Sleep(time.Second)
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 20; i < 30; i++ {
		send(i*per, per)
	}
	if accepted < 20*per {
		t.Fatalf("the collector accepted only %d points", accepted)
	}
	waitFor(t, 60*time.Second, "every accepted point stored", func() bool {
		n := count(t, db, "gpu_samples", "metric = '"+telemetry.GPUTemp+"'")
		t.Logf("%d of %d stored", n, accepted)
		return n == uint64(accepted) && count(t, db, "gpu_samples", "metric = '"+telemetry.TotalEnergy+"'") == uint64(accepted)
	})
	ctx := context.Background()
	if err := db.Exec(ctx, "OPTIMIZE TABLE "+db.Config().Database+".gpu_samples FINAL"); err != nil {
		t.Fatal(err)
	}
	var raw uint64
	if err := db.QueryScalar(ctx, "SELECT count() FROM gpu_samples", &raw); err != nil {
		t.Fatal(err)
	}
	if raw != 2*uint64(accepted) {
		t.Fatalf("%d rows after merging, 2 × %d accepted: duplicates or losses", raw, accepted)
	}
	var deltas, rise float64
	if err := db.QueryScalar(ctx, "SELECT sum(delta), max(value) - min(value) FROM gpu_samples WHERE metric = '"+telemetry.TotalEnergy+"'", &deltas, &rise); err != nil {
		t.Fatal(err)
	}
	if deltas != rise || rise < 3*float64(accepted-1) {
		t.Fatalf("the counter's stored increases add up to %v; its rise is %v", deltas, rise)
	}
	assertDescribed(t, db)
	t.Logf("accepted %d points across the outage; %d stored, none twice; increases add up to %v", accepted, raw, deltas)
}

// assertDescribed fails t if a stored sample's series has no gpu_series row.
func assertDescribed(t *testing.T, db *storage.Client) {
	t.Helper()
	var undescribed uint64
	if err := db.QueryScalar(context.Background(), "SELECT count() FROM (SELECT DISTINCT series FROM gpu_samples) WHERE series NOT IN (SELECT series FROM gpu_series)", &undescribed); err != nil {
		t.Fatal(err)
	}
	if undescribed != 0 {
		t.Fatalf("%d series stored without their gpu_series row", undescribed)
	}
}

// ClickHouse is down when a series is first seen: the retried write still
// describes it in gpu_series.
func TestFirstWriteFailsSeriesStillDescribed(t *testing.T) {
	srv := chtest.StartServer(t)
	db := chtest.OpenDB(t, srv, true)
	col := startCollector(t, colParams{DSN: db.Config().DSN()})
	srv.Kill()
	client := pmetricotlp.NewGRPCClient(dial(t, col.endpoint))
	ts := time.Now().Add(-time.Hour).Truncate(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(withCounter(gauge(0, 10, ts), 0, 10, ts))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // let the first write fail
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the points written after ClickHouse is back", func() bool {
		return count(t, db, "gpu_samples", "") == 20
	})
	assertDescribed(t, db)
}

// The collector is restarted while ClickHouse is away: what its persistent
// queue accepted is written once ClickHouse and the collector are back.
func TestPersistentQueueSurvivesRestart(t *testing.T) {
	srv := chtest.StartServer(t)
	db := chtest.OpenDB(t, srv, true)
	queueDir := t.TempDir()
	p := colParams{DSN: db.Config().DSN(), Persistent: true, QueueDir: queueDir}
	col := startCollector(t, p)
	srv.Kill()
	client := pmetricotlp.NewGRPCClient(dial(t, col.endpoint))
	ts := time.Now().Add(-time.Hour).Truncate(time.Second)
	accepted := 0
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := client.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(gauge(i*100, 100, ts))); err == nil {
			accepted += 100
		}
		cancel()
	}
	if accepted == 0 {
		t.Fatal("nothing accepted while ClickHouse was down")
	}
	col.stop(t)
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	startCollector(t, p)
	waitFor(t, 60*time.Second, "the queued points written after the restart", func() bool {
		return count(t, db, "gpu_samples", "") == uint64(accepted)
	})
}

// Bad input: each item is stored, normalised or rejected with a counted
// reason, and the rest of its batch still lands.
func TestBadInputIsCountedAndTheRestLands(t *testing.T) {
	db := chtest.NewDB(t)
	col := startCollector(t, colParams{DSN: db.Config().DSN()})
	conn := dial(t, col.endpoint)
	now := time.Now()
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr(telemetry.AttrHostName, "n1")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	point := func(name string, v float64, ts time.Time, attrs map[string]string) {
		m := ms.AppendEmpty()
		m.SetName(name)
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		if !ts.IsZero() {
			dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		}
		dp.SetDoubleValue(v)
		for k, val := range attrs {
			dp.Attributes().PutStr(k, val)
		}
	}
	gpu := map[string]string{telemetry.LabelUUID: "GPU-1"}
	point(telemetry.GPUTemp, 50, now, gpu)                                                  // good
	point(telemetry.GPUTemp, math.NaN(), now, gpu)                                          // non_finite
	point(telemetry.PowerUsage, math.Inf(1), now, gpu)                                      // non_finite
	point(telemetry.SMClock, 1, now.Add(-30*24*time.Hour), gpu)                             // timestamp_out_of_range
	point(telemetry.MemClock, 1, now.Add(24*time.Hour), gpu)                                // timestamp_out_of_range
	point(telemetry.FBUsed, 1, now, nil)                                                    // missing_gpu_uuid
	point("1 bad name", 1, now, nil)                                                        // bad_metric_name
	point(telemetry.FBFree, 2, time.Time{}, gpu)                                            // missing timestamp: now
	point("app_queue_depth", 3, now, map[string]string{"queue": strings.Repeat("q", 5000)}) // label truncated
	point("DCGM_FI_DEV_SM_CLOCK_HERTZ", 1.41e9, now, gpu)                                   // alias, converted to MHz
	eh := ms.AppendEmpty()
	eh.SetName("latency_exp")
	eh.SetEmptyExponentialHistogram().DataPoints().AppendEmpty().SetCount(3) // unsupported_type
	ig := ms.AppendEmpty()
	ig.SetName("int_gauge")
	idp := ig.SetEmptyGauge().DataPoints().AppendEmpty()
	idp.SetTimestamp(pcommon.NewTimestampFromTime(now))
	idp.SetIntValue(7) // stored as 7.0
	if _, err := pmetricotlp.NewGRPCClient(conn).Export(context.Background(), pmetricotlp.NewExportRequestFromMetrics(md)); err != nil {
		t.Fatal(err)
	}

	ld := plog.NewLogs()
	lrs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	ev := func(name string, attrs map[string]string) plog.LogRecord {
		lr := lrs.AppendEmpty()
		lr.SetEventName(name)
		lr.SetTimestamp(pcommon.NewTimestampFromTime(now))
		for k, v := range attrs {
			lr.Attributes().PutStr(k, v)
		}
		return lr
	}
	ev(telemetry.EventInference, map[string]string{telemetry.AttrModel: "m", telemetry.AttrRequestID: "r1"}) // good
	ev(telemetry.EventInference, map[string]string{telemetry.AttrRequestID: "r2"})                           // missing_model
	ev(telemetry.EventLabel, map[string]string{telemetry.AttrModel: "m"})                                    // missing_request_id
	ev("app.log.line", nil)                                                                                  // not_a_fleetwatch_event
	odd := ev(telemetry.EventInference, map[string]string{telemetry.AttrModel: "m", telemetry.AttrRequestID: "r3"})
	fs := odd.Attributes().PutEmptyMap(telemetry.AttrFeatures)
	fs.PutDouble("x", 1)
	fs.PutEmptyMap("nested") // dropped, the event kept
	if _, err := plogotlp.NewGRPCClient(conn).Export(context.Background(), plogotlp.NewExportRequestFromLogs(ld)); err != nil {
		t.Fatal(err)
	}

	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	good := spans.AppendEmpty()
	good.SetTraceID(pcommon.TraceID([16]byte{1}))
	good.SetSpanID(pcommon.SpanID([8]byte{1}))
	good.SetName("ok")
	good.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
	good.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
	spans.AppendEmpty().SetName("no ids") // bad_span
	if _, err := ptraceotlp.NewGRPCClient(conn).Export(context.Background(), ptraceotlp.NewExportRequestFromTraces(td)); err != nil {
		t.Fatal(err)
	}

	waitFor(t, 30*time.Second, "the good items", func() bool {
		s, i, sp := count(t, db, "gpu_samples", ""), count(t, db, "inference_events", ""), count(t, db, "spans", "")
		t.Logf("samples %d, inference events %d, spans %d", s, i, sp)
		return s == 5 && i == 2 && sp == 1
	})
	var clock float64
	if err := db.QueryScalar(context.Background(), "SELECT value FROM gpu_samples WHERE metric = 'DCGM_FI_DEV_SM_CLOCK'", &clock); err != nil || math.Abs(clock-1410) > 1e-6 {
		t.Errorf("the hertz alias stored %v (%v), want 1410 MHz", clock, err)
	}
	var qlen uint64
	if err := db.QueryScalar(context.Background(), "SELECT length(label_values[1]) FROM gpu_series WHERE metric = 'app_queue_depth'", &qlen); err != nil || qlen != 1024 {
		t.Errorf("truncated label is %d bytes (%v), want 1024", qlen, err)
	}
	want := map[[2]string]float64{
		{"metrics", "non_finite"}: 2, {"metrics", "timestamp_out_of_range"}: 2, {"metrics", "missing_gpu_uuid"}: 1,
		{"metrics", "bad_metric_name"}: 1, {"metrics", "unsupported_type"}: 1,
		{"logs", "missing_model"}: 1, {"logs", "missing_request_id"}: 1, {"logs", "not_a_fleetwatch_event"}: 1,
		{"traces", "bad_span"}: 1,
	}
	waitFor(t, 20*time.Second, "the rejection counters", func() bool {
		for k, v := range want {
			if col.selfMetric(t, "fleetwatch_exporter_rejected_items", map[string]string{"signal": k[0], "reason": k[1]}) != v {
				return false
			}
		}
		return true
	})
	// Only the metrics exporter holds series; the logs and traces ones must
	// not report a competing 0 for the same gauge.
	if n := col.selfMetric(t, "fleetwatch_exporter_series_cached", nil); n < 1 {
		t.Errorf("fleetwatch_exporter_series_cached = %v after storing series", n)
	}
	norm := map[[2]string]float64{{"metrics", "missing_timestamp"}: 1, {"metrics", "label_truncated"}: 1, {"logs", "feature_dropped_wrong_type"}: 1}
	for k, v := range norm {
		if got := col.selfMetric(t, "fleetwatch_exporter_normalized_items", map[string]string{"signal": k[0], "reason": k[1]}); got != v {
			t.Errorf("normalised %v: %v, want %v", k, got, v)
		}
	}
}

// Cumulative counters become increases, resets included.
func TestCounterResetsAreHandled(t *testing.T) {
	db := chtest.NewDB(t)
	col := startCollector(t, colParams{DSN: db.Config().DSN()})
	client := pmetricotlp.NewGRPCClient(dial(t, col.endpoint))
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	points := []struct {
		v     float64
		start int
	}{{10, 0}, {15, 0}, {20, 0}, {3, 100}, {8, 100}, {2, 100}} // a new start time, then a drop without one
	for i, p := range points {
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr(telemetry.AttrHostName, "n1")
		m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName(telemetry.ECCSBEVolatile)
		s := m.SetEmptySum()
		s.SetIsMonotonic(true)
		s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dp := s.DataPoints().AppendEmpty()
		dp.Attributes().PutStr(telemetry.LabelUUID, "GPU-c")
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(p.start) * time.Second)))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(200+i) * time.Second)))
		dp.SetDoubleValue(p.v)
		if _, err := client.Export(context.Background(), pmetricotlp.NewExportRequestFromMetrics(md)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "six points", func() bool { return count(t, db, "gpu_samples", "") == 6 })
	var deltas []float64
	rows, err := db.Conn().Query(context.Background(), "SELECT delta FROM gpu_samples ORDER BY ts")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var d float64
		rows.Scan(&d)
		deltas = append(deltas, d)
	}
	rows.Close()
	want := []float64{0, 5, 5, 3, 5, 2}
	for i := range want {
		if deltas[i] != want[i] {
			t.Fatalf("deltas %v, want %v", deltas, want)
		}
	}
}

// A monotonic delta sum's value is its increase, whether its series is new
// to the exporter or already known.
func TestDeltaSumsStoreTheirIncrease(t *testing.T) {
	db := chtest.NewDB(t)
	col := startCollector(t, colParams{DSN: db.Config().DSN()})
	client := pmetricotlp.NewGRPCClient(dial(t, col.endpoint))
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	values := []float64{4, 1, 7}
	for i, v := range values {
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr(telemetry.AttrHostName, "n1")
		m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName(telemetry.ECCSBEVolatile)
		s := m.SetEmptySum()
		s.SetIsMonotonic(true)
		s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		dp := s.DataPoints().AppendEmpty()
		dp.Attributes().PutStr(telemetry.LabelUUID, "GPU-d")
		dp.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(i) * time.Second)))
		dp.SetDoubleValue(v)
		if _, err := client.Export(context.Background(), pmetricotlp.NewExportRequestFromMetrics(md)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "three points", func() bool { return count(t, db, "gpu_samples", "") == 3 })
	rows, err := db.Conn().Query(context.Background(), "SELECT value, delta FROM gpu_samples ORDER BY ts")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for i := 0; rows.Next(); i++ {
		var v, d float64
		if err := rows.Scan(&v, &d); err != nil {
			t.Fatal(err)
		}
		if v != values[i] || d != values[i] {
			t.Errorf("point %d: value %v delta %v, want both %v", i, v, d, values[i])
		}
	}
	var counter uint8
	if err := db.QueryScalar(context.Background(), "SELECT any(counter) FROM gpu_series", &counter); err != nil || counter != 1 {
		t.Errorf("gpu_series counter flag %d (%v), want 1", counter, err)
	}
}

func TestLocalConfig(t *testing.T) {
	cfg, err := collector.LocalConfig(collector.Local{GRPC: "127.0.0.1:1", MetricsPort: 2, DSN: "clickhouse://h:9/db", QueueDir: "/q", Memory: true, LogLevel: "warn",
		MaxAge: 90 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"endpoint: 127.0.0.1:1", "port: 2", "dsn: clickhouse://h:9/db", "directory: /q", "endpoint: 0.0.0.0:4318", "logs:\n      level: warn",
		"max_age: 2160h0m0s"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q", want)
		}
	}
	if !strings.Contains(cfg, "fsync: never") || strings.Contains(cfg, "fsync: always") {
		t.Error("a memory queue must leave flushing to the kernel")
	}
}

// The age limit is configurable for backfills: with max_age raised to 30
// days a point 10 days old lands, one 40 days old is still rejected; the
// shipped configuration reads it from FLEETWATCH_MAX_AGE, 7 days by default.
func TestMaxAgeIsConfigurableForBackfills(t *testing.T) {
	if !strings.Contains(collector.DefaultConfig, "max_age: ${env:FLEETWATCH_MAX_AGE:-168h}") {
		t.Error("the shipped configuration does not take max_age from FLEETWATCH_MAX_AGE")
	}
	db := chtest.NewDB(t)
	col := startCollector(t, colParams{DSN: db.Config().DSN(), MaxAge: "720h"})
	now := time.Now()
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr(telemetry.AttrHostName, "n1")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	for _, age := range []time.Duration{10 * 24 * time.Hour, 40 * 24 * time.Hour} {
		m := ms.AppendEmpty()
		m.SetName(telemetry.GPUTemp)
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(-age)))
		dp.SetDoubleValue(50)
		dp.Attributes().PutStr(telemetry.LabelUUID, "GPU-1")
	}
	if _, err := pmetricotlp.NewGRPCClient(dial(t, col.endpoint)).Export(context.Background(), pmetricotlp.NewExportRequestFromMetrics(md)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the 10-day-old point stored and the 40-day-old one rejected", func() bool {
		return count(t, db, "gpu_samples", "") == 1 &&
			col.selfMetric(t, "fleetwatch_exporter_rejected_items", map[string]string{"signal": "metrics", "reason": "timestamp_out_of_range"}) == 1
	})
}

// Business outcomes (issue 20 item 1): fleetwatch.outcome events land in
// business_outcomes with their success flag as sent (bool, number or
// string), the engagement outcome when none is named, the value when
// sent, the resource's service; one without a request id is rejected.
func TestOutcomesLand(t *testing.T) {
	db := chtest.NewDB(t)
	col := startCollector(t, colParams{DSN: db.Config().DSN()})
	conn := dial(t, col.endpoint)
	now := time.Now()
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr(telemetry.AttrServiceName, "ranker-svc")
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	ev := func(req string, set func(m pcommon.Map)) {
		lr := lrs.AppendEmpty()
		lr.Attributes().PutStr(telemetry.AttrEventName, telemetry.EventOutcome) // the attribute form
		lr.SetTimestamp(pcommon.NewTimestampFromTime(now))
		lr.Attributes().PutStr(telemetry.AttrModel, "ranker")
		lr.Attributes().PutStr(telemetry.AttrModelVersion, "v8")
		if req != "" {
			lr.Attributes().PutStr(telemetry.AttrRequestID, req)
		}
		if set != nil {
			set(lr.Attributes())
		}
	}
	ev("r1", nil) // engagement, success by default
	ev("r2", func(m pcommon.Map) { m.PutStr(telemetry.AttrOutcome, "click"); m.PutBool(telemetry.AttrSuccess, false) })
	ev("r3", func(m pcommon.Map) {
		m.PutStr(telemetry.AttrOutcome, "conversion")
		m.PutStr(telemetry.AttrSuccess, "true")
		m.PutDouble(telemetry.AttrOutcomeValue, 12.5)
	})
	ev("r4", func(m pcommon.Map) { m.PutInt(telemetry.AttrSuccess, 0) })
	ev("", nil) // missing_request_id
	if _, err := plogotlp.NewGRPCClient(conn).Export(context.Background(), plogotlp.NewExportRequestFromLogs(ld)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the outcomes", func() bool { return count(t, db, "business_outcomes", "") == 4 })
	var got string
	q := "SELECT arrayStringConcat(groupArray(concat(request_id, ':', toString(outcome), ':', toString(success), ':', toString(value), ':', toString(service), ':', toString(model_version))), ',') FROM (SELECT * FROM " +
		db.Config().Database + ".business_outcomes ORDER BY request_id)"
	if err := db.QueryScalar(context.Background(), q, &got); err != nil {
		t.Fatal(err)
	}
	want := "r1:engagement:1:nan:ranker-svc:v8,r2:click:0:nan:ranker-svc:v8,r3:conversion:1:12.5:ranker-svc:v8,r4:engagement:0:nan:ranker-svc:v8"
	if got != want {
		t.Errorf("business_outcomes\n got %s\nwant %s", got, want)
	}
	waitFor(t, 20*time.Second, "the rejection counter", func() bool {
		return col.selfMetric(t, "fleetwatch_exporter_rejected_items", map[string]string{"signal": "logs", "reason": "missing_request_id"}) == 1
	})
}
