package otlprecv

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fuzzSeeds are requests of every signal in both encodings: good ones,
// ones with rejected items, nested and invalid-UTF-8 attributes, and a
// request one level too deep.
func fuzzSeeds(f *testing.F, add func(signal uint8, json bool, body []byte)) {
	for i, s := range testSignals {
		for _, req := range []wireRequest{s.request(""), s.request(mixed...)} {
			pb, _ := req.MarshalProto()
			js, _ := req.MarshalJSON()
			add(uint8(i), false, pb)
			add(uint8(i), true, js)
		}
	}
	add(0, false, deepMetricsProto(DefaultMaxAttributeDepth))
	add(0, false, deepMetricsProto(DefaultMaxAttributeDepth+1))
	add(0, true, deepMetricsJSON(DefaultMaxAttributeDepth+1))
	add(0, false, []byte{0x0a, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0xff})
}

// fuzzReceiver is a receiver with the test pipeline, started once per target.
func fuzzReceiver(f *testing.F) *otlpReceiver {
	h := start(f, nil)
	return h.comps[0].(*otlpReceiver)
}

// FuzzOTLPHTTP feeds arbitrary bodies to the receiver's OTLP/HTTP handlers
// (the real handlers, in process): every answer is 200 or a 400 with a
// reason, and nothing panics or overflows the stack.
func FuzzOTLPHTTP(f *testing.F) {
	r := fuzzReceiver(f)
	handlers := []http.Handler{r.metrics.handler(r.obsHTTP, r.tel), r.logs.handler(r.obsHTTP, r.tel), r.traces.handler(r.obsHTTP, r.tel)}
	fuzzSeeds(f, func(signal uint8, json bool, body []byte) { f.Add(signal, json, body) })
	f.Fuzz(func(t *testing.T, signal uint8, json bool, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		if json {
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		handlers[int(signal)%len(handlers)].ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("answered %d: %q", rec.Code, rec.Body.Bytes())
		}
	})
}

// FuzzOTLPGRPC feeds arbitrary messages to the receiver's gRPC Export
// methods (the registered handlers, behind the codec): every answer is OK,
// InvalidArgument (a limit) or Internal (undecodable), never a panic.
func FuzzOTLPGRPC(f *testing.F) {
	r := fuzzReceiver(f)
	descs := []*grpc.ServiceDesc{r.metrics.serviceDesc(grpcMetricsService, r.obsGRPC, r.tel),
		r.logs.serviceDesc(grpcLogsService, r.obsGRPC, r.tel), r.traces.serviceDesc(grpcTracesService, r.obsGRPC, r.tel)}
	fuzzSeeds(f, func(signal uint8, json bool, body []byte) {
		if !json {
			f.Add(signal, body)
		}
	})
	f.Fuzz(func(t *testing.T, signal uint8, body []byte) {
		dec := func(v any) error { v.(*rawMessage).b = body; return nil }
		out, err := descs[int(signal)%len(descs)].Methods[0].Handler(nil, context.Background(), dec, nil)
		switch status.Code(err) {
		case codes.OK:
			if _, ok := out.(*rawMessage); !ok {
				t.Fatalf("answered %T", out)
			}
		case codes.InvalidArgument, codes.Internal:
		default:
			t.Fatalf("answered %v", err)
		}
	})
}
