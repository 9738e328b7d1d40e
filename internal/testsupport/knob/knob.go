// Package knob reads the environment variables that tune tests and
// benchmarks (FLEETWATCH_BENCH_SAMPLES, FLEETWATCH_CANARY_SEEDS, ...): an
// unset variable gives the default, a malformed one fails the test with
// the variable's name.
package knob

import (
	"os"
	"strconv"
	"testing"
)

// Int returns the integer in the environment variable name, or def when it
// is unset or empty.
func Int(tb testing.TB, name string, def int64) int64 {
	tb.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return v
}
