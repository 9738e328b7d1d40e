package otlprecv

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/collector/consumer/consumererror"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// A request with rejected items.
var mixed = []string{"", "non_finite", "", "non_finite", "timestamp_out_of_range"}

const mixedMessage = "rejected 3 of the request's items: 2 non_finite, 1 timestamp_out_of_range"

// httpCase is one way to send over OTLP/HTTP.
type httpCase struct {
	name     string
	json     bool
	encoding string // Content-Encoding: "", gzip or zstd
}

var httpCases = []httpCase{
	{"protobuf", false, ""},
	{"json", true, ""},
	{"protobuf+gzip", false, "gzip"},
	{"json+zstd", true, "zstd"},
}

func (c httpCase) contentType() string {
	if c.json {
		return "application/json"
	}
	return "application/x-protobuf"
}

func (c httpCase) body(t *testing.T, req wireRequest) []byte {
	t.Helper()
	var raw []byte
	var err error
	if c.json {
		raw, err = req.MarshalJSON()
	} else {
		raw, err = req.MarshalProto()
	}
	if err != nil {
		t.Fatal(err)
	}
	return compress(t, c.encoding, raw)
}

func compress(t *testing.T, encoding string, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch encoding {
	case "":
		return raw
	case "gzip":
		w := gzip.NewWriter(&buf)
		w.Write(raw)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case "zstd":
		w, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(raw)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("no encoder for %q", encoding)
	}
	return buf.Bytes()
}

// post sends body and returns the answer and its body.
func post(t *testing.T, url, contentType, encoding string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

// rpcStatus decodes an OTLP/HTTP error body.
func rpcStatus(t *testing.T, resp *http.Response, body []byte) *spb.Status {
	t.Helper()
	st := &spb.Status{}
	var err error
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-protobuf") {
		err = proto.Unmarshal(body, st)
	} else {
		err = protojson.Unmarshal(body, st)
	}
	if err != nil {
		t.Fatalf("error body is not a google.rpc.Status (%s): %v: %q", resp.Header.Get("Content-Type"), err, body)
	}
	return st
}

func TestPartialSuccessOverGRPC(t *testing.T) {
	h := start(t, nil)
	conn := h.dial(t)
	for _, s := range testSignals {
		t.Run(s.name, func(t *testing.T) {
			n, msg, err := s.grpc(t.Context(), conn, mixed...)
			if err != nil {
				t.Fatal(err)
			}
			if n != 3 || !strings.HasPrefix(msg, mixedMessage) {
				t.Errorf("partial success = %d %q, want 3 %q...", n, msg, mixedMessage)
			}
			n, msg, err = s.grpc(t.Context(), conn, "", "", "")
			if err != nil || n != 0 || msg != "" {
				t.Errorf("nothing rejected: partial success = %d %q, err %v; want none", n, msg, err)
			}
			if got := h.sink.keptOf(s.name); got != 5 {
				t.Errorf("the pipeline kept %d items, want 5", got)
			}
			want := map[string]string{"signal": s.name, "reason": "non_finite", "receiver": "fleetwatch_otlp"}
			if got := h.counter(t, "fleetwatch_receiver_partial_rejected_items", want); got != 2 {
				t.Errorf("fleetwatch_receiver_partial_rejected_items%v = %d, want 2", want, got)
			}
		})
	}
}

func TestPartialSuccessOverHTTP(t *testing.T) {
	h := start(t, nil)
	for _, s := range testSignals {
		for _, c := range httpCases {
			t.Run(s.name+"/"+c.name, func(t *testing.T) {
				url := h.httpURL + s.path(h.cfg)
				resp, body := post(t, url, c.contentType(), c.encoding, c.body(t, s.request(mixed...)))
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != c.contentType() {
					t.Fatalf("answer %s %q: %q", resp.Status, resp.Header.Get("Content-Type"), body)
				}
				n, msg, err := s.decode(body, c.json)
				if err != nil {
					t.Fatal(err)
				}
				if n != 3 || !strings.HasPrefix(msg, mixedMessage) {
					t.Errorf("partial success = %d %q, want 3 %q...", n, msg, mixedMessage)
				}
				resp, body = post(t, url, c.contentType(), c.encoding, c.body(t, s.request("", "")))
				n, msg, err = s.decode(body, c.json)
				if resp.StatusCode != http.StatusOK || err != nil || n != 0 || msg != "" {
					t.Errorf("nothing rejected: %s, partial success %d %q, err %v; want 200 and none", resp.Status, n, msg, err)
				}
			})
		}
		if got, want := h.sink.keptOf(s.name), 4*len(httpCases); got != want {
			t.Errorf("%s: the pipeline kept %d items, want %d", s.name, got, want)
		}
	}
}

