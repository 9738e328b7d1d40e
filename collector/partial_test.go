package collector_test

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// The distribution's receiver tells the sender what the ClickHouse exporter
// rejected, over gRPC and OTLP/HTTP in protobuf and JSON, stores the rest,
// and counts both in the collector's own metrics as a scrape shows them.
func TestPartialSuccessEndToEnd(t *testing.T) {
	db := chtest.NewDB(t)
	col := startCollector(t, colParams{DSN: db.Config().DSN(), HTTPPort: promtest.FreePort(t)})
	ctx := context.Background()
	now := time.Now()

	// Metrics over gRPC: two points stored, one NaN, one DCGM point without a GPU.
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr(telemetry.AttrHostName, "n1")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(telemetry.GPUTemp)
	points := m.SetEmptyGauge().DataPoints()
	for i, p := range []struct {
		uuid string
		v    float64
	}{{"GPU-a", 50}, {"GPU-a", math.NaN()}, {"", 40}, {"GPU-b", 60}} {
		dp := points.AppendEmpty()
		if p.uuid != "" {
			dp.Attributes().PutStr(telemetry.LabelUUID, p.uuid)
		}
		dp.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(i) * time.Second)))
		dp.SetDoubleValue(p.v)
	}
	resp, err := pmetricotlp.NewGRPCClient(dial(t, col.endpoint)).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md))
	if err != nil {
		t.Fatal(err)
	}
	ps := resp.PartialSuccess()
	if ps.RejectedDataPoints() != 2 || !strings.Contains(ps.ErrorMessage(), "1 missing_gpu_uuid, 1 non_finite") {
		t.Errorf("metrics: partial success %d %q, want 2 (1 missing_gpu_uuid, 1 non_finite)", ps.RejectedDataPoints(), ps.ErrorMessage())
	}

	// Spans over HTTP, protobuf then JSON: two stored, one without a trace id.
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for i := range 3 {
		sp := spans.AppendEmpty()
		sp.SetName("predict")
		if i != 1 {
			sp.SetTraceID(pcommon.TraceID{1, byte(i + 1)})
		}
		sp.SetSpanID(pcommon.SpanID{2, byte(i + 1)})
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
	}
	req := ptraceotlp.NewExportRequestFromTraces(td)
	for _, enc := range []struct {
		contentType string
		marshal     func() ([]byte, error)
		unmarshal   func(ptraceotlp.ExportResponse, []byte) error
	}{
		{"application/x-protobuf", req.MarshalProto, ptraceotlp.ExportResponse.UnmarshalProto},
		{"application/json", req.MarshalJSON, ptraceotlp.ExportResponse.UnmarshalJSON},
	} {
		body, err := enc.marshal()
		if err != nil {
			t.Fatal(err)
		}
		status, out := postOTLP(t, col.httpURL+"/v1/traces", enc.contentType, body)
		tr := ptraceotlp.NewExportResponse()
		if status != http.StatusOK {
			t.Fatalf("%s: %d %q", enc.contentType, status, out)
		}
		if err := enc.unmarshal(tr, out); err != nil {
			t.Fatal(err)
		}
		if ps := tr.PartialSuccess(); ps.RejectedSpans() != 1 || !strings.Contains(ps.ErrorMessage(), "1 bad_span") {
			t.Errorf("%s: partial success %d %q, want 1 bad_span", enc.contentType, ps.RejectedSpans(), ps.ErrorMessage())
		}
	}
	// And a request the receiver refuses itself.
	if status, out := postOTLP(t, col.httpURL+"/v1/traces", "text/plain", []byte("hello")); status != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d %q, want 415", status, out)
	}

	waitFor(t, 30*time.Second, "2 samples and 2 spans", func() bool {
		return count(t, db, "gpu_samples", "") == 2 && count(t, db, "spans", "") == 2 // the JSON copy is the same spans
	})
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"fleetwatch_receiver_partial_rejected_items", map[string]string{"signal": "metrics", "reason": "non_finite", "receiver": "fleetwatch_otlp"}, 1},
		{"fleetwatch_receiver_partial_rejected_items", map[string]string{"signal": "metrics", "reason": "missing_gpu_uuid"}, 1},
		{"fleetwatch_receiver_partial_rejected_items", map[string]string{"signal": "traces", "reason": "bad_span"}, 2},
		{"fleetwatch_exporter_rejected_items", map[string]string{"signal": "traces", "reason": "bad_span"}, 2},
		{"fleetwatch_receiver_refused_requests", map[string]string{"signal": "traces", "transport": "http", "reason": "unsupported_media_type"}, 1},
		{"otelcol_receiver_accepted_metric_points", map[string]string{"receiver": "fleetwatch_otlp", "transport": "grpc"}, 4},
		{"otelcol_receiver_accepted_spans", map[string]string{"receiver": "fleetwatch_otlp", "transport": "http"}, 6},
	} {
		if got := col.selfMetric(t, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func postOTLP(t *testing.T, url, contentType string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}
