// Package chexporter is an OpenTelemetry Collector exporter that writes
// Fleetwatch's telemetry into ClickHouse through storage.Writer: metrics
// into gpu_samples and gpu_series (cumulative counters become increases,
// resets handled), GPU events, inference events, delayed labels and
// deployment markers from log records, and spans. It is a normal Collector
// component (type fleetwatch_clickhouse) that anyone building their own
// distribution can import.
//
// Delivery: a request is validated and turned into rows while its sender
// waits; the rows are appended to an on-disk write-ahead log (package
// collector/wal, fsynced), and only then is the sender answered. Rejected
// items are counted by reason and reported back in the OTLP response's
// partial success (package collector/partial). A full log or a full disk
// refuses the request with a retryable error, so the sender keeps its data
// and retries. One loop per signal reads the log in order, batches it,
// writes it to ClickHouse, retrying until the write succeeds, and only then
// acknowledges it in the log. A point that may already be stored (a replay
// after a crash, a sender's retry, an insert whose outcome was unknown) is
// looked up first and not written twice, so the one-minute rollups never
// count a point twice; counters resume from their last stored value after a
// restart.
//
// Bad input never fails a whole request: every item is stored, stored after
// a documented normalisation, or rejected and counted with a reason
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
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/fleetwatch/fleetwatch/collector/chexporter/internal/metadata"
	"github.com/fleetwatch/fleetwatch/collector/partial"
	"github.com/fleetwatch/fleetwatch/collector/wal"
	"github.com/fleetwatch/fleetwatch/lib/profile"
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
	NormMissingTimestamp = "missing_timestamp"          // stamped with the time it was received
	NormLabelTruncated   = "label_truncated"            // a label value cut to max_label_length bytes
	NormNumericString    = "numeric_string"             // a number sent as a string, parsed
	NormBadNumber        = "bad_number"                 // a numeric attribute that is no number, stored as NaN (0 for counts and codes)
	NormFeaturesJSON     = "features_json"              // the features attribute sent as a JSON object in a string, parsed
	NormBadFeatures      = "bad_features"               // a features attribute neither a map nor a JSON object: stored without features
	NormFeatureWrongType = "feature_dropped_wrong_type" // one feature of a type that is no number, string or bool: left out
	NormBadFeatureUpdate = "feature_update_dropped"     // one feature_updated_at entry that is no time (Unix seconds or RFC 3339), not after 2000, or later than the event: left out
)

// Reasons a request is refused (the sender retries it).
const (
	RefusedQueueFull = "queue_full"
	RefusedDiskFull  = "disk_full"
	RefusedIO        = "queue_io_error"
)

// migrateMu serializes schema creation by the exporters of one process.
var migrateMu sync.Mutex

// chExporter is the exporter of one signal.
type chExporter struct {
	cfg    *Config
	logger *zap.Logger
	signal string
	tel    *metadata.TelemetryBuilder // the exporter's own metrics (metadata.yaml)

	connMu sync.Mutex
	client *storage.Client
	writer *storage.Writer

	// Receive side: turning requests into rows.
	mu     sync.Mutex
	series *seriesState
	cat    map[featureKey]bool // categorical features, learned from values

	prebinMu     sync.Mutex
	prebin       *profile.Prebinner
	prebinLoaded time.Time

	// Delivery side: the log and the loop that drains it.
	log    *wal.Log
	points *pointStates // counters' last points, for increases and duplicates (drain loop only)
	// sorter orders gpu_samples rows before they are written (drain loop only).
	sorter sampleSorter
	// drainBufs are the drain loop's columns and strings, reused from
	// batch to batch (drain loop only).
	drainBufs drainBuffers
	stop      context.CancelFunc
	done      chan struct{}
	bufs      sync.Pool
	warned    sync.Map // warning key → when it was last logged

	shutOnce sync.Once
	shutErr  error
}