// Errors from the pipeline: permanent ones tell the sender not to retry,
// the others to retry.
func TestPipelineErrorsMapToRetryOrNot(t *testing.T) {
	h := start(t, nil)
	conn := h.dial(t)
	for _, tc := range []struct {
		name     string
		err      error
		msg      string
		grpcCode codes.Code
		httpCode int
	}{
		{"permanent", consumererror.NewPermanent(errors.New("bad data")), "bad data", codes.InvalidArgument, http.StatusBadRequest},
		{"transient", errors.New("data refused due to high memory usage"), "high memory usage", codes.Unavailable, http.StatusServiceUnavailable},
		{"status", status.Error(codes.ResourceExhausted, "slow down"), "slow down", codes.ResourceExhausted, http.StatusTooManyRequests},
	} {
		h.sink.fail(tc.err)
		for _, s := range testSignals {
			t.Run(tc.name+"/"+s.name, func(t *testing.T) {
				_, _, err := s.grpc(t.Context(), conn, "", "")
				if got := status.Code(err); got != tc.grpcCode {
					t.Errorf("gRPC: %v, want code %v", err, tc.grpcCode)
				}
				for _, c := range httpCases[:2] {
					resp, body := post(t, h.httpURL+s.path(h.cfg), c.contentType(), "", c.body(t, s.request("", "")))
					if resp.StatusCode != tc.httpCode {
						t.Errorf("HTTP %s: %s, want %d", c.name, resp.Status, tc.httpCode)
					}
					if st := rpcStatus(t, resp, body); !strings.Contains(st.GetMessage(), tc.msg) {
						t.Errorf("HTTP %s: status message %q does not say %q", c.name, st.GetMessage(), tc.msg)
					}
					retryable := tc.httpCode == http.StatusServiceUnavailable || tc.httpCode == http.StatusTooManyRequests
					if ra := resp.Header.Get("Retry-After"); retryable != (ra != "") {
						t.Errorf("HTTP %s: Retry-After %q on a %d", c.name, ra, tc.httpCode)
					} else if retryable {
						if sec, err := strconv.Atoi(ra); err != nil || sec < 1 {
							t.Errorf("HTTP %s: Retry-After %q is not a positive number of seconds", c.name, ra)
						}
					}
				}
			})
		}
	}
	if n := h.sink.keptOf(signalMetrics); n != 0 {
		t.Errorf("a failing pipeline kept %d items", n)
	}
}

// The standard receiver metrics count accepted and refused items, by
// transport, with receiver="fleetwatch_otlp".
func TestObsReportCounts(t *testing.T) {
	h := start(t, nil)
	conn := h.dial(t)
	m := testSignals[0]
	if _, _, err := m.grpc(t.Context(), conn, mixed...); err != nil {
		t.Fatal(err)
	}
	post(t, h.httpURL+m.path(h.cfg), "application/json", "", httpCases[1].body(t, m.request("", "")))
	h.sink.fail(errors.New("down"))
	m.grpc(t.Context(), conn, "", "", "", "")
	for _, tc := range []struct {
		name      string
		transport string
		want      int64
	}{
		{"otelcol_receiver_accepted_metric_points", "grpc", 5},
		{"otelcol_receiver_accepted_metric_points", "http", 2},
		{"otelcol_receiver_refused_metric_points", "grpc", 4},
		{"otelcol_receiver_accepted_log_records", "grpc", 0},
	} {
		attrs := map[string]string{"receiver": "fleetwatch_otlp", "transport": tc.transport}
		if got := h.counter(t, tc.name, attrs); got != tc.want {
			t.Errorf("%s%v = %d, want %d", tc.name, attrs, got, tc.want)
		}
	}
}

