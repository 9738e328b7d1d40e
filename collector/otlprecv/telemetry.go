package otlprecv

import (
	"context"
	"maps"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
)

// Reasons a request is refused before its data reaches the pipeline
// (fleetwatch_receiver_refused_requests). Items rejected downstream carry the
// reasons of the component that rejected them.
const (
	RefusedTooLarge        = "too_large"              // body over max_request_body_size
	RefusedUnreadable      = "unreadable_body"        // the body could not be read (client gone, bad compression)
	RefusedUndecodable     = "undecodable"            // not an OTLP export request in the declared encoding
	RefusedMediaType       = "unsupported_media_type" // neither application/x-protobuf nor application/json
	RefusedMethod          = "method_not_allowed"     // not POST
	RefusedContentEncoding = "bad_content_encoding"   // unknown Content-Encoding or a broken compressed stream
	RefusedUnauthenticated = "unauthenticated"        // the auth extension refused the request
	RefusedTooDeep         = "too_deep"               // attribute values nested deeper than max_attribute_depth
	RefusedTooManyItems    = "too_many_items"         // more items than max_items_per_request
)

// telemetry is the receiver's own metrics, and its throttled warnings.
type telemetry struct {
	id            attribute.KeyValue
	rejectedItems metric.Int64Counter
	refusedReqs   metric.Int64Counter
	normalizedIt  metric.Int64Counter
	decodedReqs   metric.Int64Counter
	decodedBy     map[string]metric.MeasurementOption // by DecodedDirect or a fallback reason
	rejectLog     *throttle
	refuseLog     *throttle
	flushEvery    time.Duration
}

func newTelemetry(set component.TelemetrySettings, id component.ID, interval time.Duration) (*telemetry, error) {
	meter := set.MeterProvider.Meter("github.com/fleetwatch/fleetwatch/collector/otlprecv")
	t := &telemetry{id: attribute.String("receiver", id.String()), flushEvery: interval,
		rejectLog: newThrottle(set.Logger, "items rejected downstream were reported to senders as OTLP partial success", "items", interval),
		refuseLog: newThrottle(set.Logger, "OTLP requests refused before they reached the pipeline", "requests", interval),
	}
	var err error
	t.rejectedItems, err = meter.Int64Counter("fleetwatch_receiver_partial_rejected_items",
		metric.WithDescription("Data points, log records and spans that the pipeline rejected and the receiver reported to the sender in the response's partial_success, by signal and reason."),
		metric.WithUnit("{item}"))
	if err != nil {
		return nil, err
	}
	t.refusedReqs, err = meter.Int64Counter("fleetwatch_receiver_refused_requests",
		metric.WithDescription("OTLP requests refused before their data reached the pipeline, by signal, transport and reason."),
		metric.WithUnit("{request}"))
	if err != nil {
		return nil, err
	}
	t.normalizedIt, err = meter.Int64Counter("fleetwatch_receiver_normalized_items",
		metric.WithDescription("Data points, log records and spans the receiver kept after repairing them (invalid UTF-8 replaced with U+FFFD), by signal and reason."),
		metric.WithUnit("{item}"))
	if err != nil {
		return nil, err
	}
	t.decodedReqs, err = meter.Int64Counter("fleetwatch_receiver_metrics_decoded_requests",
		metric.WithDescription("Protobuf metrics requests of a receiver with metrics_decoder: direct, by the decoder that took them (direct, pdata) and, for pdata, why the direct decoder left them to it."),
		metric.WithUnit("{request}"))
	t.decodedBy = map[string]metric.MeasurementOption{}
	for _, reason := range []string{DecodedDirect, FallbackUnsupported, FallbackMalformed, FallbackUnchecked, FallbackLimits, FallbackNotTaken, FallbackOff} {
		decoder := "pdata"
		if reason == DecodedDirect {
			decoder, reason = "direct", ""
		}
		t.decodedBy[reason] = metric.WithAttributes(t.id, attribute.String("decoder", decoder), attribute.String("reason", reason))
	}
	return t, err
}

