package schema

import (
	"github.com/fleetwatch/fleetwatch/storage/chsql"

	"errors"
	"fmt"
	"sort"
	"strings"
)

// Target says what DDL is rendered for: the database, the server's features,
// an optional cluster, and per-table retention overrides.
type Target struct {
	Database string
	// Cluster, when set, renders ON CLUSTER DDL, Replicated*MergeTree tables named
	// <table>_local and Distributed tables named <table> over them.
	Cluster  string
	Features Features
	// RetentionDays overrides Table.RetentionDays per table name; 0 keeps forever.
	RetentionDays map[string]int
}

// Validate checks names and retention overrides.
func (tg Target) Validate() error {
	var errs []error
	if !ValidIdent(tg.Database) {
		errs = append(errs, fmt.Errorf("database name %q: want letters, digits and _ (not starting with a digit)", tg.Database))
	}
	if tg.Cluster != "" && !ValidIdent(tg.Cluster) {
		errs = append(errs, fmt.Errorf("cluster name %q: want letters, digits and _ (not starting with a digit)", tg.Cluster))
	}
	known := map[string]Table{}
	for _, t := range Tables() {
		known[t.Name] = t
	}
	names := make([]string, 0, len(tg.RetentionDays))
	for n := range tg.RetentionDays {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		d := tg.RetentionDays[n]
		t, ok := known[n]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("retention for unknown table %q", n))
		case d < 0:
			errs = append(errs, fmt.Errorf("retention for %s: %d days is negative", n, d))
		case d > 0 && t.Partition == PartitionNone:
			errs = append(errs, fmt.Errorf("retention for %s: table is not time-partitioned", n))
		}
	}
	return errors.Join(errs...)
}

// Retention is the effective retention of t in days (0 = forever).
func (tg Target) Retention(t Table) int {
	if d, ok := tg.RetentionDays[t.Name]; ok {
		return d
	}
	return t.RetentionDays
}

// Physical is the name of the table that holds t's rows on each server:
// <name>_local in cluster mode, name otherwise.
func (tg Target) Physical(name string) string {
	if tg.Cluster != "" {
		return name + "_local"
	}
	return name
}

func (tg Target) qualified(name string) string { return tg.Database + "." + name }

// comments reports whether column comments are rendered. ClickHouse before
// 20.3 refuses a Replicated table whose columns carry comments when a second
// replica creates it ("Table structure in ZooKeeper is too different from
// local table structure"), so legacy cluster DDL leaves them out; the
// columns are documented in docs/SCHEMA.md either way.
func (tg Target) comments() bool { return tg.Cluster == "" || tg.Features.ReplicatedComments }

// PerShard marks a statement that, on a cluster, must run on one replica of
// each shard (Replicated tables replicate it to the shard's other replicas)
// instead of with ON CLUSTER. The marker is an SQL comment, so the statement
// still runs as printed.
const PerShard = "/* on one replica of each shard */ "

// EveryServer marks a statement that, on a cluster, must run on every
// server: ClickHouse refuses ON CLUSTER ALTERs of a Distributed table over
// replicated shards ("isn't replicated, but shard is replicated").
const EveryServer = "/* on every server */ "

// alterDistributed alters the Distributed table name on every server.
func (tg Target) alterDistributed(name, change string) string {
	return fmt.Sprintf("%sALTER TABLE %s %s", EveryServer, tg.qualified(name), change)
}

func (tg Target) perShard() string {
	if tg.Cluster == "" {
		return ""
	}
	return PerShard
}

// OnCluster is " ON CLUSTER name" in cluster mode and "" otherwise.
func (tg Target) OnCluster() string {
	if tg.Cluster == "" {
		return ""
	}
	return " ON CLUSTER " + tg.Cluster
}

// Step is one schema change of a migration.
type Step interface {
	// Statements renders the step for tg; each string is one SQL statement.
	Statements(tg Target) []string
}

// CreateTable creates a table (and its Distributed table in cluster mode).
type CreateTable struct{ Table Table }

// Statements implements Step.
func (s CreateTable) Statements(tg Target) []string {
	t := s.Table
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s%s\n(\n", tg.qualified(tg.Physical(t.Name)), tg.OnCluster())
	lines := make([]string, 0, len(t.Columns)+len(t.Indexes))
	for _, c := range t.Columns {
		lines = append(lines, "    "+c.render(tg))
	}
	if tg.Features.SkipIndexes {
		for _, ix := range t.Indexes {
			lines = append(lines, fmt.Sprintf("    INDEX %s %s TYPE %s GRANULARITY %d", ix.Name, ix.Expr, ix.Type, ix.Granularity))
		}
	}
	b.WriteString(strings.Join(lines, ",\n"))
	b.WriteString("\n)\n")
	fmt.Fprintf(&b, "ENGINE = %s\n", tg.engine(t))
	if p := t.PartitionExpr(); p != "" {
		fmt.Fprintf(&b, "PARTITION BY %s\n", p)
	}
	fmt.Fprintf(&b, "ORDER BY (%s)", strings.Join(t.OrderBy, ", "))
	if days := tg.Retention(t); days > 0 && tg.Features.TTL {
		fmt.Fprintf(&b, "\nTTL %s + toIntervalDay(%d)", t.TimeColumn, days)
	}
	out := []string{b.String()}
	if tg.Cluster != "" {
		key := t.ShardingKey
		if key == "" {
			key = "rand()"
		}
		out = append(out, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s AS %s\nENGINE = Distributed(%s, %s, %s, %s)",
			tg.qualified(t.Name), tg.OnCluster(), tg.qualified(tg.Physical(t.Name)),
			tg.Cluster, tg.Database, tg.Physical(t.Name), key))
	}
	return out
}

