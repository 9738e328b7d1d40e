package otlprecv

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.uber.org/zap"

	"github.com/fleetwatch/fleetwatch/collector/fastotlp"
	fwtelemetry "github.com/fleetwatch/fleetwatch/telemetry"
)

// directMetrics is metrics_decoder: direct. A protobuf metrics request is
// decoded by collector/fastotlp into columns and handed to the ClickHouse
// exporter in the context of an empty pdata request (fastotlp.Handoff),
// when it holds only what the columns hold (gauges and sums with string,
// integer or boolean attributes), the pre-scan would pass it (the decoder
// counts the items and the attribute depth on its own walk, so the
// request is read once) and the receiver's checks would neither reject nor
// repair any of it. Any other request (histograms, an item over a limit,
// invalid UTF-8, a malformed request) goes to the pre-scan, pdata and its
// checks unchanged, so senders get the same answers either way
// (FuzzDirectTakesOnlyWhatChecksKeep, TestDirectAndPdataAnswerAlike).
type directMetrics struct {
	sig    *metricsSignal
	next   consumer.Metrics
	logger *zap.Logger
	cols   sync.Pool
	// off is set when a pipeline did not take a request's columns: every
	// request goes to pdata from then on.
	off atomic.Bool
}

func newDirectMetrics(sig *metricsSignal, next consumer.Metrics, logger *zap.Logger) *directMetrics {
	d := &directMetrics{sig: sig, next: next, logger: logger}
	d.cols.New = func() any { return new(fastotlp.Columns) }
	return d
}

// export exports body through the columns; ok is false when the request
// is left to pdata.
func (d *directMetrics) export(ctx context.Context, obs *receiverhelper.ObsReport, tel *telemetry, body []byte) (resp pmetricotlp.ExportResponse, h handled, ok bool, err error) {
	if d.off.Load() {
		tel.decoded(ctx, FallbackOff)
		return resp, h, false, nil
	}
	cols := d.cols.Get().(*fastotlp.Columns)
	defer d.cols.Put(cols)
	if reason := d.decode(cols, body); reason != DecodedDirect {
		tel.decoded(ctx, reason)
		return resp, h, false, nil
	}
	n := cols.Len()
	if n == 0 {
		tel.decoded(ctx, DecodedDirect)
		return d.sig.answer(0, ""), handled{reusable: true}, true, nil
	}
	resp, err = d.sig.exportItems(ctx, obs, tel, formatProtobuf, n, newChecker(d.sig.lim), func(ctx context.Context) error {
		ho := &fastotlp.Handoff{Columns: cols}
		if err := d.next.ConsumeMetrics(fastotlp.NewContext(ctx, ho), pmetric.NewMetrics()); err != nil || ho.Taken() {
			tel.decoded(ctx, DecodedDirect)
			// The exporter keeps nothing of the columns: the body is free.
			h.reusable = true
			return err
		}
		// The columns did not reach the exporter: a pipeline the
		// configuration check did not see. Send the request through pdata
		// (what was consumed was empty) and stop decoding directly.
		tel.decoded(ctx, FallbackNotTaken)
		if d.off.CompareAndSwap(false, true) {
			d.logger.Warn("metrics_decoder: direct, but the metrics pipeline did not hand the decoded request to fleetwatch_clickhouse; decoding with pdata from now on (set metrics_decoder: pdata for pipelines with other processors or exporters)")
		}
		req := pmetricotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			return err
		}
		return d.sig.consume(ctx, req)
	})
	return resp, h, true, err
}

// decode decodes body into cols and says why pdata must take it instead,
// or DecodedDirect.
func (d *directMetrics) decode(cols *fastotlp.Columns, body []byte) string {
	switch err := cols.Decode(body); {
	case errors.Is(err, fastotlp.ErrUnsupported):
		return FallbackUnsupported
	case err != nil:
		return FallbackMalformed
	case !cols.Checked():
		return FallbackUnchecked
	case cols.Walked() > d.sig.lim.MaxItemsPerRequest || cols.Depth() > d.sig.lim.MaxAttributeDepth:
		return FallbackLimits // the pre-scan refuses it
	case !clean(d.sig.lim, cols):
		return FallbackLimits
	}
	return DecodedDirect
}

// clean reports whether the receiver's checks (checkMetrics) would neither
// reject nor repair anything of the decoded request: its resources' and
// points' attributes within the limits, valid UTF-8, and identifier
// attributes that pass the policy. (Checked covers scopes and metric
// names.) It is stricter than the checks where that is simpler: an
// integer attribute is checked as its string, which can only send a
// request to pdata, never let through one pdata's checks would change.
func clean(lim *Limits, c *fastotlp.Columns) bool {
	for r := range c.Resources() {
		if !lim.cleanAttrs(c.ResourceAttrs(r)) {
			return false
		}
	}
	for i := range c.Len() {
		if !lim.cleanAttrs(c.PointAttrs(i)) {
			return false
		}
	}
	return true
}

// cleanAttrs is clean for one attribute map.
func (lim *Limits) cleanAttrs(keys, values []string) bool {
	if len(keys) > lim.MaxAttributes {
		return false
	}
	for i, k := range keys {
		v := values[i]
		if len(k) > lim.MaxKeyBytes || len(v) > lim.MaxValueBytes || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return false
		}
		if fwtelemetry.IsIdentifierAttribute(k) && fwtelemetry.CheckIdentifier(v) != nil {
			return false
		}
	}
	return true
}
