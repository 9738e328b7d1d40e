package main

import (
	"context"
	"fmt"

	"github.com/fleetwatch/fleetwatch/lib/buildinfo"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

func runMigrate(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "migrate")
	resolve := chFlags(fs)
	print := fs.Bool("print", false, "print the SQL instead of running it")
	profile := fs.String("profile", "", "DDL profile: auto (from the server's version), legacy (ClickHouse < 20.3) or modern (default: the DSN's or config's, else auto); with --print, legacy and modern need no server")
	cluster := fs.String("cluster", "", "render ON CLUSTER DDL with Replicated and Distributed tables for this cluster (overrides the DSN's cluster=)")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch *profile {
	case "", storage.ProfileAuto, storage.ProfileLegacy, storage.ProfileModern:
	default:
		return badUsage(fs, "--profile %q: want auto, legacy or modern", *profile)
	}
	cfg, err := resolve()
	if err != nil {
		return err
	}
	if *cluster != "" {
		cfg.Cluster = *cluster
	}
	if *profile != "" {
		cfg.Profile = *profile
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if *print {
		tg, err := storage.ResolveTarget(ctx, cfg)
		if err != nil {
			return fmt.Errorf("profile auto renders the schema for the server's version, and asking the server failed: %w\n"+
				"(or print without a server: --profile legacy for ClickHouse before 20.3, --profile modern for 20.3 and later)", explain(ctx, cfg, err))
		}
		fmt.Fprint(e.stdout, storage.RenderAll(tg))
		return nil
	}
	c, err := createAndOpen(ctx, cfg, logger(e))
	if err != nil {
		return err
	}
	defer c.Close()
	rep, err := c.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: ClickHouse %s at %v, database %s, profile %s\n",
		buildinfo.String("fleetctl"), c.ServerVersion(), cfg.Addrs, cfg.Database, c.Features().Name())
	for _, m := range rep.Applied {
		fmt.Fprintf(e.stdout, "applied   %04d_%s\n", m.Version, m.Name)
	}
	fmt.Fprintf(e.stdout, "%d migration(s) applied, %d already present; %d tables\n", len(rep.Applied), rep.AlreadyApplied, len(schema.Tables()))
	for _, d := range rep.Drifted {
		fmt.Fprintf(e.stdout, "note: %s was applied with different SQL (profile or retention changed since); left as is\n", d)
	}
	return nil
}

func runVersion(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "version")
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, buildinfo.String("fleetctl"))
	return nil
}
