// Package ship drains the agent's disk buffer to an OTLP endpoint (the
// collector), in order, over gRPC (default) or HTTP, compressed. A record is
// acknowledged in the buffer only after the endpoint accepted it, so an outage
// leaves it queued on disk; transient failures are retried with backoff
// forever, permanent ones (the endpoint rejects the data itself) are counted
// and skipped so one bad batch cannot stall the queue.
package ship

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	grpcgzip "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/fleetwatch/fleetwatch/agent/buffer"
)

// Record kinds in the buffer.
const (
	KindMetrics byte = 1
	KindLogs    byte = 2
)

// Config says where and how to ship.
type Config struct {
	// Endpoint is host:port for gRPC, or an http(s):// base URL for HTTP.
	Endpoint string `yaml:"endpoint"`
	// Protocol is grpc (default) or http.
	Protocol string `yaml:"protocol"`
	// Compression is gzip (default) or none.
	Compression string `yaml:"compression"`
	// Insecure disables TLS (default true: a collector on the node or cluster network).
	Insecure bool              `yaml:"insecure"`
	Timeout  time.Duration     `yaml:"timeout"`
	Headers  map[string]string `yaml:"headers"`
	// InitialBackoff and MaxBackoff bound retries while the endpoint is unreachable.
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
}

// NewDefaultConfig returns the defaults for a local collector.
func NewDefaultConfig() Config {
	return Config{Endpoint: "127.0.0.1:4317", Protocol: "grpc", Compression: "gzip", Insecure: true,
		Timeout: 10 * time.Second, InitialBackoff: 200 * time.Millisecond, MaxBackoff: 10 * time.Second}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	switch c.Protocol {
	case "grpc":
		if c.Endpoint == "" || strings.Contains(c.Endpoint, "://") {
			errs = append(errs, fmt.Errorf("ship.endpoint %q: gRPC wants host:port", c.Endpoint))
		}
	case "http":
		if !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://") {
			errs = append(errs, fmt.Errorf("ship.endpoint %q: HTTP wants an http:// or https:// URL", c.Endpoint))
		}
	default:
		errs = append(errs, fmt.Errorf("ship.protocol %q: want grpc or http", c.Protocol))
	}
	if c.Compression != "gzip" && c.Compression != "none" {
		errs = append(errs, fmt.Errorf("ship.compression %q: want gzip or none", c.Compression))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("ship.timeout %v must be positive", c.Timeout))
	}
	if c.InitialBackoff <= 0 || c.MaxBackoff < c.InitialBackoff {
		errs = append(errs, fmt.Errorf("ship backoff: want 0 < initial_backoff (%v) <= max_backoff (%v)", c.InitialBackoff, c.MaxBackoff))
	}
	return errors.Join(errs...)
}

// Stats counts what the shipper did.
type Stats struct {
	// Sent counts records the endpoint accepted; Retries failed attempts that
	// were retried; Rejected records the endpoint refused for good.
	Sent, Retries, Rejected atomic.Uint64
	// SentItems and RejectedItems count the records' items by source.
	SentItems, RejectedItems [256]atomic.Uint64
	// RejectedPoints counts data points or log records the endpoint reported
	// as rejected inside an accepted request (OTLP partial success).
	RejectedPoints atomic.Uint64
	// Connected is 1 while the last attempt succeeded.
	Connected atomic.Int32
}

// sender delivers one encoded request.
type sender interface {
	send(ctx context.Context, kind byte, payload []byte) (rejected int64, err error)
	close() error
}

// Shipper drains a buffer.
type Shipper struct {
	cfg   Config
	buf   *buffer.Buffer
	s     sender
	log   *slog.Logger
	Stats Stats
}

// New returns a shipper for buf.
func New(cfg Config, buf *buffer.Buffer, log *slog.Logger) (*Shipper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var s sender
	var err error
	if cfg.Protocol == "http" {
		s = newHTTPSender(cfg)
	} else if s, err = newGRPCSender(cfg); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Shipper{cfg: cfg, buf: buf, s: s, log: log}, nil
}

// permanentError marks a request the endpoint will never accept.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Run ships records until ctx ends. It returns nil on a clean stop.
func (s *Shipper) Run(ctx context.Context) error {
	defer s.s.close()
	backoff := s.cfg.InitialBackoff
	for {
		rec, err := s.buf.Next(ctx.Done())
		if err != nil {
			if errors.Is(err, buffer.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read buffer: %w", err)
		}
		for {
			actx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
			rejected, err := s.s.send(actx, rec.Kind, rec.Payload)
			cancel()
			if err == nil {
				s.Stats.Sent.Add(1)
				s.Stats.SentItems[rec.Source].Add(uint64(rec.Items))
				s.Stats.RejectedPoints.Add(uint64(rejected))
				s.Stats.Connected.Store(1)
				backoff = s.cfg.InitialBackoff
				break
			}
			var pe permanentError
			if errors.As(err, &pe) {
				s.Stats.Rejected.Add(1)
				s.Stats.RejectedItems[rec.Source].Add(uint64(rec.Items))
				s.log.Error("collector rejected a batch; it is dropped", "err", err, "bytes", len(rec.Payload))
				break
			}
			if ctx.Err() != nil {
				return nil // not acked: it is sent again after a restart
			}
			s.Stats.Retries.Add(1)
			if s.Stats.Connected.Swap(0) == 1 {
				s.log.Warn("collector unreachable; buffering on disk", "endpoint", s.cfg.Endpoint, "err", err)
			}
			sleep := backoff/2 + rand.N(backoff/2+1)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(sleep):
			}
			backoff = min(backoff*2, s.cfg.MaxBackoff)
		}
		if err := s.buf.Ack(rec); err != nil {
			return err
		}
	}
}

