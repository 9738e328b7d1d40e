package chexporter

import (
	"math"
	"reflect"
	"testing"
	"time"

	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/fleetwatch/fleetwatch/collector/fastotlp"
)

// converted is what converting one request gives: rows, queue columns,
// series rows, rejections and normalisations.
type converted struct {
	samples              any
	kinds                []uint8
	starts               []int64
	series               any
	rejected, normalized map[string]int
}

func snapshot(mb *metricBatch) converted {
	out := converted{samples: mb.samples.Block().Data, kinds: append([]uint8{}, mb.kinds...), starts: append([]int64{}, mb.starts...),
		series: mb.series.Block().Data, rejected: map[string]int{}, normalized: map[string]int{}}
	for k, v := range mb.rejected {
		if v > 0 {
			out.rejected[k] = v
		}
	}
	for k, v := range mb.normalized {
		if v > 0 {
			out.normalized[k] = v
		}
	}
	return out
}

// bothPaths converts each request with pdata in one exporter and with the
// direct decoder in another, in order (so the second request of a sender
// meets the series, hints and refreshes the first left), and fails on any
// difference. It returns how many requests the direct decoder took.
func bothPaths(t testing.TB, cfg *Config, now time.Time, requests ...[]byte) int {
	t.Helper()
	viaPdata, err := newExporter(cfg, exportertest.NewNopSettings(Type), signalMetrics)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := newExporter(cfg, exportertest.NewNopSettings(Type), signalMetrics)
	if err != nil {
		t.Fatal(err)
	}
	var cols fastotlp.Columns
	took := 0
	for i, req := range requests {
		md, err := (&pmetric.ProtoUnmarshaler{}).UnmarshalMetrics(req)
		if err != nil {
			continue
		}
		if cols.Decode(req) != nil {
			continue // left to pdata in the receiver
		}
		took++
		want := snapshot(viaPdata.convert(md, now))
		got := snapshot(direct.convertColumns(&cols, now))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("request %d: the direct path gives\n%+v\npdata's gives\n%+v", i, got, want)
		}
	}
	return took
}

// The exporter converts a request the receiver decoded into columns to the
// same rows as the same request decoded by pdata: both forms of the agent's
// request, twice (known series through the hints and the cache), and the
// edge cases each rule of the conversion has.
func TestColumnsConvertLikePdata(t *testing.T) {
	now := time.Now()
	cfg := createDefaultConfig()
	for _, form := range forms {
		req := nodeRequest(t, form)
		if took := bothPaths(t, cfg, now, req, req, req); took != 3 {
			t.Fatalf("%s: the direct decoder took %d of 3 requests", form, took)
		}
	}
	edge := edgeRequests(now)
	if took := bothPaths(t, cfg, now, append(edge, edge...)...); took != 2*len(edge) {
		t.Fatalf("the direct decoder took %d of %d edge requests", took, 2*len(edge))
	}
	filtered := createDefaultConfig()
	filtered.Exclude = []string{"DCGM_FI_DEV_POWER*"}
	bothPaths(t, filtered, now, edge...)
}

