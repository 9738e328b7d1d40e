package collector_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/featuregate"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/xpdata/pref"

	"github.com/fleetwatch/fleetwatch/collector"
	"github.com/fleetwatch/fleetwatch/collector/otlprecv"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
)

// setPooling sets pdata.useProtoPooling for the rest of the test.
func setPooling(t *testing.T, on bool) {
	t.Helper()
	was := pref.UseProtoPooling.IsEnabled()
	if err := featuregate.GlobalRegistry().Set(pref.UseProtoPooling.ID(), on); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = featuregate.GlobalRegistry().Set(pref.UseProtoPooling.ID(), was) })
}

// sinkExporter keeps a copy of every metrics request it is handed, made
// inside ConsumeMetrics (as a component that keeps data must).
type sinkExporter struct {
	mu  sync.Mutex
	got []pmetric.Metrics
}

func (s *sinkExporter) ConsumeMetrics(_ context.Context, md pmetric.Metrics) error {
	c := pmetric.NewMetrics()
	md.CopyTo(c)
	s.mu.Lock()
	s.got = append(s.got, c)
	s.mu.Unlock()
	return nil
}

func (s *sinkExporter) received() []pmetric.Metrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]pmetric.Metrics(nil), s.got...)
}

// sinkFactory makes one sinkExporter per configured instance, read-only
// like fleetwatch_clickhouse.
func sinkFactory(sinks map[component.ID]*sinkExporter, mu *sync.Mutex) exporter.Factory {
	typ := component.MustNewType("sink")
	return exporter.NewFactory(typ, func() component.Config { return &struct{}{} },
		exporter.WithMetrics(func(_ context.Context, set exporter.Settings, _ component.Config) (exporter.Metrics, error) {
			mu.Lock()
			defer mu.Unlock()
			s := &sinkExporter{}
			sinks[set.ID] = s
			return sinkComponent{s}, nil
		}, component.StabilityLevelDevelopment))
}

type sinkComponent struct{ *sinkExporter }

func (sinkComponent) Start(context.Context, component.Host) error { return nil }
func (sinkComponent) Shutdown(context.Context) error              { return nil }
func (sinkComponent) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}

// With pdata.useProtoPooling on, the Collector's service (v0.162.0)
// releases a request to pdata's pools when the first pipeline it reaches
// returns. Two read-only pipelines fed by one fleetwatch_otlp receiver share
// the request; each must still see all of it, the same as with pooling off.
// (Before the receiver owned its requests, pooling=true failed here: sink/b
// got 0 of the 12 points.)
func TestPoolingKeepsEveryPipelinesData(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run("pooling="+strconv.FormatBool(on), func(t *testing.T) {
			setPooling(t, on)
			var mu sync.Mutex
			sinks := map[component.ID]*sinkExporter{}
			port := promtest.FreePort(t)
			cfg := "receivers: {fleetwatch_otlp: {protocols: {grpc: {endpoint: 127.0.0.1:" + strconv.Itoa(port) + "}}}}\n" +
				"exporters: {sink/a: {}, sink/b: {}}\n" +
				"service:\n  telemetry: {metrics: {level: none}}\n  pipelines:\n" +
				"    metrics/a: {receivers: [fleetwatch_otlp], exporters: [sink/a]}\n" +
				"    metrics/b: {receivers: [fleetwatch_otlp], exporters: [sink/b]}\n"
			stop := startWith(t, cfg, func() (otelcol.Factories, error) {
				f, err := collector.Components()
				if err != nil {
					return f, err
				}
				f.Receivers, err = otelcol.MakeFactoryMap(otlprecv.NewFactory())
				if err != nil {
					return f, err
				}
				f.Exporters, err = otelcol.MakeFactoryMap(sinkFactory(sinks, &mu))
				return f, err
			})
			defer stop()

			want := gpuMetrics(3, 4)
			client := pmetricotlp.NewGRPCClient(dial(t, "127.0.0.1:"+strconv.Itoa(port)))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := client.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(copyOf(want))); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(sinks) != 2 {
				t.Fatalf("%d sinks, want 2", len(sinks))
			}
			for id, s := range sinks {
				got := s.received()
				if len(got) != 1 {
					t.Fatalf("%v: %d requests, want 1", id, len(got))
				}
				if n := got[0].DataPointCount(); n != want.DataPointCount() || !pref.EqualMetrics(got[0], want) {
					t.Errorf("%v: got %d points (want %d), equal to the sent request: %v", id, n, want.DataPointCount(), pref.EqualMetrics(got[0], want))
				}
			}
		})
	}
}

// startWith runs a collector with the given factories and YAML and
// returns its stop function.
func startWith(t *testing.T, cfg string, factories func() (otelcol.Factories, error)) func() {
	t.Helper()
	set := collector.Settings("test")
	set.Factories = factories
	set.ConfigProviderSettings = otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
		URIs: []string{"yaml:" + cfg}, ProviderFactories: []confmap.ProviderFactory{yamlprovider.NewFactory()}}}
	set.DisableGracefulShutdown = true
	col, err := otelcol.NewCollector(set)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- col.Run(context.Background()) }()
	for deadline := time.Now().Add(30 * time.Second); col.GetState() != otelcol.StateRunning; time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("collector stopped before running: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("collector not running after 30s")
		}
	}
	return func() {
		col.Shutdown()
		if err := <-done; err != nil {
			t.Errorf("collector: %v", err)
		}
	}
}

// gpuMetrics is one request of gpus resources with n gauges each.
func gpuMetrics(gpus, n int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	for g := range gpus {
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("Hostname", "node-1")
		rm.Resource().Attributes().PutStr("gpu", strconv.Itoa(g))
		ms := rm.ScopeMetrics().AppendEmpty().Metrics()
		for i := range n {
			m := ms.AppendEmpty()
			m.SetName("DCGM_FI_DEV_GPU_TEMP_" + strconv.Itoa(i))
			dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
			dp.SetTimestamp(1_700_000_000_000_000_000)
			dp.SetDoubleValue(float64(g*100 + i))
			dp.Attributes().PutStr("UUID", "GPU-"+strconv.Itoa(g))
		}
	}
	return md
}

func copyOf(md pmetric.Metrics) pmetric.Metrics {
	c := pmetric.NewMetrics()
	md.CopyTo(c)
	return c
}
