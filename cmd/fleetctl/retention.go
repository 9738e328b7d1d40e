package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetwatch/fleetwatch/storage/schema"
)

func runRetention(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "retention")
	resolve := chFlags(fs)
	dry := fs.Bool("dry-run", false, "only list each table's retention")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := resolve()
	if err != nil {
		return err
	}
	if *dry {
		tg := schema.Target{Database: cfg.Database, RetentionDays: cfg.RetentionDays}
		for _, t := range schema.Tables() {
			d := tg.Retention(t)
			if d == 0 {
				fmt.Fprintf(e.stdout, "%-20s keep forever\n", t.Name)
				continue
			}
			fmt.Fprintf(e.stdout, "%-20s %d days\n", t.Name, d)
		}
		return nil
	}
	c, err := open(ctx, cfg, logger(e))
	if err != nil {
		return err
	}
	defer c.Close()
	dropped, err := c.EnforceRetention(ctx, time.Now())
	for _, d := range dropped {
		fmt.Fprintf(e.stdout, "dropped %s partition %s (ended %s)\n", d.Table, d.Partition, d.End.Format(time.DateOnly))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d partition(s) dropped\n", len(dropped))
	return nil
}