// Why a receiver with metrics_decoder: direct left a protobuf metrics
// request to pdata (fleetwatch_receiver_metrics_decoded_requests).
const (
	DecodedDirect       = ""            // not a fallback: the direct decoder took it
	FallbackUnsupported = "unsupported" // histograms, summaries, double/bytes/array/map attribute values
	FallbackMalformed   = "malformed"   // pdata refuses it too, with its own error
	FallbackUnchecked   = "unchecked"   // scope attributes, or invalid UTF-8 where the columns do not look
	FallbackLimits      = "limits"      // a limit or check would refuse, reject or repair something
	FallbackNotTaken    = "not_taken"   // the pipeline did not hand the columns to the exporter
	FallbackOff         = "off"         // after a not_taken request: pdata from then on
)

// decoded records one protobuf metrics request of metrics_decoder: direct.
func (t *telemetry) decoded(ctx context.Context, reason string) {
	t.decodedReqs.Add(ctx, 1, t.decodedBy[reason])
}

// normalized records n items of one request kept after a repair.
func (t *telemetry) normalized(ctx context.Context, signal, reason string, n int64) {
	if n > 0 {
		t.normalizedIt.Add(ctx, n, metric.WithAttributes(t.id, attribute.String("signal", signal), attribute.String("reason", reason)))
	}
}

// rejected records the items of one request rejected downstream.
func (t *telemetry) rejected(ctx context.Context, signal string, reasons map[string]int64) {
	for reason, n := range reasons {
		t.rejectedItems.Add(ctx, n, metric.WithAttributes(t.id, attribute.String("signal", signal), attribute.String("reason", reason)))
	}
	t.rejectLog.add(signal, reasons)
}

// refused records one request refused before its data reached the pipeline.
func (t *telemetry) refused(ctx context.Context, signal, transport, reason string) {
	t.refusedReqs.Add(ctx, 1, metric.WithAttributes(t.id, attribute.String("signal", signal),
		attribute.String("transport", transport), attribute.String("reason", reason)))
	t.refuseLog.add(signal, map[string]int64{reason: 1})
}

// run writes the warnings that are due every interval until stop closes,
// then what is left.
func (t *telemetry) run(stop <-chan struct{}) {
	tick := time.NewTicker(t.flushEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.rejectLog.flush(false)
			t.refuseLog.flush(false)
		case <-stop:
			t.rejectLog.flush(true)
			t.refuseLog.flush(true)
			return
		}
	}
}

// throttle sums counts by reason per key (a signal) and writes at most one
// warning line per key and interval, with the counts since its last line.
type throttle struct {
	log      *zap.Logger
	msg      string
	unit     string
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	keys map[string]*backlog
}

// backlog is what one key has counted since its last line.
type backlog struct {
	last   time.Time // when its last line was written; zero before the first
	since  time.Time // when the first count not yet written came
	counts map[string]int64
}

func newThrottle(log *zap.Logger, msg, unit string, interval time.Duration) *throttle {
	return &throttle{log: log, msg: msg, unit: unit, interval: interval, now: time.Now, keys: map[string]*backlog{}}
}

// add counts; the line is written now if the key's interval has passed.
func (t *throttle) add(key string, counts map[string]int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	b := t.keys[key]
	if b == nil {
		b = &backlog{counts: map[string]int64{}}
		t.keys[key] = b
	}
	if len(b.counts) == 0 {
		b.since = now
	}
	for r, n := range counts {
		b.counts[r] += n
	}
	t.write(key, b, now, false)
}

// flush writes the lines that are due; final writes every backlog.
func (t *throttle) flush(final bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for key, b := range t.keys {
		t.write(key, b, now, final)
	}
}

func (t *throttle) write(key string, b *backlog, now time.Time, force bool) {
	if len(b.counts) == 0 || (!force && !b.last.IsZero() && now.Sub(b.last) < t.interval) {
		return
	}
	var total int64
	for _, n := range b.counts {
		total += n
	}
	t.log.Warn(t.msg, zap.String("signal", key), zap.Int64(t.unit, total), zap.Any("by_reason", maps.Clone(b.counts)),
		zap.Duration("over", now.Sub(b.since)))
	clear(b.counts)
	b.last = now
}
