package collector

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/otelcol"
)

// Local places the default configuration on one machine: listeners on the
// given addresses (host:port), ClickHouse and the queue directory inlined.
type Local struct {
	GRPC, HTTP, Health, PProf string
	MetricsHost               string
	MetricsPort               int
	DSN                       string
	QueueDir                  string
	// Memory leaves the queue's flushing to the kernel (fsync: never): a
	// killed collector loses nothing, a crashed machine may.
	Memory bool
	// LogLevel sets the collector's own log level (default info).
	LogLevel string
	// TLSCert, TLSKey and TokenFile, all set, are the OTLP listeners'
	// certificate, key and bearer-token file (TLS and auth stay on). All
	// empty, the listeners run plaintext without auth: for a collector on
	// loopback (the demo, tests); one on another address logs a warning.
	TLSCert, TLSKey, TokenFile string
	// MaxAge is the exporter's max_age, how old an accepted point may be
	// (0: the default's, 7 days); backfills of older data raise it.
	MaxAge time.Duration
}

// The default configuration's TLS and auth, which a plaintext Local removes.
var (
	listenerSecurity = regexp.MustCompile(`(?m)^        tls:\n(?:          .*\n)+        auth:\n          authenticator: bearertokenauth\n`)
	tokenExtension   = regexp.MustCompile(`(?m)^  # OTLP senders present.*\n(?:  #.*\n)*  bearertokenauth:\n    filename: .*\n`)
)

// security applies l's TLS and token settings to cfg.
func (l Local) security(cfg string) (string, error) {
	switch set := l.TLSCert != "" || l.TLSKey != "" || l.TokenFile != ""; {
	case set && (l.TLSCert == "" || l.TLSKey == "" || l.TokenFile == ""):
		return "", errors.New("collector: TLSCert, TLSKey and TokenFile go together")
	case set:
		for _, r := range []struct{ old, new string }{
			{"${env:FLEETWATCH_TLS_CERT:-/etc/fleetwatch/tls/server.pem}", l.TLSCert},
			{"${env:FLEETWATCH_TLS_KEY:-/etc/fleetwatch/tls/server-key.pem}", l.TLSKey},
			{"${env:FLEETWATCH_TOKEN_FILE:-/etc/fleetwatch/tls/token}", l.TokenFile},
		} {
			if !strings.Contains(cfg, r.old) {
				return "", fmt.Errorf("collector: default config no longer contains %q", r.old)
			}
			cfg = strings.ReplaceAll(cfg, r.old, r.new)
		}
		return cfg, nil
	}
	if n := len(listenerSecurity.FindAllStringIndex(cfg, -1)); n != 2 {
		return "", fmt.Errorf("collector: default config has %d listeners with tls and auth, want 2", n)
	}
	cfg = listenerSecurity.ReplaceAllString(cfg, "")
	const withToken, without = "extensions: [health_check, pprof, bearertokenauth]", "extensions: [health_check, pprof]"
	if !tokenExtension.MatchString(cfg) || !strings.Contains(cfg, withToken) {
		return "", errors.New("collector: default config no longer has the bearertokenauth extension")
	}
	cfg = tokenExtension.ReplaceAllString(cfg, "")
	return strings.Replace(cfg, withToken, without, 1), nil
}

// LocalConfig is DefaultConfig rewritten for l. It fails when the default
// configuration no longer has a setting it rewrites.
func LocalConfig(l Local) (string, error) {
	cfg, err := l.security(DefaultConfig)
	if err != nil {
		return "", err
	}
	repl := []struct{ old, value, new string }{
		{"0.0.0.0:4317", l.GRPC, l.GRPC},
		{"0.0.0.0:4318", l.HTTP, l.HTTP},
		{"127.0.0.1:13133", l.Health, l.Health},
		{"127.0.0.1:1777", l.PProf, l.PProf},
		{"host: 127.0.0.1", l.MetricsHost, "host: " + l.MetricsHost},
		{"port: 8888", strconv.Itoa(l.MetricsPort), "port: " + strconv.Itoa(l.MetricsPort)},
		{"${env:FLEETWATCH_CLICKHOUSE_DSN:-clickhouse://127.0.0.1:9000/fleetwatch}", l.DSN, l.DSN},
		{"${env:FLEETWATCH_COLLECTOR_DATA:-/var/lib/fleetwatch-collector}", l.QueueDir, l.QueueDir},
	}
	if l.Memory {
		repl = append(repl, struct{ old, value, new string }{"fsync: always ", "-", "fsync: never  "})
	}
	if l.MaxAge > 0 {
		repl = append(repl, struct{ old, value, new string }{"max_age: ${env:FLEETWATCH_MAX_AGE:-168h}", "-", "max_age: " + l.MaxAge.String()})
	}
	if l.LogLevel != "" {
		repl = append(repl, struct{ old, value, new string }{"  telemetry:\n", l.LogLevel, "  telemetry:\n    logs:\n      level: " + l.LogLevel + "\n"})
	}
	for _, r := range repl {
		if r.value == "" || r.value == "0" {
			continue // keep the default
		}
		if !strings.Contains(cfg, r.old) {
			return "", fmt.Errorf("collector: default config no longer contains %q", r.old)
		}
		cfg = strings.Replace(cfg, r.old, r.new, 1)
	}
	return cfg, nil
}

// Running is a collector running in this process.
type Running struct {
	col  *otelcol.Collector
	done chan error
}

// Start runs the distribution with the given YAML configuration in this
// process and returns once its pipelines run.
func Start(ctx context.Context, config, version string) (*Running, error) {
	set := Settings(version)
	set.ConfigProviderSettings.ResolverSettings.URIs = []string{"yaml:" + config}
	set.DisableGracefulShutdown = true
	col, err := otelcol.NewCollector(set)
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	r := &Running{col: col, done: make(chan error, 1)}
	go func() { r.done <- col.Run(context.WithoutCancel(ctx)) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for col.GetState() != otelcol.StateRunning {
		select {
		case err := <-r.done:
			if err == nil {
				err = errors.New("stopped")
			}
			return nil, fmt.Errorf("collector did not start: %w", err)
		case <-ctx.Done():
			col.Shutdown()
			<-r.done
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	return r, nil
}

// Stop shuts the collector down, draining what its queues can write within
// timeout.
func (r *Running) Stop(timeout time.Duration) error {
	r.col.Shutdown()
	select {
	case err := <-r.done:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("collector did not stop within %v", timeout)
	}
}
