package analyzer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fleetwatch/fleetwatch/alerting"
	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/analytics/canary"
	"github.com/fleetwatch/fleetwatch/analytics/drift"
	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/analytics/freshness"
	"github.com/fleetwatch/fleetwatch/analytics/health"
	"github.com/fleetwatch/fleetwatch/analytics/jobs"
	"github.com/fleetwatch/fleetwatch/analytics/offline"
	"github.com/fleetwatch/fleetwatch/analytics/scaling"
	"github.com/fleetwatch/fleetwatch/analytics/slo"
	"github.com/fleetwatch/fleetwatch/analytics/spc"
	"github.com/fleetwatch/fleetwatch/analytics/upstream"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
	"github.com/fleetwatch/fleetwatch/lib/netsec"
	"github.com/fleetwatch/fleetwatch/storage"
)

// Analyzer is a configured engine with its detectors.
type Analyzer struct {
	cfg    Config
	web    *netsec.Server // nil without a listener
	client *storage.Client
	// out is where results go (client, except in a backtest).
	out    *storage.Client
	clock  engine.Clock
	Engine *engine.Engine
	// dets are the detectors when the analyzer is alone (shared: the
	// shares' come and go, sharing.live).
	dets  []fleet.Detector
	state *stateCache
	log   *slog.Logger
	// notifier and newest are alerting's collaborators (stores).
	notifier alerting.Notifier
	newest   *freshness.Reader
	cat      *catalog.Catalog
	// share runs the coordination when analyzers share the fleet.
	share *sharing

	// canary is what the canary judge's verdicts drive; nil when off.
	canary *canaryActions

	alertMu sync.Mutex
	// alert is alerting as this analyzer runs it: always when alone and
	// alerting is on, while it holds the alerting lease when shared.
	alert *alertingStage
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
// schema first. With cfg.Coordination it adds no detector yet: Run joins
// the analyzers sharing the fleet and evaluates the shares it is given.
func New(ctx context.Context, cfg Config, c *storage.Client, log *slog.Logger, opts ...Option) (*Analyzer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Detectors that report a decision once, not a statistic every window,
	// open their incident at their first detection.
	for _, once := range []struct {
		on    bool
		class string
	}{{cfg.Cost.Enabled, costOpenAtOnce}, {cfg.Canary.Enabled, canaryOpenAtOnce}} {
		if once.on && !slices.Contains(cfg.Alerting.Lifecycle.OpenAtOnce, once.class) {
			cfg.Alerting.Lifecycle.OpenAtOnce = append(slices.Clone(cfg.Alerting.Lifecycle.OpenAtOnce), once.class)
		}
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	out := c
	if o.results != nil {
		out = o.results
	}
	var clock engine.Clock = engine.SystemClock{}
	if o.clock != nil {
		clock = o.clock
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
	shared := cfg.Coordination.Enabled
	eopts := []engine.Option{engine.WithLogger(log), engine.WithSink(engine.NewDetectionTable(w)), engine.WithClock(clock)}
	for _, s := range o.sinks {
		eopts = append(eopts, engine.WithSink(s))
	}
	if shared {
		eopts = append(eopts, engine.WithDynamic())
	}
	a := &Analyzer{cfg: cfg, web: web, client: c, out: out, clock: clock, state: newStateCache(out, cfg.StateLookback), log: log,
		notifier: o.notifier, newest: freshness.NewReader(c)}
	if (cfg.Alerting.Enabled || cfg.Scaling.Enabled) && cfg.Alerting.Catalog != "" {
		if a.cat, err = catalog.Load(cfg.Alerting.Catalog); err != nil {
			return nil, err
		}
	}
	if cfg.Canary.Enabled && !shared {
		if a.canary, err = a.newCanaryActions(cfg.Canary, nil); err != nil {
			return nil, err
		}
	}
	fs := a.factories(a.cat)
	if !shared && cfg.Alerting.Enabled {
		// Alone, the analyzer owns alerting, in process: an engine sink.
		if a.alert, err = newAlerting(ctx, cfg.Alerting, a.cat, a.stores(), log); err != nil {
			return nil, err
		}
		eopts = append(eopts, engine.WithSink(a.alert.manager))
	}
	if a.Engine, err = engine.New(cfg.Engine, out, eopts...); err != nil {
		return nil, err
	}
	if shared {
		if a.share, err = newSharing(a, cfg.Coordination, fs); err != nil {
			return nil, err
		}
		if cfg.Canary.Enabled {
			// Built before any share runs (Run starts the member).
			if a.canary, err = a.newCanaryActions(cfg.Canary, a.share.member); err != nil {
				return nil, err
			}
		}
		return a, nil
	}
	for _, f := range fs {
		d, err := f.build(fleet.Shard{})
		if err != nil {
			return nil, err
		}
		a.dets = append(a.dets, d)
		if err := a.Engine.Add(d); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// stores are where alerting reads and writes.
func (a *Analyzer) stores() stores {
	return stores{in: a.client, out: a.out, notifier: a.notifier, now: a.clock.Now()}
}

// factories lists the enabled detectors, each as a builder of its share
// of the work: fleet health by datacenter, drift and the model SPC charts
// by model, the rest whole. Alone, the analyzer builds each once, whole.
func (a *Analyzer) factories(cat *catalog.Catalog) []factory {
	cfg, c, out, log := a.cfg, a.client, a.out, a.log
	var fs []factory
	if cfg.Drift.Enabled {
		fs = append(fs, factory{name: cfg.Drift.Name, by: byModel, build: func(sh fleet.Shard) (fleet.Detector, error) {
			dc := cfg.Drift.Config
			dc.Shard = sh
			d, err := drift.NewDetector(dc, c, offline.ProfileFile, log)
			if err != nil {
				return nil, err
			}
			if out != c {
				if err := d.WriteResultsTo(out); err != nil {
					return nil, err
				}
			}
			return d, nil
		}})
	}
	if m := cfg.SPCModels; m.Enabled {
		fs = append(fs, factory{name: m.Name, by: byModel, build: func(sh fleet.Shard) (fleet.Detector, error) {
			mm := spc.NewModelMetrics(c, m.PricePerGPUHour)
			mm.Shard = sh
			sources := []spc.Source{mm}
			if m.Freshness {
				r := a.newest // shared with the freshness SLO detector when whole
				if !sh.All() {
					r = freshness.NewShardReader(c, sh)
				}
				sources = append(sources, spc.NewFreshness(r))
			}
			sc := m.Config
			sc.Shard = sh
			return spc.NewDetector(sc, out, sources...)
		}})
	}
	if l := cfg.SPCLabels; l.Enabled {
		fs = append(fs, factory{name: l.Name, by: byModel, build: func(sh fleet.Shard) (fleet.Detector, error) {
			sc := l.Config
			sc.Shard = sh
			if sc.Lateness < l.LabelDelay {
				sc.Lateness = l.LabelDelay
			}
			src := spc.NewLabels(c, l.LabelDelay, l.MinLabels)
			src.Shard = sh
			return spc.NewDetector(sc, out, src)
		}})
	}
	if g := cfg.SPCGPU; g.Enabled {
		fs = append(fs, factory{name: g.Name, by: whole, build: func(fleet.Shard) (fleet.Detector, error) {
			return spc.NewDetector(g.Config, out, spc.NewGPUMetrics(c, g.Metrics))
		}})
	}
	if h := cfg.Health; h.Enabled {
		fs = append(fs, factory{name: h.Name, by: byDatacenter, build: func(sh fleet.Shard) (fleet.Detector, error) {
			hc := h.Config
			hc.Shard = sh
			return health.NewDetector(hc, c, log)
		}})
	}
	if j := cfg.Jobs; j.Enabled {
		fs = append(fs, factory{name: j.Name, by: whole, build: func(fleet.Shard) (fleet.Detector, error) {
			return jobs.NewDetector(j.Config, c, out, log)
		}})
	}
	if k := cfg.Canary; k.Enabled {
		fs = append(fs, factory{name: k.Name, by: whole, build: func(fleet.Shard) (fleet.Detector, error) {
			d, err := canary.NewDetector(k.DetectorConfig, c, cat, log)
			if err != nil {
				return nil, err
			}
			d.OnVerdict = a.canary.onVerdict(a)
			w, err := out.NewWriter(storage.NewDefaultWriterConfig())
			if err != nil {
				return nil, err
			}
			d.RecordTo(w) // canary_verdicts, for the on-call views
			return d, nil
		}})
	}
	if sc := cfg.Scaling; sc.Enabled {
		fs = append(fs, factory{name: sc.Name, by: whole, build: func(fleet.Shard) (fleet.Detector, error) {
			return scaling.NewDetector(sc.Config, c, cat)
		}})
	}
	fs = append(fs, costFactories(cfg.Cost, c, out, cat)...)
	al := cfg.Alerting
	if al.Enabled && cat != nil && al.SLO.Enabled {
		fs = append(fs, factory{name: al.SLO.Name, by: whole, build: func(fleet.Shard) (fleet.Detector, error) {
			return slo.NewDetector(al.SLO, c, cat)
		}})
	}
	if al.Enabled && cat != nil && cfg.Upstream.Enabled {
		fs = append(fs, factory{name: cfg.Upstream.Name, by: whole, build: func(fleet.Shard) (fleet.Detector, error) {
			return upstream.NewDetector(cfg.Upstream.Config, c, cat)
		}})
	}
	if al.Enabled && cat != nil && cfg.Freshness.Enabled {
		fs = append(fs, factory{name: cfg.Freshness.Name, by: whole, build: func(fleet.Shard) (fleet.Detector, error) {
			return freshness.NewDetector(cfg.Freshness, a.newest, cat)
		}})
	}
	return fs
}

// setAlerting sets (or, with nil, clears) the alerting stage this
// analyzer runs.
func (a *Analyzer) setAlerting(st *alertingStage) {
	a.alertMu.Lock()
	defer a.alertMu.Unlock()
	a.alert = st
}

// alerting returns the alerting stage this analyzer runs now; nil when it
// runs none.
func (a *Analyzer) alerting() *alertingStage {
	a.alertMu.Lock()
	defer a.alertMu.Unlock()
	return a.alert
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
		if a.canary != nil {
			mux.Handle("/canary/", a.canary.board.Handler())
		}
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
	if a.share != nil {
		// Shared: the shares come and go with the membership, and the
		// alerting lease brings its own delivery loop.
		members := make(chan struct{})
		go func() {
			defer close(members)
			if err := a.share.member.Run(ctx, a.cfg.Engine.ShutdownGrace); err != nil {
				a.log.Error("coordination", "err", err)
			}
		}()
		defer func() { <-members }()
		a.log.Info("analyzer running, sharing the fleet", "member", a.cfg.Coordination.MemberID, "shares", len(a.share.specs))
	} else {
		a.log.Info("analyzer running", "detectors", a.Engine.Detectors())
	}
	if a.share == nil && a.alert != nil && a.alert.router != nil {
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
	if cerr := a.canary.close(); cerr != nil {
		a.log.Error("canary", "err", cerr)
	}
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	a.log.Info("analyzer stopped")
	return err
}

// Incidents returns the incidents alerting knows now (pending included),
// sorted by key; nil when alerting is off, or when analyzers share the
// fleet and another one owns alerting.
func (a *Analyzer) Incidents() []incident.Incident {
	st := a.alerting()
	if st == nil {
		return nil
	}
	return st.manager.Incidents()
}
