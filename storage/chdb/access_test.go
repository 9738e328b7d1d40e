package chdb_test

import (
	"strings"
	"testing"

	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// The roles' CREATE ROLE and GRANT statements parse on a current ClickHouse
// (chDB has no user directory to run them in, so EXPLAIN AST checks the
// syntax; the grants' content is tested in storage/schema).
func TestGrantStatementsParseOnCurrentClickHouse(t *testing.T) {
	s := session(t)
	for _, tg := range []schema.Target{{Database: "fleetwatch"}, {Database: "fleetwatch", Cluster: "fleet"}} {
		stmts := schema.GrantStatements(tg)
		if len(stmts) < 10 {
			t.Fatalf("only %d statements", len(stmts))
		}
		for _, stmt := range stmts {
			out := mustQuery(t, s, "EXPLAIN AST "+stmt)
			if !strings.Contains(out, "Grant") && !strings.Contains(out, "Role") {
				t.Errorf("%s parsed as %q", stmt, out)
			}
		}
	}
	// And a statement that is not valid SQL does not parse: the check can fail.
	if _, err := s.Query("EXPLAIN AST GRANT INSERT ON TO fleetwatch_ingest", "TabSeparated"); err == nil {
		t.Fatal("a broken GRANT parsed")
	}
}
