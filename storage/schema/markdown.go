package schema

import (
	"fmt"
	"strings"
)

// Markdown renders a column reference of every table, for docs/SCHEMA.md.
func Markdown() string {
	var b strings.Builder
	for _, t := range append(Tables(), migrationsTable) {
		fmt.Fprintf(&b, "### `%s`\n\n%s\n\n", t.Name, t.Doc)
		fmt.Fprintf(&b, "Engine `%s(%s)`", t.Engine, t.EngineArgs)
		if p := t.PartitionExpr(); p != "" {
			fmt.Fprintf(&b, ", `PARTITION BY %s`", p)
		}
		fmt.Fprintf(&b, ", `ORDER BY (%s)`", strings.Join(t.OrderBy, ", "))
		if t.RetentionDays > 0 {
			fmt.Fprintf(&b, ", retention %d days", t.RetentionDays)
		}
		if t.ShardingKey != "" {
			fmt.Fprintf(&b, ", sharding key `%s`", t.ShardingKey)
		}
		b.WriteString(".\n\n")
		writeColumns(&b, t.Columns)
		b.WriteString("\n")
	}
	for _, v := range Views() {
		fmt.Fprintf(&b, "### `%s` (materialized view)\n\n`%s` → `%s`:\n\n```sql\n%s\n```\n\n", v.Name, v.From, v.To,
			strings.ReplaceAll(v.Select, "{from}", v.From))
	}
	for _, v := range QueryViews() {
		fmt.Fprintf(&b, "### `%s` (view)\n\n%s Reads %s.\n\n", v.Name, v.Doc, "`"+strings.Join(v.Reads(), "`, `")+"`")
		writeColumns(&b, v.Columns)
		fmt.Fprintf(&b, "\n```sql\n%s\n```\n\n", v.sql("fleetwatch"))
	}
	b.WriteString("¹ `LowCardinality(String)` on the modern profile, `String` on the legacy one.\n")
	return b.String()
}

// writeColumns writes the column table of a table or view.
func writeColumns(b *strings.Builder, cols []Column) {
	b.WriteString("| column | type | meaning |\n|---|---|---|\n")
	for _, c := range cols {
		typ := c.Type
		if c.LowCardinality {
			typ = "LowCardinality(" + typ + ")¹"
		}
		fmt.Fprintf(b, "| `%s` | `%s` | %s |\n", c.Name, typ, strings.ReplaceAll(c.Comment, "|", `\|`))
	}
}
