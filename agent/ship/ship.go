// Package ship drains the agent's disk buffer to an OTLP endpoint (the
// collector), in order, over gRPC (default) or HTTP, compressed. A record is
// acknowledged in the buffer only after the endpoint accepted it, so an outage
// leaves it queued on disk; transient failures are retried with backoff
// forever, permanent ones (the endpoint rejects the data itself) are counted
// and skipped so one bad batch cannot stall the queue.
//
// The connection is TLS unless the collector is on loopback: a private CA,
// a client certificate for mutual TLS (re-read when it changes) and a server
// name override are configurable, and a bearer token read from a file (also
// re-read when it changes) goes with every request. A refused credential is
// retried like an outage, so the data waits on disk until it is fixed.
package ship

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
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
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/fleetwatch/fleetwatch/agent/buffer"
	"github.com/fleetwatch/fleetwatch/agent/otlp"
	"github.com/fleetwatch/fleetwatch/lib/netsec"
)

// Record kinds in the buffer.
const (
	KindMetrics byte = 1
	KindLogs    byte = 2
)

// Config says where and how to ship.
type Config struct {
	// Endpoint is, for gRPC, host:port (every address the name resolves
	// to, as with a Kubernetes headless Service; also written
	// dns:///host:port) or a comma-separated list host:port,host:port —
	// either way the agent sends to one of them, picked at random, and
	// moves to another when it dies; for HTTP, an http(s):// base URL.
	Endpoint string `yaml:"endpoint"`
	// Protocol is grpc (default) or http.
	Protocol string `yaml:"protocol"`
	// Compression is gzip (default) or none.
	Compression string `yaml:"compression"`
	// Insecure: true sends in plaintext (for HTTP: an http:// endpoint),
	// which a non-loopback endpoint needs explicitly and which is logged as
	// a warning; false always uses TLS. Unset, a loopback endpoint without
	// tls settings is plaintext and everything else is TLS.
	Insecure *bool `yaml:"insecure,omitempty"`
	// TLS names the CA, the client certificate and the server name.
	TLS netsec.ClientTLS `yaml:"tls,omitempty"`
	// TokenFile holds the bearer token sent with every request
	// (Authorization: Bearer <token>, the file's first line); re-read when
	// the file changes, so a token rotates without a restart.
	TokenFile string            `yaml:"token_file,omitempty"`
	Timeout   time.Duration     `yaml:"timeout"`
	Headers   map[string]string `yaml:"headers"`
	// InitialBackoff and MaxBackoff bound retries while the endpoint is unreachable.
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
	// GPUIdentity is where GPU metrics carry the GPU's labels: "resource"
	// (default: one OTLP resource per GPU) or "data_points" (on every data
	// point, for collectors older than issue 18; docs/TELEMETRY.md).
	GPUIdentity string `yaml:"gpu_identity"`
}

// NewDefaultConfig returns the defaults for a local collector (plaintext on
// loopback).
func NewDefaultConfig() Config {
	return Config{Endpoint: "127.0.0.1:4317", Protocol: "grpc", Compression: "gzip",
		Timeout: 10 * time.Second, InitialBackoff: 200 * time.Millisecond, MaxBackoff: 10 * time.Second,
		GPUIdentity: otlp.FormPerGPU}
}

// hosts are the endpoint's host:port addresses (or hosts), for the
// loopback rule.
func (c Config) hosts() []string {
	if c.Protocol == "http" {
		if u, err := url.Parse(c.Endpoint); err == nil {
			return []string{u.Host}
		}
		return []string{c.Endpoint}
	}
	return grpcAddrs(c.Endpoint)
}

// loopback reports whether every address of the endpoint is loopback.
func (c Config) loopback() bool {
	for _, h := range c.hosts() {
		if !netsec.IsLoopback(h) {
			return false
		}
	}
	return true
}

