package chdb_test

import (
	"os"
	"strings"
	"testing"

	"github.com/fleetwatch/fleetwatch/storage/chdb"
)

// session opens chDB for a test, failing under CI=true when the library is
// missing and skipping otherwise.
func session(t *testing.T) *chdb.Session {
	t.Helper()
	wd, _ := os.Getwd()
	lib, err := chdb.FindLibrary(wd)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	s, err := chdb.Open(lib, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
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
