package otlprecv

import (
	"context"

	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcencoding "google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
)

// The gRPC services take each request as bytes and decode it themselves,
// after the server's interceptors (the auth extension's among them) have
// let it through: an unauthenticated request is never decoded, and every
// request is pre-scanned (prescan.go) before pdata's recursive decoder sees
// it. pdata's generated services would decode first.

// rawMessage is a request's or a response's protobuf bytes. A request's
// are in a buffer of gRPC's buffer pool (buf), freed once the request is
// handled if nothing refers to them any more; a buffer never freed is left
// to the garbage collector.
type rawMessage struct {
	b   []byte
	buf mem.Buffer
}

// rawCodec passes rawMessage through as bytes and leaves anything else to
// the registered proto codec. The server is forced to use it.
type rawCodec struct{ delegate grpcencoding.CodecV2 }

func newRawCodec() rawCodec { return rawCodec{delegate: grpcencoding.GetCodecV2("proto")} }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*rawMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(m.b)}, nil
	}
	return c.delegate.Marshal(v)
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*rawMessage); ok {
		m.buf = data.MaterializeToBuffer(mem.DefaultBufferPool())
		m.b = m.buf.ReadOnlyData()
		return nil
	}
	return c.delegate.Unmarshal(data, v)
}

func (rawCodec) Name() string { return "proto" }

// Full names of the OTLP services.
const (
	grpcMetricsService = "opentelemetry.proto.collector.metrics.v1.MetricsService"
	grpcLogsService    = "opentelemetry.proto.collector.logs.v1.LogsService"
	grpcTracesService  = "opentelemetry.proto.collector.trace.v1.TraceService"
)

// serviceDesc is the signal's OTLP gRPC service, its one method Export.
func (s *signal[Req, Resp]) serviceDesc(service string, obs *receiverhelper.ObsReport, tel *telemetry) *grpc.ServiceDesc {
	method := "/" + service + "/Export"
	handler := func(_ any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		in := &rawMessage{}
		if err := dec(in); err != nil {
			tel.refused(ctx, s.name, transportGRPC, RefusedUnreadable)
			return nil, err
		}
		reached := false
		serve := func(ctx context.Context, req any) (any, error) {
			reached = true
			out, reusable, err := s.serveGRPC(ctx, obs, tel, req.(*rawMessage).b)
			if reusable {
				in.buf.Free()
			}
			return out, err
		}
		if interceptor == nil {
			return serve(ctx, in)
		}
		out, err := interceptor(ctx, in, &grpc.UnaryServerInfo{FullMethod: method}, serve)
		if err != nil && !reached && status.Code(err) == codes.Unauthenticated {
			tel.refused(ctx, s.name, transportGRPC, RefusedUnauthenticated)
		}
		return out, err
	}
	return &grpc.ServiceDesc{
		ServiceName: service,
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Export", Handler: handler}},
		Metadata:    service,
	}
}

// serveGRPC decodes and exports one gRPC request. Refusals are counted; an
// undecodable message is answered Internal, as gRPC's own decoding does.
// reusable: body's buffer may be reused.
func (s *signal[Req, Resp]) serveGRPC(ctx context.Context, obs *receiverhelper.ObsReport, tel *telemetry, body []byte) (out any, reusable bool, err error) {
	resp, h, err := s.handle(ctx, obs, tel, protobufEncoding, body)
	if h.reason != "" {
		tel.refused(ctx, s.name, transportGRPC, h.reason)
		code := codes.InvalidArgument
		if h.reason == RefusedUndecodable {
			code = codes.Internal
		}
		return nil, false, status.Error(code, err.Error())
	}
	if err != nil {
		return nil, h.reusable, err
	}
	b, err := resp.MarshalProto()
	if err != nil {
		return nil, h.reusable, status.Error(codes.Internal, "encoding the response: "+err.Error())
	}
	return &rawMessage{b: b}, h.reusable, nil
}
