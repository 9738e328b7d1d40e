// Command fleetwatch-analyzer runs Fleetwatch's analytics engine: PSI drift
// on every model's features and outputs, and statistical process control on
// model latency, error rate, throughput, cost, feature freshness,
// delayed-label accuracy and GPU series. It reads ClickHouse, writes drift
// scores, chart state and detections back, and resumes where it stopped.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/fleetwatch/fleetwatch/internal/analyzer"
	"github.com/fleetwatch/fleetwatch/lib/buildinfo"
	"github.com/fleetwatch/fleetwatch/storage"
)

const help = `fleetwatch-analyzer: Fleetwatch's analytics engine.

It evaluates each detector on complete, clock-aligned windows (a window is
complete once its end plus the lateness allowance has passed), writes
drift_scores, spc_state and detections to ClickHouse, and records every
window in analyzer_windows, so a restart resumes where it stopped without
raising anything twice.

Usage:
  fleetwatch-analyzer [flags]

Configuration: --config names a YAML file; its clickhouse: section says how
to reach ClickHouse and its analyzer: section configures the detectors (see
deploy/analyzer.example.yaml). Without it the defaults apply: drift every
5m, model SPC every minute, label SPC every 5m an hour late. ClickHouse is
found through --dsn, else $FLEETWATCH_CLICKHOUSE_DSN, else the config file,
else 127.0.0.1:9000.

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fleetwatch-analyzer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), help)
		fs.PrintDefaults()
	}
	file := fs.String("config", "", "YAML config file with clickhouse: and analyzer: sections")
	dsn := fs.String("dsn", "", "ClickHouse DSN, e.g. clickhouse://default:@127.0.0.1:9000/fleetwatch (overrides the config file)")
	listen := fs.String("listen", "", "address for /metrics and /healthz (overrides analyzer.listen; \"off\" disables)")
	migrate := fs.Bool("migrate", false, "create the database and apply the schema at start (needs DDL rights; default: analyzer.migrate, else check that `fleetctl migrate` did)")
	once := fs.Bool("once", false, "evaluate every window that is due now, then exit (backfills, cron)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	check := fs.Bool("check-config", false, "validate the configuration and exit")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		fs.Usage()
		return 2
	}
	if *version {
		fmt.Fprintln(stdout, buildinfo.String("fleetwatch-analyzer"))
		return 0
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "--log-level %q: want debug, info, warn or error\n", *level)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	cfg, err := loadConfig(*file, *dsn, *listen)
	if *migrate {
		cfg.Migrate = true
	}
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "fleetwatch-analyzer: %v\n", err)
		return 1
	}
	if *check {
		fmt.Fprintln(stdout, "configuration is valid")
		return 0
	}
	if err := serve(ctx, cfg, log, *once); err != nil {
		log.Error("analyzer failed", "err", err)
		return 1
	}
	return 0
}

// loadConfig applies the defaults, the file, then $FLEETWATCH_CLICKHOUSE_DSN
// and the flags.
func loadConfig(file, dsn, listen string) (analyzer.Config, error) {
	cfg := analyzer.NewDefaultConfig()
	if file != "" {
		var err error
		if cfg, err = analyzer.LoadConfig(file); err != nil {
			return cfg, err
		}
	}
	ch, err := storage.FromEnv(cfg.ClickHouse)
	if err != nil {
		return cfg, err
	}
	cfg.ClickHouse = ch
	if dsn != "" {
		ch, err := storage.ParseDSN(dsn)
		if err != nil {
			return cfg, fmt.Errorf("--dsn: %w", err)
		}
		ch.RetentionDays = cfg.ClickHouse.RetentionDays
		cfg.ClickHouse = storage.WithPasswordFileEnv(ch)
	}
	switch listen {
	case "":
	case "off":
		cfg.Listen = ""
	default:
		cfg.Listen = listen
	}
	return cfg, nil
}

func serve(ctx context.Context, cfg analyzer.Config, log *slog.Logger, once bool) error {
	log.Info("starting", "version", buildinfo.String("fleetwatch-analyzer"), "clickhouse", cfg.ClickHouse.Addrs, "database", cfg.ClickHouse.Database)
	if cfg.Migrate {
		if err := storage.CreateDatabase(ctx, cfg.ClickHouse); err != nil {
			return err
		}
	}
	c, err := storage.Open(ctx, cfg.ClickHouse, storage.WithLogger(log))
	if err != nil {
		if !cfg.Migrate {
			return fmt.Errorf("%w (the schema comes from `fleetctl migrate`, or --migrate)", err)
		}
		return err
	}
	defer c.Close()
	a, err := analyzer.New(ctx, cfg, c, log)
	if err != nil {
		return err
	}
	if once {
		if cfg.Coordination.Enabled {
			// The shares belong to whichever analyzer holds them; a
			// one-shot run holds none.
			return errors.New("--once evaluates every detector whole: turn analyzer.coordination off for it, with the other analyzers stopped")
		}
		n, err := a.Engine.Step(ctx)
		log.Info("evaluated the windows due", "windows", n)
		return err
	}
	return a.Run(ctx)
}
