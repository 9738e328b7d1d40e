package otlprecv

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configtls"
)

// Default URL paths of OTLP/HTTP.
const (
	DefaultMetricsURLPath = "/v1/metrics"
	DefaultLogsURLPath    = "/v1/logs"
	DefaultTracesURLPath  = "/v1/traces"
)

// DefaultRejectionLogInterval is how often, at most, the receiver writes a
// warning line per signal about the items it reported to senders as rejected.
const DefaultRejectionLogInterval = 30 * time.Second

// Config is the receiver's configuration. Its protocols section has the
// shape of the upstream otlp receiver's, so a configuration moves from one
// to the other by changing the component type.
type Config struct {
	Protocols Protocols `mapstructure:"protocols"`
	// RejectionLogInterval bounds the warning lines about rejected items and
	// refused requests: at most one line per signal and interval, with the
	// counts since the previous line.
	RejectionLogInterval time.Duration `mapstructure:"rejection_log_interval"`
	// Limits bound what one request may hold (limits.go; docs/TELEMETRY.md,
	// "Input limits").
	Limits Limits `mapstructure:"limits"`
	// AllowInsecurePublic acknowledges a listener on a non-loopback address
	// without TLS or without auth: the warning logged at start becomes an
	// info line. Meant for a trusted network or a TLS-terminating proxy.
	AllowInsecurePublic bool `mapstructure:"allow_insecure_public"`
	// MetricsDecoder is how protobuf metrics requests are decoded:
	// "direct" (collector/fastotlp: gauges and sums straight into columns
	// for the ClickHouse exporter, past the pipeline; anything else falls
	// back to pdata), "pdata" (the Collector's decoder, always), or "auto"
	// (the default): the distribution's configuration check
	// (collector.DirectMetricsConverter) makes it "direct" where every
	// metrics pipeline of the receiver is it → [memory_limiter] →
	// fleetwatch_clickhouse, and "pdata" elsewhere. Left "auto" (the
	// receiver in another distribution), it is "pdata".
	MetricsDecoder string `mapstructure:"metrics_decoder"`

	_ struct{}
}

// Metrics decoders (Config.MetricsDecoder).
const (
	DecoderAuto   = "auto"
	DecoderDirect = "direct"
	DecoderPdata  = "pdata"
)

// Protocols are the listeners: gRPC, HTTP, or both. A protocol is on when
// its key is present.
type Protocols struct {
	// GRPC is the Collector's own gRPC server configuration: endpoint, TLS
	// and mTLS, auth, max_recv_msg_size_mib (refuses larger messages after
	// decompression; DefaultMaxRecvMsgSizeMiB here, gRPC's own default is
	// 4 MiB), keepalive, middlewares.
	GRPC configoptional.Optional[configgrpc.ServerConfig] `mapstructure:"grpc"`
	// HTTP is the Collector's own HTTP server configuration plus the paths
	// of the three signals.
	HTTP configoptional.Optional[HTTPConfig] `mapstructure:"http"`

	_ struct{}
}

// HTTPConfig is the OTLP/HTTP listener.
type HTTPConfig struct {
	// ServerConfig: endpoint, TLS and mTLS, auth, CORS, compression
	// algorithms, max_request_body_size (a limit on the body both as sent
	// and after decompression; DefaultMaxRequestBodySize here, confighttp's
	// own default is 20 MiB), middlewares.
	ServerConfig confighttp.ServerConfig `mapstructure:",squash"`

	MetricsURLPath string `mapstructure:"metrics_url_path"`
	LogsURLPath    string `mapstructure:"logs_url_path"`
	TracesURLPath  string `mapstructure:"traces_url_path"`

	_ struct{}
}

var _ component.Config = (*Config)(nil)

func createDefaultConfig() component.Config {
	grpcCfg := configgrpc.NewDefaultServerConfig()
	grpcCfg.NetAddr.Endpoint = "localhost:4317"
	grpcCfg.MaxRecvMsgSizeMiB = DefaultMaxRecvMsgSizeMiB

	httpCfg := confighttp.NewDefaultServerConfig()
	httpCfg.NetAddr.Endpoint = "localhost:4318"
	httpCfg.TLS = configoptional.None[configtls.ServerConfig]()
	httpCfg.MaxRequestBodySize = DefaultMaxRequestBodySize
	// A request may wait on a full exporter queue (backpressure); a write
	// deadline would cut its answer off. Headers must still come promptly.
	httpCfg.WriteTimeout = 0

	return &Config{
		Protocols: Protocols{
			GRPC: configoptional.Default(grpcCfg),
			HTTP: configoptional.Default(HTTPConfig{
				ServerConfig:   httpCfg,
				MetricsURLPath: DefaultMetricsURLPath,
				LogsURLPath:    DefaultLogsURLPath,
				TracesURLPath:  DefaultTracesURLPath,
			}),
		},
		RejectionLogInterval: DefaultRejectionLogInterval,
		Limits:               DefaultLimits(),
		MetricsDecoder:       DecoderAuto,
	}
}

// Validate checks what the Collector's own server configurations do not
// (they validate themselves).
func (c *Config) Validate() error {
	var errs []error
	if !c.Protocols.GRPC.HasValue() && !c.Protocols.HTTP.HasValue() {
		errs = append(errs, errors.New("protocols: enable grpc, http or both"))
	}
	if c.RejectionLogInterval <= 0 {
		errs = append(errs, fmt.Errorf("rejection_log_interval must be positive, got %v", c.RejectionLogInterval))
	}
	switch c.MetricsDecoder {
	case DecoderAuto, DecoderDirect, DecoderPdata:
	default:
		errs = append(errs, fmt.Errorf("metrics_decoder must be auto, direct or pdata, got %q", c.MetricsDecoder))
	}
	return errors.Join(errs...)
}

// Validate checks the URL paths: absolute and distinct.
func (h *HTTPConfig) Validate() error {
	var errs []error
	seen := map[string]string{}
	for _, p := range []struct{ key, path string }{
		{"metrics_url_path", h.MetricsURLPath}, {"logs_url_path", h.LogsURLPath}, {"traces_url_path", h.TracesURLPath},
	} {
		if !strings.HasPrefix(p.path, "/") {
			errs = append(errs, fmt.Errorf("%s must start with /, got %q", p.key, p.path))
			continue
		}
		if other, dup := seen[p.path]; dup {
			errs = append(errs, fmt.Errorf("%s and %s are both %q", other, p.key, p.path))
		}
		seen[p.path] = p.key
	}
	return errors.Join(errs...)
}
