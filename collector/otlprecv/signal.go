package otlprecv

import (
	"context"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
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
	name    string
	newReq  func() Req
	items   func(Req) int
	consume func(context.Context, Req) error
	// answer builds the response; rejected > 0 fills its partial success.
	answer  func(rejected int64, message string) Resp
	startOp func(*receiverhelper.ObsReport, context.Context) context.Context
	endOp   func(*receiverhelper.ObsReport, context.Context, string, int, error)
}

// export hands req to the next consumer with a partial.Tally in the context
// and answers with what the tally holds. An error is a gRPC status:
// InvalidArgument for a permanent error (the sender must not retry),
// Unavailable for any other (it should), unless the consumer returned a
// status itself.
func (s *signal[Req, Resp]) export(ctx context.Context, obs *receiverhelper.ObsReport, tel *telemetry, format string, req Req) (Resp, error) {
	n := s.items(req)
	if n == 0 {
		return s.answer(0, ""), nil
	}
	ctx = s.startOp(obs, ctx)
	ctx, tally := partial.NewContext(ctx)
	err := s.consume(ctx, req)
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

func newMetricsSignal(next consumer.Metrics) *metricsSignal {
	return &metricsSignal{
		name:   signalMetrics,
		newReq: pmetricotlp.NewExportRequest,
		items:  func(r pmetricotlp.ExportRequest) int { return r.Metrics().DataPointCount() },
		consume: func(ctx context.Context, r pmetricotlp.ExportRequest) error {
			return next.ConsumeMetrics(ctx, r.Metrics())
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

func newLogsSignal(next consumer.Logs) *logsSignal {
	return &logsSignal{
		name:   signalLogs,
		newReq: plogotlp.NewExportRequest,
		items:  func(r plogotlp.ExportRequest) int { return r.Logs().LogRecordCount() },
		consume: func(ctx context.Context, r plogotlp.ExportRequest) error {
			return next.ConsumeLogs(ctx, r.Logs())
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

func newTracesSignal(next consumer.Traces) *tracesSignal {
	return &tracesSignal{
		name:   signalTraces,
		newReq: ptraceotlp.NewExportRequest,
		items:  func(r ptraceotlp.ExportRequest) int { return r.Traces().SpanCount() },
		consume: func(ctx context.Context, r ptraceotlp.ExportRequest) error {
			return next.ConsumeTraces(ctx, r.Traces())
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

// The gRPC services: each hands its requests to its signal.

type metricsService struct {
	pmetricotlp.UnimplementedGRPCServer
	s   *metricsSignal
	obs *receiverhelper.ObsReport
	tel *telemetry
}

func (m *metricsService) Export(ctx context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	return m.s.export(ctx, m.obs, m.tel, formatProtobuf, req)
}

type logsService struct {
	plogotlp.UnimplementedGRPCServer
	s   *logsSignal
	obs *receiverhelper.ObsReport
	tel *telemetry
}

func (l *logsService) Export(ctx context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	return l.s.export(ctx, l.obs, l.tel, formatProtobuf, req)
}

type tracesService struct {
	ptraceotlp.UnimplementedGRPCServer
	s   *tracesSignal
	obs *receiverhelper.ObsReport
	tel *telemetry
}

func (t *tracesService) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	return t.s.export(ctx, t.obs, t.tel, formatProtobuf, req)
}