// grpcAddrs splits a gRPC endpoint into its addresses: a list, or one
// host:port (with or without the dns:/// scheme).
func grpcAddrs(endpoint string) []string {
	var out []string
	for _, a := range strings.Split(strings.TrimPrefix(endpoint, "dns:///"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Plaintext reports whether the connection goes without TLS.
func (c Config) Plaintext() bool {
	if c.Protocol == "http" {
		return strings.HasPrefix(c.Endpoint, "http://")
	}
	if c.Insecure != nil {
		return *c.Insecure
	}
	return !c.TLS.IsSet() && c.loopback()
}

// Warning returns what to log at start about this connection's security, or "".
func (c Config) Warning() string {
	if !c.Plaintext() || c.loopback() {
		return ""
	}
	w := "shipping to a non-loopback collector in plaintext (ship.insecure: true): anyone on the path can read the telemetry"
	if c.TokenFile != "" {
		w += ", and the bearer token"
	}
	return w
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	switch c.Protocol {
	case "grpc":
		addrs := grpcAddrs(c.Endpoint)
		if len(addrs) == 0 {
			errs = append(errs, fmt.Errorf("ship.endpoint %q: gRPC wants host:port, dns:///host:port or host:port,host:port", c.Endpoint))
		}
		for _, a := range addrs {
			if _, _, err := net.SplitHostPort(a); err != nil || strings.Contains(a, "/") {
				errs = append(errs, fmt.Errorf("ship.endpoint %q: %q is not host:port (gRPC wants host:port, dns:///host:port or host:port,host:port)", c.Endpoint, a))
			}
		}
		if len(addrs) > 1 && strings.HasPrefix(c.Endpoint, "dns:///") {
			errs = append(errs, fmt.Errorf("ship.endpoint %q: a list takes no dns:/// scheme", c.Endpoint))
		}
	case "http":
		if !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://") {
			errs = append(errs, fmt.Errorf("ship.endpoint %q: HTTP wants an http:// or https:// URL", c.Endpoint))
		}
	default:
		errs = append(errs, fmt.Errorf("ship.protocol %q: want grpc or http", c.Protocol))
	}
	errs = append(errs, c.validateSecurity()...)
	if c.Compression != "gzip" && c.Compression != "none" {
		errs = append(errs, fmt.Errorf("ship.compression %q: want gzip or none", c.Compression))
	}
	if _, err := otlp.ParseForm(c.GPUIdentity); err != nil {
		errs = append(errs, fmt.Errorf("ship.%w", err))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("ship.timeout %v must be positive", c.Timeout))
	}
	if c.InitialBackoff <= 0 || c.MaxBackoff < c.InitialBackoff {
		errs = append(errs, fmt.Errorf("ship backoff: want 0 < initial_backoff (%v) <= max_backoff (%v)", c.InitialBackoff, c.MaxBackoff))
	}
	return errors.Join(errs...)
}

func (c Config) validateSecurity() []error {
	var errs []error
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("ship.%w", err))
	}
	explicit := c.Insecure != nil && *c.Insecure
	switch {
	case c.Plaintext() && c.TLS.IsSet():
		errs = append(errs, errors.New("ship.tls is set but the connection is plaintext (ship.insecure: true or an http:// endpoint)"))
	case c.Protocol == "http" && c.Insecure != nil && *c.Insecure != c.Plaintext():
		errs = append(errs, fmt.Errorf("ship.insecure: %v contradicts the endpoint %q (http:// is plaintext, https:// is TLS)", *c.Insecure, c.Endpoint))
	case c.Plaintext() && !explicit && !c.loopback():
		errs = append(errs, fmt.Errorf("ship.endpoint %q is not a loopback address: use TLS (https://, ship.tls), or set ship.insecure: true to send in plaintext", c.Endpoint))
	}
	for k := range c.Headers {
		if c.TokenFile != "" && strings.EqualFold(k, "authorization") {
			errs = append(errs, errors.New("ship.headers sets Authorization and ship.token_file is set: keep one"))
		}
	}
	return errs
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

	errMu   sync.Mutex
	lastErr error
}

// security is the loaded TLS configuration (nil: plaintext) and token file
// (nil: none).
type security struct {
	tls   *tls.Config
	token *netsec.TokenFile
}

// New returns a shipper for buf. It reads the CA, the client certificate
// and the token file, and logs a warning for plaintext to a non-loopback
// collector.
func New(cfg Config, buf *buffer.Buffer, log *slog.Logger) (*Shipper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	sec, err := loadSecurity(cfg)
	if err != nil {
		return nil, err
	}
	if w := cfg.Warning(); w != "" {
		log.Warn(w, "endpoint", cfg.Endpoint)
	}
	var s sender
	if cfg.Protocol == "http" {
		s = newHTTPSender(cfg, sec)
	} else if s, err = newGRPCSender(cfg, sec); err != nil {
		return nil, err
	}
	return &Shipper{cfg: cfg, buf: buf, s: s, log: log}, nil
}

// loadSecurity reads the files cfg names.
func loadSecurity(cfg Config) (security, error) {
	var sec security
	var err error
	if !cfg.Plaintext() {
		if sec.tls, err = cfg.TLS.Build(); err != nil {
			return sec, fmt.Errorf("ship.%w", err)
		}
	}
	if cfg.TokenFile != "" {
		if sec.token, err = netsec.OpenTokenFile(cfg.TokenFile); err != nil {
			return sec, fmt.Errorf("ship.token_file: %w", err)
		}
	}
	return sec, nil
}

// LastError is the last failed send, explained (nil after a success).
func (s *Shipper) LastError() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.lastErr
}

