package collector_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/fleetwatch/fleetwatch/collector/otlprecv"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// directCases are requests that take each way through metrics_decoder:
// direct, and the reason a counter gives for the ones left to pdata.
func directCases(ts time.Time) []struct {
	name, reason string
	md           pmetric.Metrics
} {
	t := pcommon.NewTimestampFromTime(ts)
	gpu := func(md pmetric.Metrics, uuid string) pmetric.MetricSlice {
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr(telemetry.AttrHostName, "node-d")
		if uuid != "" {
			rm.Resource().Attributes().PutStr(telemetry.LabelUUID, uuid)
			rm.Resource().Attributes().PutStr(telemetry.LabelGPU, "0")
		}
		return rm.ScopeMetrics().AppendEmpty().Metrics()
	}
	gauge := func(ms pmetric.MetricSlice, name string, v float64, ts pcommon.Timestamp) pmetric.NumberDataPoint {
		m := ms.AppendEmpty()
		m.SetName(name)
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetDoubleValue(v)
		dp.SetTimestamp(ts)
		return dp
	}
	type tc = struct {
		name, reason string
		md           pmetric.Metrics
	}
	var out []tc
	add := func(name, reason string, build func(md pmetric.Metrics)) {
		md := pmetric.NewMetrics()
		build(md)
		out = append(out, tc{name, reason, md})
	}
	add("clean", otlprecv.DecodedDirect, func(md pmetric.Metrics) {
		ms := gpu(md, "GPU-d1")
		gauge(ms, telemetry.GPUTemp, 60, t)
		gauge(ms, telemetry.PowerUsage, 300, t)
		gauge(ms, "fleetwatch_train_step_seconds", 0.7, t).Attributes().PutInt(telemetry.LabelRank, 3)
	})
	add("rejected by the exporter", otlprecv.DecodedDirect, func(md pmetric.Metrics) {
		ms := gpu(md, "GPU-d2")
		gauge(ms, telemetry.GPUTemp, math.NaN(), t)
		gauge(ms, telemetry.PowerUsage, 1, pcommon.NewTimestampFromTime(ts.Add(-400*24*time.Hour)))
		gauge(ms, "9 bad", 1, t)
		gauge(ms, telemetry.GPUTemp, 61, t)
		gauge(gpu(md, ""), telemetry.GPUTemp, 62, t) // a DCGM metric without its GPU
	})
	add("invalid UTF-8 in a label", otlprecv.FallbackLimits, func(md pmetric.Metrics) {
		gauge(gpu(md, "GPU-d3"), telemetry.GPUTemp, 63, t).Attributes().PutStr("pod", "p\xff")
	})
	add("a label over max_value_bytes", otlprecv.FallbackLimits, func(md pmetric.Metrics) {
		ms := gpu(md, "GPU-d4")
		gauge(ms, telemetry.GPUTemp, 64, t).Attributes().PutStr("pod", strings.Repeat("p", otlprecv.DefaultMaxValueBytes+1))
		gauge(ms, telemetry.PowerUsage, 200, t)
	})
	add("scope attributes", otlprecv.FallbackUnchecked, func(md pmetric.Metrics) {
		ms := gpu(md, "GPU-d5")
		gauge(ms, telemetry.GPUTemp, 65, t)
		md.ResourceMetrics().At(0).ScopeMetrics().At(0).Scope().Attributes().PutStr("library", "x")
	})
	add("invalid UTF-8 in a description", otlprecv.FallbackUnchecked, func(md pmetric.Metrics) {
		ms := gpu(md, "GPU-d6")
		gauge(ms, telemetry.GPUTemp, 66, t)
		ms.At(0).SetDescription("temp\xfe")
	})
	add("a histogram", otlprecv.FallbackUnsupported, func(md pmetric.Metrics) {
		ms := gpu(md, "GPU-d7")
		gauge(ms, telemetry.GPUTemp, 67, t)
		h := ms.AppendEmpty()
		h.SetName("kernel_ms")
		h.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dp := h.Histogram().DataPoints().AppendEmpty()
		dp.SetTimestamp(t)
		dp.BucketCounts().FromRaw([]uint64{1, 2})
		dp.ExplicitBounds().FromRaw([]float64{5})
		dp.SetCount(3)
	})
	return out
}

// A collector decoding metrics directly answers every request as one
// decoding with pdata does (the same partial success), stores the same
// rows, and counts where each request went: the direct decoder, or pdata
// with the reason.
func TestDirectAndPdataAnswerAlike(t *testing.T) {
	ts := time.Now().Truncate(time.Second).Add(-10 * time.Second)
	cases := directCases(ts)
	decoders := []string{otlprecv.DecoderDirect, otlprecv.DecoderPdata}
	answers := make([][]string, len(decoders))
	dbs := make([]*storage.Client, len(decoders))
	for i, dec := range decoders {
		dbs[i] = chtest.NewDB(t)
		col := startCollector(t, colParams{DSN: dbs[i].Config().DSN(), Decoder: dec})
		client := pmetricotlp.NewGRPCClient(dial(t, col.endpoint))
		want := 0
		for _, c := range cases {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			resp, err := client.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(c.md))
			cancel()
			if err != nil {
				t.Fatalf("%s, %s: %v", dec, c.name, err)
			}
			ps := resp.PartialSuccess()
			answers[i] = append(answers[i], fmt.Sprintf("%s: %d %q", c.name, ps.RejectedDataPoints(), ps.ErrorMessage()))
			want += c.md.DataPointCount() - int(ps.RejectedDataPoints())
		}
		want += 2 // the histogram's one point is three rows: two buckets and _count
		db := dbs[i]
		waitFor(t, 30*time.Second, dec+": the kept points", func() bool { return count(t, db, "gpu_samples", "") == uint64(want) })
		if dec != otlprecv.DecoderDirect {
			continue
		}
		for _, reason := range []string{otlprecv.DecodedDirect, otlprecv.FallbackLimits, otlprecv.FallbackUnchecked, otlprecv.FallbackUnsupported} {
			want := 0
			for _, c := range cases {
				if c.reason == reason {
					want++
				}
			}
			decoder := "pdata"
			if reason == otlprecv.DecodedDirect {
				decoder = "direct"
			}
			got := col.selfMetric(t, "fleetwatch_receiver_metrics_decoded_requests", map[string]string{"decoder": decoder, "reason": reason})
			if got != float64(want) {
				t.Errorf("decoded_requests{decoder=%q, reason=%q} = %v, want %d", decoder, reason, got, want)
			}
		}
	}
	for j := range cases {
		if answers[0][j] != answers[1][j] {
			t.Errorf("direct answered %s\npdata answered  %s", answers[0][j], answers[1][j])
		}
	}
	if !strings.Contains(answers[0][1], "non_finite") || !strings.Contains(answers[0][3], "attribute_value_too_long") {
		t.Errorf("the rejections were not reported: %v", answers[0])
	}
	for _, table := range []struct {
		name    string
		columns []string
	}{{"gpu_samples", []string{"ts", "ts_ns", "metric", "series", "value", "delta"}}, {"gpu_series", seriesColumns}} {
		a, b := tableRows(t, dbs[0], table.name, table.columns...), tableRows(t, dbs[1], table.name, table.columns...)
		if strings.Join(a, "\n") != strings.Join(b, "\n") {
			t.Errorf("%s differs:\ndirect\n%s\npdata\n%s", table.name, strings.Join(a, "\n"), strings.Join(b, "\n"))
		}
	}
}
