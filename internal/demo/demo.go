// Package demo runs the whole system on one machine: a local ClickHouse,
// the collector, the analyzer with alerting, and a simulated fleet sending
// through the real agent code, with a scenario that injects faults. It
// prints progress, every incident as it opens and resolves, and a summary
// against the scenario's ground truth. It is also the rollout controller of
// the scenario's canaries, which the analyzer's canary judge rolls back or
// passes (rollout.go), and writes weeks of hourly history before the live
// part for the analyzer's daily cost detectors (cost.go). `fleetctl demo`
// is its front end.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/lib/freeport"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chserver"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// Config is what the demo runs.
type Config struct {
	// DataDir holds ClickHouse's data, the collector's queue and the
	// agent's buffer (default "data").
	DataDir string
	// Scenario is the simulator scenario (default deploy/scenarios/demo.yaml).
	Scenario string
	// Analyzer is the analyzer's configuration file, its alerting section
	// and model catalog included (default deploy/demo/fleetwatch.yaml).
	Analyzer string
	// ClickHouse, when its Addrs are set, is used instead of a local server.
	ClickHouse storage.Config
	// UseServer is true when ClickHouse names a running server.
	UseServer bool
	// Duration stops the demo early (0: the scenario's duration plus Grace).
	Duration time.Duration
	// Grace is how long the demo keeps running after the scenario ends, so
	// the last windows are evaluated and incidents resolve (default 2m).
	Grace time.Duration
	// Progress is the interval between progress lines (default 10s).
	Progress time.Duration
	// Keep leaves ClickHouse running after the summary, until ctx ends.
	Keep bool
	// CostDays is the days of hourly history written before the live part
	// for the analyzer's daily cost detectors (default 35; 0: none). Only
	// with the analyzer's cost section enabled.
	CostDays int
	// CanaryPoll is how often the demo's rollout controller reads the
	// verdicts of the scenario's canaries (default 2s).
	CanaryPoll time.Duration
}

