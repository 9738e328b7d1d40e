package main

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/alerting/store"
	"github.com/fleetwatch/fleetwatch/lib/freeport"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chserver"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// Every command that connects says what to check, and only that: a server
// that is not running, a user or password it refuses, its HTTP port given
// for the native protocol.
func TestConnectionHints(t *testing.T) {
	t.Setenv(storage.DSNEnv, "")
	c := chtest.NewDB(t)
	srv := chtest.Server(t)
	db := c.Config().Database
	closed, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	const running, credentials, httpPort = "is ClickHouse running at", "check the user and password", "looks like ClickHouse's HTTP port; the native protocol is usually 9000"
	cases := []struct {
		name, dsn, want string
	}{
		{"refused", "clickhouse://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(closed)) + "/" + db, running},
		{"wrong password", "clickhouse://" + chserver.ReadOnlyUser + ":guess@" + srv.Addr() + "/" + db, credentials + ` (user "reader" with a password`},
		{"unknown user", "clickhouse://nobody@" + srv.Addr() + "/" + db, credentials + ` (user "nobody" with no password`},
		{"HTTP port", "clickhouse://" + srv.HTTPAddr() + "/" + db + "?dial_timeout=1s", srv.HTTPAddr() + " " + httpPort},
	}
	hints := []string{running, credentials, httpPort}
	for _, tc := range cases {
		for _, args := range [][]string{{"sql", "SELECT 1"}, {"incidents"}, {"migrate"}, {"retention"}} {
			t.Run(tc.name+"/"+args[0], func(t *testing.T) {
				code, _, errOut := fleetctl(t, append(args, "--dsn", tc.dsn)...)
				if code != exitFailure || !strings.Contains(errOut, tc.want) {
					t.Fatalf("exit %d, stderr:\n%s\nwant %q", code, errOut, tc.want)
				}
				for _, h := range hints {
					if !strings.Contains(tc.want, h) && strings.Contains(errOut, h) {
						t.Errorf("stderr also suggests %q:\n%s", h, errOut)
					}
				}
				if strings.Contains(errOut, "guess") {
					t.Errorf("stderr shows the password:\n%s", errOut)
				}
			})
		}
	}
}

// `fleetctl incidents` and `fleetctl sql` only read: they work for a user
// whose profile has readonly=1 (no DDL, no INSERT, no SET), which the
// private server has as chserver.ReadOnlyUser.
func TestReadOnlyUserReads(t *testing.T) {
	t.Setenv(storage.DSNEnv, "")
	c := chtest.NewDB(t)
	st, err := store.New(c)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Truncate(time.Second)
	if err := st.Save(context.Background(), []incident.Incident{{Key: "thermal/node/n1", Title: "thermal: node n1", Status: incident.StatusOpen,
		Severity: "critical", Family: "thermal", Class: "thermal", OpenedAt: t0, UpdatedAt: t0, FirstSeen: t0, LastSeen: t0}}); err != nil {
		t.Fatal(err)
	}
	reader := "clickhouse://" + chserver.ReadOnlyUser + ":" + chserver.ReadOnlyPassword + "@" + c.Config().Addrs[0] + "/" + c.Config().Database

	// The user is read-only indeed.
	if code, _, errOut := fleetctl(t, "sql", "--dsn", reader, "CREATE DATABASE reader_was_here"); code != exitFailure || !strings.Contains(errOut, "readonly") {
		t.Fatalf("DDL as the read-only user: exit %d\n%s", code, errOut)
	}
	code, out, errOut := fleetctl(t, "incidents", "--dsn", reader)
	if code != exitOK || !strings.Contains(out, "thermal/node/n1") || !strings.Contains(out, "OPEN") {
		t.Fatalf("incidents as the read-only user: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = fleetctl(t, "sql", "--dsn", reader, "--format", "csv", "SELECT count() AS n FROM incidents")
	if code != exitOK || out != "n\n1\n" {
		t.Fatalf("sql as the read-only user: exit %d\n%s%s", code, out, errOut)
	}
}
