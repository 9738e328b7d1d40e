// Package otlprecv is Fleetwatch's OTLP receiver (type fleetwatch_otlp): the
// upstream otlp receiver's protocols and settings (gRPC and HTTP servers from
// the Collector's configgrpc and confighttp, so TLS, mTLS, auth extensions,
// size limits, compression and middlewares behave exactly as upstream), and
// OTLP partial success, which the upstream receiver never sends.
//
// Every request's data goes to the next consumer with a partial.Tally in its
// context; components that reject items in that call (the ClickHouse
// exporter validates before it queues) add them with a reason, and the
// receiver answers with the count and a message in the response's
// partial_success field. Rejected items are counted by signal and reason in
// fleetwatch_receiver_partial_rejected_items and logged at most once per
// signal and rejection_log_interval; requests refused before their data
// reaches the pipeline (too large, undecodable, wrong content type) are
// counted in fleetwatch_receiver_refused_requests. A permanent error from the
// pipeline answers InvalidArgument (HTTP 400: do not retry), any other error
// Unavailable (HTTP 503 with Retry-After: retry).
package otlprecv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
)

// otlpReceiver serves the signals of one configured receiver.
type otlpReceiver struct {
	cfg    *Config
	set    receiver.Settings
	forget func()

	obsGRPC, obsHTTP *receiverhelper.ObsReport
	tel              *telemetry

	// Set by the factory before Start; nil for a signal no pipeline uses.
	metrics *metricsSignal
	logs    *logsSignal
	traces  *tracesSignal

	startOnce, stopOnce sync.Once
	startErr, stopErr   error
	grpcServer          *grpc.Server
	httpServer          *http.Server
	stopTel             chan struct{}
	wg                  sync.WaitGroup
}

func newReceiver(cfg *Config, set receiver.Settings, forget func()) (*otlpReceiver, error) {
	// One receiver serves every signal: drop the signal attribute the
	// Collector put on the first pipeline's logger and meters.
	set.TelemetrySettings = dropInjected(set.TelemetrySettings, "otelcol.signal")
	r := &otlpReceiver{cfg: cfg, set: set, forget: forget, stopTel: make(chan struct{})}
	var err error
	if r.obsGRPC, err = receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID: set.ID, Transport: transportGRPC, ReceiverCreateSettings: set}); err != nil {
		return nil, err
	}
	if r.obsHTTP, err = receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID: set.ID, Transport: transportHTTP, ReceiverCreateSettings: set}); err != nil {
		return nil, err
	}
	if r.tel, err = newTelemetry(set.TelemetrySettings, set.ID, cfg.RejectionLogInterval); err != nil {
		return nil, err
	}
	return r, nil
}

// Start opens the configured listeners. Every pipeline the receiver is in
// calls it; the first call does the work.
func (r *otlpReceiver) Start(ctx context.Context, host component.Host) error {
	r.startOnce.Do(func() {
		r.wg.Go(func() { r.tel.run(r.stopTel) })
		if r.startErr = r.startGRPC(ctx, host); r.startErr != nil {
			return
		}
		r.startErr = r.startHTTP(ctx, host)
	})
	return r.startErr
}

func (r *otlpReceiver) startGRPC(ctx context.Context, host component.Host) error {
	if !r.cfg.Protocols.GRPC.HasValue() {
		return nil
	}
	cfg := r.cfg.Protocols.GRPC.Get()
	// The host's extensions go to ToServer: the auth extension named in
	// auth: runs as an interceptor, before the services decode anything.
	srv, err := cfg.ToServer(ctx, host.GetExtensions(), r.set.TelemetrySettings,
		configgrpc.WithGrpcServerOption(grpc.ForceServerCodecV2(newRawCodec())))
	if err != nil {
		return fmt.Errorf("fleetwatch_otlp: gRPC server: %w", err)
	}
	if r.metrics != nil {
		srv.RegisterService(r.metrics.serviceDesc(grpcMetricsService, r.obsGRPC, r.tel), struct{}{})
	}
	if r.logs != nil {
		srv.RegisterService(r.logs.serviceDesc(grpcLogsService, r.obsGRPC, r.tel), struct{}{})
	}
	if r.traces != nil {
		srv.RegisterService(r.traces.serviceDesc(grpcTracesService, r.obsGRPC, r.tel), struct{}{})
	}
	ln, err := cfg.NetAddr.Listen(ctx)
	if err != nil {
		return fmt.Errorf("fleetwatch_otlp: gRPC listener: %w", err)
	}
	r.grpcServer = srv
	r.set.Logger.Info("OTLP gRPC server listening", zap.String("endpoint", ln.Addr().String()))
	r.warnIfExposed("grpc", ln.Addr(), cfg.TLS.HasValue(), cfg.Auth.HasValue())
	r.serve(host, func() error { return srv.Serve(ln) }, grpc.ErrServerStopped)
	return nil
}

