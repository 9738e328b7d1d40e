package ship

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/fleetwatch/fleetwatch/agent/buffer"
	"github.com/fleetwatch/fleetwatch/lib/devcerts"
	"github.com/fleetwatch/fleetwatch/lib/netsec"
)

// otlpServer is a small OTLP metrics endpoint on loopback that requires
// mutual TLS (a client certificate from the test CA) and a bearer token
// from its own token file, and records the Authorization it saw.
type otlpServer struct {
	endpoint string
	mu       sync.Mutex
	seen     []string
	tokens   *netsec.TokenFile
}

func (o *otlpServer) record(auth string) bool {
	o.mu.Lock()
	o.seen = append(o.seen, auth)
	o.mu.Unlock()
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	return ok && o.tokens.Valid(tok)
}

func (o *otlpServer) last() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.seen) == 0 {
		return ""
	}
	return o.seen[len(o.seen)-1]
}

type metricsService struct {
	colmetrics.UnimplementedMetricsServiceServer
	o *otlpServer
}

func (m metricsService) Export(ctx context.Context, _ *colmetrics.ExportMetricsServiceRequest) (*colmetrics.ExportMetricsServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if !m.o.record(strings.Join(md.Get("authorization"), ",")) {
		return nil, status.Error(codes.Unauthenticated, "bad token")
	}
	return &colmetrics.ExportMetricsServiceResponse{}, nil
}

func startServer(t *testing.T, protocol string, f devcerts.Files, serverTokens string) *otlpServer {
	t.Helper()
	stls, err := netsec.ServerTLS{CertFile: f.ServerCert, KeyFile: f.ServerKey, ClientCAFile: f.CA}.Build()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "server-tokens")
	writeFile(t, path, serverTokens)
	tokens, err := netsec.OpenTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &otlpServer{tokens: tokens}
	if protocol == "grpc" {
		srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(stls)))
		colmetrics.RegisterMetricsServiceServer(srv, metricsService{o: o})
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(srv.Stop)
		o.endpoint = l.Addr().String()
		return o
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, ErrorLog: discardLog(),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			if !o.record(r.Header.Get("Authorization")) {
				http.Error(w, "bad token", http.StatusUnauthorized)
				return
			}
			resp, _ := proto.Marshal(&colmetrics.ExportMetricsServiceResponse{})
			_, _ = w.Write(resp)
		})}
	go func() { _ = srv.Serve(tlsListener(l, stls)) }()
	t.Cleanup(func() { _ = srv.Close() })
	o.endpoint = "https://" + l.Addr().String()
	return o
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	// Forward, so a rewrite within one timestamp tick is still seen.
	next := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(path, next, next); err != nil {
		t.Fatal(err)
	}
}

// sendOnce builds a sender for cfg as New does and sends one request.
func sendOnce(t *testing.T, cfg Config) error {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sec, err := loadSecurity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var s sender
	if cfg.Protocol == "http" {
		s = newHTTPSender(cfg, sec)
	} else if s, err = newGRPCSender(cfg, sec); err != nil {
		t.Fatal(err)
	}
	defer s.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	payload, _ := proto.Marshal(&colmetrics.ExportMetricsServiceRequest{})
	_, err = s.send(ctx, KindMetrics, payload)
	if err != nil {
		err = explain(err)
	}
	return err
}

