package telemetry

import (
	"fmt"
	"sort"
	"strings"
)

// Markdown renders the field catalog, the alias table and the XID table for
// docs/TELEMETRY.md.
func Markdown() string {
	var b strings.Builder
	b.WriteString("### Fields\n\n| metric | kind | unit | per link | meaning |\n|---|---|---|---|---|\n")
	for _, f := range Fields {
		link := ""
		if f.PerLink {
			link = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", f.Name, f.Kind, f.Unit, link, f.Help)
	}
	b.WriteString("\n### Other spellings accepted\n\n| name | is | multiply by |\n|---|---|---|\n")
	names := make([]string, 0, len(Aliases))
	for n := range Aliases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		a := Aliases[n]
		fmt.Fprintf(&b, "| `%s` | `%s` | %g |\n", n, a.Name, a.Factor)
	}
	b.WriteString("\n### XIDs\n\n| XID | meaning | class | first action | critical |\n|---|---|---|---|---|\n")
	codes := make([]int, 0, len(xids))
	for c := range xids {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		x := xids[c]
		crit := ""
		if x.Critical {
			crit = "yes"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s |\n", c, x.Meaning, x.Class, x.Action, crit)
	}
	return b.String()
}
