package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/fleetwatch/fleetwatch/storage"
)

// fileConfig is the part of a Fleetwatch YAML config file fleetctl reads.
type fileConfig struct {
	ClickHouse storage.Config `yaml:"clickhouse"`
}

// loadConfigFile reads the clickhouse section of a YAML file over the defaults.
// Unknown keys in that section are errors; other top-level sections are left
// to the programs that own them.
func loadConfigFile(path string) (storage.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return storage.Config{}, fmt.Errorf("read config: %w", err)
	}
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(data, &top); err != nil {
		return storage.Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	cfg := storage.NewDefaultConfig()
	node, ok := top["clickhouse"]
	if !ok {
		return cfg, nil
	}
	section, err := yaml.Marshal(&node)
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(section))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("config %s: clickhouse: %w", path, err)
	}
	return cfg, nil
}

// chFlags registers --dsn and --config and returns a function that resolves
// the ClickHouse config: --dsn, else $FLEETWATCH_CLICKHOUSE_DSN, else the
// config file's clickhouse section, else a local default. Retention settings
// from the config file apply in every case. A --dsn that does not parse is a
// usage error.
func chFlags(fs *flag.FlagSet) func() (storage.Config, error) {
	dsn := fs.String("dsn", "", "ClickHouse DSN (default $"+storage.DSNEnv+", else --config, else clickhouse://127.0.0.1:9000/fleetwatch)")
	file := fs.String("config", "", "YAML config file; its clickhouse: section is used (addrs, database, retention_days, ...)")
	return func() (storage.Config, error) {
		base := storage.NewDefaultConfig()
		if *file != "" {
			var err error
			if base, err = loadConfigFile(*file); err != nil {
				return base, err
			}
		}
		if *dsn != "" {
			cfg, err := storage.ParseDSN(*dsn)
			if err != nil {
				return cfg, badUsage(fs, "--dsn: %v", err)
			}
			cfg.RetentionDays = base.RetentionDays
			return storage.WithPasswordFileEnv(cfg), nil
		}
		return storage.FromEnv(base)
	}
}

// open connects to cfg.Database, which must exist. It creates nothing, so
// a read-only user can run every command that only reads.
func open(ctx context.Context, cfg storage.Config, log *slog.Logger) (*storage.Client, error) {
	c, err := storage.Open(ctx, cfg, storage.WithLogger(log))
	if err != nil {
		return nil, explain(ctx, cfg, err)
	}
	return c, nil
}

// createAndOpen creates the database if needed, then opens it: for the
// commands that write the schema (migrate, simulate).
func createAndOpen(ctx context.Context, cfg storage.Config, log *slog.Logger) (*storage.Client, error) {
	if err := storage.CreateDatabase(ctx, cfg); err != nil {
		return nil, explain(ctx, cfg, err)
	}
	return open(ctx, cfg, log)
}

// explain adds to a failure to reach ClickHouse what to check: whether it
// runs, the user and password, the port, the database.
func explain(ctx context.Context, cfg storage.Config, err error) error {
	d := storage.DiagnoseConnect(ctx, cfg, err)
	hint := d.Hint()
	switch d.Cause {
	case storage.CauseUnknown:
		return err
	case storage.CauseRefused:
		hint += "; `fleetctl demo` starts a local one"
	case storage.CauseNoDatabase:
		hint += " (`fleetctl migrate`)"
	}
	return fmt.Errorf("%w\n(%s)", err, hint)
}

func logger(e *env) *slog.Logger {
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