// Mutual TLS with a private CA and a rotating token, over gRPC and HTTP,
// against servers that require a client certificate.
func TestTLSAndToken(t *testing.T) {
	f, err := devcerts.Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := devcerts.Ensure(t.TempDir(), nil) // a CA that did not sign the server
	if err != nil {
		t.Fatal(err)
	}
	for _, protocol := range []string{"grpc", "http"} {
		t.Run(protocol, func(t *testing.T) {
			srv := startServer(t, protocol, f, "tok-1\ntok-2\n")
			tokenPath := filepath.Join(t.TempDir(), "token")
			writeFile(t, tokenPath, "tok-1\n")
			base := NewDefaultConfig()
			base.Protocol, base.Endpoint, base.TokenFile = protocol, srv.endpoint, tokenPath
			base.TLS = netsec.ClientTLS{CAFile: f.CA, CertFile: f.ClientCert, KeyFile: f.ClientKey}

			if err := sendOnce(t, base); err != nil {
				t.Fatalf("mutual TLS with the CA and a client certificate: %v", err)
			}
			if got := srv.last(); got != "Bearer tok-1" {
				t.Fatalf("the server saw %q", got)
			}

			cases := []struct {
				name   string
				mutate func(*Config)
				kind   string // "" for success
				want   string
			}{
				{"server name override", func(c *Config) { c.TLS.ServerName = "localhost" }, "", ""},
				{"wrong server name", func(c *Config) { c.TLS.ServerName = "collector.example" }, "tls", "ship.tls.server_name"},
				{"system roots only", func(c *Config) { c.TLS.CAFile = "" }, "tls", "ship.tls.ca_file"},
				{"another CA", func(c *Config) { c.TLS.CAFile = other.CA }, "tls", "x509"},
				{"no client certificate", func(c *Config) { c.TLS.CertFile, c.TLS.KeyFile = "", "" }, "tls", "certificate"},
			}
			for _, c := range cases {
				cfg := base
				c.mutate(&cfg)
				err := sendOnce(t, cfg)
				if c.kind == "" {
					if err != nil {
						t.Errorf("%s: %v", c.name, err)
					}
					continue
				}
				t.Logf("%s: %v", c.name, err)
				var pe permanentError
				if c.name == "no client certificate" && err != nil && !errors.As(err, &pe) && !strings.Contains(err.Error(), c.want) {
					// TLS 1.3: the client finishes its handshake before the
					// server checks the (missing) certificate, so the refusal
					// may arrive as the server's alert or as a closed
					// connection on the first write. Either way: refused,
					// retryable.
					continue
				}
				if err == nil || failureKind(err) != c.kind || !strings.Contains(err.Error(), c.want) || errors.As(err, &pe) {
					t.Errorf("%s: %v; want a retryable %s failure mentioning %q", c.name, err, c.kind, c.want)
				}
			}

			// Rotation: the agent's file changes, the next request carries the new token.
			writeFile(t, tokenPath, "tok-2\n")
			if err := sendOnce(t, base); err != nil || srv.last() != "Bearer tok-2" {
				t.Fatalf("after rotation: %v, the server saw %q", err, srv.last())
			}
			// A token the server does not know is refused, and retried (not dropped).
			writeFile(t, tokenPath, "tok-3\n")
			err := sendOnce(t, base)
			var pe permanentError
			if err == nil || failureKind(err) != "auth" || errors.As(err, &pe) || !strings.Contains(err.Error(), "ship.token_file") {
				t.Fatalf("an unknown token: %v", err)
			}
		})
	}
}

