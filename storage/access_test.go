package storage_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// The users schema.UsersXML renders, loaded into a real ClickHouse 18.16:
// the reader reads everything and can change nothing; the ingest and
// analyzer users write their tables and are refused DDL. (Per-table limits,
// such as the ingest user not reading incidents, need SQL access control,
// which 18.16 lacks: schema.GrantStatements holds them for current servers.)
func TestLeastPrivilegeUsersOnARealServer(t *testing.T) {
	srv := chtest.StartServer(t)
	admin := chtest.OpenDB(t, srv, true)
	db := admin.Config().Database
	users := map[string]string{schema.RoleIngest: "collector", schema.RoleAnalyzer: "analyzer", schema.RoleReader: "grafana"}
	passwords, hashes := map[string]string{}, map[string]string{}
	for role := range users {
		passwords[role] = role + "-secret"
		sum := sha256.Sum256([]byte(passwords[role]))
		hashes[role] = hex.EncodeToString(sum[:])
	}
	xml, err := schema.UsersXML(schema.Target{Database: db}, users, hashes, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(srv.Dir(), "users.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(srv.Dir(), "users.d", "fleetwatch.xml"), []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	as := func(role string) *storage.Client {
		t.Helper()
		cfg := admin.Config()
		cfg.Username, cfg.Password = users[role], passwords[role]
		if role == schema.RoleReader {
			// The reader's password comes from a file, as a mounted
			// Secret would hold it (with a trailing newline).
			f := filepath.Join(t.TempDir(), "password")
			if err := os.WriteFile(f, []byte(passwords[role]+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg.Password, cfg.PasswordFile = "", f
		}
		// The server re-reads its users every few seconds.
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := storage.Open(ctx, cfg)
			if err == nil {
				t.Cleanup(func() { c.Close() })
				return c
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s cannot log in: %v", role, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	ddl := []string{
		"CREATE TABLE " + db + ".intruder (a UInt8) ENGINE = MergeTree ORDER BY a",
		"ALTER TABLE " + db + ".incidents DELETE WHERE 1",
		"DROP TABLE " + db + ".gpu_events",
		"CREATE DATABASE intruder_" + db,
	}
	insertEvent := "INSERT INTO " + db + ".gpu_events (ts, event, code, message, node) SELECT now(), 'xid', 79, 'test', 'node-1'"
	insertIncident := "INSERT INTO " + db + ".incidents (key, version, updated_at, opened_at, status, title) SELECT 'k', 1, now(), now(), 'open', 't'"
	refused := func(c *storage.Client, who string, stmts ...string) {
		t.Helper()
		for _, s := range stmts {
			if err := c.Exec(ctx, s); err == nil {
				t.Errorf("%s may run %s", who, s)
			}
		}
	}
	allowed := func(c *storage.Client, who string, stmts ...string) {
		t.Helper()
		for _, s := range stmts {
			if err := c.Exec(ctx, s); err != nil {
				t.Errorf("%s may not run %s: %v", who, s, err)
			}
		}
	}

	reader := as(schema.RoleReader)
	missing := reader.Config()
	missing.PasswordFile = filepath.Join(t.TempDir(), "absent")
	if _, err := storage.Open(ctx, missing); err == nil || !strings.Contains(err.Error(), "password_file") {
		t.Errorf("a missing password file: %v, want an error naming password_file", err)
	}
	both := reader.Config()
	both.Password = "x"
	if err := both.Validate(); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("password and password_file both set: %v", err)
	}
	refused(reader, "the reader", append(ddl, insertEvent, insertIncident)...)
	for _, table := range []string{"incidents", "gpu_samples", "detections"} {
		var n uint64
		if err := reader.Conn().QueryRow(ctx, "SELECT count() FROM "+db+"."+table).Scan(&n); err != nil {
			t.Errorf("the reader cannot read %s: %v", table, err)
		}
	}
	ingest := as(schema.RoleIngest)
	refused(ingest, "the ingest user", ddl...)
	allowed(ingest, "the ingest user", insertEvent)
	analyzer := as(schema.RoleAnalyzer)
	refused(analyzer, "the analyzer", ddl...)
	allowed(analyzer, "the analyzer", insertIncident)

	// The tables are all still there.
	var tables uint64
	if err := admin.Conn().QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = '"+db+"' AND name IN ('gpu_events', 'incidents')").Scan(&tables); err != nil || tables != 2 {
		t.Fatalf("tables left: %d, %v", tables, err)
	}
	if strings.Contains(xml, "<password>") {
		t.Error("users.xml holds a plain-text password")
	}
}

// A least-privilege process checks the schema instead of creating it, and
// says who must apply it.
func TestRequireSchema(t *testing.T) {
	srv := chtest.Server(t)
	empty := chtest.OpenDB(t, srv, false)
	ctx := context.Background()
	err := empty.RequireSchema(ctx)
	if !errors.Is(err, storage.ErrSchemaMissing) || !strings.Contains(err.Error(), "fleetctl migrate") {
		t.Fatalf("unmigrated database: %v", err)
	}
	if _, err := empty.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := empty.RequireSchema(ctx); err != nil {
		t.Fatalf("migrated database: %v", err)
	}
}
