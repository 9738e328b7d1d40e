// Package chtest is the ClickHouse test harness: a private clickhouse-server
// started on free loopback ports with its data in a temporary directory,
// shared by the tests of one package and removed when they finish. Each test
// gets its own database. It never touches a user's ClickHouse.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }
//
// and in a test:
//
//	db := chtest.NewDB(t) // *storage.Client on a fresh, migrated database
//
// When clickhouse-server is missing, tests skip with instructions, except
// under CI=true, where they fail: CI must never pass by skipping.
package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chcluster"
	"github.com/fleetwatch/fleetwatch/storage/chserver"
)

var shared struct {
	once sync.Once
	srv  *chserver.Server
	dir  string
	err  error
}

// Run runs the package's tests and stops the shared server afterwards.
func Run(m *testing.M) int {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Stop()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	return code
}

// requireBinary skips or fails t when clickhouse-server is not installed.
func requireBinary(t testing.TB) {
	t.Helper()
	if _, _, err := chserver.FindBinary(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
}

// Server returns the package's shared server, starting it on first use.
func Server(t testing.TB) *chserver.Server {
	t.Helper()
	requireBinary(t)
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "fleetwatch-ch-")
		if shared.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		shared.srv, shared.err = chserver.Start(ctx, chserver.Config{Dir: shared.dir})
	})
	if shared.err != nil {
		t.Fatalf("start private ClickHouse: %v", shared.err)
	}
	return shared.srv
}