// A running shipper picks up a rotated token without a restart, and says
// clearly why it cannot connect without the CA.
func TestShipperRotationAndClearError(t *testing.T) {
	f, err := devcerts.Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, "grpc", f, "tok-1\ntok-2\n")
	tokenPath := filepath.Join(t.TempDir(), "token")
	writeFile(t, tokenPath, "tok-1\n")
	cfg := NewDefaultConfig()
	cfg.Endpoint, cfg.TokenFile = srv.endpoint, tokenPath
	cfg.TLS = netsec.ClientTLS{CAFile: f.CA, CertFile: f.ClientCert, KeyFile: f.ClientKey}
	cfg.InitialBackoff, cfg.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond

	run := func(cfg Config, logs io.Writer) (*Shipper, *buffer.Buffer, func()) {
		buf, err := buffer.Open(buffer.NewDefaultConfig(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(cfg, buf, slog.New(slog.NewTextHandler(logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Run(ctx) }()
		return s, buf, func() { cancel(); <-done; buf.Close() }
	}
	appendOne := func(buf *buffer.Buffer) {
		payload, _ := proto.Marshal(&colmetrics.ExportMetricsServiceRequest{})
		if err := buf.Append(buffer.Meta{Kind: KindMetrics, Items: 1}, payload); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}

	s, buf, stop := run(cfg, io.Discard)
	appendOne(buf)
	waitFor("the first send", func() bool { return s.Stats.Sent.Load() == 1 })
	writeFile(t, tokenPath, "tok-2\n")
	appendOne(buf)
	waitFor("the second send", func() bool { return s.Stats.Sent.Load() == 2 })
	stop()
	if srv.last() != "Bearer tok-2" {
		t.Fatalf("after rotation the server saw %q", srv.last())
	}

	noCA := cfg
	noCA.TLS.CAFile = ""
	var logs syncBuffer
	s, buf, stop = run(noCA, &logs)
	defer stop()
	appendOne(buf)
	waitFor("a failed send", func() bool { return s.LastError() != nil && s.Stats.Retries.Load() >= 2 })
	err = s.LastError()
	if !strings.Contains(err.Error(), "ship.tls.ca_file") || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("unclear error: %v", err)
	}
	if n := strings.Count(logs.String(), "TLS with the collector failed"); n != 1 {
		t.Fatalf("logged the TLS failure %d times, want once:\n%s", n, logs.String())
	}
	if st := buf.Stats(); st.Pending != 1 {
		t.Fatalf("the record is not kept on disk: %+v", st)
	}
}

func TestSecurityConfig(t *testing.T) {
	yes, no := true, false
	cases := []struct {
		name      string
		mutate    func(*Config)
		plaintext bool
		err, warn string
	}{
		{"loopback default", func(*Config) {}, true, "", ""},
		{"localhost", func(c *Config) { c.Endpoint = "localhost:4317" }, true, "", ""},
		{"loopback with a CA", func(c *Config) { c.TLS.CAFile = "ca.pem" }, false, "", ""},
		{"loopback forced TLS", func(c *Config) { c.Insecure = &no }, false, "", ""},
		{"remote: TLS by default", func(c *Config) { c.Endpoint = "collector:4317" }, false, "", ""},
		{"remote plaintext, explicit", func(c *Config) { c.Endpoint, c.Insecure = "collector:4317", &yes }, true, "", "plaintext"},
		{"token in plaintext", func(c *Config) { c.Endpoint, c.Insecure, c.TokenFile = "collector:4317", &yes, "t" }, true, "", "bearer token"},
		{"insecure with TLS settings", func(c *Config) { c.Insecure, c.TLS.CAFile = &yes, "ca.pem" }, true, "ship.tls is set", ""},
		{"http remote plaintext", func(c *Config) { c.Protocol, c.Endpoint = "http", "http://collector:4318" }, true, "not a loopback address", ""},
		{"http remote, explicit", func(c *Config) { c.Protocol, c.Endpoint, c.Insecure = "http", "http://collector:4318", &yes }, true, "", "plaintext"},
		{"http loopback", func(c *Config) { c.Protocol, c.Endpoint = "http", "http://127.0.0.1:4318" }, true, "", ""},
		{"https", func(c *Config) { c.Protocol, c.Endpoint = "http", "https://collector:4318" }, false, "", ""},
		{"https insecure", func(c *Config) { c.Protocol, c.Endpoint, c.Insecure = "http", "https://collector:4318", &yes }, false, "contradicts", ""},
		{"http with tls", func(c *Config) { c.Protocol, c.Endpoint, c.TLS.CAFile = "http", "http://127.0.0.1:4318", "ca.pem" }, true, "ship.tls is set", ""},
		{"cert without key", func(c *Config) { c.TLS.CertFile = "c.pem" }, false, "cert_file and key_file", ""},
		{"two authorizations", func(c *Config) { c.TokenFile, c.Headers = "t", map[string]string{"authorization": "x"} }, true, "keep one", ""},
	}
	for _, c := range cases {
		cfg := NewDefaultConfig()
		c.mutate(&cfg)
		if cfg.Plaintext() != c.plaintext {
			t.Errorf("%s: Plaintext = %v", c.name, cfg.Plaintext())
		}
		err := cfg.Validate()
		if (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: Validate = %v, want %q", c.name, err, c.err)
		}
		if w := cfg.Warning(); c.err == "" && ((w == "") != (c.warn == "") || !strings.Contains(w, c.warn)) {
			t.Errorf("%s: Warning = %q, want %q", c.name, w, c.warn)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
