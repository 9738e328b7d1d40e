package collector_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/fleetwatch/fleetwatch/agent/otlp"
	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/collector/otlprecv"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/clienttest"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// formBatches are what the agent collects: a simulated fleet's polls (GPUs
// with NVLink, a training job's per-rank metrics, counters) and two polls
// of a MIG GPU, whose instances have their own workloads, with an extra
// label, a label too long to keep whole, and a node-level sample.
func formBatches(t *testing.T) []*record.Batch {
	t.Helper()
	sc, err := sim.Parse([]byte("seed: 3\ninterval: 1s\nfleet: {racks_per_row: 1, nodes_per_rack: 2, gpus_per_node: 2, nvlinks: 2}\njobs: [{name: train, nodes: 2}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := sim.New(sc, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []*record.Batch
	for i := 1; i <= 4; i++ {
		out = append(out, r.Step(sc.Start.Add(time.Duration(i)*time.Second))...)
	}
	field := func(name string) int16 { return int16(telemetry.Index(name)) }
	t0 := time.Now().Truncate(time.Second).Add(-time.Minute)
	for i := range 2 {
		gpus := []record.GPU{
			{Index: "0", UUID: "GPU-mig", PCIBusID: "00000000:17:00.0", ModelName: "NVIDIA A100-SXM4-80GB", DriverVersion: "550.90.07"},
			{Index: "0", UUID: "GPU-mig", PCIBusID: "00000000:17:00.0", ModelName: "NVIDIA A100-SXM4-80GB", DriverVersion: "550.90.07",
				MIGInstance: "1", MIGProfile: "1g.10gb", Workload: record.Workload{Namespace: "ns", Pod: strings.Repeat("p", 1100), Container: "c"}},
			{Index: "0", UUID: "GPU-mig", PCIBusID: "00000000:17:00.0", ModelName: "NVIDIA A100-SXM4-80GB", DriverVersion: "550.90.07",
				MIGInstance: "2", MIGProfile: "3g.40gb", Workload: record.Workload{Job: "llm", PodUID: "u-2"}},
		}
		out = append(out, &record.Batch{Source: "nvml", Time: t0.Add(time.Duration(i) * time.Second), GPUs: gpus,
			Resource: &record.Resource{Datacenter: "dc-x", Row: "row-x", Rack: "rack-x", Cluster: "c-x", Host: "node-mig"},
			Samples: []record.Sample{
				{Field: field(telemetry.GPUTemp), GPU: 0, Link: -1, Value: 50 + float64(i)},
				{Field: field(telemetry.TotalEnergy), GPU: 0, Link: -1, Value: 1000 + 10*float64(i)},
				{Field: field(telemetry.NVLinkCRCFlit), GPU: 0, Link: 3, Value: float64(i)},
				{Field: field(telemetry.SMActive), GPU: 1, Link: -1, Value: 0.5},
				{Field: field(telemetry.SMActive), GPU: 2, Link: -1, Value: 0.25},
				{Field: -1, Name: "fleetwatch_train_step_seconds", Kind: telemetry.Gauge, GPU: 2, Link: -1, Value: 0.8,
					Extra: []record.Label{{Key: telemetry.LabelRank, Value: "7"}}},
				{Field: -1, Name: "node_cpu_utilization", Kind: telemetry.Gauge, GPU: -1, Link: -1, Value: 0.4},
			}})
	}
	return out
}

// histogramOf is a third-party sender's histogram for one GPU, its labels
// on the resource (perGPU) or on the data point.
func histogramOf(perGPU bool, ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr(telemetry.AttrHostName, "node-h")
	rm.Resource().Attributes().PutStr(telemetry.AttrServiceName, "kernel-timer")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("kernel_launch_ms")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := h.DataPoints().AppendEmpty()
	labels := dp.Attributes()
	if perGPU {
		labels = rm.Resource().Attributes()
	}
	labels.PutStr(telemetry.LabelUUID, "GPU-h")
	labels.PutStr(telemetry.LabelGPU, "3")
	labels.PutStr(telemetry.LabelJob, "bench")
	dp.Attributes().PutStr("kernel", "gemm")
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(ts.Add(-time.Hour)))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	dp.ExplicitBounds().FromRaw([]float64{1, 10})
	dp.BucketCounts().FromRaw([]uint64{4, 2, 1})
	dp.SetCount(7)
	dp.SetSum(31)
	return md
}

// xidOf is a GPU event, its GPU's labels on the resource (perGPU) or on
// the record.
func xidOf(perGPU bool, ts time.Time) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr(telemetry.AttrHostName, "node-e")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	labels := lr.Attributes()
	if perGPU {
		labels = rl.Resource().Attributes()
	}
	labels.PutStr(telemetry.LabelUUID, "GPU-e")
	labels.PutStr(telemetry.LabelGPU, "5")
	labels.PutStr(telemetry.LabelModelName, "NVIDIA H100 80GB HBM3")
	labels.PutStr(telemetry.LabelDriverVersion, "550.90.07")
	lr.SetEventName(telemetry.EventGPU)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	lr.Attributes().PutStr(telemetry.AttrGPUEvent, telemetry.GPUEventXID)
	lr.Attributes().PutInt(telemetry.AttrCode, 79)
	lr.Body().SetStr("XID 79: GPU has fallen off the bus")
	return ld
}

