package schema

import (
	"github.com/fleetwatch/fleetwatch/storage/chsql"

	"fmt"
	"strings"
)

// Column is one column of a table definition.
type Column struct {
	Name string
	// Type is the ClickHouse type as it runs on every supported server, e.g.
	// "String", "Float64", "Array(String)", "AggregateFunction(sum, Float64)".
	Type string
	// LowCardinality wraps a String type in LowCardinality(...) where the server supports it.
	LowCardinality bool
	// Codec is the compression codec list (without CODEC()), used where supported.
	Codec string
	// Default is a DEFAULT expression, if any.
	Default string
	// Comment documents the column; it is stored on the server (DESCRIBE shows it).
	Comment string
}

// Partitioning is how a table's parts are split by time. Retention on servers
// without TTL drops whole partitions, so it also sets the granularity of retention.
type Partitioning int

const (
	// PartitionNone keeps one partition (small, never-expiring tables).
	PartitionNone Partitioning = iota
	// PartitionDaily partitions by toYYYYMMDD(time column).
	PartitionDaily
	// PartitionMonthly partitions by toYYYYMM(time column).
	PartitionMonthly
)

// Engine is a MergeTree family member.
type Engine string

// Engines used by Fleetwatch tables.
const (
	MergeTree            Engine = "MergeTree"
	ReplacingMergeTree   Engine = "ReplacingMergeTree"
	AggregatingMergeTree Engine = "AggregatingMergeTree"
	SummingMergeTree     Engine = "SummingMergeTree"
)

// Index is a data-skipping index, rendered only where Features.SkipIndexes.
type Index struct {
	Name, Expr, Type string
	Granularity      int
}

// Table is a table definition, rendered for a server generation (Features) and
// a deployment shape (single node or cluster).
type Table struct {
	Name string
	// Doc is a one-line description, stored as the table comment in docs.
	Doc     string
	Columns []Column
	Engine  Engine
	// EngineArgs are the engine parameters, e.g. the version column of ReplacingMergeTree.
	EngineArgs string
	// TimeColumn is the column partitions and retention are computed from.
	TimeColumn string
	Partition  Partitioning
	OrderBy    []string
	// RetentionDays is the default retention; 0 keeps rows forever.
	RetentionDays int
	// ShardingKey routes rows to shards in cluster mode; rows that are the same
	// record must hash alike so ReplacingMergeTree can de-duplicate them.
	ShardingKey string
	Indexes     []Index
}

// View is a materialized view that writes into a table.
type View struct {
	Name string
	// From is the source table; To the target table (both unqualified names).
	From, To string
	// Select is the view's query; the literal {from} stands for the qualified source table.
	Select string
}

// Column returns the named column, or false.
func (t Table) Column(name string) (Column, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// ColumnNames lists the columns in definition order.
func (t Table) ColumnNames() []string { return columnNames(t.Columns) }

func columnNames(cs []Column) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}

// withSortColumn returns t with c added as its last column and last
// sorting-key column (see AddSortColumn).
func (t Table) withSortColumn(c Column) Table {
	t.Columns = append(append([]Column{}, t.Columns...), c)
	t.OrderBy = append(append([]string{}, t.OrderBy...), c.Name)
	return t
}

// withColumns returns t with columns appended (see AddColumns).
func (t Table) withColumns(cs ...Column) Table {
	t.Columns = append(append([]Column{}, t.Columns...), cs...)
	return t
}

// PartitionExpr is the PARTITION BY expression, or "" for PartitionNone.
func (t Table) PartitionExpr() string {
	switch t.Partition {
	case PartitionDaily:
		return "toYYYYMMDD(" + t.TimeColumn + ")"
	case PartitionMonthly:
		return "toYYYYMM(" + t.TimeColumn + ")"
	default:
		return ""
	}
}

func (c Column) render(tg Target) string {
	f := tg.Features
	var b strings.Builder
	b.WriteString(quoteIdent(c.Name))
	b.WriteByte(' ')
	if c.LowCardinality && f.LowCardinality {
		b.WriteString("LowCardinality(" + c.Type + ")")
	} else {
		b.WriteString(c.Type)
	}
	if c.Default != "" {
		b.WriteString(" DEFAULT " + c.Default)
	}
	if c.Comment != "" && tg.comments() {
		b.WriteString(" COMMENT " + chsql.String(c.Comment))
	}
	if c.Codec != "" && f.Codecs {
		b.WriteString(" CODEC(" + c.Codec + ")")
	}
	return b.String()
}

// quoteIdent quotes an identifier when it is not a plain word.
func quoteIdent(s string) string {
	if isPlainIdent(s) {
		return s
	}
	return "`" + strings.ReplaceAll(s, "`", "\\`") + "`"
}

func isPlainIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// ValidIdent reports whether s is usable as a database, table or cluster name
// without quoting.
func ValidIdent(s string) bool { return isPlainIdent(s) && len(s) <= 128 }

func (t Table) validate() error {
	var problems []string
	if !ValidIdent(t.Name) {
		problems = append(problems, "bad table name")
	}
	if len(t.Columns) == 0 {
		problems = append(problems, "no columns")
	}
	seen := map[string]bool{}
	for _, c := range t.Columns {
		if seen[c.Name] {
			problems = append(problems, "duplicate column "+c.Name)
		}
		seen[c.Name] = true
		if c.Type == "" {
			problems = append(problems, "column "+c.Name+" has no type")
		}
	}
	if t.Partition != PartitionNone || t.RetentionDays > 0 {
		if !seen[t.TimeColumn] {
			problems = append(problems, fmt.Sprintf("time column %q is not a column", t.TimeColumn))
		}
	}
	if t.RetentionDays > 0 && t.Partition == PartitionNone {
		problems = append(problems, "retention needs time partitions")
	}
	if len(t.OrderBy) == 0 {
		problems = append(problems, "no ORDER BY")
	}
	if len(problems) > 0 {
		return fmt.Errorf("table %s: %s", t.Name, strings.Join(problems, "; "))
	}
	return nil
}
