package chdb_test

import (
	"strings"
	"testing"

	"github.com/fleetwatch/fleetwatch/storage/chdb"
)

// session opens chDB for a test (see OpenTest).
func session(t *testing.T) *chdb.Session {
	t.Helper()
	return chdb.OpenTest(t)
}

func TestSmoke(t *testing.T) {
	s := session(t)
	out, err := s.Query("SELECT version(), 1 + 1", "TabSeparated")
	if err != nil {
		t.Fatal(err)
	}
	t.Log(out)
	if !strings.HasSuffix(strings.TrimSpace(out), "\t2") {
		t.Fatalf("got %q", out)
	}
	if _, err := s.Query("SELECT no_such_function()", "CSV"); err == nil {
		t.Fatal("bad SQL gave no error")
	}
}