// exportRequest sends an agent-encoded request, which must be taken whole.
func exportRequest(t *testing.T, c pmetricotlp.GRPCClient, req *colmetrics.ExportMetricsServiceRequest) {
	t.Helper()
	data, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	er := pmetricotlp.NewExportRequest()
	if err := er.UnmarshalProto(data); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Export(ctx, er)
	if err != nil {
		t.Fatal(err)
	}
	if n := resp.PartialSuccess().RejectedDataPoints(); n != 0 {
		t.Fatalf("%d points rejected: %s", n, resp.PartialSuccess().ErrorMessage())
	}
}

// tableRows returns a table's rows, merged (FINAL), one line each, sorted.
func tableRows(t *testing.T, db *storage.Client, table string, columns ...string) []string {
	t.Helper()
	exprs := make([]string, len(columns))
	for i, c := range columns {
		exprs[i] = "toString(" + c + ")"
	}
	var all string
	q := fmt.Sprintf("SELECT arrayStringConcat(groupArray(r), '\\n') FROM (SELECT concat(%s) AS r FROM %s.%s FINAL ORDER BY r)",
		strings.Join(exprs, ", '|', "), db.Config().Database, table)
	if err := db.QueryScalar(context.Background(), q, &all); err != nil {
		t.Fatal(err)
	}
	if all == "" {
		return nil
	}
	return strings.Split(all, "\n")
}

var seriesColumns = []string{"series", "metric", "counter", "datacenter", "row", "rack", "node", "cluster", "gpu", "uuid", "pci_bus_id",
	"device", "model_name", "gpu_instance", "gpu_profile", "namespace", "pod", "container", "job",
	"arrayStringConcat(label_keys, ',')", "arrayStringConcat(label_values, ',')"}

