package storage_test

import (
	"context"
	"os"
	"sort"
	"testing"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

// schemaSnapshot returns SHOW CREATE for every table and view in the database.
func schemaSnapshot(t *testing.T, c *storage.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	rows, err := c.Conn().Query(ctx, "SELECT name FROM system.tables WHERE database = ?", c.Config().Database)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	rows.Close()
	sort.Strings(names)
	out := map[string]string{}
	for _, n := range names {
		var ddl string
		if err := c.QueryScalar(ctx, "SHOW CREATE TABLE "+c.Config().Database+"."+n, &ddl); err != nil {
			t.Fatal(err)
		}
		out[n] = ddl
	}
	return out
}

func TestMigrateCreatesEveryTableAndIsIdempotent(t *testing.T) {
	c := chtest.OpenDB(t, chtest.Server(t), false)
	ctx := context.Background()

	rep, err := c.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Applied) != len(schema.Migrations()) || rep.AlreadyApplied != 0 {
		t.Fatalf("first run applied %d, already %d; want %d, 0", len(rep.Applied), rep.AlreadyApplied, len(schema.Migrations()))
	}
	first := schemaSnapshot(t, c)
	for _, tbl := range schema.Tables() {
		if _, ok := first[tbl.Name]; !ok {
			t.Errorf("table %s was not created", tbl.Name)
		}
	}
	for _, v := range schema.Views() {
		if _, ok := first[v.Name]; !ok {
			t.Errorf("view %s was not created", v.Name)
		}
	}
	for _, v := range schema.QueryViews() {
		if _, ok := first[v.Name]; !ok {
			t.Errorf("view %s was not created", v.Name)
		}
	}
	if _, ok := first[schema.MigrationsTable]; !ok {
		t.Errorf("%s was not created", schema.MigrationsTable)
	}

	rep, err = c.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Applied) != 0 || rep.AlreadyApplied != len(schema.Migrations()) || len(rep.Drifted) != 0 {
		t.Fatalf("second run: applied %d, already %d, drifted %v", len(rep.Applied), rep.AlreadyApplied, rep.Drifted)
	}
	second := schemaSnapshot(t, c)
	if len(first) != len(second) {
		t.Fatalf("table count changed: %d -> %d", len(first), len(second))
	}
	for name, ddl := range first {
		if second[name] != ddl {
			t.Errorf("%s changed on the second run:\n%s\n---\n%s", name, ddl, second[name])
		}
	}
	versions, err := c.AppliedVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != len(schema.Migrations()) {
		t.Errorf("ledger has %v", versions)
	}
}

func TestMigrateReportsDrift(t *testing.T) {
	srv := chtest.Server(t)
	c := chtest.OpenDB(t, srv, true)
	ctx := context.Background()
	cfg := c.Config()
	cfg.RetentionDays = map[string]int{"gpu_samples": 3}
	cfg.Profile = storage.ProfileModern // renders differently from what the legacy server got
	c2, err := storage.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	rep, err := c2.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Applied) != 0 || len(rep.Drifted) == 0 {
		t.Fatalf("applied %d, drifted %v; want 0 applied and drift reported", len(rep.Applied), rep.Drifted)
	}
}
