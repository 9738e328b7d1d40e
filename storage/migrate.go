package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// MigrationReport says what Migrate did.
type MigrationReport struct {
	Applied []schema.Migration
	// AlreadyApplied counts migrations found in the ledger.
	AlreadyApplied int
	// Drifted lists applied migrations whose SQL would render differently now
	// (another profile or retention); they are not re-applied.
	Drifted []string
}

// Checksum is the sha256 of a migration's rendered SQL.
func Checksum(stmts []string) string {
	h := sha256.New()
	for _, s := range stmts {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Migrate applies every migration not yet in the schema_migrations ledger, in
// order. It is idempotent: statements use IF NOT EXISTS and applied versions
// are skipped, so running it twice leaves the same schema. The database must
// exist (see CreateDatabase).
func (c *Client) Migrate(ctx context.Context) (MigrationReport, error) {
	var rep MigrationReport
	tg := c.Target()
	for _, stmt := range schema.Bootstrap(tg)[1:] {
		if err := c.Exec(ctx, stmt); err != nil {
			return rep, fmt.Errorf("create migrations ledger: %w", err)
		}
	}
	applied, err := c.appliedMigrations(ctx)
	if err != nil {
		return rep, err
	}
	for _, m := range schema.Migrations() {
		stmts := m.Statements(tg)
		sum := Checksum(stmts)
		if prev, ok := applied[m.Version]; ok {
			rep.AlreadyApplied++
			if prev != sum {
				rep.Drifted = append(rep.Drifted, fmt.Sprintf("%04d_%s", m.Version, m.Name))
			}
			continue
		}
		for i, stmt := range stmts {
			if err := c.execStep(ctx, stmt); err != nil {
				if ex, ok := Exception(err); ok && ex.Code == codeDuplicateColumn {
					continue // ADD COLUMN re-run after a crash mid-migration
				}
				return rep, fmt.Errorf("migration %04d_%s statement %d/%d %s: %w", m.Version, m.Name, i+1, len(stmts), snippet(stmt), err)
			}
		}
		if err := c.recordMigration(ctx, m, sum); err != nil {
			return rep, err
		}
		c.log.Info("applied migration", "version", m.Version, "name", m.Name, "statements", len(stmts), "profile", c.features.Name())
		rep.Applied = append(rep.Applied, m)
	}
	if len(rep.Drifted) > 0 {
		c.log.Warn("applied migrations differ from what this build would render (profile or retention changed since); left as they are", "migrations", strings.Join(rep.Drifted, ","))
	}
	return rep, nil
}

// execStep runs one migration statement: on the connected server; for a
// statement marked schema.PerShard, on one replica of each shard of the
// cluster (the first that answers, in system.clusters order); for one
// marked schema.EveryServer, on every server of the cluster.
func (c *Client) execStep(ctx context.Context, stmt string) error {
	exec := func(conn driver.Conn) error { return conn.Exec(ctx, stmt) }
	switch {
	case strings.HasPrefix(stmt, schema.PerShard):
		return c.onCluster(ctx, false, exec)
	case strings.HasPrefix(stmt, schema.EveryServer):
		return c.onCluster(ctx, true, exec)
	default:
		return c.conn.Exec(ctx, stmt)
	}
}

// onCluster calls f with a connection to one replica of each shard of the
// configured cluster (the first that answers), or to every server when
// every is set.
func (c *Client) onCluster(ctx context.Context, every bool, f func(driver.Conn) error) error {
	shards, err := c.clusterShards(ctx)
	if err != nil {
		return err
	}
	targets := shards
	if every {
		targets = nil
		for _, sh := range shards {
			for _, a := range sh {
				targets = append(targets, []string{a})
			}
		}
	}
	for _, addrs := range targets {
		cfg := c.cfg
		cfg.Addrs = addrs
		conn, err := dial(cfg, c.cfg.Database)
		if err == nil {
			err = f(conn)
			conn.Close()
		}
		if err != nil {
			return fmt.Errorf("on %s: %w", strings.Join(addrs, ","), err)
		}
	}
	return nil
}

// clusterShards lists, per shard of the configured cluster, the native
// addresses of its replicas as the servers' <remote_servers> names them.
func (c *Client) clusterShards(ctx context.Context) ([][]string, error) {
	var res chsql.Result
	shard, host, port := res.Int("shard_num"), res.Str("host_name"), res.Int("port")
	byShard := map[int64][]string{}
	var order []int64
	q := "SELECT shard_num, host_name, toInt64(port) AS port FROM system.clusters WHERE cluster = " + chsql.String(c.cfg.Cluster) + " ORDER BY shard_num, replica_num"
	if err := res.ForRows(ctx, c, q, func(r int) {
		s := shard.At(r)
		if _, ok := byShard[s]; !ok {
			order = append(order, s)
		}
		byShard[s] = append(byShard[s], net.JoinHostPort(host.At(r), strconv.FormatInt(port.At(r), 10)))
	}); err != nil {
		return nil, fmt.Errorf("list the shards of cluster %s: %w", c.cfg.Cluster, err)
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("cluster %q is not in system.clusters of %s: check <remote_servers>", c.cfg.Cluster, strings.Join(c.cfg.Addrs, ","))
	}
	out := make([][]string, 0, len(order))
	for _, s := range order {
		out = append(out, byShard[s])
	}
	return out, nil
}

func (c *Client) appliedMigrations(ctx context.Context) (map[int]string, error) {
	out := map[int]string{}
	var res chsql.Result
	v, sum := res.Int("version"), res.Str("checksum")
	if err := res.ForRows(ctx, c, LedgerSQL(c.cfg.Database), func(r int) { out[int(v.At(r))] = sum.At(r) }); err != nil {
		return nil, fmt.Errorf("read migrations ledger: %w", err)
	}
	return out, nil
}

func (c *Client) recordMigration(ctx context.Context, m schema.Migration, sum string) error {
	b, err := c.conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.%s (version, name, checksum, applied_at, server_version, profile)", c.cfg.Database, schema.MigrationsTable))
	if err != nil {
		return fmt.Errorf("record migration %d: %w", m.Version, err)
	}
	defer b.Close()
	if err := b.Append(uint32(m.Version), m.Name, sum, time.Now().UTC(), c.version.String(), c.features.Name()); err != nil {
		return fmt.Errorf("record migration %d: %w", m.Version, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("record migration %d: %w", m.Version, err)
	}
	return nil
}

// AppliedVersions lists the migration versions recorded in the ledger, ascending.
func (c *Client) AppliedVersions(ctx context.Context) ([]int, error) {
	m, err := c.appliedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(m))
	for _, mig := range schema.Migrations() {
		if _, ok := m[mig.Version]; ok {
			out = append(out, mig.Version)
		}
	}
	return out, nil
}

// RenderAll returns the full SQL Migrate would run on an empty database for tg,
// with a comment line before each migration.
func RenderAll(tg schema.Target) string {
	var b strings.Builder
	fmt.Fprintf(&b, "-- Fleetwatch schema, profile %s", tg.Features.Name())
	if tg.Cluster != "" {
		fmt.Fprintf(&b, ", cluster %s", tg.Cluster)
	}
	b.WriteString("\n\n-- bootstrap\n")
	for _, s := range schema.Bootstrap(tg) {
		b.WriteString(s + ";\n\n")
	}
	for _, m := range schema.Migrations() {
		fmt.Fprintf(&b, "-- %04d_%s\n", m.Version, m.Name)
		for _, s := range m.Statements(tg) {
			b.WriteString(s + ";\n\n")
		}
	}
	return b.String()
}

// OptimizeFinal merges every part of table (a logical table name, such as
// "gpu_samples") into one per partition, so that ReplacingMergeTree and
// AggregatingMergeTree rows are collapsed on disk. On a cluster it runs on
// one replica of each shard's local table, and replication carries the
// merge to the other replicas (ON CLUSTER would have every replica assign
// it); a shard whose table is empty is left alone (18.16 fails OPTIMIZE of
// an empty Replicated table with "Unknown log entry type").
func (c *Client) OptimizeFinal(ctx context.Context, table string) error {
	tg := c.Target()
	stmt := fmt.Sprintf("OPTIMIZE TABLE %s.%s FINAL", c.cfg.Database, tg.Physical(table))
	var err error
	if tg.Cluster == "" {
		err = c.conn.Exec(ctx, stmt)
	} else {
		parts := "SELECT count() FROM system.parts WHERE active AND database = " + chsql.String(c.cfg.Database) + " AND table = " + chsql.String(tg.Physical(table))
		err = c.onCluster(ctx, false, func(conn driver.Conn) error {
			var n uint64
			if err := conn.QueryRow(ctx, parts).Scan(&n); err != nil || n == 0 {
				return err
			}
			return conn.Exec(ctx, stmt)
		})
	}
	if err != nil {
		return fmt.Errorf("optimize %s: %w", table, err)
	}
	return nil
}