// Requests refused before the pipeline: the right answer, counted by reason,
// nothing handed on.
func TestRefusedRequests(t *testing.T) {
	const limit = 64 << 10
	h := start(t, func(c *Config) { c.Protocols.HTTP.Get().ServerConfig.MaxRequestBodySize = limit })
	metricsURL := h.httpURL + h.cfg.Protocols.HTTP.Get().MetricsURLPath
	big, err := metricsRequest(make([]string, 4000)...).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	if len(big) <= limit {
		t.Fatalf("the large request is only %d bytes", len(big))
	}
	zeros := compress(t, "gzip", make([]byte, 4*limit)) // small on the wire, too large decompressed
	for _, tc := range []struct {
		name, method, contentType, encoding string
		body                                []byte
		code                                int
		reason                              string
	}{
		{"GET", http.MethodGet, "application/x-protobuf", "", nil, http.StatusMethodNotAllowed, RefusedMethod},
		{"text", http.MethodPost, "text/plain", "", []byte("hello"), http.StatusUnsupportedMediaType, RefusedMediaType},
		{"garbage protobuf", http.MethodPost, "application/x-protobuf", "", []byte{0xff, 0xff, 0xff}, http.StatusBadRequest, RefusedUndecodable},
		{"garbage json", http.MethodPost, "application/json", "", []byte(`{"resourceMetrics": 7}`), http.StatusBadRequest, RefusedUndecodable},
		{"too large", http.MethodPost, "application/x-protobuf", "", big, http.StatusBadRequest, RefusedTooLarge},
		{"too large decompressed", http.MethodPost, "application/x-protobuf", "gzip", zeros, http.StatusBadRequest, RefusedTooLarge},
		{"broken gzip", http.MethodPost, "application/json", "gzip", []byte("not gzip"), http.StatusBadRequest, RefusedContentEncoding},
		{"unknown encoding", http.MethodPost, "application/json", "br-custom", []byte("{}"), http.StatusBadRequest, RefusedContentEncoding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.counter(t, "fleetwatch_receiver_refused_requests", map[string]string{"reason": tc.reason, "signal": signalMetrics, "transport": "http"})
			req, err := http.NewRequest(tc.method, metricsURL, bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tc.contentType)
			if tc.encoding != "" {
				req.Header.Set("Content-Encoding", tc.encoding)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("%s, want %d: %q", resp.Status, tc.code, body)
			}
			if st := rpcStatus(t, resp, body); st.GetMessage() == "" {
				t.Errorf("the status has no message")
			}
			after := h.counter(t, "fleetwatch_receiver_refused_requests", map[string]string{"reason": tc.reason, "signal": signalMetrics, "transport": "http"})
			if after != before+1 {
				t.Errorf("fleetwatch_receiver_refused_requests{reason=%q} went from %d to %d, want +1", tc.reason, before, after)
			}
		})
	}
	if n := h.sink.keptOf(signalMetrics); n != 0 {
		t.Errorf("refused requests reached the pipeline: %d items", n)
	}
}

// gRPC refuses oversized messages (max_recv_msg_size_mib, after
// decompression) and undecodable ones itself, before the pipeline.
func TestGRPCRefusesBeforeThePipeline(t *testing.T) {
	h := start(t, func(c *Config) { c.Protocols.GRPC.Get().MaxRecvMsgSizeMiB = 1 })
	conn := h.dial(t)
	_, _, err := testSignals[0].grpc(t.Context(), conn, make([]string, 60000)...)
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a message over 1 MiB: %v, want ResourceExhausted", err)
	}
	err = conn.Invoke(t.Context(), "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
		[]byte{0xff, 0xff, 0xff}, new([]byte), grpc.ForceCodecV2(bytesCodec{}))
	if status.Code(err) != codes.Internal {
		t.Errorf("an undecodable message: %v, want Internal", err)
	}
	if n := h.sink.keptOf(signalMetrics); n != 0 {
		t.Errorf("the pipeline got %d items", n)
	}
}

// bytesCodec sends a []byte as the message, whatever it holds.
type bytesCodec struct{}

func (bytesCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (bytesCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (bytesCodec) Name() string { return "proto" }
