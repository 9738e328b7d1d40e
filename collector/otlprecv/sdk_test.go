package otlprecv

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// The OTel Go SDK's own OTLP exporters read the partial success: their
// Export returns it as an error ("OTLP partial success: ... (N ... rejected)").

func TestOTelSDKMetricExportersSeePartialSuccess(t *testing.T) {
	h := start(t, nil)
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		exp  func() (sdkmetric.Exporter, error)
	}{
		{"grpc", func() (sdkmetric.Exporter, error) {
			return otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(h.grpcAddr), otlpmetricgrpc.WithInsecure())
		}},
		{"http", func() (sdkmetric.Exporter, error) {
			return otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(h.httpURL+DefaultMetricsURLPath))
		}},
		{"http+gzip", func() (sdkmetric.Exporter, error) {
			return otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(h.httpURL+DefaultMetricsURLPath),
				otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp, err := tc.exp()
			if err != nil {
				t.Fatal(err)
			}
			// A push reader that only exports on ForceFlush, which returns the export's error.
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
			defer mp.Shutdown(context.Background())
			before := h.sink.keptOf(signalMetrics)
			c, err := mp.Meter("sdk-test").Int64Counter("requests")
			if err != nil {
				t.Fatal(err)
			}
			c.Add(ctx, 3, metric.WithAttributes(attribute.String("route", "/a")))
			c.Add(ctx, 1, metric.WithAttributes(attribute.String("route", "/b"), attribute.String(rejectKey, "non_finite")))
			c.Add(ctx, 1, metric.WithAttributes(attribute.String("route", "/c"), attribute.String(rejectKey, "filtered")))
			err = mp.ForceFlush(ctx)
			if err == nil || !strings.Contains(err.Error(), "OTLP partial success") || !strings.Contains(err.Error(), "(2 metric data points rejected)") ||
				!strings.Contains(err.Error(), "1 filtered, 1 non_finite") {
				t.Fatalf("the SDK exporter reports %v, want the partial success of 2 points", err)
			}
			if got := h.sink.keptOf(signalMetrics) - before; got != 1 {
				t.Errorf("the pipeline kept %d points, want 1", got)
			}
		})
	}
}

func TestOTelSDKTraceExporterSeesPartialSuccess(t *testing.T) {
	h := start(t, nil)
	ctx := t.Context()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := tp.Tracer("sdk-test")
	for _, reject := range []string{"", "bad_span", "", ""} {
		opts := []trace.SpanStartOption{}
		if reject != "" {
			opts = append(opts, trace.WithAttributes(attribute.String(rejectKey, reject)))
		}
		_, sp := tr.Start(ctx, "predict", opts...)
		sp.End()
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(h.httpURL+DefaultTracesURLPath))
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(context.Background())
	err = exp.ExportSpans(ctx, rec.Ended())
	if err == nil || !strings.Contains(err.Error(), "(1 spans rejected)") || !strings.Contains(err.Error(), "1 bad_span") {
		t.Fatalf("the SDK exporter reports %v, want the partial success of 1 span", err)
	}
	if got := h.sink.keptOf(signalTraces); got != 3 {
		t.Errorf("the pipeline kept %d spans, want 3", got)
	}
}

// records keeps what a logger emits, for an exporter to send.
type records struct{ recs []sdklog.Record }

func (r *records) OnEmit(_ context.Context, rec *sdklog.Record) error {
	r.recs = append(r.recs, rec.Clone())
	return nil
}
func (r *records) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (r *records) Shutdown(context.Context) error                         { return nil }
func (r *records) ForceFlush(context.Context) error                       { return nil }

func TestOTelSDKLogExporterSeesPartialSuccess(t *testing.T) {
	h := start(t, nil)
	ctx := t.Context()
	rec := &records{}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(rec))
	logger := lp.Logger("sdk-test")
	for _, reject := range []string{"missing_model", "", "missing_model"} {
		var r otellog.Record
		r.SetBody(attribute.StringValue("inference"))
		if reject != "" {
			r.AddAttributes(attribute.String(rejectKey, reject))
		}
		logger.Emit(ctx, r)
	}
	exp, err := otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(h.grpcAddr), otlploggrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(context.Background())
	err = exp.Export(ctx, rec.recs)
	if err == nil || !strings.Contains(err.Error(), "(2 logs rejected)") || !strings.Contains(err.Error(), "2 missing_model") {
		t.Fatalf("the SDK exporter reports %v, want the partial success of 2 records", err)
	}
	if got := h.sink.keptOf(signalLogs); got != 1 {
		t.Errorf("the pipeline kept %d records, want 1", got)
	}
}
