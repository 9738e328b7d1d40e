package otlprecv

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.uber.org/zap"

	"github.com/fleetwatch/fleetwatch/collector/fastotlp"
)

// With metrics_decoder: direct behind a pipeline that does not hand the
// columns to the ClickHouse exporter (here a plain consumer, as a
// processor that hands data on later would), nothing is lost: the request
// is consumed again through pdata, answered as pdata answers it, counted
// as not_taken, and every later request goes to pdata (off), with one
// warning.
func TestDirectNotTakenGoesToPdata(t *testing.T) {
	h := start(t, func(c *Config) { c.MetricsDecoder = DecoderDirect })
	conn := h.dial(t)
	metrics := testSignals[0]
	if metrics.name != signalMetrics {
		t.Fatal("testSignals[0] is not metrics")
	}
	for range 2 {
		n, msg, err := metrics.grpc(t.Context(), conn, mixed...)
		if err != nil {
			t.Fatal(err)
		}
		if n != 3 || !strings.HasPrefix(msg, mixedMessage) {
			t.Errorf("partial success = %d %q, want 3 %q...", n, msg, mixedMessage)
		}
	}
	if got := h.sink.keptOf(signalMetrics); got != 4 {
		t.Errorf("the pipeline kept %d points, want 4", got)
	}
	for reason, want := range map[string]int64{FallbackNotTaken: 1, FallbackOff: 1} {
		if got := h.counter(t, "fleetwatch_receiver_metrics_decoded_requests", map[string]string{"decoder": "pdata", "reason": reason}); got != want {
			t.Errorf("decoded_requests{reason=%q} = %d, want %d", reason, got, want)
		}
	}
	if n := h.logs.FilterMessageSnippet("did not hand the decoded request").Len(); n != 1 {
		t.Errorf("%d warnings about the pipeline, want 1", n)
	}
}

// FuzzDirectTakesOnlyWhatChecksKeep: a protobuf metrics request the direct
// decoder takes is one the pre-scan passes (depth, items), pdata decodes
// to as many points, and the receiver's checks (checkMetrics) leave as it
// is: nothing rejected, nothing repaired. So the direct path gives senders
// the same answers.
func FuzzDirectTakesOnlyWhatChecksKeep(f *testing.F) {
	fuzzSeeds(f, func(signal uint8, json bool, body []byte) {
		if signal == 0 && !json {
			f.Add(body)
		}
	})
	for depth := 1; depth <= 5; depth++ {
		for _, where := range []string{"metadata", "exemplar"} {
			f.Add(nestedMetricsProto(where, depth))
		}
	}
	// Low limits, so that the seeds meet them: mixed holds 5 points.
	lim := DefaultLimits()
	lim.MaxItemsPerRequest, lim.MaxAttributeDepth = 4, 3
	sig := newMetricsSignal(nil, &lim)
	d := newDirectMetrics(sig, nil, zap.NewNop())
	f.Fuzz(func(t *testing.T, body []byte) {
		var cols fastotlp.Columns
		if d.decode(&cols, body) != DecodedDirect {
			return
		}
		if reason, err := sig.scan(protobufEncoding, body); err != nil {
			t.Fatalf("the direct decoder took a request the pre-scan refuses (%s): %v", reason, err)
		}
		req := pmetricotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			t.Fatalf("the direct decoder took a request pdata refuses: %v", err)
		}
		if n := req.Metrics().DataPointCount(); n != cols.Len() {
			t.Fatalf("pdata decodes %d points, the direct decoder %d", n, cols.Len())
		}
		c := newChecker(&lim)
		checkMetrics(req.Metrics(), c)
		if len(c.rejected) > 0 || c.normalized > 0 {
			t.Fatalf("the direct decoder took a request the checks change: rejected %v, repaired %d", c.rejected, c.normalized)
		}
	})
}

// nestedMetricsProto is a request of one gauge point whose metric metadata
// or exemplar holds an attribute value nested depth levels deep (1: a
// plain value): parts the direct decoder checks but does not keep.
func nestedMetricsProto(where string, depth int) []byte {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("UUID", "GPU-1")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("DCGM_FI_DEV_GPU_TEMP")
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetDoubleValue(1)
	attrs := m.Metadata()
	if where == "exemplar" {
		ex := dp.Exemplars().AppendEmpty()
		ex.SetDoubleValue(1)
		attrs = ex.FilteredAttributes()
	}
	for range depth - 1 {
		attrs = attrs.PutEmptyMap("k")
	}
	attrs.PutStr("k", "v")
	b, err := (&pmetric.ProtoMarshaler{}).MarshalMetrics(md)
	if err != nil {
		panic(err)
	}
	return b
}

// A request body's buffer is given back for reuse only when the direct
// decoder's columns were taken: the pdata path (and a pipeline that did
// not take the columns, then got pdata) may keep references into it.
func TestDirectBodyReusableOnlyWhenTaken(t *testing.T) {
	body, err := metricsRequest("", "").MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	tel, err := newTelemetry(componenttest.NewNopTelemetrySettings(), component.NewID(Type), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{ReceiverID: component.NewID(Type), Transport: transportGRPC,
		ReceiverCreateSettings: receivertest.NewNopSettings(Type)})
	if err != nil {
		t.Fatal(err)
	}
	lim := DefaultLimits()
	for _, take := range []bool{true, false} {
		next := must(consumer.NewMetrics(func(ctx context.Context, _ pmetric.Metrics) error {
			if h := fastotlp.FromContext(ctx); take && h != nil {
				h.Take()
			}
			return nil
		}))
		sig := newMetricsSignal(next, &lim)
		sig.direct = newDirectMetrics(sig, next, zap.NewNop()).export
		_, reusable, err := sig.serveGRPC(context.Background(), obs, tel, body)
		if err != nil || reusable != take {
			t.Errorf("columns taken %v: reusable %v, err %v", take, reusable, err)
		}
	}
}
