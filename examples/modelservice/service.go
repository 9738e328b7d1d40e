// Package modelservice is an example model server instrumented with the
// OpenTelemetry Go SDK the way Fleetwatch expects (docs/TELEMETRY.md): every
// request emits a fleetwatch.inference event (an OTLP log record with the
// model, version, request id, latency, features and prediction), a latency
// histogram, and spans for the request's stages. Any service in any language
// can do the same; this one is the reference the tests run.
//
// Layer: assembly (docs/ARCHITECTURE.md, "Layers"): an example of a user's
// service; it imports only the telemetry contract.
package modelservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Config configures the example.
type Config struct {
	// Endpoint is the collector's OTLP gRPC address (host:port).
	Endpoint string
	Service  string
	Model    string
	Version  string
	Cluster  string
	Node     string
	// MetricInterval is how often metrics are exported (default 10s).
	MetricInterval time.Duration
}

// Request is what /predict takes.
type Request struct {
	RequestID string             `json:"request_id"`
	Amount    float64            `json:"amount"`
	Country   string             `json:"country"`
	Extra     map[string]float64 `json:"extra,omitempty"`
}

// Response is what /predict returns.
type Response struct {
	RequestID string  `json:"request_id"`
	Score     float64 `json:"score"`
	Class     string  `json:"class"`
}

// Service scores requests and reports on them.
type Service struct {
	cfg      Config
	tracer   trace.Tracer
	logger   otellog.Logger
	latency  metric.Float64Histogram
	requests metric.Int64Counter
	seq      atomic.Uint64
	shutdown []func(context.Context) error
}

// New sets up the OTel SDK exporting to cfg.Endpoint.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Endpoint == "" || cfg.Model == "" {
		return nil, errors.New("modelservice: Endpoint and Model are required")
	}
	if cfg.Service == "" {
		cfg.Service = "model-service"
	}
	if cfg.MetricInterval == 0 {
		cfg.MetricInterval = 10 * time.Second
	}
	res := resource.NewSchemaless(
		attribute.String(telemetry.AttrServiceName, cfg.Service),
		attribute.String(telemetry.AttrCluster, cfg.Cluster),
		attribute.String(telemetry.AttrHostName, cfg.Node),
	)
	te, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(cfg.Endpoint), otlptracegrpc.WithInsecure())
	if err != nil {
		return nil, fmt.Errorf("trace exporter: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(te), sdktrace.WithResource(res))
	me, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(cfg.Endpoint), otlpmetricgrpc.WithInsecure())
	if err != nil {
		return nil, fmt.Errorf("metric exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(me, sdkmetric.WithInterval(cfg.MetricInterval))),
		sdkmetric.WithResource(res))
	le, err := otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(cfg.Endpoint), otlploggrpc.WithInsecure())
	if err != nil {
		return nil, fmt.Errorf("log exporter: %w", err)
	}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(le)), sdklog.WithResource(res))
	s := &Service{cfg: cfg, tracer: tp.Tracer("modelservice"), logger: lp.Logger("modelservice"),
		shutdown: []func(context.Context) error{tp.Shutdown, mp.Shutdown, lp.Shutdown}}
	meter := mp.Meter("modelservice")
	if s.latency, err = meter.Float64Histogram("model_request_duration_ms", metric.WithUnit("ms"),
		metric.WithDescription("Model request latency."),
		metric.WithExplicitBucketBoundaries(1, 2, 5, 10, 20, 50, 100, 200, 500)); err != nil {
		return nil, err
	}
	if s.requests, err = meter.Int64Counter("model_requests", metric.WithDescription("Model requests by status.")); err != nil {
		return nil, err
	}
	return s, nil
}

// Shutdown flushes everything to the collector.
func (s *Service) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range s.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

// Predict scores one request: a feature lookup and a logistic model, each
// a span, then the inference event and the latency metric.
func (s *Service) Predict(ctx context.Context, req Request) (Response, error) {
	start := time.Now()
	if req.RequestID == "" {
		req.RequestID = s.cfg.Service + "-" + strconv.FormatUint(s.seq.Add(1), 10)
	}
	attrs := []attribute.KeyValue{attribute.String(telemetry.AttrModel, s.cfg.Model), attribute.String(telemetry.AttrModelVersion, s.cfg.Version),
		attribute.String(telemetry.AttrRequestID, req.RequestID)}
	ctx, span := s.tracer.Start(ctx, "predict", trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
	defer span.End()

	_, fspan := s.tracer.Start(ctx, "features.fetch", trace.WithAttributes(attrs...))
	risk := 0.1
	if req.Country != "DE" && req.Country != "FR" {
		risk = 0.3
	}
	fspan.End()

	_, ispan := s.tracer.Start(ctx, "model.infer", trace.WithAttributes(attrs...))
	z := (req.Amount-100)/50 + 4*(risk-0.2)
	score := 1 / (1 + math.Exp(-z))
	ispan.End()

	status := "ok"
	var err error
	if req.Amount < 0 {
		status, err = "error", errors.New("amount must not be negative")
		span.SetStatus(codes.Error, err.Error())
	}
	resp := Response{RequestID: req.RequestID, Score: score, Class: "legit"}
	if score >= 0.5 {
		resp.Class = "fraud"
	}
	latency := float64(time.Since(start).Microseconds()) / 1000

	var r otellog.Record
	r.SetEventName(telemetry.EventInference)
	r.SetTimestamp(start)
	r.SetSeverity(otellog.SeverityInfo)
	features := []attribute.KeyValue{attribute.Float64("amount", req.Amount), attribute.String("country", req.Country)}
	for k, v := range req.Extra {
		features = append(features, attribute.Float64(k, v))
	}
	r.AddAttributes(append(attrs,
		attribute.String(telemetry.AttrEventName, telemetry.EventInference),
		attribute.Float64(telemetry.AttrLatencyMs, latency),
		attribute.String(telemetry.AttrStatus, status),
		attribute.Map(telemetry.AttrFeatures, features...),
		attribute.Float64(telemetry.AttrPrediction, score),
		attribute.String(telemetry.AttrPredictionClass, resp.Class),
	)...)
	s.logger.Emit(ctx, r)
	mattrs := metric.WithAttributes(attribute.String("model", s.cfg.Model), attribute.String("status", status))
	s.latency.Record(ctx, latency, mattrs)
	s.requests.Add(ctx, 1, mattrs)
	return resp, err
}

// Handler serves POST /predict.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /predict", func(w http.ResponseWriter, r *http.Request) {
		var req Request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := s.Predict(r.Context(), req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	})
	return mux
}
