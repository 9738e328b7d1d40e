package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

func runAnalyzer(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var o, e bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := run(ctx, args, &o, &e)
	return code, o.String(), e.String()
}

func TestFlags(t *testing.T) {
	if code, _, errOut := runAnalyzer(t, "--help"); code != 0 || !strings.Contains(errOut, "resumes where it stopped") || !strings.Contains(errOut, "-once") {
		t.Fatalf("--help: %d\n%s", code, errOut)
	}
	if code, _, errOut := runAnalyzer(t, "--bogus"); code != 2 || !strings.Contains(errOut, "bogus") {
		t.Fatalf("bad flag: %d %s", code, errOut)
	}
	if code, _, _ := runAnalyzer(t, "extra"); code != 2 {
		t.Fatalf("stray argument: %d", code)
	}
	if code, out, _ := runAnalyzer(t, "--version"); code != 0 || !strings.HasPrefix(out, "fleetwatch-analyzer ") {
		t.Fatalf("--version: %d %q", code, out)
	}
	if code, out, errOut := runAnalyzer(t, "--check-config", "--config", "../../deploy/analyzer.example.yaml"); code != 0 || out != "configuration is valid\n" {
		t.Fatalf("example config: %d %s%s", code, out, errOut)
	}
	code, _, errOut := runAnalyzer(t, "--check-config", "--config", "../../internal/analyzer/testdata/bad.yml")
	if code != 1 || !strings.Contains(errOut, "lateness") || !strings.Contains(errOut, "we9") {
		t.Fatalf("bad config: %d %s", code, errOut)
	}
	if code, _, errOut := runAnalyzer(t, "--log-level", "loud"); code != 2 || !strings.Contains(errOut, "log-level") {
		t.Fatalf("bad level: %d %s", code, errOut)
	}
}

func TestUnreachableClickHouse(t *testing.T) {
	code, _, errOut := runAnalyzer(t, "--dsn", "clickhouse://127.0.0.1:1/fw?dial_timeout=200ms", "--once", "--listen", "off")
	if code != 1 || !strings.Contains(errOut, "127.0.0.1:1") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

// --once against a real server: without --migrate it refuses a database
// that fleetctl migrate has not created; with it, it creates and migrates
// the database, evaluates the windows due now and exits.
func TestOnceAgainstClickHouse(t *testing.T) {
	srv := chtest.Server(t)
	cfg := chtest.Config(srv)
	t.Cleanup(func() {
		if c, err := storage.Open(context.Background(), cfg); err == nil {
			_ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+cfg.Database)
			c.Close()
		}
	})
	t.Setenv(storage.DSNEnv, "")
	dsn := "clickhouse://" + srv.Addr() + "/" + cfg.Database
	code, _, errOut := runAnalyzer(t, "--dsn", dsn, "--once", "--listen", "off")
	if code != 1 || !strings.Contains(errOut, "fleetctl migrate") {
		t.Fatalf("without the schema: exit %d:\n%s", code, errOut)
	}
	code, _, errOut = runAnalyzer(t, "--dsn", dsn, "--once", "--listen", "off", "--migrate")
	if code != 0 || !strings.Contains(errOut, "evaluated the windows due") {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	c, err := storage.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var n uint64
	if err := c.QueryScalar(context.Background(), "SELECT uniqExactIf(detector, detector IN ('drift', 'spc_models', 'spc_labels')) FROM "+cfg.Database+".analyzer_windows", &n); err != nil || n != 3 {
		t.Fatalf("%d of the drift and SPC detectors recorded windows (%v)", n, err)
	}
}