// StartServer starts a dedicated server for one test (for tests that kill or
// restart it); it is stopped and its data removed at the end of the test.
func StartServer(t testing.TB) *chserver.Server {
	t.Helper()
	requireBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv, err := chserver.Start(ctx, chserver.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("start private ClickHouse: %v", err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// StartCluster starts a private 2-shard × 2-replica cluster with its own
// ZooKeeper for one test; it is stopped and its data removed at the end of
// the test. Like the single server, it skips with instructions when
// ZooKeeper or ClickHouse is missing, and fails under CI=true.
func StartCluster(t testing.TB) *chcluster.Cluster {
	t.Helper()
	requireBinary(t)
	requireZooKeeper(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl, err := chcluster.Start(ctx, chcluster.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("start private ClickHouse cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for s := 0; s < cl.Shards(); s++ {
				for r := 0; r < cl.Replicas(); r++ {
					t.Logf("shard %d replica %d (%s), last log lines:\n%s", s+1, r+1, cl.Server(s, r).Addr(), cl.Server(s, r).LogTail(8))
				}
			}
		}
		cl.Stop()
	})
	return cl
}

// requireZooKeeper skips or fails t when ZooKeeper is not installed.
func requireZooKeeper(t testing.TB) {
	t.Helper()
	if _, err := chcluster.FindZooKeeper(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
}

// StartZooKeeper starts a private standalone ZooKeeper for one test (the
// analyzers' coordination); it is stopped and its data removed at the end
// of the test. It skips with instructions when ZooKeeper is missing, and
// fails under CI=true.
func StartZooKeeper(t testing.TB) *chcluster.ZooKeeper {
	t.Helper()
	requireZooKeeper(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	zk, err := chcluster.StartZooKeeper(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("start private ZooKeeper: %v", err)
	}
	t.Cleanup(zk.Stop)
	return zk
}

// Config returns a storage config for srv with a fresh random database name.
func Config(srv *chserver.Server) storage.Config {
	cfg := storage.NewDefaultConfig()
	cfg.Addrs = []string{srv.Addr()}
	cfg.Database = "test_" + randomHex(6)
	cfg.DialTimeout = 2 * time.Second
	return cfg
}

// NewDB creates a fresh database on the shared server, applies the
// migrations and returns a client on it; the database is dropped at cleanup.
func NewDB(t testing.TB) *storage.Client {
	t.Helper()
	return OpenDB(t, Server(t), true)
}

// Write writes blocks through a storage.Writer with the default
// configuration, as the collector does; any error fails the test.
func Write(t testing.TB, c *storage.Client, blocks ...storage.Block) {
	t.Helper()
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if err := w.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

// OpenDB creates a fresh database on srv and returns a client on it, with the
// schema migrated when migrate is set. The database is dropped at cleanup.
func OpenDB(t testing.TB, srv *chserver.Server, migrate bool) *storage.Client {
	t.Helper()
	return openDB(t, Config(srv), migrate, srv.Running)
}

// OpenClusterDB creates a fresh database on every server of cl (ON CLUSTER),
// migrates it in cluster mode (Replicated tables named <table>_local,
// Distributed tables over them) and returns a client that fails over
// between all the servers. The database is dropped at cleanup.
func OpenClusterDB(t testing.TB, cl *chcluster.Cluster) *storage.Client {
	t.Helper()
	cfg := storage.NewDefaultConfig()
	cfg.Addrs = cl.Addrs()
	cfg.Database = "test_" + randomHex(6)
	cfg.Cluster = cl.Name()
	cfg.DialTimeout = 2 * time.Second
	return openDB(t, cfg, true, func() bool { return true })
}

// ClientOn returns a client on database db of one server only (for
// looking at one replica's local tables); it is closed at cleanup.
func ClientOn(t testing.TB, srv *chserver.Server, db string) *storage.Client {
	t.Helper()
	cfg := Config(srv)
	cfg.Database = db
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := storage.Open(ctx, cfg, storage.WithLogger(Logger(t)))
	if err != nil {
		t.Fatalf("open %s on %s: %v", db, srv.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func openDB(t testing.TB, cfg storage.Config, migrate bool, alive func() bool) *storage.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := storage.CreateDatabase(ctx, cfg); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	c, err := storage.Open(ctx, cfg, storage.WithLogger(Logger(t)))
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() {
		if alive() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = storage.DropDatabase(ctx, cfg)
		}
		c.Close()
	})
	if migrate {
		if _, err := c.Migrate(ctx); err != nil {
			t.Fatalf("migrate test database: %v", err)
		}
	}
	return c
}

// SampleRows makes n deterministic gpu_samples rows spread over nSeries
// series, all on one day (one partition), so each insert block is atomic.
// Rows first..first+n-1 of the same series and day are distinct records.
func SampleRows(first, n, nSeries int, day time.Time) *storage.GPUSampleBlock {
	b := &storage.GPUSampleBlock{}
	for i := first; i < first+n; i++ {
		b.Append(&storage.GPUSample{
			Time:   day.Add(time.Duration(i/nSeries) * time.Second),
			Metric: "DCGM_FI_DEV_GPU_TEMP",
			Series: uint64(i % nSeries),
			Value:  float64(i),
		})
	}
	return b
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}

// Logger returns a logger that writes through tb.Log, so a passing test stays
// quiet and a failing one shows what happened.
func Logger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// ClientExport runs query (which should end in a FORMAT clause) with
// clickhouse-client against srv and writes the result to path.
func ClientExport(tb testing.TB, srv *chserver.Server, query, path string) {
	tb.Helper()
	out, err := clientCommand(srv, query).Output()
	if err != nil {
		tb.Fatalf("clickhouse-client %q: %v", query, err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// ClientInsert feeds the file at path to clickhouse-client running query (an
// INSERT ... FORMAT) against srv, and returns the client's CPU time.
func ClientInsert(tb testing.TB, srv *chserver.Server, query, path string) time.Duration {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	cmd := clientCommand(srv, query)
	cmd.Stdin = f
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("clickhouse-client %q: %v: %s", query, err, stderr.String())
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

func clientCommand(srv *chserver.Server, query string) *exec.Cmd {
	port := srv.Addr()[strings.LastIndexByte(srv.Addr(), ':')+1:]
	return exec.Command("clickhouse-client", "--port", port, "--query", query)
}
