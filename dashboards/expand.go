package dashboards

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Expansion of a panel query into the SQL that reaches ClickHouse, in the
// two stages Grafana uses: the frontend replaces template variables
// ($name, ${name}, ${name:format}, [[name]]) and Grafana's globals
// ($__interval, $__rate_interval, ...); then grafana-clickhouse-datasource's
// backend replaces its macros ($__timeFilter(col), $__fromTime, ...;
// pkg/macros of the plugin, version 4). Unknown variables and macros are
// errors here, where Grafana would pass them through and let the query fail.

// Request is the context of one panel query.
type Request struct {
	From, To time.Time
	// Interval is the panel's interval: the range over max data points,
	// rounded, at least the panel's minimum interval.
	Interval time.Duration
	// Vars are the template variables' selected values; a multi-value
	// variable with "All" selected lists every value.
	Vars map[string][]string
	// Multi marks multi-value variables: those must be written with a
	// format (${name:singlequote} in SQL) so that several values stay valid.
	Multi map[string]bool
}

var varRef = regexp.MustCompile(`\$(\w+)|\[\[(\w+)(?::(\w+))?\]\]|\$\{(\w+)(?::([^}]+))?\}`)

// ExpandVariables replaces template variables and Grafana's global
// variables in s. lang is "sql" or "promql"; it decides how a variable
// without a format is written (PromQL: a regular expression).
func ExpandVariables(s string, r Request, lang string) (string, error) {
	var errs []string
	out := varRef.ReplaceAllStringFunc(s, func(m string) string {
		sub := varRef.FindStringSubmatch(m)
		name, format := sub[1], ""
		switch {
		case sub[2] != "":
			name, format = sub[2], sub[3]
		case sub[4] != "":
			name, format = sub[4], sub[5]
		}
		if g, ok := globalVar(name, r); ok {
			return g
		}
		if strings.HasPrefix(name, "__") {
			return m // a data source macro; the next stage expands it
		}
		vals, ok := r.Vars[name]
		if !ok {
			errs = append(errs, fmt.Sprintf("variable $%s is not defined", name))
			return m
		}
		if format == "" {
			if lang == "promql" {
				format = "regex"
			} else if r.Multi[name] {
				errs = append(errs, fmt.Sprintf("multi-value variable $%s needs a format in SQL, e.g. ${%s:singlequote}", name, name))
				return m
			}
		}
		v, err := formatValues(vals, format, r.Multi[name])
		if err != nil {
			errs = append(errs, fmt.Sprintf("$%s: %v", name, err))
			return m
		}
		if lang == "promql" && format == "regex" {
			// Grafana's Prometheus data source escapes for a regex inside a
			// PromQL string literal, so every backslash is doubled.
			v = strings.ReplaceAll(v, `\`, `\\`)
		}
		return v
	})
	if len(errs) > 0 {
		return out, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}

// globalVar is one of Grafana's built-in variables.
func globalVar(name string, r Request) (string, bool) {
	switch name {
	case "__interval":
		return promDuration(r.Interval), true
	case "__interval_ms":
		return strconv.FormatInt(r.Interval.Milliseconds(), 10), true
	case "__rate_interval":
		// Grafana: max(4 × scrape interval, interval + scrape interval);
		// the provisioned Prometheus scrape interval is 15s.
		return promDuration(max(4*15*time.Second, r.Interval+15*time.Second)), true
	case "__range":
		return promDuration(r.To.Sub(r.From)), true
	case "__range_s":
		return strconv.FormatInt(int64(r.To.Sub(r.From).Seconds()), 10), true
	}
	return "", false
}

func promDuration(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dm", int64(d/time.Minute))
	}
	return fmt.Sprintf("%ds", int64(d/time.Second))
}

// formatValues writes values the way Grafana's variable formats do.
func formatValues(vals []string, format string, multi bool) (string, error) {
	quoted := func(esc func(string) string) string {
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = "'" + esc(v) + "'"
		}
		return strings.Join(parts, ",")
	}
	switch format {
	case "singlequote":
		return quoted(strings.NewReplacer(`'`, `\'`).Replace), nil
	case "sqlstring":
		return quoted(strings.NewReplacer(`'`, `''`).Replace), nil
	case "percentencode":
		if multi {
			return percentEncode("{" + strings.Join(vals, ",") + "}"), nil
		}
		return percentEncode(strings.Join(vals, ",")), nil
	case "csv", "":
		return strings.Join(vals, ","), nil
	case "pipe":
		return strings.Join(vals, "|"), nil
	case "regex":
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = regexp.QuoteMeta(v)
		}
		if len(parts) == 1 {
			return parts[0], nil
		}
		return "(" + strings.Join(parts, "|") + ")", nil
	}
	return "", fmt.Errorf("format %q is not supported", format)
}

// percentEncode is Grafana's encodeURIComponentStrict: every byte but
// letters, digits and "-_.~" as %XX (UTF-8, upper-case hex).
func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// macro expands one plugin macro with its arguments.
type macro struct {
	args int // -1: any
	fn   func(args []string, r Request) string
}

func dateTime(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }
func dateTime64(t time.Time) string {
	return fmt.Sprintf("fromUnixTimestamp64Milli(%d)", t.UnixMilli())
}
func date(t time.Time) string { return fmt.Sprintf("toDate('%s')", t.UTC().Format(time.DateOnly)) }

func between(col string, lo, hi string) string {
	return fmt.Sprintf("%s >= %s AND %s <= %s", col, lo, col, hi)
}

// intervalSeconds is the plugin's $__interval_s: whole seconds, at least 1.
func intervalSeconds(r Request) int { return int(math.Max(r.Interval.Seconds(), 1)) }

// macros are grafana-clickhouse-datasource's (pkg/macros/macros.go, v4).
var macros = map[string]macro{
	"fromTime":      {0, func(_ []string, r Request) string { return dateTime(r.From) }},
	"toTime":        {0, func(_ []string, r Request) string { return dateTime(r.To) }},
	"fromTime_ms":   {0, func(_ []string, r Request) string { return dateTime64(r.From) }},
	"toTime_ms":     {0, func(_ []string, r Request) string { return dateTime64(r.To) }},
	"timeFilter":    {1, func(a []string, r Request) string { return between(a[0], dateTime(r.From), dateTime(r.To)) }},
	"timeFilter_ms": {1, func(a []string, r Request) string { return between(a[0], dateTime64(r.From), dateTime64(r.To)) }},
	"dateFilter":    {1, func(a []string, r Request) string { return between(a[0], date(r.From), date(r.To)) }},
	"dateTimeFilter": {2, func(a []string, r Request) string {
		return "(" + between(a[0], date(r.From), date(r.To)) + ") AND (" + between(a[1], dateTime(r.From), dateTime(r.To)) + ")"
	}},
	"timeInterval": {1, func(a []string, r Request) string {
		return fmt.Sprintf("toStartOfInterval(toDateTime(%s), INTERVAL %d second)", a[0], intervalSeconds(r))
	}},
	"timeInterval_ms": {1, func(a []string, r Request) string {
		return fmt.Sprintf("toStartOfInterval(toDateTime64(%s, 3), INTERVAL %d millisecond)", a[0], max(r.Interval.Milliseconds(), 1))
	}},
	"interval_s": {0, func(_ []string, r Request) string { return strconv.Itoa(intervalSeconds(r)) }},
}

func init() { macros["dt"] = macros["dateTimeFilter"] }

var macroRef = regexp.MustCompile(`\$__(\w+)`)

// ExpandMacros replaces the plugin's macros in sql. Arguments are split at
// commas and trimmed; they may not contain parentheses, which plugin
// versions before 4.x do not parse.
func ExpandMacros(sql string, r Request) (string, error) {
	var b strings.Builder
	rest := sql
	for {
		loc := macroRef.FindStringSubmatchIndex(rest)
		if loc == nil {
			b.WriteString(rest)
			return b.String(), nil
		}
		name := rest[loc[2]:loc[3]]
		m, ok := macros[name]
		if !ok {
			return "", fmt.Errorf("unknown macro $__%s", name)
		}
		b.WriteString(rest[:loc[0]])
		rest = rest[loc[1]:]
		var args []string
		if strings.HasPrefix(rest, "(") {
			end := strings.IndexByte(rest, ')')
			if end < 0 {
				return "", fmt.Errorf("$__%s: unclosed argument list", name)
			}
			inner := rest[1:end]
			if strings.Contains(inner, "(") {
				return "", fmt.Errorf("$__%s(%s): arguments with parentheses are not portable across plugin versions", name, inner)
			}
			for _, a := range strings.Split(inner, ",") {
				args = append(args, strings.TrimSpace(a))
			}
			rest = rest[end+1:]
		}
		if m.args >= 0 && len(args) != m.args {
			return "", fmt.Errorf("$__%s: %d arguments, want %d", name, len(args), m.args)
		}
		b.WriteString(m.fn(args, r))
	}
}

// ExpandSQL expands a ClickHouse query: variables, then macros.
func ExpandSQL(sql string, r Request) (string, error) {
	s, err := ExpandVariables(sql, r, "sql")
	if err != nil {
		return "", err
	}
	return ExpandMacros(s, r)
}
