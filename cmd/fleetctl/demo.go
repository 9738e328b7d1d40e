package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chserver"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// pending lists what the demo will run once it exists; each entry names its issue.
var pending = []string{
	"OpenTelemetry Collector with the ClickHouse exporter, fed by the agent's simulated fleet (issue 4)",
	"analyzer: PSI drift and SPC (issue 5), fleet health (issue 6)",
	"alerting: incidents and routing (issue 7)",
	"the fault scenario, dashboards and summary (issue 8)",
}

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "demo")
	data := fs.String("data", "data", "directory for the local ClickHouse's data (ignored when $"+storage.DSNEnv+" names a server)")
	port := fs.Int("port", 0, "native-protocol port for the local ClickHouse (0 picks a free one)")
	duration := fs.Duration("duration", 0, "stop after this long (0 runs until Ctrl-C)")
	if err := parse(fs, args); err != nil {
		return err
	}
	log := logger(e)
	cfg := storage.NewDefaultConfig()
	if os.Getenv(storage.DSNEnv) != "" {
		var err error
		if cfg, err = storage.FromEnv(cfg); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "using ClickHouse from $%s at %v\n", storage.DSNEnv, cfg.Addrs)
	} else {
		dir, err := filepath.Abs(filepath.Join(*data, "clickhouse"))
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "starting a local ClickHouse with its data in %s ...\n", dir)
		srv, err := chserver.Start(ctx, chserver.Config{Dir: dir, TCPPort: *port})
		if err != nil {
			if errors.Is(err, chserver.ErrNoBinary) {
				return fmt.Errorf("%w\n(or point $%s at a running server)", err, storage.DSNEnv)
			}
			return err
		}
		defer func() {
			fmt.Fprintln(e.stdout, "stopping ClickHouse ...")
			srv.Stop()
		}()
		cfg.Addrs = []string{srv.Addr()}
	}
	c, err := connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer c.Close()
	rep, err := c.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "ClickHouse %s, database %s, schema profile %s: %d migration(s) applied, %d already present\n",
		c.ServerVersion(), cfg.Database, c.Features().Name(), len(rep.Applied), rep.AlreadyApplied)
	fmt.Fprintln(e.stdout, "\ntables:")
	for _, t := range schema.Tables() {
		var n uint64
		if err := c.QueryScalar(ctx, "SELECT count() FROM "+cfg.Database+"."+t.Name, &n); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "  %-20s %10d rows  %s\n", t.Name, n, t.Doc)
	}
	host, p, _ := strings.Cut(cfg.Addrs[0], ":")
	fmt.Fprintf(e.stdout, "\nexplore:  clickhouse-client --host %s --port %s -d %s\n", host, p, cfg.Database)
	fmt.Fprintf(e.stdout, "          export %s=clickhouse://%s/%s\n", storage.DSNEnv, cfg.Addrs[0], cfg.Database)
	fmt.Fprintln(e.stdout, "\nnot part of the demo yet:")
	for _, p := range pending {
		fmt.Fprintf(e.stdout, "  - %s\n", p)
	}
	if *duration > 0 {
		fmt.Fprintf(e.stdout, "\nrunning for %v (Ctrl-C stops) ...\n", *duration)
		select {
		case <-ctx.Done():
		case <-time.After(*duration):
		}
		return nil
	}
	fmt.Fprintln(e.stdout, "\nrunning; Ctrl-C stops ClickHouse and exits.")
	<-ctx.Done()
	return nil
}