// The same samples, events and a third-party histogram, sent once with
// every GPU label on every data point (older agents, dcgm-exporter-style
// senders) and once with one resource per GPU (the agent's default), land
// as the same rows: the same series ids, labels, values and counter
// increases. Each form is sent to a collector decoding metrics directly
// (the default for this pipeline) and to one decoding with pdata, and all
// four land the same rows.
func TestBothGPUIdentityFormsLandAsTheSameRows(t *testing.T) {
	batches := formBatches(t)
	type run struct {
		form    otlp.Form
		decoder string
	}
	var runs []run
	for _, d := range []string{otlprecv.DecoderDirect, otlprecv.DecoderPdata} {
		for _, f := range []otlp.Form{otlp.PerPoint, otlp.PerGPU} {
			runs = append(runs, run{f, d})
		}
	}
	forms := make([]string, len(runs))
	dbs := make([]*storage.Client, len(runs))
	sent := make([]int, len(runs))       // rows each form should make
	pointAttrs := make([]int, len(runs)) // data-point attributes each form sent
	ts := time.Now().Truncate(time.Second).Add(-30 * time.Second)
	for i, rn := range runs {
		form := rn.form
		forms[i] = form.String() + "/" + rn.decoder
		dbs[i] = chtest.NewDB(t)
		col := startCollector(t, colParams{DSN: dbs[i].Config().DSN(), Decoder: rn.decoder})
		conn := dial(t, col.endpoint)
		metrics := pmetricotlp.NewGRPCClient(conn)
		enc := otlp.NewEncoder(batches[0].Time.Add(-time.Hour), "test")
		enc.Form = form
		for _, b := range batches {
			req := enc.Metrics(b)
			if req == nil {
				continue
			}
			for _, rm := range req.ResourceMetrics {
				for _, m := range rm.ScopeMetrics[0].Metrics {
					for _, dp := range append(m.GetGauge().GetDataPoints(), m.GetSum().GetDataPoints()...) {
						pointAttrs[i] += len(dp.Attributes)
						sent[i]++
					}
				}
			}
			exportRequest(t, metrics, req)
		}
		export(t, metrics, histogramOf(form == otlp.PerGPU, ts))
		sent[i] += 3 + 2 // buckets, _sum, _count
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := plogotlp.NewGRPCClient(conn).Export(ctx, plogotlp.NewExportRequestFromLogs(xidOf(form == otlp.PerGPU, ts))); err != nil {
			t.Fatal(err)
		}
		cancel()
		db := dbs[i]
		waitFor(t, 60*time.Second, forms[i]+": every row", func() bool {
			return count(t, db, "gpu_samples", "") == uint64(sent[i]) && count(t, db, "gpu_events", "") == 1
		})
		// Every agent request went the decoder's way; the histogram went
		// to pdata, with its reason.
		direct := col.selfMetric(t, "fleetwatch_receiver_metrics_decoded_requests", map[string]string{"decoder": "direct"})
		unsupported := col.selfMetric(t, "fleetwatch_receiver_metrics_decoded_requests", map[string]string{"decoder": "pdata", "reason": "unsupported"})
		if want := rn.decoder == otlprecv.DecoderDirect; (direct >= float64(len(batches))/2) != want || (unsupported == 1) != want {
			t.Errorf("%s: %v requests decoded directly, %v left to pdata as unsupported", forms[i], direct, unsupported)
		}
	}
	if sent[0] < 500 {
		t.Fatalf("%s sent %d points", forms[0], sent[0])
	}
	for i := range runs {
		if sent[i] != sent[0] {
			t.Fatalf("%s sent %d points, %s %d", forms[i], sent[i], forms[0], sent[0])
		}
	}
	// The per-GPU form really is another form: far fewer labels per point.
	t.Logf("data-point attributes per point: %.2f per point, %.2f per GPU", float64(pointAttrs[0])/float64(sent[0]), float64(pointAttrs[1])/float64(sent[1]))
	if 4*pointAttrs[1] > pointAttrs[0] {
		t.Fatalf("per GPU the points carry %d attributes, per point %d", pointAttrs[1], pointAttrs[0])
	}
	for _, tc := range []struct {
		table   string
		columns []string
		min     int
	}{
		{"gpu_samples", []string{"ts", "ts_ns", "metric", "series", "value", "delta"}, sent[0]},
		{"gpu_series", seriesColumns, 100},
		{"gpu_events", []string{"ts", "event", "code", "count", "message", "source", "datacenter", "row", "rack", "node", "cluster", "gpu", "uuid",
			"pci_bus_id", "device", "model_name", "gpu_instance", "gpu_profile", "namespace", "pod", "container", "job",
			"arrayStringConcat(label_keys, ',')", "arrayStringConcat(label_values, ',')"}, 1},
	} {
		a := tableRows(t, dbs[0], tc.table, tc.columns...)
		if len(a) < tc.min {
			t.Errorf("%s: %d rows, want at least %d", tc.table, len(a), tc.min)
		}
		for i := 1; i < len(dbs); i++ {
			b := tableRows(t, dbs[i], tc.table, tc.columns...)
			if len(a) != len(b) {
				t.Errorf("%s: %d rows from %s, %d from %s", tc.table, len(a), forms[0], len(b), forms[i])
				continue
			}
			for r := range a {
				if a[r] != b[r] {
					t.Errorf("%s: row %d differs:\n%s %s\n%s %s", tc.table, r, forms[0], a[r], forms[i], b[r])
					break
				}
			}
		}
	}
	// What the rows say is what was sent: the MIG instances keep their own
	// workloads and the truncated pod, and the extra label; counters have
	// their increases.
	for _, tc := range []struct{ where, what string }{
		{"metric = 'DCGM_FI_PROF_SM_ACTIVE' AND uuid = 'GPU-mig' AND gpu_instance = '1' AND gpu_profile = '1g.10gb' AND namespace = 'ns' AND length(pod) = 1024 AND container = 'c'", "MIG instance 1"},
		{"metric = 'DCGM_FI_PROF_SM_ACTIVE' AND uuid = 'GPU-mig' AND gpu_instance = '2' AND job = 'llm' AND has(label_values, 'u-2') AND pod = ''", "MIG instance 2"},
		{"metric = 'fleetwatch_train_step_seconds' AND gpu_instance = '2' AND job = 'llm' AND label_values[indexOf(label_keys, 'rank')] = '7'", "the rank"},
		{"metric = 'DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT' AND uuid = 'GPU-mig' AND has(label_keys, 'link')", "the NVLink link"},
		{"metric = 'node_cpu_utilization' AND node = 'node-mig' AND uuid = '' AND rack = 'rack-x'", "the node-level metric"},
		{"metric = 'kernel_launch_ms_bucket' AND uuid = 'GPU-h' AND job = 'bench' AND node = 'node-h' AND has(label_keys, 'le') AND has(label_keys, 'kernel')", "the histogram"},
		{"metric = 'DCGM_FI_DEV_GPU_TEMP' AND uuid != '' AND model_name != '' AND pci_bus_id != '' AND node != '' AND rack != ''", "the simulated GPUs"},
	} {
		for i, db := range dbs {
			if count(t, db, "gpu_series", tc.where) == 0 {
				t.Errorf("%s: no series of %s", forms[i], tc.what)
			}
		}
	}
	var rise float64
	if err := dbs[1].QueryScalar(context.Background(), `SELECT sum(delta) FROM gpu_samples WHERE metric = 'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION'
		AND series IN (SELECT series FROM gpu_series WHERE uuid = 'GPU-mig')`, &rise); err != nil {
		t.Fatal(err)
	}
	if rise != 10 {
		t.Errorf("the MIG GPU's energy rose by %v, want 10", rise)
	}
	if count(t, dbs[1], "gpu_events", "uuid = 'GPU-e' AND gpu = '5' AND node = 'node-e' AND code = 79") != 1 {
		t.Error("the event's GPU labels on its resource were not read")
	}
}

