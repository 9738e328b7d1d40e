package storage_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/lib/devcerts"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chserver"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// ClickHouse over TLS, on a real server with a private CA: the client
// verifies the server against the CA file and works; without the CA, the
// handshake fails and says so.
func TestTLSToARealServer(t *testing.T) {
	chtest.Server(t) // skips or fails like every server test when ClickHouse is missing
	certs, err := devcerts.Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv, err := chserver.Start(ctx, chserver.Config{Dir: t.TempDir(), TLSCert: certs.ServerCert, TLSKey: certs.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	dsn := func(params string) storage.Config {
		t.Helper()
		cfg, err := storage.ParseDSN("clickhouse://" + srv.TLSAddr() + "/default?dial_timeout=5s&secure=true" + params)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	c, err := storage.Open(ctx, dsn("&ca_file="+url.QueryEscape(certs.CA)))
	if err != nil {
		t.Fatalf("TLS with the private CA: %v\n%s", err, srv.LogTail(20))
	}
	defer c.Close()
	var one uint8
	if err := c.Conn().QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("query over TLS: %v", err)
	}
	if _, err := storage.Open(ctx, dsn("")); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("TLS without the CA: %v, want a certificate error", err)
	}
}
