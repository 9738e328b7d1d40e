// Package chexporter is an OpenTelemetry Collector exporter that writes
// Fleetwatch's telemetry into ClickHouse through storage.Writer: metrics
// into gpu_samples and gpu_series (cumulative counters become increases,
// resets handled), GPU events, inference events, delayed labels and
// deployment markers from log records, and spans. It is a normal Collector
// component (type fleetwatch_clickhouse) that anyone building their own
// distribution can import; exporterhelper gives it a queue (persistent with a
// storage extension), retries and backpressure.
//
// Bad input never fails a whole batch: every item is stored, stored after a
// documented normalisation, or rejected and counted with a reason
// (docs/TELEMETRY.md, "What lands where").
package chexporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/fleetwatch/fleetwatch/analytics/drift"
	"github.com/fleetwatch/fleetwatch/storage"
)

// Signals, as metric attribute values.
const (
	signalMetrics = "metrics"
	signalLogs    = "logs"
	signalTraces  = "traces"
)

// Rejection reasons.
const (
	ReasonNonFinite       = "non_finite"
	ReasonTimeOutOfRange  = "timestamp_out_of_range"
	ReasonMissingUUID     = "missing_gpu_uuid"
	ReasonUnsupportedType = "unsupported_type"
	ReasonFiltered        = "filtered"
	ReasonBadMetricName   = "bad_metric_name"
	ReasonNotAnEvent      = "not_a_fleetwatch_event"
	ReasonMissingModel    = "missing_model"
	ReasonMissingRequest  = "missing_request_id"
	ReasonBadSpan         = "bad_span"
)

// Normalisations: the item is stored, changed as documented.
const (
	NormMissingTimestamp = "missing_timestamp" // stamped with the time it was received
	NormLabelTruncated   = "label_truncated"   // a label value cut to max_label_length bytes
)

// migrateMu serializes schema creation by the exporters of one process.
var migrateMu sync.Mutex

type selfMetrics struct {
	received   metric.Int64Counter
	rejected   metric.Int64Counter
	normalized metric.Int64Counter
	written    metric.Int64Counter
}

// chExporter is the state shared by the push functions of one signal.
type chExporter struct {
	cfg    *Config
	logger *zap.Logger
	signal string
	tel    selfMetrics

	connMu sync.Mutex
	client *storage.Client
	writer *storage.Writer

	mu     sync.Mutex
	series *seriesState
	replay replayTable
	cat    map[featureKey]bool // categorical features, learned from values

	prebinMu     sync.Mutex
	prebin       *drift.Prebinner
	prebinLoaded time.Time
}

func newExporter(cfg *Config, set exporter.Settings, signal string) (*chExporter, error) {
	meter := set.TelemetrySettings.MeterProvider.Meter("github.com/fleetwatch/fleetwatch/collector/chexporter")
	var err error
	e := &chExporter{cfg: cfg, logger: set.Logger, signal: signal, series: newSeriesState(cfg.SeriesRefresh), replay: replayTable{}, cat: map[featureKey]bool{}}
	e.tel.received, err = meter.Int64Counter("fleetwatch_exporter_received_items",
		metric.WithDescription("Data points, log records and spans received by the ClickHouse exporter."), metric.WithUnit("{item}"))
	if err != nil {
		return nil, err
	}
	e.tel.rejected, err = meter.Int64Counter("fleetwatch_exporter_rejected_items",
		metric.WithDescription("Items rejected by the ClickHouse exporter, by signal and reason."), metric.WithUnit("{item}"))
	if err != nil {
		return nil, err
	}
	e.tel.normalized, err = meter.Int64Counter("fleetwatch_exporter_normalized_items",
		metric.WithDescription("Items stored after a documented normalisation, by signal and reason."), metric.WithUnit("{item}"))
	if err != nil {
		return nil, err
	}
	e.tel.written, err = meter.Int64Counter("fleetwatch_exporter_written_rows",
		metric.WithDescription("Rows written to ClickHouse, by table."), metric.WithUnit("{row}"))
	if err != nil {
		return nil, err
	}
	if signal != signalMetrics {
		return e, nil // only the metrics exporter holds series state
	}
	_, err = meter.Int64ObservableGauge("fleetwatch_exporter_series_cached",
		metric.WithDescription("Counter and series states held for delta computation."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(e.series.size()))
			return nil
		}))
	return e, err
}

// featureKey names a model's feature without building a string per value.
type featureKey struct{ model, feature string }

// start connects to ClickHouse. If it cannot, the collector still starts:
// data waits in the queue and every push tries to connect again.
func (e *chExporter) start(ctx context.Context, _ component.Host) error {
	if err := e.ensure(ctx); err != nil {
		e.logger.Warn("ClickHouse is unreachable; data is queued and the exporter keeps trying", zap.Error(err))
	}
	return nil
}