func newExporter(cfg *Config, set exporter.Settings, signal string) (*chExporter, error) {
	tel, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	e := &chExporter{cfg: cfg, logger: set.Logger, signal: signal, tel: tel, series: newSeriesState(cfg.SeriesRefresh),
		cat: map[featureKey]bool{}, points: newPointStates()}
	sig := metric.WithAttributes(attribute.String("signal", signal))
	queueGauges := []struct {
		register func(metric.Int64Callback) error
		value    func(wal.Stats) int64
	}{
		{tel.RegisterExporterQueueBytesCallback, func(s wal.Stats) int64 { return s.PendingBytes }},
		{tel.RegisterExporterQueueRequestsCallback, func(s wal.Stats) int64 { return s.PendingRecords }},
		{tel.RegisterExporterQueueTornRecordsCallback, func(s wal.Stats) int64 { return s.TornRecords }},
	}
	for _, g := range queueGauges {
		err := g.register(func(_ context.Context, o metric.Int64Observer) error {
			if l := e.wal(); l != nil {
				o.Observe(g.value(l.Stats()), sig)
			}
			return nil
		})
		if err != nil {
			tel.Shutdown()
			return nil, err
		}
	}
	if signal != signalMetrics {
		return e, nil // only the metrics exporter holds series state
	}
	err = tel.RegisterExporterSeriesCachedCallback(func(_ context.Context, o metric.Int64Observer) error {
		o.Observe(int64(e.series.size()))
		return nil
	})
	if err != nil {
		tel.Shutdown()
		return nil, err
	}
	return e, nil
}

func (e *chExporter) wal() *wal.Log {
	e.connMu.Lock()
	defer e.connMu.Unlock()
	return e.log
}

// featureKey names a model's feature without building a string per value.
type featureKey struct{ model, feature string }

// Capabilities implements consumer.Metrics, Logs and Traces.
func (e *chExporter) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}

// Start opens the queue and starts the loop that writes it to ClickHouse.
// If ClickHouse is unreachable, the collector still starts: data waits in
// the queue and the loop keeps trying.
func (e *chExporter) Start(ctx context.Context, _ component.Host) error {
	opts := e.cfg.walOptions(e.signal)
	opts.Logger = slog.New(zapHandler{e.logger})
	l, err := wal.Open(opts)
	if err != nil {
		return fmt.Errorf("open the exporter's queue: %w", err)
	}
	if st := l.Stats(); st.PendingRecords > 0 {
		e.logger.Info("queued requests from before the restart will be written", zap.String("signal", e.signal),
			zap.Int64("requests", st.PendingRecords), zap.Int64("bytes", st.PendingBytes), zap.Int64("torn_records", st.TornRecords))
	}
	e.connMu.Lock()
	e.log = l
	e.connMu.Unlock()
	if err := e.ensure(ctx); err != nil {
		e.logger.Warn("ClickHouse is unreachable; data is queued and the exporter keeps trying", zap.Error(err))
	}
	runCtx, cancel := context.WithCancel(context.Background())
	e.stop, e.done = cancel, make(chan struct{})
	go func() {
		defer close(e.done)
		e.drain(runCtx)
	}()
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
	} else if err := c.RequireSchema(ctx); err != nil {
		c.Close()
		return err
	}
	wc := storage.NewDefaultWriterConfig()
	wc.MaxRetries = 1 // the drain loop retries longer outages; the queue holds the data
	wc.MaxInsertRows, wc.NativeBlockRows = e.cfg.MaxInsertRows, e.cfg.NativeBlockRows
	wc.AttemptTimeout = e.cfg.Timeout
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

// Shutdown lets the drain loop write what is queued for up to
// queue.drain_on_shutdown (the receivers stopped first, so nothing new
// arrives), then stops it — what is left stays queued for the next start —
// and closes the queue and the connection. It is safe to call without Start.
func (e *chExporter) Shutdown(ctx context.Context) error {
	e.shutOnce.Do(func() { e.shutErr = e.shutdown(ctx) })
	return e.shutErr
}