// setError records the outcome of a send and logs a failure whose kind
// differs from the previous one (so a wrong CA or token is said once, not
// on every retry).
func (s *Shipper) setError(err error) {
	s.errMu.Lock()
	prev := s.lastErr
	s.lastErr = err
	s.errMu.Unlock()
	if err == nil || (prev != nil && failureKind(prev) == failureKind(err)) {
		return
	}
	if failureKind(err) != "" {
		s.log.Error("cannot ship to the collector; data stays buffered on disk and is retried", "endpoint", s.cfg.Endpoint, "err", err)
	}
}

// failureKind classifies a send error for the log: TLS, credentials, or "".
func failureKind(err error) string {
	var se securityError
	if errors.As(err, &se) {
		return se.kind
	}
	return ""
}

// securityError explains a TLS or authentication failure with the
// settings to check.
type securityError struct {
	kind string
	err  error
}

func (e securityError) Error() string {
	if e.kind == "tls" {
		return "TLS with the collector failed (check ship.tls.ca_file, ship.tls.server_name, and the client certificate ship.tls.cert_file): " + e.err.Error()
	}
	return "the collector refused the credentials (check ship.token_file and the client certificate): " + e.err.Error()
}

func (e securityError) Unwrap() error { return e.err }

// explain wraps a TLS or authentication failure in a securityError.
func explain(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "x509:") || strings.Contains(msg, "tls:") || strings.Contains(msg, "authentication handshake failed"):
		return securityError{"tls", err}
	case status.Code(err) == codes.Unauthenticated || status.Code(err) == codes.PermissionDenied || errors.Is(err, errUnauthorized):
		return securityError{"auth", err}
	}
	return err
}

// errUnauthorized marks an HTTP 401 or 403.
var errUnauthorized = errors.New("unauthorized")

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
			if err != nil {
				err = explain(err)
			}
			s.setError(err)
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

func newGRPCSender(cfg Config, sec security) (*grpcSender, error) {
	creds := insecure.NewCredentials()
	if sec.tls != nil {
		creds = credentials.NewTLS(sec.tls)
	}
	dial := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if sec.token != nil {
		dial = append(dial, grpc.WithPerRPCCredentials(tokenCredentials{token: sec.token, tls: sec.tls != nil}))
	}
	// One collector at a time, picked at random from every address (the
	// DNS resolver's: all the records of a headless Service; or the
	// list's), so that agents spread over the collectors while each
	// series goes through one collector: counter increases are computed
	// from the series' previous point where it is written. A collector
	// that dies makes the agent move to another; the send that failed is
	// retried from the buffer and lands there.
	dial = append(dial, grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"pick_first":{"shuffleAddressList":true}}]}`))
	target := cfg.Endpoint
	if addrs := grpcAddrs(cfg.Endpoint); len(addrs) > 1 {
		r := manual.NewBuilderWithScheme("fleetwatch-collectors")
		state := resolver.State{}
		for _, a := range addrs {
			host, _, _ := net.SplitHostPort(a)
			state.Addresses = append(state.Addresses, resolver.Address{Addr: a, ServerName: host})
		}
		r.InitialState(state)
		dial = append(dial, grpc.WithResolvers(r))
		target = r.Scheme() + ":///collectors"
	}
	conn, err := grpc.NewClient(target, dial...)
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
	case codes.InvalidArgument, codes.Unimplemented, codes.DataLoss:
		return 0, permanentError{err}
	}
	// Unauthenticated and PermissionDenied are retried: a credential is
	// fixed (or rotated) and the data must still be there.
	return 0, err
}

func (g *grpcSender) close() error { return g.conn.Close() }

// tokenCredentials sends the token file's current token with every RPC.
type tokenCredentials struct {
	token *netsec.TokenFile
	tls   bool
}

func (t tokenCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + t.token.Token()}, nil
}

// RequireTransportSecurity is false on a plaintext connection, which the
// configuration allowed (loopback, or ship.insecure: true).
func (t tokenCredentials) RequireTransportSecurity() bool { return t.tls }

type httpSender struct {
	cfg    Config
	client *http.Client
	token  *netsec.TokenFile
}

func newHTTPSender(cfg Config, sec security) *httpSender {
	client := &http.Client{}
	if sec.tls != nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = sec.tls
		client.Transport = tr
	}
	return &httpSender{cfg: cfg, client: client, token: sec.token}
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
	if h.token != nil {
		req.Header.Set("Authorization", "Bearer "+h.token.Token())
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
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return 0, fmt.Errorf("%s: HTTP %d: %.200s: %w", path, resp.StatusCode, data, errUnauthorized)
	default:
		return 0, permanentError{fmt.Errorf("%s: HTTP %d: %.200s", path, resp.StatusCode, data)}
	}
}

func (h *httpSender) close() error { return nil }

func metadataContext(ctx context.Context, kv []string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, kv...)
}