func (r *otlpReceiver) startHTTP(ctx context.Context, host component.Host) error {
	if !r.cfg.Protocols.HTTP.HasValue() {
		return nil
	}
	cfg := r.cfg.Protocols.HTTP.Get()
	mux := http.NewServeMux()
	paths := map[string]string{}
	if r.metrics != nil {
		mux.Handle(cfg.MetricsURLPath, r.metrics.handler(r.obsHTTP, r.tel))
		paths[cfg.MetricsURLPath] = signalMetrics
	}
	if r.logs != nil {
		mux.Handle(cfg.LogsURLPath, r.logs.handler(r.obsHTTP, r.tel))
		paths[cfg.LogsURLPath] = signalLogs
	}
	if r.traces != nil {
		mux.Handle(cfg.TracesURLPath, r.traces.handler(r.obsHTTP, r.tel))
		paths[cfg.TracesURLPath] = signalTraces
	}
	signalOf := func(path string) string {
		if s, ok := paths[path]; ok {
			return s
		}
		return "unknown"
	}
	srv, err := cfg.ServerConfig.ToServer(ctx, host.GetExtensions(), r.set.TelemetrySettings, mux,
		confighttp.WithErrorHandler(serverErrorHandler(r.tel, signalOf)))
	if err != nil {
		return fmt.Errorf("fleetwatch_otlp: HTTP server: %w", err)
	}
	ln, err := cfg.ServerConfig.ToListener(ctx)
	if err != nil {
		return fmt.Errorf("fleetwatch_otlp: HTTP listener: %w", err)
	}
	r.httpServer = srv
	r.set.Logger.Info("OTLP HTTP server listening", zap.String("endpoint", ln.Addr().String()))
	r.warnIfExposed("http", ln.Addr(), cfg.ServerConfig.TLS.HasValue(), cfg.ServerConfig.Auth.HasValue())
	r.serve(host, func() error { return srv.Serve(ln) }, http.ErrServerClosed)
	return nil
}

// warnIfExposed logs a warning when a listener on a non-loopback address
// runs without TLS or without authentication, unless allow_insecure_public
// says that is intended (it is still logged, at info).
func (r *otlpReceiver) warnIfExposed(protocol string, addr net.Addr, tls, auth bool) {
	if (tls && auth) || isLoopback(addr) {
		return
	}
	var missing []string
	if !tls {
		missing = append(missing, "tls")
	}
	if !auth {
		missing = append(missing, "auth")
	}
	fields := []zap.Field{zap.String("protocol", protocol), zap.String("endpoint", addr.String()), zap.Strings("missing", missing)}
	if r.cfg.AllowInsecurePublic {
		r.set.Logger.Info("OTLP listener on a non-loopback address without TLS or authentication (allow_insecure_public: true)", fields...)
		return
	}
	r.set.Logger.Warn("OTLP listener on a non-loopback address without TLS or authentication: anyone who can reach it can send or forge telemetry; "+
		"configure tls and auth (see docs/SECURITY.md), bind it to loopback, or set allow_insecure_public: true if this is intended", fields...)
}

// isLoopback reports whether addr is a TCP address on a loopback IP.
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// serve runs a server until it stops; a failure other than stopped (the
// server's error after Shutdown) stops the collector.
func (r *otlpReceiver) serve(host component.Host, run func() error, stopped error) {
	r.wg.Go(func() {
		if err := run(); err != nil && !errors.Is(err, stopped) {
			componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(err))
		}
	})
}

// Shutdown closes the listeners, waiting for requests in flight until ctx
// ends, and writes the last rejection warnings. It is safe without Start.
func (r *otlpReceiver) Shutdown(ctx context.Context) error {
	r.stopOnce.Do(func() {
		var errs []error
		if r.httpServer != nil {
			errs = append(errs, r.httpServer.Shutdown(ctx))
		}
		if r.grpcServer != nil {
			stopped := make(chan struct{})
			go func() { r.grpcServer.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-ctx.Done():
				r.grpcServer.Stop()
				<-stopped
			}
		}
		close(r.stopTel)
		r.wg.Wait()
		r.forget()
		r.stopErr = errors.Join(errs...)
	})
	return r.stopErr
}

// dropInjected removes attributes the Collector adds to a component's
// logger and meters, when its providers support that (the service's do).
func dropInjected(ts component.TelemetrySettings, keys ...string) component.TelemetrySettings {
	type coreDropper interface {
		DropInjectedAttributes(...string) zapcore.Core
	}
	type meterDropper interface {
		DropInjectedAttributes(...string) metric.MeterProvider
	}
	ts.Logger = ts.Logger.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		if d, ok := c.(coreDropper); ok {
			return d.DropInjectedAttributes(keys...)
		}
		return c
	}))
	if d, ok := ts.MeterProvider.(meterDropper); ok {
		ts.MeterProvider = d.DropInjectedAttributes(keys...)
	}
	return ts
}