func (tg Target) engine(t Table) string {
	if tg.Cluster == "" {
		return fmt.Sprintf("%s(%s)", t.Engine, t.EngineArgs)
	}
	args := []string{
		chsql.String(fmt.Sprintf("/clickhouse/tables/{shard}/%s/%s", tg.Database, tg.Physical(t.Name))),
		chsql.String("{replica}"),
	}
	if t.EngineArgs != "" {
		args = append(args, t.EngineArgs)
	}
	return fmt.Sprintf("Replicated%s(%s)", t.Engine, strings.Join(args, ", "))
}

// CreateView creates a materialized view writing into an existing table. In
// cluster mode it reads and writes the local tables on every server.
type CreateView struct{ View View }

// Statements implements Step.
func (s CreateView) Statements(tg Target) []string {
	v := s.View
	sel := strings.ReplaceAll(v.Select, "{from}", tg.qualified(tg.Physical(v.From)))
	return []string{fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s%s TO %s AS\n%s",
		tg.qualified(v.Name), tg.OnCluster(), tg.qualified(tg.Physical(v.To)), sel)}
}

// AddColumns adds columns to an existing table (and its Distributed table).
// Servers without ADD COLUMN IF NOT EXISTS report DUPLICATE_COLUMN on a re-run,
// which the migration runner treats as already applied.
type AddColumns struct {
	Table   string
	Columns []Column
}

// Statements implements Step.
func (s AddColumns) Statements(tg Target) []string {
	ifNotExists := ""
	if tg.Features != (Features{}) {
		ifNotExists = "IF NOT EXISTS "
	}
	var out []string
	for _, c := range s.Columns {
		out = append(out, fmt.Sprintf("ALTER TABLE %s%s ADD COLUMN %s%s", tg.qualified(tg.Physical(s.Table)), tg.OnCluster(), ifNotExists, c.render(tg)))
	}
	if tg.Cluster != "" {
		for _, c := range s.Columns {
			out = append(out, tg.alterDistributed(s.Table, "ADD COLUMN "+ifNotExists+c.render(tg)))
		}
	}
	return out
}

// AddSortColumn adds a column to an existing table and appends it to the
// table's sorting key (ORDER BY), so that rows differing only in it are no
// longer folded by a ReplacingMergeTree; the primary key (the sparse index)
// stays as it was. Table is the table as it is after the step; Column names
// the column added, which must be its last sorting-key column. ClickHouse
// allows this in one ALTER (ADD COLUMN and MODIFY ORDER BY together) from
// 18.16 on; the Distributed table of a cluster only gains the column.
type AddSortColumn struct {
	Table  Table
	Column string
}

// Statements implements Step.
func (s AddSortColumn) Statements(tg Target) []string {
	var col Column
	for _, c := range s.Table.Columns {
		if c.Name == s.Column {
			col = c
		}
	}
	ifNotExists := ""
	if tg.Features != (Features{}) {
		ifNotExists = "IF NOT EXISTS " // re-running is then a no-op; 18.16 reports DUPLICATE_COLUMN instead
	}
	// ON CLUSTER refuses MODIFY ORDER BY before 20.3; on a cluster the ALTER
	// runs on one replica of each shard, and replication carries it to the
	// others.
	out := []string{fmt.Sprintf("%sALTER TABLE %s ADD COLUMN %s%s, MODIFY ORDER BY (%s)",
		tg.perShard(), tg.qualified(tg.Physical(s.Table.Name)), ifNotExists, col.render(tg), strings.Join(s.Table.OrderBy, ", "))}
	if tg.Cluster != "" {
		out = append(out, tg.alterDistributed(s.Table.Name, "ADD COLUMN "+ifNotExists+col.render(tg)))
	}
	return out
}

func (s AddSortColumn) validate() error {
	ob := s.Table.OrderBy
	if len(ob) == 0 || ob[len(ob)-1] != s.Column {
		return fmt.Errorf("table %s: %s must be the last sorting-key column", s.Table.Name, s.Column)
	}
	for _, c := range s.Table.Columns {
		if c.Name == s.Column {
			return nil
		}
	}
	return fmt.Errorf("table %s has no column %s", s.Table.Name, s.Column)
}

// Migration is one numbered, named schema change. Applied migrations are
// recorded in schema_migrations and never run again.
type Migration struct {
	Version int
	Name    string
	Steps   []Step
}

// Statements renders every step of m for tg.
func (m Migration) Statements(tg Target) []string {
	var out []string
	for _, s := range m.Steps {
		out = append(out, s.Statements(tg)...)
	}
	return out
}

// Bootstrap renders the statements that must exist before any migration: the
// database and the schema_migrations ledger.
func Bootstrap(tg Target) []string {
	out := []string{fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s%s", tg.Database, tg.OnCluster())}
	return append(out, CreateTable{Table: migrationsTable}.Statements(tg)...)
}

// MigrationsTable is the name of the ledger of applied migrations.
const MigrationsTable = "schema_migrations"

var migrationsTable = Table{
	Name: MigrationsTable,
	Doc:  "Ledger of applied schema migrations.",
	Columns: []Column{
		{Name: "version", Type: "UInt32", Comment: "migration number"},
		{Name: "name", Type: "String", Comment: "migration name"},
		{Name: "checksum", Type: "String", Comment: "sha256 of the SQL that was applied"},
		{Name: "applied_at", Type: "DateTime", Comment: "when it was applied (UTC)"},
		{Name: "server_version", Type: "String", Comment: "ClickHouse version it was applied on"},
		{Name: "profile", Type: "String", Comment: "feature profile: legacy or modern"},
	},
	Engine:     ReplacingMergeTree,
	EngineArgs: "applied_at",
	OrderBy:    []string{"version"},
}
