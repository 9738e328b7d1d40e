package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// The users.d file fleetctl writes, on a real ClickHouse 18.16: every
// command that only reads works as the generated reader, with the password
// from its file passed through the environment (never on the command
// line), and the reader cannot write.
func TestGeneratedReaderRunsEveryReadOnlyCommand(t *testing.T) {
	srv := chtest.StartServer(t)
	c := chtest.OpenDB(t, srv, true)
	db := c.Config().Database
	secrets := t.TempDir()
	code, xml, errOut := fleetctl(t, "users", "--format", "users-xml", "--passwords", secrets, "--dsn", "clickhouse://"+srv.Addr()+"/"+db)
	if code != exitOK || !strings.Contains(errOut, "generated a password") {
		t.Fatalf("users: exit %d\n%s", code, errOut)
	}
	if fi, err := os.Stat(filepath.Join(secrets, schema.RoleReader)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("reader password file: %v %v", fi, err)
	}
	os.MkdirAll(filepath.Join(srv.Dir(), "users.d"), 0o755)
	if err := os.WriteFile(filepath.Join(srv.Dir(), "users.d", "fleetwatch.xml"), []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	pw, _ := os.ReadFile(filepath.Join(secrets, schema.RoleReader))
	t.Setenv(storage.DSNEnv, "clickhouse://fleetwatch_reader:"+strings.TrimSpace(string(pw))+"@"+srv.Addr()+"/"+db)
	// The server re-reads users.d every few seconds.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _, errOut = fleetctl(t, "sql", "SELECT 1")
		if code == exitOK || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, args := range [][]string{
		{"sql", "SELECT count() FROM incidents"},
		{"sql", "SELECT * FROM oncall_open_incidents"},
		{"incidents"},
		{"retention", "--dry-run"},
		{"migrate", "--print"},
	} {
		if code, out, errOut := fleetctl(t, args...); code != exitOK {
			t.Errorf("%v as the reader: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	for _, args := range [][]string{
		{"sql", "INSERT INTO gpu_events (ts, event, code) SELECT now(), 'xid', 79"},
		{"sql", "DROP TABLE incidents"},
		{"migrate"},
	} {
		if code, _, _ := fleetctl(t, args...); code != exitFailure {
			t.Errorf("%v as the reader: exit %d, want refused", args, code)
		}
	}
	// SQL roles need a server with access control, and say so.
	t.Setenv(storage.DSNEnv, "clickhouse://"+srv.Addr()+"/"+db)
	if code, _, errOut := fleetctl(t, "users", "--apply"); code != exitFailure || !strings.Contains(errOut, "users-xml") {
		t.Fatalf("users --apply on 18.16: exit %d\n%s", code, errOut)
	}
}

func TestCertsWritesThePairAndToken(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := fleetctl(t, "certs", "--dir", dir, "--hosts", "collector.example")
	if code != exitOK || !strings.Contains(out, "ca.pem") {
		t.Fatalf("certs: exit %d\n%s%s", code, out, errOut)
	}
	for _, f := range []string{"ca.pem", "server.pem", "server-key.pem", "client.pem", "client-key.pem", "token"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}
