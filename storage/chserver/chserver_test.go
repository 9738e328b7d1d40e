package chserver_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/storage/chserver"
)

func requireServer(t *testing.T) {
	t.Helper()
	if _, _, err := chserver.FindBinary(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skip(err)
	}
}

func query(t *testing.T, s *chserver.Server, q string) string {
	t.Helper()
	resp, err := http.Post("http://"+s.HTTPAddr()+"/", "text/plain", strings.NewReader(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s", q, b)
	}
	return strings.TrimSpace(string(b))
}

func TestLifecycleKeepsPortsAndData(t *testing.T) {
	requireServer(t)
	dir := t.TempDir()
	ctx := context.Background()
	s, err := chserver.Start(ctx, chserver.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if !s.Running() || s.PID() == 0 {
		t.Fatal("not running after Start")
	}
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Fatalf("listens on %s, want loopback", s.Addr())
	}
	query(t, s, "CREATE TABLE default.t (x UInt8) ENGINE = MergeTree ORDER BY x")
	query(t, s, "INSERT INTO default.t VALUES (7)")
	addr := s.Addr()

	s.Kill()
	if s.Running() || s.PID() != 0 {
		t.Fatal("still running after Kill")
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Addr() != addr {
		t.Fatalf("address changed across restart: %s -> %s", addr, s.Addr())
	}
	if got := query(t, s, "SELECT x FROM default.t"); got != "7" {
		t.Fatalf("data lost across a crash: %q", got)
	}
	if err := s.Restart(ctx); err == nil {
		t.Fatal("Restart of a running server did not fail")
	}
	http.DefaultClient.CloseIdleConnections() // else a graceful stop waits for them
	s.Stop()
	s.Stop() // safe twice
	if _, err := os.Stat(filepath.Join(dir, "config.xml")); err != nil {
		t.Fatalf("config not in the server's directory: %v", err)
	}
}

func TestStartFailureSaysWhy(t *testing.T) {
	requireServer(t)
	// A port that is already taken makes the server exit at start-up.
	first, err := chserver.Start(context.Background(), chserver.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Stop()
	p, err := strconv.Atoi(first.Addr()[strings.LastIndexByte(first.Addr(), ':')+1:])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = chserver.Start(ctx, chserver.Config{Dir: t.TempDir(), TCPPort: p, StartTimeout: 10 * time.Second})
	if err == nil {
		t.Fatal("second server on the same port started")
	}
	if !strings.Contains(err.Error(), "clickhouse-server") && !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("unhelpful error: %v", err)
	}
}

func TestMissingBinary(t *testing.T) {
	_, err := chserver.Start(context.Background(), chserver.Config{Dir: t.TempDir(), Binary: "/nonexistent/clickhouse-server"})
	if err == nil {
		t.Fatal("no error")
	}
	if _, err := chserver.Start(context.Background(), chserver.Config{}); err == nil || !strings.Contains(err.Error(), "Dir") {
		t.Fatalf("empty Dir: %v", err)
	}
	if !errors.Is(chserver.ErrNoBinary, chserver.ErrNoBinary) || !strings.Contains(chserver.ErrNoBinary.Error(), "apt-get install") {
		t.Fatal("ErrNoBinary does not say how to install")
	}
}
