// Package demodata fills a test database with simulated telemetry through
// the production path: the fleet simulator (agent/sim) read by the agent's
// NVML source, encoded by the agent's OTLP encoder, and written by the
// collector's ClickHouse exporter (which uses storage.Writer). The
// dashboards' and on-call views' tests query what it loads.
package demodata

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/protobuf/proto"

	"github.com/fleetwatch/fleetwatch/agent/otlp"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/collector/chexporter"
	"github.com/fleetwatch/fleetwatch/storage"
)

// Stats counts what was sent to the exporter.
type Stats struct {
	MetricRequests, LogRequests int
}

// Load runs the scenario from its start to its end, as fast as it can,
// and writes everything the agent would send into the database of cfg.
func Load(ctx context.Context, cfg storage.Config, sc *sim.Scenario, log *slog.Logger) (Stats, error) {
	var st Stats
	runner, err := sim.New(sc, log)
	if err != nil {
		return st, fmt.Errorf("simulator: %w", err)
	}
	defer runner.Close()

	metrics, logs, err := exporters(ctx, cfg)
	if err != nil {
		return st, err
	}
	enc := otlp.NewEncoder(sc.Start, "demodata")
	var errs []error
	for t := sc.Start.Add(sc.Interval); !t.After(sc.Start.Add(sc.Duration)) && len(errs) == 0; t = t.Add(sc.Interval) {
		for _, b := range runner.Step(t) {
			if req := enc.Metrics(b); req != nil && len(req.ResourceMetrics) > 0 {
				st.MetricRequests++
				errs = append(errs, sendMetrics(ctx, metrics, req))
			}
			if req := enc.Logs(b); req != nil {
				st.LogRequests++
				errs = append(errs, sendLogs(ctx, logs, req))
			}
		}
		errs = compact(errs)
	}
	errs = append(errs, metrics.Shutdown(ctx), logs.Shutdown(ctx))
	return st, errors.Join(errs...)
}

func compact(errs []error) []error {
	out := errs[:0]
	for _, e := range errs {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}

// exporters starts the collector's ClickHouse exporter for metrics and
// logs, synchronous (no queue) and without retries, so a failed write is
// an error here rather than a log line.
func exporters(ctx context.Context, sc storage.Config) (exporter.Metrics, exporter.Logs, error) {
	f := chexporter.NewFactory()
	cfg := f.CreateDefaultConfig().(*chexporter.Config)
	cfg.Endpoints, cfg.Database, cfg.Username, cfg.Password = sc.Addrs, sc.Database, sc.Username, configopaque.String(sc.Password)
	cfg.CreateSchema = false
	cfg.MaxAge = 30 * 24 * time.Hour
	cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
	cfg.RetryConfig.Enabled = false
	set := exportertest.NewNopSettings(f.Type())
	m, err := f.CreateMetrics(ctx, set, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("create metrics exporter: %w", err)
	}
	l, err := f.CreateLogs(ctx, set, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("create logs exporter: %w", err)
	}
	host := componenttest.NewNopHost()
	if err := m.Start(ctx, host); err != nil {
		return nil, nil, fmt.Errorf("start metrics exporter: %w", err)
	}
	if err := l.Start(ctx, host); err != nil {
		return nil, nil, errors.Join(fmt.Errorf("start logs exporter: %w", err), m.Shutdown(ctx))
	}
	return m, l, nil
}

func sendMetrics(ctx context.Context, e exporter.Metrics, req proto.Message) error {
	r := pmetricotlp.NewExportRequest()
	return send("metrics", req, r.UnmarshalProto, func() error { return e.ConsumeMetrics(ctx, r.Metrics()) })
}

func sendLogs(ctx context.Context, e exporter.Logs, req proto.Message) error {
	r := plogotlp.NewExportRequest()
	return send("logs", req, r.UnmarshalProto, func() error { return e.ConsumeLogs(ctx, r.Logs()) })
}

// send hands an agent request to the exporter the way the OTLP receiver
// would: as bytes on the wire, decoded into pdata.
func send(kind string, req proto.Message, unmarshal func([]byte) error, consume func() error) error {
	data, err := proto.Marshal(req)
	if err != nil {
		return fmt.Errorf("marshal %s: %w", kind, err)
	}
	if err := unmarshal(data); err != nil {
		return fmt.Errorf("unmarshal %s: %w", kind, err)
	}
	if err := consume(); err != nil {
		return fmt.Errorf("export %s: %w", kind, err)
	}
	return nil
}
