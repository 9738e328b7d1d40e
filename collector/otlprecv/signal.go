package otlprecv

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/collector/pdata/xpdata/pref"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fleetwatch/fleetwatch/collector/partial"
)

// Signal names, as the value of the signal attribute of the receiver's own
// metrics and log lines.
const (
	signalMetrics = "metrics"
	signalLogs    = "logs"
	signalTraces  = "traces"
)

// Data formats, as the obsreport format attribute.
const (
	formatProtobuf = "protobuf"
	formatJSON     = "json"
)

// request is what the three OTLP export requests have in common.
type request interface {
	UnmarshalProto([]byte) error
	UnmarshalJSON([]byte) error
}

// response is what the three OTLP export responses have in common.
type response interface {
	MarshalProto() ([]byte, error)
	MarshalJSON() ([]byte, error)
}

// signal is one OTLP signal: how to count its requests' items, hand them to
// the next consumer, answer, and report the operation.
type signal[Req request, Resp response] struct {
	name   string
	lim    *Limits
	shape  *wireShape
	newReq func() Req
	items  func(Req) int
	check  func(Req, *checker)
	// consume hands the request to the next consumer and releases it (see
	// release): the request must not be read after.
	consume func(context.Context, Req) error
	// answer builds the response; rejected > 0 fills its partial success.
	answer func(rejected int64, message string) Resp
	// direct, when set, exports a protobuf request without pdata
	// (direct.go); handled is false when it leaves the request to pdata.
	direct  func(ctx context.Context, obs *receiverhelper.ObsReport, tel *telemetry, body []byte) (resp Resp, h handled, ok bool, err error)
	startOp func(*receiverhelper.ObsReport, context.Context) context.Context
	endOp   func(*receiverhelper.ObsReport, context.Context, string, int, error)
}

// handled is how a request was handled.
type handled struct {
	// reason refuses the request: a limit checked before decoding failed,
	// or it did not decode.
	reason string
	// reusable: nothing refers to the body any more (the direct decoder
	// took the request), so its buffer may be reused.
	reusable bool
}

// handle decodes body and exports it: refused (h.reason) when a limit
// checked before decoding fails or it does not decode; otherwise the
// export's answer and error.
func (s *signal[Req, Resp]) handle(ctx context.Context, obs *receiverhelper.ObsReport, tel *telemetry, enc *encoding, body []byte) (resp Resp, h handled, err error) {
	// The direct decoder checks the pre-scan's limits itself (without
	// recursion deeper than the schema's), and takes only requests the
	// pre-scan passes; the others come here.
	if s.direct != nil && enc == protobufEncoding {
		if resp, h, ok, err := s.direct(ctx, obs, tel, body); ok {
			return resp, h, err
		}
	}
	if reason, err := s.scan(enc, body); err != nil {
		return resp, handled{reason: reason}, err
	}
	req := s.newReq()
	if err := enc.decode(req, body); err != nil {
		return resp, handled{reason: RefusedUndecodable}, fmt.Errorf("decoding the %s export request: %w", enc.format, err)
	}
	resp, err = s.export(ctx, obs, tel, enc.format, req)
	return resp, handled{}, err
}

// scan checks body against the limits that must hold before pdata decodes
// it (attribute depth, items per request). On failure it returns the
// refusal reason and an error for the sender.
func (s *signal[Req, Resp]) scan(enc *encoding, body []byte) (string, error) {
	var err error
	if enc == jsonEncoding {
		err = scanJSON(body, s.lim.scan())
	} else {
		err = s.shape.scanProto(body, s.lim.scan())
	}
	switch {
	case errors.Is(err, errTooDeep):
		return RefusedTooDeep, fmt.Errorf("attribute values are nested deeper than %d levels (max_attribute_depth)", s.lim.MaxAttributeDepth)
	case errors.Is(err, errTooManyItems):
		return RefusedTooManyItems, fmt.Errorf("the request holds more than %d %s items (max_items_per_request); send smaller batches", s.lim.MaxItemsPerRequest, s.name)
	case err != nil:
		return RefusedUndecodable, fmt.Errorf("decoding the %s export request: %w", enc.format, err)
	}
	return "", nil
}

// export checks req's items against the limits and the identifier policy
// and hands those it keeps to the next consumer (exportItems).
func (s *signal[Req, Resp]) export(ctx context.Context, obs *receiverhelper.ObsReport, tel *telemetry, format string, req Req) (Resp, error) {
	n := s.items(req)
	if n == 0 {
		return s.answer(0, ""), nil
	}
	c := newChecker(s.lim)
	s.check(req, c)
	return s.exportItems(ctx, obs, tel, format, n, c, func(ctx context.Context) error {
		if s.items(req) == 0 {
			return nil
		}
		return s.consume(ctx, req)
	})
}

// exportItems hands a request of n items, checked by c, to the next
// consumer (consume) with a partial.Tally in the context and answers with
// what the tally holds: the checks' rejections and the pipeline's. An
// error is a gRPC status: InvalidArgument for a permanent error (the
// sender must not retry), Unavailable for any other (it should), unless
// the consumer returned a status itself.
func (s *signal[Req, Resp]) exportItems(ctx context.Context, obs *receiverhelper.ObsReport, tel *telemetry, format string, n int, c *checker, consume func(context.Context) error) (Resp, error) {
	ctx = s.startOp(obs, ctx)
	ctx, tally := partial.NewContext(ctx)
	for reason, k := range c.rejected {
		tally.Add(reason, k)
	}
	tel.normalized(ctx, s.name, NormalizedInvalidUTF8, c.normalized)
	err := consume(ctx)
	s.endOp(obs, ctx, format, n, err)
	if err != nil {
		return s.answer(0, ""), grpcError(err)
	}
	rejected := tally.Rejected()
	if rejected == 0 {
		return s.answer(0, ""), nil
	}
	tel.rejected(ctx, s.name, tally.Reasons())
	return s.answer(min(rejected, int64(n)), tally.Message()), nil
}

