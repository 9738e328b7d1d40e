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
// from the config file apply in every case.
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
			cfg.RetentionDays = base.RetentionDays
			return cfg, err
		}
		return storage.FromEnv(base)
	}
}

// connect creates the database if needed and opens a client.
func connect(ctx context.Context, cfg storage.Config, log *slog.Logger) (*storage.Client, error) {
	if err := storage.CreateDatabase(ctx, cfg); err != nil {
		return nil, fmt.Errorf("%w\n(is ClickHouse running? `fleetctl demo` starts a local one)", err)
	}
	c, err := storage.Open(ctx, cfg, storage.WithLogger(log))
	if err != nil {
		return nil, err
	}
	return c, nil
}

func logger(e *env) *slog.Logger {
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