func (e *chExporter) shutdown(ctx context.Context) error {
	defer e.tel.Shutdown() // unregisters the gauges' callbacks
	if e.stop != nil {
		deadline := time.Now().Add(e.cfg.Queue.DrainOnShutdown)
		for e.log.Stats().PendingRecords > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		e.stop()
		select {
		case <-e.done:
		case <-ctx.Done():
			return fmt.Errorf("exporter shutdown: %w", ctx.Err())
		}
	}
	e.connMu.Lock()
	defer e.connMu.Unlock()
	var errs []error
	if e.log != nil {
		errs = append(errs, e.log.Close())
	}
	if e.client != nil {
		errs = append(errs, e.client.Close())
	}
	return errors.Join(errs...)
}

func (e *chExporter) sig() metric.MeasurementOption {
	return metric.WithAttributes(attribute.String("signal", e.signal))
}

// reject counts n items rejected for reason and reports them to the sender.
func (e *chExporter) reject(ctx context.Context, reason string, n int) {
	if n > 0 {
		e.tel.ExporterRejectedItems.Add(ctx, int64(n), metric.WithAttributes(attribute.String("signal", e.signal), attribute.String("reason", reason)))
		partial.Reject(ctx, reason, n)
	}
}

func (e *chExporter) received(ctx context.Context, n int) {
	e.tel.ExporterReceivedItems.Add(ctx, int64(n), e.sig())
}

func (e *chExporter) normalize(ctx context.Context, reason string, n int) {
	if n > 0 {
		e.tel.ExporterNormalizedItems.Add(ctx, int64(n), metric.WithAttributes(attribute.String("signal", e.signal), attribute.String("reason", reason)))
	}
}

// account counts a request's rejections and normalisations and returns how
// many items it rejected.
func (e *chExporter) account(ctx context.Context, rejected, normalized map[string]int) int {
	n := 0
	for reason, k := range rejected {
		e.reject(ctx, reason, k)
		n += k
	}
	for reason, k := range normalized {
		e.normalize(ctx, reason, k)
	}
	return n
}

// enqueue appends one request's rows to the queue; items is how many of
// the request's items they hold. It returns once they are on disk, or with
// a retryable error when the queue cannot take them (the sender retries).
func (e *chExporter) enqueue(ctx context.Context, items int, blocks ...storage.Block) error {
	buf, _ := e.bufs.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	defer e.bufs.Put(buf)
	b := append((*buf)[:0], recordVersion)
	var err error
	for _, blk := range blocks {
		if n, _ := blk.Rows(); n == 0 {
			continue
		}
		if b, err = storage.AppendBlock(b, blk); err != nil {
			return consumererror.NewPermanent(fmt.Errorf("encode rows: %w", err))
		}
	}
	*buf = b
	if len(b) == 1 {
		return nil // nothing to store
	}
	wait := e.cfg.Queue.BlockTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
		wait = time.Until(d)
	}
	actx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	err = e.log.AppendWait(actx, b)
	if err == nil {
		e.tel.ExporterQueuedItems.Add(ctx, int64(items), e.sig())
		return nil
	}
	reason := RefusedIO
	switch {
	case errors.Is(err, wal.ErrFull):
		reason = RefusedQueueFull
	case errors.Is(err, wal.ErrDiskFull):
		reason = RefusedDiskFull
	case errors.Is(err, wal.ErrTooLarge):
		e.reject(ctx, "request_too_large", items)
		return consumererror.NewPermanent(fmt.Errorf("queue the request: %w", err))
	}
	e.tel.ExporterRefusedItems.Add(ctx, int64(items), metric.WithAttributes(attribute.String("signal", e.signal), attribute.String("reason", reason)))
	e.throttledWarn(reason, "request refused; the sender is told to retry", zap.String("reason", reason), zap.Error(err))
	return fmt.Errorf("queue the request (%s), retry later: %w", reason, err)
}

// recordVersion starts every queue record: the layout of what follows.
const recordVersion byte = 1

// throttledWarn logs a repetitive warning at most once a minute per key.
func (e *chExporter) throttledWarn(key, msg string, fields ...zap.Field) {
	now := time.Now()
	if last, ok := e.warned.Load(key); ok && now.Sub(last.(time.Time)) < time.Minute {
		return
	}
	e.warned.Store(key, now)
	e.logger.Warn(msg, append(fields, zap.String("signal", e.signal))...)
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