// edgeRequests are requests the direct decoder takes that exercise every
// rule of the conversion: non-finite values, times out of range and
// missing, DCGM metrics without a UUID, bad names, NVLink names, integer
// values and attributes, duplicate keys, delta and cumulative sums,
// non-monotonic sums, metrics without data, truncated labels.
func edgeRequests(now time.Time) [][]byte {
	ts := pcommon.NewTimestampFromTime(now.Add(-time.Second))
	var out [][]byte
	add := func(build func(rm pmetric.ResourceMetrics)) {
		md := pmetric.NewMetrics()
		build(md.ResourceMetrics().AppendEmpty())
		b, err := (&pmetric.ProtoMarshaler{}).MarshalMetrics(md)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	gauge := func(ms pmetric.MetricSlice, name string, v float64, ts pcommon.Timestamp, attrs ...string) pmetric.NumberDataPoint {
		m := ms.AppendEmpty()
		m.SetName(name)
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetDoubleValue(v)
		dp.SetTimestamp(ts)
		for i := 0; i+1 < len(attrs); i += 2 {
			dp.Attributes().PutStr(attrs[i], attrs[i+1])
		}
		return dp
	}
	add(func(rm pmetric.ResourceMetrics) {
		rm.Resource().Attributes().PutStr("host.name", "n1")
		rm.Resource().Attributes().PutStr("UUID", "GPU-1")
		rm.Resource().Attributes().PutInt("gpu", 0)
		ms := rm.ScopeMetrics().AppendEmpty().Metrics()
		gauge(ms, "DCGM_FI_DEV_GPU_TEMP", 61, ts)
		gauge(ms, "DCGM_FI_DEV_POWER_USAGE", math.NaN(), ts)
		gauge(ms, "DCGM_FI_DEV_SM_CLOCK", math.Inf(1), ts)
		gauge(ms, "DCGM_FI_DEV_MEM_CLOCK", 1, pcommon.NewTimestampFromTime(now.Add(-30*24*time.Hour)))
		gauge(ms, "DCGM_FI_DEV_MEM_COPY_UTIL", 1, 0)
		gauge(ms, "DCGM_FI_PROF_NVLINK_TX_BYTES", 5, ts, "link", "3")
		gauge(ms, "DCGM_FI_DEV_NVLINK_BANDWIDTH_L2", 7, ts)
		gauge(ms, "9bad name", 1, ts)
		gauge(ms, "pod_cpu", 1, ts, "pod_uid", "u1", "pod_uid", "u2", "rank", string(make([]byte, 2000)))
		dp := gauge(ms, "int_gauge", 0, ts, "z", "1", "a", "2")
		dp.SetIntValue(-42)
		dp.Attributes().PutInt("count", 12345)
		dp.Attributes().PutBool("ok", true)
		for _, tc := range []struct {
			name      string
			temporal  pmetric.AggregationTemporality
			monotonic bool
		}{{"DCGM_FI_PROF_PCIE_TX_BYTES", pmetric.AggregationTemporalityCumulative, true},
			{"DCGM_FI_DEV_XID_ERRORS_total", pmetric.AggregationTemporalityDelta, true},
			{"non_monotonic_sum", pmetric.AggregationTemporalityCumulative, false},
			{"unspecified_sum", pmetric.AggregationTemporalityUnspecified, true}} {
			m := ms.AppendEmpty()
			m.SetName(tc.name)
			s := m.SetEmptySum()
			s.SetAggregationTemporality(tc.temporal)
			s.SetIsMonotonic(tc.monotonic)
			p := s.DataPoints().AppendEmpty()
			p.SetIntValue(100)
			p.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Hour)))
			p.SetTimestamp(ts)
		}
		ms.AppendEmpty().SetName("no_data")
	})
	add(func(rm pmetric.ResourceMetrics) { // the per-point form, one point without its UUID
		rm.Resource().Attributes().PutStr("host.name", "n2")
		ms := rm.ScopeMetrics().AppendEmpty().Metrics()
		gauge(ms, "DCGM_FI_DEV_GPU_TEMP", 50, ts, "UUID", "GPU-2", "gpu", "1", "modelName", "H100")
		gauge(ms, "DCGM_FI_DEV_GPU_TEMP", 51, ts, "gpu", "2")
		gauge(ms, "DCGM_FI_DEV_GPU_UTIL", 52, ts, "uuid", "GPU-3", "hpc_job", "j", "job", "k")
	})
	add(func(rm pmetric.ResourceMetrics) { // no resource attributes, a long UUID
		ms := rm.ScopeMetrics().AppendEmpty().Metrics()
		gauge(ms, "DCGM_FI_DEV_GPU_TEMP", 50, ts, "UUID", string(make([]byte, 600)))
	})
	return out
}

// FuzzColumnsConvertLikePdata mutates the agent's requests and the edge
// cases: whatever both decoders take converts to the same rows.
func FuzzColumnsConvertLikePdata(f *testing.F) {
	now := time.Now()
	for _, form := range forms {
		f.Add(nodeRequest(f, form))
	}
	for _, req := range edgeRequests(now) {
		f.Add(req)
	}
	cfg := createDefaultConfig()
	f.Fuzz(func(t *testing.T, req []byte) {
		bothPaths(t, cfg, now, req, req)
	})
}
