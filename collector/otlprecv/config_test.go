package otlprecv

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
)

func TestConfigStruct(t *testing.T) {
	if err := componenttest.CheckConfigStruct(NewFactory().CreateDefaultConfig()); err != nil {
		t.Fatal(err)
	}
}

// A configuration written for the upstream otlp receiver means the same here.
func TestConfigReadsTheUpstreamShape(t *testing.T) {
	conf, err := confmaptest.LoadConf("testdata/upstream.yaml")
	if err != nil {
		t.Fatal(err)
	}
	upstream := otlpreceiver.NewFactory().CreateDefaultConfig()
	if err := conf.Unmarshal(upstream); err != nil {
		t.Fatalf("the upstream receiver does not read the test file: %v", err)
	}
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	if err := conf.Unmarshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := confmap.Validate(cfg); err != nil {
		t.Fatal(err)
	}
	g, h := cfg.Protocols.GRPC.Get(), cfg.Protocols.HTTP.Get()
	if g == nil || h == nil {
		t.Fatal("a protocol is off")
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"grpc endpoint", g.NetAddr.Endpoint, "0.0.0.0:14317"},
		{"max_recv_msg_size_mib", g.MaxRecvMsgSizeMiB, 16},
		{"grpc include_metadata", g.IncludeMetadata, true},
		{"grpc mTLS client CA", g.TLS.Get().ClientCAFile, "ca.crt"},
		{"grpc keepalive", g.Keepalive.Get().ServerParameters.Get().MaxConnectionAge, time.Hour},
		{"http endpoint", h.ServerConfig.NetAddr.Endpoint, "0.0.0.0:14318"},
		{"max_request_body_size", h.ServerConfig.MaxRequestBodySize, int64(8 << 20)},
		{"compression_algorithms", strings.Join(h.ServerConfig.CompressionAlgorithms, ","), "gzip,zstd"},
		{"cors", h.ServerConfig.CORS.Get().AllowedOrigins[0], "https://*.example.com"},
		{"http TLS", h.ServerConfig.TLS.Get().CertFile, "server.crt"},
		{"metrics_url_path", h.MetricsURLPath, "/otlp/v1/metrics"},
		{"logs_url_path (default)", h.LogsURLPath, DefaultLogsURLPath},
		{"rejection_log_interval (default)", cfg.RejectionLogInterval, DefaultRejectionLogInterval},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml map[string]any
		want []string // substrings of the error; none: valid
	}{
		{"grpc only", map[string]any{"protocols": map[string]any{"grpc": nil}}, nil},
		{"http only", map[string]any{"protocols": map[string]any{"http": nil}}, nil},
		{"no protocol", map[string]any{"protocols": map[string]any{}}, []string{"enable grpc, http or both"}},
		{"relative path", map[string]any{"protocols": map[string]any{"http": map[string]any{"logs_url_path": "v1/logs"}}},
			[]string{"logs_url_path must start with /"}},
		{"same path twice", map[string]any{"protocols": map[string]any{"http": map[string]any{"traces_url_path": "/v1/metrics"}}},
			[]string{`metrics_url_path and traces_url_path are both "/v1/metrics"`}},
		{"no log interval", map[string]any{"protocols": map[string]any{"grpc": nil}, "rejection_log_interval": "0s"},
			[]string{"rejection_log_interval must be positive"}},
		{"every problem at once", map[string]any{"protocols": map[string]any{}, "rejection_log_interval": "-1s"},
			[]string{"enable grpc", "rejection_log_interval"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig()
			if err := confmap.NewFromStringMap(tc.yaml).Unmarshal(cfg); err != nil {
				t.Fatal(err)
			}
			err := confmap.Validate(cfg)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("invalid config accepted, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
