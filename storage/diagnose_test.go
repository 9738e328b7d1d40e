package storage_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/lib/freeport"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chserver"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// Each way of failing to reach a real server is told apart, and the hint
// names what to check.
func TestDiagnoseConnect(t *testing.T) {
	srv := chtest.Server(t)
	closed, err := freeport.Port() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		edit  func(*storage.Config)
		cause storage.ConnectCause
		hint  string
	}{
		{"connection refused", func(c *storage.Config) { c.Addrs = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(closed))} },
			storage.CauseRefused, "is ClickHouse running at 127.0.0.1:" + strconv.Itoa(closed) + "?"},
		{"wrong password", func(c *storage.Config) { c.Username, c.Password = chserver.ReadOnlyUser, "guess" },
			storage.CauseAuth, `check the user and password (user "reader" with a password`},
		{"unknown user", func(c *storage.Config) { c.Username = "nobody" },
			storage.CauseAuth, `check the user and password (user "nobody" with no password`},
		{"HTTP port", func(c *storage.Config) { c.Addrs = []string{srv.HTTPAddr()} },
			storage.CauseHTTPPort, srv.HTTPAddr() + " looks like ClickHouse's HTTP port; the native protocol is usually 9000"},
		{"no database", func(c *storage.Config) { c.Database = "not_there" },
			storage.CauseNoDatabase, "database not_there does not exist at " + srv.Addr()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := chtest.Config(srv)
			cfg.DialTimeout = time.Second
			c.edit(&cfg)
			_, err := storage.Open(context.Background(), cfg)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			d := storage.DiagnoseConnect(context.Background(), cfg, err)
			if d.Cause != c.cause || !strings.Contains(d.Hint(), c.hint) {
				t.Fatalf("%v: cause %d, hint %q; want %d and %q", err, d.Cause, d.Hint(), c.cause, c.hint)
			}
			if strings.Contains(d.Hint(), "guess") {
				t.Errorf("the hint shows the password: %s", d.Hint())
			}
		})
	}
	// An error that is none of those gets no hint.
	cfg := chtest.Config(srv)
	if d := storage.DiagnoseConnect(context.Background(), cfg, context.DeadlineExceeded); d.Cause != storage.CauseUnknown || d.Hint() != "" {
		t.Errorf("unrelated error: %+v %q", d, d.Hint())
	}
}

// ResolveTarget asks a server for its version through the default
// database, so it works before the database exists; legacy and modern need
// no server.
func TestResolveTarget(t *testing.T) {
	srv := chtest.Server(t)
	cfg := chtest.Config(srv) // a database that does not exist yet
	def := cfg
	def.Database = "default"
	c, err := storage.Open(context.Background(), def)
	if err != nil {
		t.Fatal(err)
	}
	v := c.ServerVersion()
	c.Close()
	cases := []struct {
		profile string
		addr    string
		want    schema.Features
	}{
		{storage.ProfileAuto, srv.Addr(), schema.FeaturesFor(v)},
		{storage.ProfileLegacy, "127.0.0.1:1", schema.Features{}},
		{storage.ProfileModern, "127.0.0.1:1", schema.Modern},
	}
	for _, c := range cases {
		cfg := cfg
		cfg.Profile, cfg.Addrs = c.profile, []string{c.addr}
		tg, err := storage.ResolveTarget(context.Background(), cfg)
		if err != nil || tg.Features != c.want || tg.Database != cfg.Database {
			t.Errorf("%s: %+v %v; want features %+v", c.profile, tg, err, c.want)
		}
	}
	cfg.Addrs = []string{"127.0.0.1:1"}
	if _, err := storage.ResolveTarget(context.Background(), cfg); err == nil {
		t.Error("auto without a server: no error")
	}
}