// NewDefaultConfig returns the defaults.
func NewDefaultConfig() Config {
	return Config{DataDir: "data", Scenario: "deploy/scenarios/demo.yaml", Analyzer: "deploy/demo/fleetwatch.yaml",
		ClickHouse: storage.NewDefaultConfig(), Grace: 2 * time.Minute, Progress: 10 * time.Second,
		CostDays: 35, CanaryPoll: 2 * time.Second}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("demo: data directory is empty"))
	}
	for _, f := range []struct{ what, path string }{{"scenario", c.Scenario}, {"analyzer configuration", c.Analyzer}} {
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("demo: %s: %w (run from the repository root, or pass its path)", f.what, err))
		}
	}
	if c.Duration < 0 || c.Grace < 0 || c.Progress <= 0 || c.CanaryPoll <= 0 {
		errs = append(errs, errors.New("demo: durations must not be negative and progress and canary poll must be positive"))
	}
	if c.CostDays != 0 && (c.CostDays < 15 || c.CostDays > 400) {
		errs = append(errs, fmt.Errorf("demo: cost days %d: want 0 (none) or 15 to 400 (the cost detectors judge a day with at least 14 days of history)", c.CostDays))
	}
	if c.UseServer {
		if err := c.ClickHouse.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Demo is a running demo's parts.
type Demo struct {
	cfg    Config
	out    io.Writer
	log    *slog.Logger
	sc     *sim.Scenario
	runner *sim.Runner
	client *storage.Client
	truth  []sim.Truth
	start  time.Time
	pager  *pager
	// rollouts is the rollout controller of the scenario's canaries.
	rollouts *rollouts
	// costs prints the cost detectors' findings; nil when cost is off.
	costs *costWatch
	sayMu sync.Mutex
	// scripted is the scenario's own duration; the run goes on, healthy, for the grace period.
	scripted time.Duration
}

// Run runs the demo until the scenario is over (plus grace), cfg.Duration
// passes or ctx ends, and prints the summary. Progress and incidents go to
// out; component logs (warnings and errors) to log.
func Run(ctx context.Context, cfg Config, out io.Writer, log *slog.Logger) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	d := &Demo{cfg: cfg, out: out, log: log}
	if d.sc, err = sim.Load(cfg.Scenario); err != nil {
		return err
	}
	data, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	// The collector's queue and the agent's buffer live for one run;
	// ClickHouse's data stays for exploring.
	run := filepath.Join(data, "run-"+time.Now().UTC().Format("20060102T150405"))
	if err := os.MkdirAll(run, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(run)

	// 1. ClickHouse.
	chCfg := cfg.ClickHouse
	if !cfg.UseServer {
		dir := filepath.Join(data, "clickhouse")
		d.say("starting ClickHouse (data in %s; each run starts from an empty database) ...", dir)
		srv, err := chserver.Start(ctx, chserver.Config{Dir: dir})
		if err != nil {
			if errors.Is(err, chserver.ErrNoBinary) {
				return fmt.Errorf("%w\n(run `make setup`, or point $%s at a running server)", err, storage.DSNEnv)
			}
			return err
		}
		defer func() {
			d.say("stopping ClickHouse ...")
			srv.Stop()
		}()
		chCfg.Addrs = []string{srv.Addr()}
	}
	// The scenario's faults are scored against what this run raises, so a
	// run starts from an empty database: the demo's own server drops the
	// previous run's; a server the user named must hold none.
	if !cfg.UseServer {
		if err := storage.DropDatabase(ctx, chCfg); err != nil {
			return err
		}
	}
	if err := storage.CreateDatabase(ctx, chCfg); err != nil {
		return err
	}
	if d.client, err = storage.Open(ctx, chCfg, storage.WithLogger(log)); err != nil {
		return err
	}
	defer d.client.Close()
	if cfg.UseServer {
		if err := requireEmpty(ctx, d.client); err != nil {
			return err
		}
	}
	rep, err := d.client.Migrate(ctx)
	if err != nil {
		return err
	}
	d.say("ClickHouse %s at %s, database %s: %d migration(s) applied, %d present",
		d.client.ServerVersion(), chCfg.Addrs[0], chCfg.Database, len(rep.Applied), rep.AlreadyApplied)

	// The analyzer's configuration; the cost detectors' history first.
	acfg, err := d.analyzerConfig()
	if err != nil {
		return err
	}
	if acfg.Cost.Enabled && cfg.CostDays > 0 {
		if _, err := d.backfillCost(ctx, cfg.CostDays, acfg.Cost.Lateness); err != nil {
			return err
		}
		d.costs = &costWatch{d: d, seen: map[string]bool{}}
	}

	// 2. Collector.
	p, err := startPipeline(ctx, chCfg, filepath.Join(run, "collector"), false)
	if err != nil {
		return err
	}
	defer func() {
		d.say("stopping the collector ...")
		p.stop(log)
	}()
	d.say("collector: OTLP on %s; its own metrics on http://%s/metrics", p.endpoint, p.metrics)

	// 3. Analyzer with alerting, the canary judge and the cost detectors.
	an, err := d.startAnalyzer(ctx, acfg, chCfg, mustFreeAddr(), filepath.Join(run, "canary-rollbacks"))
	if d.pager != nil {
		defer d.pager.stop()
	}
	if d.rollouts != nil {
		defer d.rollouts.stop()
	}
	if err != nil {
		return err
	}

	// 4. The simulated fleet, through the agent. It keeps reporting, healthy,
	// through the grace period, so the last windows see a live fleet.
	runFor := cfg.Duration
	if runFor == 0 {
		runFor = d.sc.Duration + cfg.Grace
	}
	d.scripted = d.sc.Duration
	if d.sc.Duration > 0 && d.sc.Duration < runFor {
		d.sc.Duration = runFor
	}
	if d.runner, err = sim.New(d.sc, log.With("source", "sim")); err != nil {
		return err
	}
	defer d.runner.Close()
	d.truth = d.runner.Fleet.GroundTruth()
	ag, err := newSimAgent(d.runner, true, p.endpoint, p.certs, "", filepath.Join(run, "agent"), log, nil)
	if err != nil {
		return err
	}
	d.start = d.sc.Start
	d.say("simulating %q: %d nodes x %d GPUs, %d models, %d faults over %v (samples every %v)",
		d.sc.Name, len(d.runner.Fleet.Nodes), d.sc.Fleet.GPUsPerNode, len(d.sc.Models), len(d.sc.Faults), d.sc.Duration, d.sc.Interval)
	for _, t := range d.truth {
		d.say("  will inject %-16s %-20s at +%v", t.Fault, t.Type+" ("+where(t)+")", t.Start.Sub(d.start).Round(time.Second))
	}
	for _, dep := range d.sc.Deployments {
		what := "deploy"
		if dep.Change == sim.ChangeCanary {
			what = fmt.Sprintf("canary (%.0f%% of requests", 100*dep.Share)
			if dep.LatencyMs > 0 {
				what += fmt.Sprintf(", median latency %.0f ms", dep.LatencyMs)
			}
			if dep.ErrorRate > 0 {
				what += fmt.Sprintf(", error rate %.1f%%", 100*dep.ErrorRate)
			}
			what += ")"
		}
		d.say("  will roll out    %-16s %-20s at +%v: %s", dep.Model, dep.Version, dep.At, what)
	}

	rctx, cancel := context.WithTimeout(ctx, runFor)
	defer cancel()
	errc := make(chan error, 3)
	go func() { errc <- ag.Run(rctx) }()
	go func() { errc <- an.Run(rctx) }()
	waits := 2
	if d.rollouts != nil {
		waits++
		go func() { d.rollouts.run(rctx, d.runner.Serving, time.Now(), cfg.CanaryPoll); errc <- nil }()
	}
	d.watch(rctx)
	for range waits {
		if err := <-errc; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			log.Warn("component stopped", "err", err)
		}
	}
	if err := d.summary(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	if cfg.Keep && ctx.Err() == nil {
		d.say("\nClickHouse keeps running for exploring; Ctrl-C stops it.")
		<-ctx.Done()
	}
	return nil
}

func (d *Demo) say(format string, args ...any) {
	d.sayMu.Lock()
	defer d.sayMu.Unlock()
	fmt.Fprintf(d.out, format+"\n", args...)
}

// where names a fault's target.
func where(t sim.Truth) string {
	switch t.Level {
	case "gpu":
		return t.Node + " GPU " + strconv.Itoa(derefInt(t.GPUIndex))
	case "node":
		return t.Node
	case "rack":
		return t.Rack
	case "row":
		return t.Row
	case "datacenter":
		return t.Datacenter
	case "pipeline":
		return t.Pipeline + "/" + t.Feature
	case "model":
		return t.Model
	}
	return t.Level
}

func derefInt(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

// mustFreeAddr is a free loopback address, or 127.0.0.1:0 (any port) when
// none could be probed.
func mustFreeAddr() string {
	a, err := freeport.Addr()
	if err != nil {
		return "127.0.0.1:0"
	}
	return a
}

// mustFreePort is a free loopback port, or 0 (any port).
func mustFreePort() int {
	p, _ := freeport.Port()
	return p
}

// requireEmpty fails when the database already holds rows: the demo's
// scoring would count another run's incidents.
func requireEmpty(ctx context.Context, c *storage.Client) error {
	var rows uint64
	db := c.Config().Database
	q := "SELECT sum(rows) FROM system.parts WHERE active AND database = " + chsql.String(db) + " AND table != " + chsql.String(schema.MigrationsTable)
	if err := c.QueryScalar(ctx, q, &rows); err != nil {
		return fmt.Errorf("demo: check that database %s is empty: %w", db, err)
	}
	if rows > 0 {
		return fmt.Errorf("demo: database %s already holds %d rows; the demo scores only what it injects, so give it an empty database (another name in the DSN, e.g. .../fleetwatch_demo)", db, rows)
	}
	return nil
}
