package loadgen

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fleetwatch/fleetwatch/agent/otlp"
)

// recorder is an OTLP metrics endpoint that decodes every request and keeps
// each data point's identity, pushing back once and rejecting part of one
// request.
type recorder struct {
	colmetrics.UnimplementedMetricsServiceServer
	mu       sync.Mutex
	calls    int
	points   map[string]int
	times    map[int64]bool
	rejectAt int
}

func (r *recorder) Export(_ context.Context, req *colmetrics.ExportMetricsServiceRequest) (*colmetrics.ExportMetricsServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.calls == 2 {
		return nil, status.Error(codes.Unavailable, "pushing back")
	}
	for _, rm := range req.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				dps := m.GetGauge().GetDataPoints()
				if s := m.GetSum(); s != nil {
					dps = s.DataPoints
				}
				for _, dp := range dps {
					r.points[pointKey(m.Name, rm.Resource.Attributes, dp)]++
					r.times[int64(dp.TimeUnixNano)] = true
				}
			}
		}
	}
	if r.calls == r.rejectAt {
		return &colmetrics.ExportMetricsServiceResponse{PartialSuccess: &colmetrics.ExportMetricsPartialSuccess{RejectedDataPoints: 5}}, nil
	}
	return &colmetrics.ExportMetricsServiceResponse{}, nil
}

// pointKey names a point by its metric, its labels (its resource's, where
// the GPU's labels travel, and its own) and its time.
func pointKey(name string, resource []*commonpb.KeyValue, dp *metricspb.NumberDataPoint) string {
	attrs := make([]string, 0, len(resource)+len(dp.Attributes))
	for _, kv := range append(slices.Clip(resource), dp.Attributes...) {
		attrs = append(attrs, kv.Key+"="+kv.Value.GetStringValue())
	}
	sort.Strings(attrs)
	return fmt.Sprintf("%s{%s}@%d", name, strings.Join(attrs, ","), dp.TimeUnixNano)
}

// In either form of the GPU's labels, every point arrives once, with its
// own timestamp.
func TestRunSendsDistinctTimestampedSamples(t *testing.T) {
	for _, form := range []otlp.Form{otlp.PerGPU, otlp.PerPoint} {
		t.Run(form.String(), func(t *testing.T) { runDistinct(t, form) })
	}
}

func runDistinct(t *testing.T, form otlp.Form) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{points: map[string]int{}, times: map[int64]bool{}, rejectAt: 4}
	srv := grpc.NewServer()
	colmetrics.RegisterMetricsServiceServer(srv, rec)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)

	cfg := NewDefaultConfig()
	cfg.Endpoint = l.Addr().String()
	cfg.Nodes, cfg.GPUsPerNode, cfg.Workers, cfg.Variants = 3, 2, 2, 2
	cfg.Samples = 1000
	cfg.Form = form
	g, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g.PerRequest() < 100 {
		t.Fatalf("%d samples per request; want every field of two GPUs", g.PerRequest())
	}
	if g.Total() < cfg.Samples || g.Total() >= cfg.Samples+int64(3*g.PerRequest()) {
		t.Fatalf("Total() = %d for %d asked", g.Total(), cfg.Samples)
	}
	st, err := g.Run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Samples+st.Rejected != g.Total() || st.Rejected != 5 || st.Retries != 1 {
		t.Errorf("stats %+v; want %d samples in all, 5 rejected, 1 retry", st, g.Total())
	}
	if int64(len(rec.points)) != g.Total() {
		t.Errorf("endpoint saw %d distinct (series, time) points, want %d", len(rec.points), g.Total())
	}
	for k, n := range rec.points {
		if n != 1 {
			t.Errorf("%s received %d times", k, n)
		}
	}
	first, last := g.Span()
	if last.After(time.Now()) {
		t.Errorf("last timestamp %v is in the future", last)
	}
	rounds := int(last.Sub(first)/cfg.Interval) + 1
	if len(rec.times) != rounds {
		t.Errorf("saw %d distinct timestamps, want %d rounds", len(rec.times), rounds)
	}
	for ts := range rec.times {
		if tt := time.Unix(0, ts); tt.Before(first) || tt.After(last) {
			t.Errorf("timestamp %v outside [%v, %v]", tt, first, last)
		}
	}
}

func TestRunStopsOnPermanentError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer() // no metrics service: every call is Unimplemented
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	cfg := NewDefaultConfig()
	cfg.Endpoint = l.Addr().String()
	cfg.Nodes, cfg.GPUsPerNode, cfg.Samples = 1, 1, 10
	g, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Run(context.Background(), nil); status.Code(err) != codes.Unimplemented {
		t.Errorf("Run error = %v, want Unimplemented", err)
	}
}

// A paced run starts one round per Pace: it cannot end before the last
// round's start.
func TestRunKeepsPace(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{points: map[string]int{}, times: map[int64]bool{}}
	srv := grpc.NewServer()
	colmetrics.RegisterMetricsServiceServer(srv, rec)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	cfg := NewDefaultConfig()
	cfg.Endpoint = l.Addr().String()
	cfg.Nodes, cfg.GPUsPerNode, cfg.Workers, cfg.Variants = 2, 1, 2, 1
	cfg.Pace = 150 * time.Millisecond
	g, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Samples = 4 * int64(2*g.PerRequest()) // four rounds
	if g, err = New(cfg, nil); err != nil {
		t.Fatal(err)
	}
	st, err := g.Run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Samples != g.Total() || st.Elapsed < 3*cfg.Pace {
		t.Errorf("stats %+v; want %d samples sent over at least %v (four rounds, %v apart)", st, g.Total(), 3*cfg.Pace, cfg.Pace)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := Config{Compression: "zstd", Pace: -time.Second}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("empty config validated")
	}
	for _, want := range []string{"endpoint", "nodes", "samples", "interval", "compression", "pace"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if err := NewDefaultConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
