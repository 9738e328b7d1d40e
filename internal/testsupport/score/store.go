package score

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/protobuf/proto"

	"github.com/fleetwatch/fleetwatch/agent/otlp"
	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/collector/chexporter"
	"github.com/fleetwatch/fleetwatch/storage"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// StoreOptions tune Store.
type StoreOptions struct {
	// QueueDir is the exporter's queue directory (required).
	QueueDir string
	// MaxAge is the exporter's age limit on points (0: its default); a
	// scenario further back than the default needs it, as a backfill does.
	MaxAge time.Duration
}

// Store runs sc to its end and writes its telemetry into c's database the
// way the real pipeline does: the simulated fleet read by the agent's NVML
// source, encoded by the agent's OTLP encoder and written by the
// collector's ClickHouse exporter. It returns the ground truth.
func Store(ctx context.Context, sc *sim.Scenario, c *storage.Client, o StoreOptions) ([]sim.Truth, error) {
	ecfg := chexporter.NewFactory().CreateDefaultConfig().(*chexporter.Config)
	ecfg.Endpoints, ecfg.Database, ecfg.CreateSchema = c.Config().Addrs, c.Config().Database, false
	ecfg.Queue.Directory = o.QueueDir
	ecfg.Queue.DrainOnShutdown = 2 * time.Minute // Shutdown below returns once everything is written
	if o.MaxAge > 0 {
		ecfg.MaxAge = o.MaxAge
	}
	set := exportertest.NewNopSettings(chexporter.Type)
	metrics, err := chexporter.NewFactory().CreateMetrics(ctx, set, ecfg)
	if err != nil {
		return nil, err
	}
	logs, err := chexporter.NewFactory().CreateLogs(ctx, set, ecfg)
	if err != nil {
		return nil, err
	}
	comps := []component.Component{metrics, logs}
	for i, comp := range comps {
		if err := comp.Start(ctx, componenttest.NewNopHost()); err != nil {
			for _, started := range comps[:i] {
				_ = started.Shutdown(context.Background())
			}
			return nil, err
		}
	}
	encoders := map[string]*otlp.Encoder{}
	var failed error
	r, err := Simulate(sc, quietLog, func(b *record.Batch) {
		if failed != nil {
			return
		}
		enc := encoders[b.Resource.Host]
		if enc == nil {
			enc = otlp.NewEncoder(sc.Start, "test")
			encoders[b.Resource.Host] = enc
		}
		if req := enc.Metrics(b); req != nil {
			md := pmetricotlp.NewExportRequest()
			failed = unmarshal(req, md.UnmarshalProto)
			if failed == nil {
				failed = metrics.ConsumeMetrics(ctx, md.Metrics())
			}
		}
		if req := enc.Logs(b); req != nil && failed == nil {
			ld := plogotlp.NewExportRequest()
			failed = unmarshal(req, ld.UnmarshalProto)
			if failed == nil {
				failed = logs.ConsumeLogs(ctx, ld.Logs())
			}
		}
	})
	for _, comp := range comps {
		if serr := comp.Shutdown(ctx); serr != nil && err == nil {
			err = serr
		}
	}
	if err != nil || failed != nil {
		return nil, fmt.Errorf("store scenario %s: %w", sc.Name, errors.Join(err, failed))
	}
	var n uint64
	if err := c.QueryScalar(ctx, "SELECT count() FROM "+c.Config().Database+".gpu_samples", &n); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("store scenario %s: no GPU samples stored (older than the exporter's max_age?)", sc.Name)
	}
	return r.Fleet.GroundTruth(), nil
}

func unmarshal(m proto.Message, into func([]byte) error) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return into(data)
}