// ensure connects if not connected yet.
func (e *chExporter) ensure(ctx context.Context) error {
	e.connMu.Lock()
	defer e.connMu.Unlock()
	if e.writer != nil {
		return nil
	}
	return e.connect(ctx)
}

func (e *chExporter) connect(ctx context.Context) error {
	sc, err := e.cfg.StorageConfig()
	if err != nil {
		return err
	}
	log := slog.New(zapHandler{e.logger})
	if e.cfg.CreateSchema {
		migrateMu.Lock()
		defer migrateMu.Unlock()
		if err := storage.CreateDatabase(ctx, sc); err != nil {
			return fmt.Errorf("create the Fleetwatch database: %w", err)
		}
	}
	c, err := storage.Open(ctx, sc, storage.WithLogger(log))
	if err != nil {
		return err
	}
	if e.cfg.CreateSchema {
		if _, err := c.Migrate(ctx); err != nil {
			c.Close()
			return fmt.Errorf("apply the Fleetwatch schema: %w", err)
		}
	}
	wc := storage.NewDefaultWriterConfig()
	wc.MaxRetries = 1 // exporterhelper retries longer outages, with its queue
	wc.MaxInsertRows, wc.NativeBlockRows = e.cfg.MaxInsertRows, e.cfg.NativeBlockRows
	wc.AttemptTimeout = e.cfg.Timeout
	if wc.AttemptTimeout <= 0 {
		wc.AttemptTimeout = 2 * time.Minute
	}
	w, err := c.NewWriter(wc)
	if err != nil {
		c.Close()
		return err
	}
	e.client, e.writer = c, w
	e.logger.Info("ClickHouse exporter ready", zap.String("signal", e.signal), zap.String("server", c.ServerVersion().String()),
		zap.String("database", sc.Database), zap.String("profile", c.Features().Name()))
	return nil
}

func (e *chExporter) shutdown(context.Context) error {
	e.connMu.Lock()
	defer e.connMu.Unlock()
	if e.client != nil {
		return e.client.Close()
	}
	return nil
}

func (e *chExporter) reject(ctx context.Context, reason string, n int) {
	if n > 0 {
		e.tel.rejected.Add(ctx, int64(n), metric.WithAttributes(attribute.String("signal", e.signal), attribute.String("reason", reason)))
	}
}

func (e *chExporter) normalize(ctx context.Context, reason string, n int) {
	if n > 0 {
		e.tel.normalized.Add(ctx, int64(n), metric.WithAttributes(attribute.String("signal", e.signal), attribute.String("reason", reason)))
	}
}

func (e *chExporter) received(ctx context.Context, n int) {
	e.tel.received.Add(ctx, int64(n), metric.WithAttributes(attribute.String("signal", e.signal)))
}

// write inserts one block; a failure that retrying cannot fix is permanent
// (exporterhelper drops the request and counts it), anything else is retried.
func (e *chExporter) write(ctx context.Context, b storage.Block) error {
	n, _ := b.Rows()
	if n == 0 {
		return nil
	}
	if err := e.ensure(ctx); err != nil {
		return fmt.Errorf("connect to ClickHouse: %w", err)
	}
	err := e.writer.Write(ctx, b)
	if err == nil {
		e.tel.written.Add(ctx, int64(n), metric.WithAttributes(attribute.String("table", b.Table)))
		return nil
	}
	var we *storage.WriteError
	if errors.As(err, &we) && !we.Retryable {
		e.reject(ctx, "clickhouse_"+we.Reason, we.Failed)
		return consumererror.NewPermanent(err)
	}
	return err
}

// zapHandler lets the storage layer log through the Collector's logger.
type zapHandler struct{ l *zap.Logger }

func (h zapHandler) Enabled(_ context.Context, level slog.Level) bool {
	return h.l.Core().Enabled(zapLevel(level))
}

func (h zapHandler) Handle(_ context.Context, r slog.Record) error {
	fields := make([]zap.Field, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		fields = append(fields, zap.Any(a.Key, a.Value.Any()))
		return true
	})
	if ce := h.l.Check(zapLevel(r.Level), r.Message); ce != nil {
		ce.Write(fields...)
	}
	return nil
}

func (h zapHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	fields := make([]zap.Field, len(attrs))
	for i, a := range attrs {
		fields[i] = zap.Any(a.Key, a.Value.Any())
	}
	return zapHandler{h.l.With(fields...)}
}

func (h zapHandler) WithGroup(name string) slog.Handler { return zapHandler{h.l.Named(name)} }

func zapLevel(l slog.Level) zapcore.Level {
	switch {
	case l >= slog.LevelError:
		return zapcore.ErrorLevel
	case l >= slog.LevelWarn:
		return zapcore.WarnLevel
	case l >= slog.LevelInfo:
		return zapcore.InfoLevel
	}
	return zapcore.DebugLevel
}