// release hands data to next and, once next has returned, drops the
// receiver's reference to it: with pdata's pdata.useProtoPooling feature
// gate on (off by default; --feature-gates=pdata.useProtoPooling) that
// returns the request's nodes to pdata's pools, unless a component took a
// reference of its own to keep the data past its Consume call (exporter
// queues and the batch processor do: xpdata/pref); with the gate off it
// only counts the reference down.
//
// The receiver takes ownership itself, before the service does: the
// service (v0.162.0) marks data as owned where a pipeline starts and
// releases it when that pipeline returns, so two pipelines fed by this
// receiver that share one request (read-only consumers: the fan-out hands
// both the same data) would see the second one get an emptied request.
// Owned here, the request is released once every pipeline has returned.
// This is safe because consuming is synchronous: next returns only when
// every pipeline is done with the data or holds a reference, and the
// receiver reads nothing of the request after.
func release[T any](ctx context.Context, data T, own func(T) bool, unref func(T), next func(context.Context, T) error) error {
	if own(data) {
		defer unref(data)
	}
	return next(ctx, data)
}

// grpcError maps a consumer's error to a gRPC status error.
func grpcError(err error) error {
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return st.Err()
	}
	code := codes.Unavailable
	if consumererror.IsPermanent(err) {
		code = codes.InvalidArgument
	}
	return status.Error(code, err.Error())
}

type (
	metricsSignal = signal[pmetricotlp.ExportRequest, pmetricotlp.ExportResponse]
	logsSignal    = signal[plogotlp.ExportRequest, plogotlp.ExportResponse]
	tracesSignal  = signal[ptraceotlp.ExportRequest, ptraceotlp.ExportResponse]
)

func newMetricsSignal(next consumer.Metrics, lim *Limits) *metricsSignal {
	return &metricsSignal{
		name:   signalMetrics,
		lim:    lim,
		shape:  metricsShape,
		newReq: pmetricotlp.NewExportRequest,
		items:  func(r pmetricotlp.ExportRequest) int { return r.Metrics().DataPointCount() },
		check:  func(r pmetricotlp.ExportRequest, c *checker) { checkMetrics(r.Metrics(), c) },
		consume: func(ctx context.Context, r pmetricotlp.ExportRequest) error {
			return release(ctx, r.Metrics(), pref.MarkPipelineOwnedMetrics, pref.UnrefMetrics, next.ConsumeMetrics)
		},
		answer: func(rejected int64, msg string) pmetricotlp.ExportResponse {
			resp := pmetricotlp.NewExportResponse()
			if rejected > 0 {
				resp.PartialSuccess().SetRejectedDataPoints(rejected)
				resp.PartialSuccess().SetErrorMessage(msg)
			}
			return resp
		},
		startOp: (*receiverhelper.ObsReport).StartMetricsOp,
		endOp:   (*receiverhelper.ObsReport).EndMetricsOp,
	}
}

func newLogsSignal(next consumer.Logs, lim *Limits) *logsSignal {
	return &logsSignal{
		name:   signalLogs,
		lim:    lim,
		shape:  logsShape,
		newReq: plogotlp.NewExportRequest,
		items:  func(r plogotlp.ExportRequest) int { return r.Logs().LogRecordCount() },
		check:  func(r plogotlp.ExportRequest, c *checker) { checkLogs(r.Logs(), c) },
		consume: func(ctx context.Context, r plogotlp.ExportRequest) error {
			return release(ctx, r.Logs(), pref.MarkPipelineOwnedLogs, pref.UnrefLogs, next.ConsumeLogs)
		},
		answer: func(rejected int64, msg string) plogotlp.ExportResponse {
			resp := plogotlp.NewExportResponse()
			if rejected > 0 {
				resp.PartialSuccess().SetRejectedLogRecords(rejected)
				resp.PartialSuccess().SetErrorMessage(msg)
			}
			return resp
		},
		startOp: (*receiverhelper.ObsReport).StartLogsOp,
		endOp:   (*receiverhelper.ObsReport).EndLogsOp,
	}
}

func newTracesSignal(next consumer.Traces, lim *Limits) *tracesSignal {
	return &tracesSignal{
		name:   signalTraces,
		lim:    lim,
		shape:  tracesShape,
		newReq: ptraceotlp.NewExportRequest,
		items:  func(r ptraceotlp.ExportRequest) int { return r.Traces().SpanCount() },
		check:  func(r ptraceotlp.ExportRequest, c *checker) { checkTraces(r.Traces(), c) },
		consume: func(ctx context.Context, r ptraceotlp.ExportRequest) error {
			return release(ctx, r.Traces(), pref.MarkPipelineOwnedTraces, pref.UnrefTraces, next.ConsumeTraces)
		},
		answer: func(rejected int64, msg string) ptraceotlp.ExportResponse {
			resp := ptraceotlp.NewExportResponse()
			if rejected > 0 {
				resp.PartialSuccess().SetRejectedSpans(rejected)
				resp.PartialSuccess().SetErrorMessage(msg)
			}
			return resp
		},
		startOp: (*receiverhelper.ObsReport).StartTracesOp,
		endOp:   (*receiverhelper.ObsReport).EndTracesOp,
	}
}
