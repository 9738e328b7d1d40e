// Package chsql renders Go values as ClickHouse SQL literals that parse the
// same on ClickHouse 18.16 and on current releases, for the queries the
// analyzer and alerting generate, and reads query results back from Arrow
// records. It is part of storage (ground layer) and imports nothing of ours,
// so that storage itself can use it.
package chsql

import (
	"math"
	"strconv"
	"strings"
	"time"
)

var escaper = strings.NewReplacer(`\`, `\\`, `'`, `\'`)

// String renders s as a string literal.
func String(s string) string { return "'" + escaper.Replace(s) + "'" }

// Strings renders an array of string literals.
func Strings(ss []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(String(s))
	}
	b.WriteByte(']')
	return b.String()
}

// Float renders f so that it parses back to the same float64; ±Inf and NaN
// render as inf, -inf and nan.
func Float(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0" // keep integral values Float64 in ClickHouse's eyes
	}
	return s
}

// Floats renders an array of Float64 literals.
func Floats(fs []float64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, f := range fs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(Float(f))
	}
	b.WriteByte(']')
	return b.String()
}

// Time renders t (to the second, UTC) as a DateTime expression.
func Time(t time.Time) string {
	return "toDateTime(" + strconv.FormatInt(t.Unix(), 10) + ")"
}

// Between renders the half-open time filter from <= col < to, each bound
// as Time renders it.
func Between(col string, from, to time.Time) string {
	return col + " >= " + Time(from) + " AND " + col + " < " + Time(to)
}

// In renders a parenthesised list of string literals, for col IN (...).
func In(ss []string) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, s := range ss {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(String(s))
	}
	b.WriteByte(')')
	return b.String()
}

// Ident renders a database or table name; callers pass names that
// schema.ValidIdent accepted.
func Ident(db, table string) string { return db + "." + table }
