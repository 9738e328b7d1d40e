package otlprecv

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Transports, as the transport attribute.
const (
	transportGRPC = "grpc"
	transportHTTP = "http"
)

// DefaultRetryAfter is the Retry-After of a 429 or 503 answer when the
// error carries no google.rpc.RetryInfo of its own.
const DefaultRetryAfter = 5 * time.Second

// encoding is one of the two OTLP/HTTP body encodings.
type encoding struct {
	contentType string
	format      string
	decode      func(request, []byte) error
	encode      func(response) ([]byte, error)
	status      func(*spb.Status) ([]byte, error)
}

var (
	protobufEncoding = &encoding{contentType: "application/x-protobuf", format: formatProtobuf,
		decode: request.UnmarshalProto, encode: response.MarshalProto,
		status: func(s *spb.Status) ([]byte, error) { return proto.Marshal(s) }}
	jsonEncoding = &encoding{contentType: "application/json", format: formatJSON,
		decode: request.UnmarshalJSON, encode: response.MarshalJSON,
		status: func(s *spb.Status) ([]byte, error) { return protojson.Marshal(s) }}
)

// encodingOf returns the encoding a Content-Type names, or nil.
func encodingOf(contentType string) *encoding {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil
	}
	switch mt {
	case protobufEncoding.contentType:
		return protobufEncoding
	case jsonEncoding.contentType:
		return jsonEncoding
	}
	return nil
}

// handler serves the signal's OTLP/HTTP path: a POST whose body is an
// export request in protobuf or JSON, answered 200 with an export response
// in the same encoding, or with a google.rpc.Status and an error code.
func (s *signal[Req, Resp]) handler(obs *receiverhelper.ObsReport, tel *telemetry) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		refuse := func(enc *encoding, httpCode int, reason, msg string) {
			tel.refused(r.Context(), s.name, transportHTTP, reason)
			writeStatus(w, enc, httpCode, status.New(codes.InvalidArgument, msg))
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			refuse(jsonEncoding, http.StatusMethodNotAllowed, RefusedMethod, r.Method+" is not supported; send OTLP with POST")
			return
		}
		enc := encodingOf(r.Header.Get("Content-Type"))
		if enc == nil {
			refuse(jsonEncoding, http.StatusUnsupportedMediaType, RefusedMediaType,
				fmt.Sprintf("Content-Type %q is not supported; use application/x-protobuf or application/json", r.Header.Get("Content-Type")))
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
				refuse(enc, http.StatusBadRequest, RefusedTooLarge,
					fmt.Sprintf("the request body is larger than %d bytes (max_request_body_size); send smaller batches", tooLarge.Limit))
				return
			}
			refuse(enc, http.StatusBadRequest, RefusedUnreadable, "reading the request body: "+err.Error())
			return
		}
		resp, h, err := s.handle(r.Context(), obs, tel, enc, body)
		if h.reason != "" {
			refuse(enc, http.StatusBadRequest, h.reason, err.Error())
			return
		}
		if err != nil {
			st := status.Convert(err)
			writeStatus(w, enc, httpStatus(st.Code()), st)
			return
		}
		out, err := enc.encode(resp)
		if err != nil {
			writeStatus(w, enc, http.StatusInternalServerError, status.New(codes.Internal, "encoding the response: "+err.Error()))
			return
		}
		writeBody(w, enc.contentType, http.StatusOK, out)
	}
}

// serverErrorHandler answers the requests that confighttp refuses before
// they reach a handler (a bad Content-Encoding, failed authentication),
// counted under the signal their path names.
func serverErrorHandler(tel *telemetry, signalOf func(path string) string) func(http.ResponseWriter, *http.Request, string, int) {
	return func(w http.ResponseWriter, r *http.Request, msg string, httpCode int) {
		reason, code := "http_"+strconv.Itoa(httpCode), codes.Unknown
		switch httpCode {
		case http.StatusBadRequest:
			reason, code = RefusedContentEncoding, codes.InvalidArgument
		case http.StatusUnauthorized:
			reason, code = RefusedUnauthenticated, codes.Unauthenticated
		}
		tel.refused(r.Context(), signalOf(r.URL.Path), transportHTTP, reason)
		enc := encodingOf(r.Header.Get("Content-Type"))
		if enc == nil {
			enc = jsonEncoding
		}
		writeStatus(w, enc, httpCode, status.New(code, msg))
	}
}

// httpStatus is the OTLP/HTTP status code for a gRPC code: 429 and 503 tell
// the sender to retry, the other errors not to.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded, codes.Aborted, codes.OutOfRange, codes.DataLoss:
		return http.StatusServiceUnavailable
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// writeStatus writes st as the body of an error answer; a retryable answer
// gets a Retry-After header, and a RetryInfo detail when st has none.
func writeStatus(w http.ResponseWriter, enc *encoding, httpCode int, st *status.Status) {
	pb := st.Proto()
	// A decoder's message may quote the sender's invalid UTF-8, which a
	// google.rpc.Status cannot carry (found by FuzzOTLPHTTP).
	pb.Message = strings.ToValidUTF8(pb.Message, "\uFFFD")
	if httpCode == http.StatusTooManyRequests || httpCode == http.StatusServiceUnavailable {
		delay := DefaultRetryAfter
		if ri := retryInfo(st); ri != nil {
			delay = ri.GetRetryDelay().AsDuration()
		} else if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)}); err == nil {
			pb = d.Proto()
		}
		w.Header().Set("Retry-After", strconv.FormatInt(int64(max(delay.Round(time.Second), time.Second)/time.Second), 10))
	}
	out, err := enc.status(pb)
	if err != nil {
		writeBody(w, "text/plain; charset=utf-8", http.StatusInternalServerError, []byte("encoding the error status: "+err.Error()))
		return
	}
	writeBody(w, enc.contentType, httpCode, out)
}

func retryInfo(st *status.Status) *errdetails.RetryInfo {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri
		}
	}
	return nil
}

func writeBody(w http.ResponseWriter, contentType string, httpCode int, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(httpCode)
	_, _ = w.Write(body) // the sender went away: nothing left to tell it
}
