package coord_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/fleetwatch/fleetwatch/lib/coord"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// A record one member writes is read by another, survives its writer's
// session, is replaced by a later write, and keeps out a client without
// the group's credential.
func TestRecordsAreSharedAndOutliveTheirWriter(t *testing.T) {
	server := chtest.StartZooKeeper(t)
	auth := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(auth, []byte("fleetwatch:s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := coord.NewDefaultConfig()
	cfg.Servers, cfg.Root, cfg.AuthFile = []string{server.Addr()}, "/recordtest", auth
	cfg.SessionTimeout, cfg.Poll = 2*time.Second, 200*time.Millisecond
	w := &work{t: t, on: map[string]string{}, leaders: map[string]bool{}}

	a, err := coord.NewMember(withID(cfg, "a"), "g", nil, w.member("a"), chtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Record("rollbacks", "k"); !errors.Is(err, coord.ErrNoSession) {
		t.Fatalf("record before Run: %v, want %v", err, coord.ErrNoSession)
	}
	stopA := startMember(t, a)
	waitFor(t, "a has a session", 20*time.Second, func() bool { return a.Status().Session })

	const key = "ranker/v2@2026-12-06T10:00:00Z" // slashes and colons are escaped
	if _, ok, err := a.Record("rollbacks", key); err != nil || ok {
		t.Fatalf("unwritten record: ok=%v err=%v", ok, err)
	}
	if err := a.SetRecord("rollbacks", key, []byte("pending")); err != nil {
		t.Fatal(err)
	}
	if err := a.SetRecord("bad/kind", key, nil); err == nil {
		t.Error("a kind with a slash was accepted")
	}
	stopA() // its session ends; the record stays

	b := runMember(t, withID(cfg, "b"), nil, w)
	waitFor(t, "b has a session", 20*time.Second, func() bool { return b.Status().Session })
	if data, ok, err := b.Record("rollbacks", key); err != nil || !ok || string(data) != "pending" {
		t.Fatalf("b reads %q ok=%v err=%v; want the record a wrote", data, ok, err)
	}
	if err := b.SetRecord("rollbacks", key, []byte("done")); err != nil {
		t.Fatal(err)
	}
	if data, _, err := b.Record("rollbacks", key); err != nil || string(data) != "done" {
		t.Fatalf("after the second write: %q, %v", data, err)
	}

	client := func(cred string) *zk.Conn { return zkClient(t, server.Addr(), cred) }
	const dir = "/recordtest/g/records/rollbacks"
	kids, _, err := client("fleetwatch:s3cret").Children(dir)
	if err != nil || len(kids) != 1 {
		t.Fatalf("record nodes %v, %v; want one", kids, err)
	}
	if _, _, err := client("").Get(dir + "/" + kids[0]); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("a client without the credential reads a record: %v, want %v", err, zk.ErrNoAuth)
	}
}

func withID(c coord.Config, id string) coord.Config {
	c.MemberID = id
	return c
}

// zkClient is a plain ZooKeeper client with the digest credential cred
// ("user:password"; none when empty), closed when the test ends.
func zkClient(t *testing.T, addr, cred string) *zk.Conn {
	t.Helper()
	conn, _, err := zk.Connect([]string{addr}, 4*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	if cred != "" {
		if err := conn.AddAuth("digest", []byte(cred)); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}
