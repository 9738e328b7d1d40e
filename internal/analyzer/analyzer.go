package analyzer

import (
	"context"
	"errors"
	"fmt"
	"github.com/fleetwatch/fleetwatch/analytics/freshness"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fleetwatch/fleetwatch/alerting"
	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/analytics/drift"
	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/analytics/health"
	"github.com/fleetwatch/fleetwatch/analytics/jobs"
	"github.com/fleetwatch/fleetwatch/analytics/offline"
	"github.com/fleetwatch/fleetwatch/analytics/spc"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/lib/netsec"
	"github.com/fleetwatch/fleetwatch/storage"
)

// Analyzer is a configured engine with its detectors.
type Analyzer struct {
	cfg    Config
	web    *netsec.Server // nil without a listener
	client *storage.Client
	Engine *engine.Engine
	drift  *drift.Detector
	health *health.Detector
	jobs   *jobs.Detector
	alert  *alertingStage
	state  *stateCache
	log    *slog.Logger
}

// Option adjusts New.
type Option func(*options)

type options struct {
	clock    engine.Clock
	sinks    []fleet.Sink
	results  *storage.Client
	notifier alerting.Notifier
}

// WithClock sets the engine's clock (tests, backtests); alerting restores
// its incidents as of the clock's time.
func WithClock(c engine.Clock) Option { return func(o *options) { o.clock = c } }

// WithResults writes what the analyzer produces — detections, the window
// ledger, SPC state, incidents — to r's database, while the detectors read
// telemetry from the client given to New (backtests). The drift detector
// reads the stored reference profiles from there too and writes the
// profiles it builds and its scores to r.
func WithResults(r *storage.Client) Option { return func(o *options) { o.results = r } }

// WithNotifier hands alerting's notifications to n instead of the router:
// no receiver is contacted and no outbox is kept (backtests record them).
func WithNotifier(n alerting.Notifier) Option { return func(o *options) { o.notifier = n } }

// WithSink adds an in-process subscriber to every evaluation, after the
// detections table (alerting subscribes here).
func WithSink(s fleet.Sink) Option { return func(o *options) { o.sinks = append(o.sinks, s) } }

// New builds the analyzer on an open client: the engine, the detections
// table sink and the enabled detectors. With cfg.Migrate it applies the
// schema first.
func New(ctx context.Context, cfg Config, c *storage.Client, log *slog.Logger, opts ...Option) (*Analyzer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	out := c
	if o.results != nil {
		out = o.results
	}
	now := time.Now()
	if o.clock != nil {
		now = o.clock.Now()
	}
	var web *netsec.Server
	if cfg.Listen != "" {
		var err error
		if web, err = netsec.NewServer(cfg.Web); err != nil {
			return nil, fmt.Errorf("analyzer.web: %w", err)
		}
	}
	if cfg.Migrate {
		rep, err := c.Migrate(ctx)
		if err != nil {
			return nil, fmt.Errorf("migrate schema: %w", err)
		}
		if len(rep.Applied) > 0 {
			log.Info("applied schema migrations", "count", len(rep.Applied))
		}
	} else if err := c.RequireSchema(ctx); err != nil {
		return nil, err
	}
	w, err := out.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		return nil, err
	}
	eopts := []engine.Option{engine.WithLogger(log), engine.WithSink(engine.NewDetectionTable(w))}
	if o.clock != nil {
		eopts = append(eopts, engine.WithClock(o.clock))
	}
	for _, s := range o.sinks {
		eopts = append(eopts, engine.WithSink(s))
	}
	newest := freshness.NewReader(c)
	al, err := newAlerting(ctx, cfg.Alerting, cfg.Freshness, stores{in: c, out: out, notifier: o.notifier, now: now, newest: newest}, log)
	if err != nil {
		return nil, err
	}
	if al != nil {
		eopts = append(eopts, engine.WithSink(al.manager))
	}
	e, err := engine.New(cfg.Engine, out, eopts...)
	if err != nil {
		return nil, err
	}
	a := &Analyzer{cfg: cfg, web: web, client: c, Engine: e, alert: al, state: newStateCache(out, cfg.StateLookback), log: log}
	var dets []fleet.Detector
	if cfg.Drift.Enabled {
		a.drift, err = drift.NewDetector(cfg.Drift.Config, c, offline.ProfileFile, log)
		if err != nil {
			return nil, err
		}
		if out != c {
			if err := a.drift.WriteResultsTo(out); err != nil {
				return nil, err
			}
		}
		dets = append(dets, a.drift)
	}
	if m := cfg.SPCModels; m.Enabled {
		sources := []spc.Source{spc.NewModelMetrics(c, m.PricePerGPUHour)}
		if m.Freshness {
			sources = append(sources, spc.NewFreshness(newest))
		}
		d, err := spc.NewDetector(m.Config, out, sources...)
		if err != nil {
			return nil, err
		}
		dets = append(dets, d)
	}
	if l := cfg.SPCLabels; l.Enabled {
		sc := l.Config
		if sc.Lateness < l.LabelDelay {
			sc.Lateness = l.LabelDelay
		}
		d, err := spc.NewDetector(sc, out, spc.NewLabels(c, l.LabelDelay, l.MinLabels))
		if err != nil {
			return nil, err
		}
		dets = append(dets, d)
	}
	if g := cfg.SPCGPU; g.Enabled {
		d, err := spc.NewDetector(g.Config, out, spc.NewGPUMetrics(c, g.Metrics))
		if err != nil {
			return nil, err
		}
		dets = append(dets, d)
	}
	hd, hdet, err := healthDetectors(cfg.Health, c, log)
	if err != nil {
		return nil, err
	}
	dets = append(dets, hd...)
	a.health = hdet
	jd, jdet, err := jobsDetectors(cfg.Jobs, c, out, log)
	if err != nil {
		return nil, err
	}
	dets = append(dets, jd...)
	a.jobs = jdet
	if al != nil && al.slo != nil {
		dets = append(dets, al.slo)
	}
	if al != nil && al.fresh != nil {
		dets = append(dets, al.fresh)
	}
	for _, d := range dets {
		if err := e.Add(d); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Run serves /metrics (behind the bearer token, when configured) and
// /healthz (open) when Listen is set, over TLS when configured, and runs the
// engine until ctx ends, then shuts down gracefully.
func (a *Analyzer) Run(ctx context.Context) error {
	var srv *http.Server
	if a.cfg.Listen != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(a.collector())
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		ln, err := a.web.Listen(a.cfg.Listen, a.log)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", a.cfg.Listen, err)
		}
		srv = &http.Server{Handler: a.web.Handler(mux, "/healthz"), ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelDebug)}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("metrics server", "err", err)
			}
		}()
		a.log.Info("serving /metrics and /healthz", "addr", ln.Addr().String(), "scheme", a.web.Scheme())
	}
	a.log.Info("analyzer running", "detectors", a.Engine.Detectors())
	if a.alert != nil && a.alert.router != nil {
		// Deliver the notification outbox while the engine runs; what is
		// still pending when it stops stays in the outbox for the next run.
		deliveries := make(chan struct{})
		go func() {
			defer close(deliveries)
			_ = a.alert.router.Run(ctx)
		}()
		defer func() { <-deliveries }()
	}
	err := a.Engine.Run(ctx)
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	a.log.Info("analyzer stopped")
	return err
}

// Incidents returns the incidents alerting knows now (pending included),
// sorted by key; nil when alerting is off.
func (a *Analyzer) Incidents() []incident.Incident {
	if a.alert == nil {
		return nil
	}
	return a.alert.manager.Incidents()
}