// rawCodec sends already-encoded protobuf bytes and decodes responses as protobuf.
type rawCodec struct{}

type rawMessage []byte

func (rawCodec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(rawMessage); ok {
		return m, nil
	}
	pm, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("raw codec cannot marshal %T", v)
	}
	return proto.Marshal(pm)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	pm, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("raw codec cannot unmarshal into %T", v)
	}
	return proto.Unmarshal(data, pm)
}

func (rawCodec) Name() string { return "proto" }

var _ encoding.Codec = rawCodec{}

func init() {
	// Telemetry compresses well even at the fastest level; the agent's CPU is the budget.
	_ = grpcgzip.SetLevel(gzip.BestSpeed)
}

type grpcSender struct {
	conn *grpc.ClientConn
	opts []grpc.CallOption
	md   []string
}

func newGRPCSender(cfg Config) (*grpcSender, error) {
	creds := insecure.NewCredentials()
	if !cfg.Insecure {
		creds = credentials.NewClientTLSFromCert(nil, "")
	}
	conn, err := grpc.NewClient(cfg.Endpoint, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("ship: dial %s: %w", cfg.Endpoint, err)
	}
	opts := []grpc.CallOption{grpc.ForceCodec(rawCodec{})}
	if cfg.Compression == "gzip" {
		opts = append(opts, grpc.UseCompressor("gzip"))
	}
	g := &grpcSender{conn: conn, opts: opts}
	for k, v := range cfg.Headers {
		g.md = append(g.md, k, v)
	}
	return g, nil
}

func (g *grpcSender) send(ctx context.Context, kind byte, payload []byte) (int64, error) {
	if len(g.md) > 0 {
		ctx = metadataContext(ctx, g.md)
	}
	var err error
	var rejected int64
	switch kind {
	case KindMetrics:
		var resp colmetrics.ExportMetricsServiceResponse
		err = g.conn.Invoke(ctx, "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", rawMessage(payload), &resp, g.opts...)
		rejected = resp.GetPartialSuccess().GetRejectedDataPoints()
	case KindLogs:
		var resp collogs.ExportLogsServiceResponse
		err = g.conn.Invoke(ctx, "/opentelemetry.proto.collector.logs.v1.LogsService/Export", rawMessage(payload), &resp, g.opts...)
		rejected = resp.GetPartialSuccess().GetRejectedLogRecords()
	default:
		return 0, permanentError{fmt.Errorf("unknown record kind %d", kind)}
	}
	if err == nil {
		return rejected, nil
	}
	switch status.Code(err) {
	case codes.InvalidArgument, codes.Unimplemented, codes.PermissionDenied, codes.Unauthenticated, codes.DataLoss:
		return 0, permanentError{err}
	}
	return 0, err
}

func (g *grpcSender) close() error { return g.conn.Close() }

type httpSender struct {
	cfg    Config
	client *http.Client
}

func newHTTPSender(cfg Config) *httpSender {
	return &httpSender{cfg: cfg, client: &http.Client{}}
}

func (h *httpSender) send(ctx context.Context, kind byte, payload []byte) (int64, error) {
	path := "/v1/metrics"
	if kind == KindLogs {
		path = "/v1/logs"
	}
	body := io.Reader(bytes.NewReader(payload))
	if h.cfg.Compression == "gzip" {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
		_, _ = zw.Write(payload)
		_ = zw.Close()
		body = &b
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(h.cfg.Endpoint, "/")+path, body)
	if err != nil {
		return 0, permanentError{err}
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	if h.cfg.Compression == "gzip" {
		req.Header.Set("Content-Encoding", "gzip")
	}
	for k, v := range h.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusOK:
		var rejected int64
		if kind == KindMetrics {
			var r colmetrics.ExportMetricsServiceResponse
			if proto.Unmarshal(data, &r) == nil {
				rejected = r.GetPartialSuccess().GetRejectedDataPoints()
			}
		} else {
			var r collogs.ExportLogsServiceResponse
			if proto.Unmarshal(data, &r) == nil {
				rejected = r.GetPartialSuccess().GetRejectedLogRecords()
			}
		}
		return rejected, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return 0, fmt.Errorf("%s: HTTP %d", path, resp.StatusCode)
	default:
		return 0, permanentError{fmt.Errorf("%s: HTTP %d: %.200s", path, resp.StatusCode, data)}
	}
}

func (h *httpSender) close() error { return nil }

func metadataContext(ctx context.Context, kv []string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, kv...)
}