// An OTLP client nobody here wrote, telemetrygen, sends a DCGM metric with
// the GPU's UUID as a resource attribute and then as a data-point
// attribute: both are stored (a DCGM metric without a UUID would be
// rejected), and as one series.
func TestTelemetrygenGPULabelsOnTheResource(t *testing.T) {
	db := chtest.NewDB(t)
	col := startCollector(t, colParams{DSN: db.Config().DSN()})
	base := []string{"metrics", "--otlp-insecure", "--otlp-endpoint", col.endpoint, "--rate", "0", "--metrics", "20",
		"--otlp-metric-name", telemetry.GPUTemp, "--metric-type", "Gauge", "--otlp-attributes", `host.name="node-tg"`}
	clienttest.RunTelemetrygen(t, append(base, "--otlp-attributes", `UUID="GPU-tg"`, "--otlp-attributes", `gpu="1"`)...)
	clienttest.RunTelemetrygen(t, append(base, "--telemetry-attributes", `UUID="GPU-tg"`, "--telemetry-attributes", `gpu="1"`)...)
	waitFor(t, 30*time.Second, "both runs' points", func() bool {
		return count(t, db, "gpu_samples", "metric = '"+telemetry.GPUTemp+"'") == 40
	})
	if n := count(t, db, "gpu_series", "uuid = 'GPU-tg' AND gpu = '1' AND node = 'node-tg'"); n != 1 {
		t.Errorf("%d series for both forms, want 1", n)
	}
	if got := col.selfMetric(t, "fleetwatch_exporter_rejected_items", map[string]string{"reason": "missing_gpu_uuid"}); got != 0 {
		t.Errorf("%v points rejected for a missing UUID", got)
	}
}
