package ship

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/proto"
)

func TestHTTPSenderStatuses(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/metrics" || r.Header.Get("Content-Type") != "application/x-protobuf" || r.Header.Get("Content-Encoding") != "gzip" {
			http.Error(w, "bad request shape", http.StatusBadRequest)
			return
		}
		if status != http.StatusOK {
			http.Error(w, "nope", status)
			return
		}
		resp, _ := proto.Marshal(&colmetrics.ExportMetricsServiceResponse{PartialSuccess: &colmetrics.ExportMetricsPartialSuccess{RejectedDataPoints: 3}})
		w.Write(resp)
	}))
	defer srv.Close()
	cfg := NewDefaultConfig()
	cfg.Protocol, cfg.Endpoint = "http", srv.URL
	s := newHTTPSender(cfg, security{})
	rejected, err := s.send(context.Background(), KindMetrics, []byte{})
	if err != nil || rejected != 3 {
		t.Fatalf("200: rejected %d, %v", rejected, err)
	}
	for _, c := range []struct {
		code      int
		permanent bool
	}{{http.StatusServiceUnavailable, false}, {http.StatusTooManyRequests, false}, {http.StatusBadRequest, true}} {
		status = c.code
		_, err := s.send(context.Background(), KindMetrics, []byte{})
		var pe permanentError
		if err == nil || errors.As(err, &pe) != c.permanent {
			t.Errorf("HTTP %d: %v (permanent %v)", c.code, err, c.permanent)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	cases := map[string]func(*Config){
		"gRPC wants host:port": func(c *Config) { c.Endpoint = "http://x:4317" },
		"HTTP wants an http":   func(c *Config) { c.Protocol = "http" },
		`protocol "udp"`:       func(c *Config) { c.Protocol = "udp" },
		`compression "lz4"`:    func(c *Config) { c.Compression = "lz4" },
		"timeout":              func(c *Config) { c.Timeout = 0 },
		"initial_backoff":      func(c *Config) { c.MaxBackoff = 0 },
		`"b" is not host:port`: func(c *Config) { c.Endpoint = "127.0.0.1:4317,b" },
		"takes no dns:///":     func(c *Config) { c.Endpoint = "dns:///127.0.0.1:1,127.0.0.1:2" },
		`gpu_identity "scope"`: func(c *Config) { c.GPUIdentity = "scope" },
	}
	for want, mutate := range cases {
		c := NewDefaultConfig()
		mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
	// One address off loopback in a list: the whole list uses TLS.
	mixed := NewDefaultConfig()
	mixed.Endpoint = "127.0.0.1:4317,10.0.0.2:4317"
	if mixed.Plaintext() {
		t.Error("a list with a non-loopback collector ships in plaintext")
	}
	for _, ok := range []string{"127.0.0.1:4317", "dns:///localhost:4317", "127.0.0.1:4317, 127.0.0.1:4318"} {
		c := NewDefaultConfig()
		c.Endpoint = ok
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, ok := range []string{"resource", "data_points"} {
		c := NewDefaultConfig()
		c.GPUIdentity = ok
		if err := c.Validate(); err != nil {
			t.Errorf("gpu_identity %s: %v", ok, err)
		}
	}
}
