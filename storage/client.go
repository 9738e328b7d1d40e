// Package storage is Fleetwatch's ClickHouse layer: connection config, the
// versioned schema migrations (rendered by package schema for the server at
// hand), a columnar batch writer with retries that never drops a row silently,
// a streaming reader that yields Apache Arrow records, and partition-based
// retention for servers without TTL.
//
// Layer: ground (docs/ARCHITECTURE.md, "Layers"). Storage owns every table,
// the analyzer's included, and imports only the ground (fleet, lib/); every
// stage may import it.
package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// Client is a connection pool to one ClickHouse deployment, aware of the
// server's version and the schema profile that goes with it.
type Client struct {
	conn     driver.Conn
	cfg      Config
	version  schema.Version
	features schema.Features
	log      *slog.Logger
}

// Option adjusts Open.
type Option func(*Client)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// Open validates cfg, connects, pings and reads the server version. The
// database must exist; CreateDatabase makes it.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, log: slog.Default()}
	for _, o := range opts {
		o(c)
	}
	conn, v, err := connect(ctx, cfg, cfg.Database)
	if err != nil {
		return nil, err
	}
	c.conn, c.version, c.features = conn, v, cfg.features(v)
	return c, nil
}

// connect dials database, pings and reads the server version.
func connect(ctx context.Context, cfg Config, database string) (driver.Conn, schema.Version, error) {
	conn, err := dial(cfg, database)
	if err != nil {
		return nil, schema.Version{}, err
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, schema.Version{}, fmt.Errorf("connect to ClickHouse at %s (database %s): %w", strings.Join(cfg.Addrs, ","), database, err)
	}
	sv, err := conn.ServerVersion()
	if err != nil {
		conn.Close()
		return nil, schema.Version{}, fmt.Errorf("read ClickHouse server version: %w", err)
	}
	return conn, schema.Version{Major: int(sv.Version.Major), Minor: int(sv.Version.Minor), Patch: int(sv.Version.Patch)}, nil
}

// ResolveTarget returns what the schema is rendered for with cfg: the
// Target a Client opened with cfg would have. The legacy and modern
// profiles need no server; auto asks the server for its version, through
// the default database, so cfg.Database need not exist yet.
func ResolveTarget(ctx context.Context, cfg Config) (schema.Target, error) {
	if err := cfg.Validate(); err != nil {
		return schema.Target{}, err
	}
	if cfg.Profile != ProfileAuto {
		return cfg.target(cfg.features(schema.Version{})), nil
	}
	// The database itself first: a user limited to it (allow_databases, or
	// grants on it alone) may not use "default"; before the first migration
	// it does not exist yet, and "default" always does.
	conn, v, err := connect(ctx, cfg, cfg.Database)
	if err != nil {
		var errDefault error
		if conn, v, errDefault = connect(ctx, cfg, "default"); errDefault != nil {
			return schema.Target{}, err
		}
	}
	conn.Close()
	return cfg.target(cfg.features(v)), nil
}

// CreateDatabase connects to the server's default database and creates
// cfg.Database (ON CLUSTER when a cluster is configured).
func CreateDatabase(ctx context.Context, cfg Config) error {
	tg := schema.Target{Database: cfg.Database, Cluster: cfg.Cluster}
	return execOnDefault(ctx, cfg, schema.Bootstrap(tg)[0], "create database")
}

// DropDatabase drops cfg.Database and every table in it (on every node in
// cluster mode). The demo uses it to start each run from an empty database.
func DropDatabase(ctx context.Context, cfg Config) error {
	tg := schema.Target{Database: cfg.Database, Cluster: cfg.Cluster}
	return execOnDefault(ctx, cfg, "DROP DATABASE IF EXISTS "+cfg.Database+tg.OnCluster(), "drop database")
}

// execOnDefault runs a statement about cfg.Database from the default
// database, which always exists.
func execOnDefault(ctx context.Context, cfg Config, stmt, what string) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	conn, err := dial(cfg, "default")
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s %s at %s: %w", what, cfg.Database, strings.Join(cfg.Addrs, ","), err)
	}
	return nil
}

func dial(cfg Config, database string) (driver.Conn, error) {
	pw, err := cfg.password()
	if err != nil {
		return nil, err
	}
	opt := &clickhouse.Options{
		Addr:             cfg.Addrs,
		Auth:             clickhouse.Auth{Database: database, Username: cfg.Username, Password: pw},
		DialTimeout:      cfg.DialTimeout,
		ReadTimeout:      cfg.ReadTimeout,
		MaxOpenConns:     cfg.MaxOpenConns,
		MaxIdleConns:     cfg.MaxOpenConns,
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
		ClientInfo:       clickhouse.ClientInfo{Products: []struct{ Name, Version string }{{Name: "fleetwatch", Version: "0.1"}}},
	}
	switch cfg.Compression {
	case "lz4":
		opt.Compression = &clickhouse.Compression{Method: clickhouse.CompressionLZ4}
	case "zstd":
		opt.Compression = &clickhouse.Compression{Method: clickhouse.CompressionZSTD}
	}
	if cfg.TLS.Enabled {
		tc, err := cfg.TLS.LoadTLSConfig(context.Background()) // dial has no context: clickhouse.Open takes none
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		opt.TLS = tc
	}
	conn, err := clickhouse.Open(opt)
	if err != nil {
		return nil, fmt.Errorf("open ClickHouse client: %w", err)
	}
	return conn, nil
}

// Close closes the pool.
func (c *Client) Close() error { return c.conn.Close() }

// Config returns the configuration the client was opened with.
func (c *Client) Config() Config { return c.cfg }

// ServerVersion is the connected server's version.
func (c *Client) ServerVersion() schema.Version { return c.version }

// Features are the DDL extras in use for this server.
func (c *Client) Features() schema.Features { return c.features }

// Target is what the schema is rendered for on this server.
func (c *Client) Target() schema.Target { return c.cfg.target(c.features) }

// Conn exposes the underlying clickhouse-go connection for callers that need
// its full API (tests, tools). Prefer Exec, Writer and QueryArrow.
func (c *Client) Conn() driver.Conn { return c.conn }

// Exec runs one statement.
func (c *Client) Exec(ctx context.Context, sql string, args ...any) error {
	if err := c.conn.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("exec %s: %w", snippet(sql), err)
	}
	return nil
}

// QueryScalar runs a query returning one row and scans it into dest.
func (c *Client) QueryScalar(ctx context.Context, sql string, dest ...any) error {
	if err := c.conn.QueryRow(ctx, sql).Scan(dest...); err != nil {
		return fmt.Errorf("query %s: %w", snippet(sql), err)
	}
	return nil
}

func snippet(sql string) string {
	s := strings.Join(strings.Fields(sql), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// Exception returns the ClickHouse server exception inside err, if any.
func Exception(err error) (*clickhouse.Exception, bool) {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return ex, true
	}
	return nil, false
}
