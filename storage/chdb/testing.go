package chdb

import (
	"os"
	"testing"
)

// OpenTest opens a chDB session for a test, with its data in a temporary
// directory and closed at cleanup. Without the library the test is
// skipped, except under CI=true, where it fails: CI must never pass by
// skipping.
func OpenTest(tb testing.TB) *Session {
	tb.Helper()
	wd, _ := os.Getwd()
	lib, err := FindLibrary(wd)
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("CI=true and %v", err)
		}
		tb.Skipf("skipping: %v", err)
	}
	s, err := Open(lib, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}
