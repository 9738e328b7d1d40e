package otlprecv

import (
	"context"
	"iter"
	"strconv"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fleetwatch/fleetwatch/collector/partial"
	"github.com/fleetwatch/fleetwatch/lib/freeport"
)

// rejectKey is the item attribute that makes the test pipeline reject an
// item: its value is the reason, passed to partial.Reject.
const rejectKey = "reject"

// sink is the test pipeline behind the receiver: it keeps the items without
// a reject attribute, rejects the others through partial.Reject, or fails
// the whole call with err.
type sink struct {
	mu   sync.Mutex
	kept map[string]int
	err  error
	// inspect, when set, sees every metrics request the pipeline gets.
	inspect func(pmetric.Metrics)
}

func (s *sink) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *sink) keptOf(signal string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kept[signal]
}

func (s *sink) take(ctx context.Context, signal string, items iter.Seq[pcommon.Map]) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	for attrs := range items {
		if v, ok := attrs.Get(rejectKey); ok {
			partial.Reject(ctx, v.AsString(), 1)
			continue
		}
		s.kept[signal]++
	}
	return nil
}

// dataPoints yields the attributes of every data point of md.
func dataPoints(md pmetric.Metrics) iter.Seq[pcommon.Map] {
	return func(yield func(pcommon.Map) bool) {
		for _, rm := range md.ResourceMetrics().All() {
			for _, sm := range rm.ScopeMetrics().All() {
				for _, m := range sm.Metrics().All() {
					for _, a := range pointAttrs(m) {
						if !yield(a) {
							return
						}
					}
				}
			}
		}
	}
}

func pointAttrs(m pmetric.Metric) []pcommon.Map {
	var out []pcommon.Map
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		for _, p := range m.Gauge().DataPoints().All() {
			out = append(out, p.Attributes())
		}
	case pmetric.MetricTypeSum:
		for _, p := range m.Sum().DataPoints().All() {
			out = append(out, p.Attributes())
		}
	case pmetric.MetricTypeHistogram:
		for _, p := range m.Histogram().DataPoints().All() {
			out = append(out, p.Attributes())
		}
	case pmetric.MetricTypeExponentialHistogram:
		for _, p := range m.ExponentialHistogram().DataPoints().All() {
			out = append(out, p.Attributes())
		}
	case pmetric.MetricTypeSummary:
		for _, p := range m.Summary().DataPoints().All() {
			out = append(out, p.Attributes())
		}
	}
	return out
}

func logRecords(ld plog.Logs) iter.Seq[pcommon.Map] {
	return func(yield func(pcommon.Map) bool) {
		for _, rl := range ld.ResourceLogs().All() {
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					if !yield(lr.Attributes()) {
						return
					}
				}
			}
		}
	}
}

func spans(td ptrace.Traces) iter.Seq[pcommon.Map] {
	return func(yield func(pcommon.Map) bool) {
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, sp := range ss.Spans().All() {
					if !yield(sp.Attributes()) {
						return
					}
				}
			}
		}
	}
}

// harness is a started receiver with the test pipeline behind it.
type harness struct {
	cfg      *Config
	grpcAddr string
	httpURL  string
	sink     *sink
	tel      *componenttest.Telemetry
	logs     *observer.ObservedLogs
	comps    []component.Component
}

// start starts a receiver on free loopback ports for all three signals;
// edit changes the configuration first.
func start(t testing.TB, edit func(*Config)) *harness {
	t.Helper()
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	h := &harness{cfg: cfg, sink: &sink{kept: map[string]int{}}, tel: componenttest.NewTelemetry()}
	var err error
	if h.grpcAddr, err = freeport.Addr(); err != nil {
		t.Fatal(err)
	}
	httpAddr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	h.httpURL = "http://" + httpAddr
	cfg.Protocols.GRPC.GetOrInsertDefault().NetAddr.Endpoint = h.grpcAddr
	cfg.Protocols.HTTP.GetOrInsertDefault().ServerConfig.NetAddr.Endpoint = httpAddr
	if edit != nil {
		edit(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.WarnLevel)
	h.logs = logs
	set := receivertest.NewNopSettings(Type)
	set.ID = component.NewID(Type)
	set.TelemetrySettings = h.tel.NewTelemetrySettings()
	set.Logger = zap.New(core)

	ctx := context.Background()
	f := NewFactory()
	m, err := f.CreateMetrics(ctx, set, cfg, must(consumer.NewMetrics(func(ctx context.Context, md pmetric.Metrics) error {
		if h.sink.inspect != nil {
			h.sink.inspect(md)
		}
		return h.sink.take(ctx, signalMetrics, dataPoints(md))
	})))
	if err != nil {
		t.Fatal(err)
	}
	l, err := f.CreateLogs(ctx, set, cfg, must(consumer.NewLogs(func(ctx context.Context, ld plog.Logs) error {
		return h.sink.take(ctx, signalLogs, logRecords(ld))
	})))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := f.CreateTraces(ctx, set, cfg, must(consumer.NewTraces(func(ctx context.Context, td ptrace.Traces) error {
		return h.sink.take(ctx, signalTraces, spans(td))
	})))
	if err != nil {
		t.Fatal(err)
	}
	h.comps = []component.Component{m, l, tr}
	t.Cleanup(func() { h.stop(t) })
	for _, c := range h.comps {
		if err := c.Start(ctx, componenttest.NewNopHost()); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// stop shuts the receiver down (every pipeline's handle, as the Collector does).
func (h *harness) stop(t testing.TB) {
	t.Helper()
	for _, c := range h.comps {
		if err := c.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
}

func (h *harness) dial(t *testing.T) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(h.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// counter sums the data points of the receiver's own counter name whose
// attributes include want.
func (h *harness) counter(t *testing.T, name string, want map[string]string) int64 {
	t.Helper()
	m, err := h.tel.GetMetric(name)
	if err != nil {
		return 0
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s is a %T, not an int64 sum", name, m.Data)
	}
	var total int64
	for _, dp := range sum.DataPoints {
		match := true
		for k, v := range want {
			if got, ok := dp.Attributes.Value(attribute.Key(k)); !ok || got.Emit() != v {
				match = false
			}
		}
		if match {
			total += dp.Value
		}
	}
	return total
}

// testSignal is one signal as a test client sees it.
type testSignal struct {
	name string
	path func(*Config) string
	// request builds a request with one item per entry of rejects; a
	// non-empty entry makes the test pipeline reject that item for that reason.
	request func(rejects ...string) wireRequest
	// grpc sends rejects' request over gRPC and returns the partial success.
	grpc func(ctx context.Context, conn *grpc.ClientConn, rejects ...string) (int64, string, error)
	// decode reads an HTTP answer's body.
	decode func(body []byte, json bool) (int64, string, error)
}

type wireRequest interface {
	MarshalProto() ([]byte, error)
	MarshalJSON() ([]byte, error)
}

func itemAttrs(m pcommon.Map, i int, reject string) {
	m.PutStr("i", strconv.Itoa(i))
	if reject != "" {
		m.PutStr(rejectKey, reject)
	}
}

func metricsRequest(rejects ...string) pmetricotlp.ExportRequest {
	md := pmetric.NewMetrics()
	g := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("test_gauge")
	points := g.SetEmptyGauge().DataPoints()
	for i, r := range rejects {
		p := points.AppendEmpty()
		p.SetDoubleValue(float64(i))
		itemAttrs(p.Attributes(), i, r)
	}
	return pmetricotlp.NewExportRequestFromMetrics(md)
}

func logsRequest(rejects ...string) plogotlp.ExportRequest {
	ld := plog.NewLogs()
	sl := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty()
	for i, r := range rejects {
		lr := sl.LogRecords().AppendEmpty()
		lr.Body().SetStr("line " + strconv.Itoa(i))
		itemAttrs(lr.Attributes(), i, r)
	}
	return plogotlp.NewExportRequestFromLogs(ld)
}

func tracesRequest(rejects ...string) ptraceotlp.ExportRequest {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	for i, r := range rejects {
		sp := ss.Spans().AppendEmpty()
		sp.SetName("span " + strconv.Itoa(i))
		sp.SetTraceID(pcommon.TraceID{1, byte(i + 1)})
		sp.SetSpanID(pcommon.SpanID{2, byte(i + 1)})
		itemAttrs(sp.Attributes(), i, r)
	}
	return ptraceotlp.NewExportRequestFromTraces(td)
}

// decodeResponse reads an OTLP/HTTP answer into resp.
func decodeResponse(resp request, body []byte, json bool) error {
	if json {
		return resp.UnmarshalJSON(body)
	}
	return resp.UnmarshalProto(body)
}

var testSignals = []testSignal{
	{
		name:    signalMetrics,
		path:    func(c *Config) string { return c.Protocols.HTTP.Get().MetricsURLPath },
		request: func(r ...string) wireRequest { return metricsRequest(r...) },
		grpc: func(ctx context.Context, conn *grpc.ClientConn, r ...string) (int64, string, error) {
			resp, err := pmetricotlp.NewGRPCClient(conn).Export(ctx, metricsRequest(r...))
			if err != nil {
				return 0, "", err
			}
			return resp.PartialSuccess().RejectedDataPoints(), resp.PartialSuccess().ErrorMessage(), err
		},
		decode: func(body []byte, json bool) (int64, string, error) {
			resp := pmetricotlp.NewExportResponse()
			err := decodeResponse(resp, body, json)
			return resp.PartialSuccess().RejectedDataPoints(), resp.PartialSuccess().ErrorMessage(), err
		},
	},
	{
		name:    signalLogs,
		path:    func(c *Config) string { return c.Protocols.HTTP.Get().LogsURLPath },
		request: func(r ...string) wireRequest { return logsRequest(r...) },
		grpc: func(ctx context.Context, conn *grpc.ClientConn, r ...string) (int64, string, error) {
			resp, err := plogotlp.NewGRPCClient(conn).Export(ctx, logsRequest(r...))
			if err != nil {
				return 0, "", err
			}
			return resp.PartialSuccess().RejectedLogRecords(), resp.PartialSuccess().ErrorMessage(), err
		},
		decode: func(body []byte, json bool) (int64, string, error) {
			resp := plogotlp.NewExportResponse()
			err := decodeResponse(resp, body, json)
			return resp.PartialSuccess().RejectedLogRecords(), resp.PartialSuccess().ErrorMessage(), err
		},
	},
	{
		name:    signalTraces,
		path:    func(c *Config) string { return c.Protocols.HTTP.Get().TracesURLPath },
		request: func(r ...string) wireRequest { return tracesRequest(r...) },
		grpc: func(ctx context.Context, conn *grpc.ClientConn, r ...string) (int64, string, error) {
			resp, err := ptraceotlp.NewGRPCClient(conn).Export(ctx, tracesRequest(r...))
			if err != nil {
				return 0, "", err
			}
			return resp.PartialSuccess().RejectedSpans(), resp.PartialSuccess().ErrorMessage(), err
		},
		decode: func(body []byte, json bool) (int64, string, error) {
			resp := ptraceotlp.NewExportResponse()
			err := decodeResponse(resp, body, json)
			return resp.PartialSuccess().RejectedSpans(), resp.PartialSuccess().ErrorMessage(), err
		},
	},
}
