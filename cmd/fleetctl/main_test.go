package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

func fleetctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code = run(ctx, args, &env{stdout: &o, stderr: &e})
	return code, o.String(), e.String()
}

func TestUsageAndUnknownCommand(t *testing.T) {
	if code, out, _ := fleetctl(t, "--help"); code != 0 || !strings.Contains(out, "migrate") {
		t.Fatalf("--help: %d %q", code, out)
	}
	if code, _, errOut := fleetctl(t, "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: %d %q", code, errOut)
	}
	if code, _, errOut := fleetctl(t, "migrate", "--bogus"); code != 2 || !strings.Contains(errOut, "Usage: fleetctl migrate") {
		t.Fatalf("bad flag: %d %q", code, errOut)
	}
	if code, out, _ := fleetctl(t, "version"); code != 0 || !strings.HasPrefix(out, "fleetctl ") {
		t.Fatalf("version: %d %q", code, out)
	}
}

func TestMigratePrintOffline(t *testing.T) {
	code, out, errOut := fleetctl(t, "migrate", "--print", "--profile", "modern", "--cluster", "fleet", "--dsn", "clickhouse://nowhere:1/fw")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"CREATE DATABASE IF NOT EXISTS fw ON CLUSTER fleet", "fw.gpu_samples_local", "Distributed(fleet, fw, gpu_samples_local", "LowCardinality(String)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if code, _, errOut := fleetctl(t, "migrate", "--print", "--profile", "newest"); code != 2 || !strings.Contains(errOut, `--profile "newest": want auto, legacy or modern`) {
		t.Fatalf("bad profile: %d %q", code, errOut)
	}
}

// --profile auto, as advertised, asks the server for its version, before
// the database exists; without a server it says so and how to print
// without one.
func TestMigratePrintProfileAuto(t *testing.T) {
	srv := chtest.Server(t)
	cfg := chtest.Config(srv) // its database does not exist
	code, out, errOut := fleetctl(t, "migrate", "--print", "--profile", "auto", "--dsn", "clickhouse://"+srv.Addr()+"/"+cfg.Database)
	if code != 0 || !strings.Contains(out, "-- Fleetwatch schema, profile legacy") || !strings.Contains(out, "CREATE DATABASE IF NOT EXISTS "+cfg.Database) {
		t.Fatalf("exit %d: %s\n%.300s", code, errOut, out)
	}
	code, out, errOut = fleetctl(t, "migrate", "--print", "--profile", "auto", "--dsn", "clickhouse://127.0.0.1:1/fw?dial_timeout=200ms")
	if code != 1 || out != "" {
		t.Fatalf("no server: exit %d\n%s", code, out)
	}
	for _, want := range []string{"profile auto renders the schema for the server's version, and asking the server failed",
		"is ClickHouse running at 127.0.0.1:1?", "--profile legacy for ClickHouse before 20.3, --profile modern for 20.3 and later"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("no server: stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestMigrateAgainstLocalClickHouse(t *testing.T) {
	srv := chtest.Server(t)
	cfg := chtest.Config(srv)
	dsn := "clickhouse://" + srv.Addr() + "/" + cfg.Database
	t.Cleanup(func() {
		if c, err := storage.Open(context.Background(), cfg); err == nil {
			_ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+cfg.Database)
			c.Close()
		}
	})
	code, out, errOut := fleetctl(t, "migrate", "--dsn", dsn)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if n := strings.Count(out, "applied   "); n != len(schema.Migrations()) {
		t.Fatalf("applied %d migrations:\n%s", n, out)
	}
	code, out, _ = fleetctl(t, "migrate", "--dsn", dsn)
	if code != 0 || !strings.Contains(out, "0 migration(s) applied") {
		t.Fatalf("second run: %d\n%s", code, out)
	}
	// Every table exists now.
	c, err := storage.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tbl := range schema.Tables() {
		var n uint64
		if err := c.QueryScalar(context.Background(), "SELECT count() FROM system.tables WHERE database = '"+cfg.Database+"' AND name = '"+tbl.Name+"'", &n); err != nil || n != 1 {
			t.Errorf("table %s: %d, %v", tbl.Name, n, err)
		}
	}
	code, out, _ = fleetctl(t, "migrate", "--print", "--dsn", dsn)
	if code != 0 || !strings.Contains(out, "profile legacy") {
		t.Fatalf("--print against the server: %d\n%.200s", code, out)
	}
	code, out, _ = fleetctl(t, "retention", "--dsn", dsn)
	if code != 0 || !strings.Contains(out, "0 partition(s) dropped") {
		t.Fatalf("retention: %d\n%s", code, out)
	}
}

func TestMigrateUnreachableServer(t *testing.T) {
	code, _, errOut := fleetctl(t, "migrate", "--dsn", "clickhouse://127.0.0.1:1/fw?dial_timeout=200ms")
	if code != 1 || !strings.Contains(errOut, "127.0.0.1:1") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestDemoRunsThePipeline(t *testing.T) {
	chtest.Server(t) // skips or fails like every ClickHouse test when the server is missing
	t.Setenv(storage.DSNEnv, "")
	data := t.TempDir()
	run := func() (samples int) {
		t.Helper()
		code, out, errOut := fleetctl(t, "demo", "--data", data, "--scenario", "testdata/demo/tiny.yaml",
			"--config", "../../deploy/demo/fleetwatch.yaml", "--grace", "4s", "--progress", "3s")
		if code != 0 {
			t.Fatalf("exit %d: %s\n%s", code, out, errOut)
		}
		for _, want := range []string{"starting ClickHouse", "collector: OTLP on", "will inject fan", "] scenario | samples",
			"== summary ==", "inference events binned into their profiles at ingest", "fan              gpu_fan", "clickhouse-client --host 127.0.0.1", "stopping ClickHouse"} {
			if !strings.Contains(out, want) {
				t.Errorf("demo output lacks %q:\n%s", want, out)
			}
		}
		m := regexp.MustCompile(`ingested: (\d+) GPU samples, \d+ GPU events, (\d+) inference events`).FindStringSubmatch(out)
		if m == nil || m[1] == "0" || m[2] == "0" {
			t.Fatalf("nothing ingested: %v\n%s", m, out)
		}
		samples, _ = strconv.Atoi(m[1])
		return samples
	}
	first := run()
	if _, err := os.Stat(data + "/clickhouse/data"); err != nil {
		t.Errorf("no data directory: %v", err)
	}
	if left, _ := filepath.Glob(data + "/run-*"); len(left) > 0 {
		t.Errorf("the run's queue and buffer directories were left behind: %v", left)
	}
	// A second run in the same directory starts from an empty database: its
	// counts are its own, not added to the first run's.
	if second := run(); second > first*3/2 {
		t.Errorf("second run counted %d samples after the first's %d: the first run's data was kept", second, first)
	}
}

// `make demo`'s two stories beyond incidents, on a small scenario: the
// canary judge rolls back the bad version through its webhook with its
// evidence and passes the good one (issue 20), and the daily cost
// detectors, on the history written before the live part, find the
// last day's traffic surge with its class and the idle GPU (issue 19).
func TestDemoRollsOutCanariesAndFindsCost(t *testing.T) {
	chtest.Server(t)
	t.Setenv(storage.DSNEnv, "")
	code, out, errOut := fleetctl(t, "demo", "--data", t.TempDir(), "--scenario", "testdata/demo/canary.yaml",
		"--config", "../../deploy/demo/fleetwatch.yaml", "--grace", "10s", "--progress", "5s")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, out, errOut)
	}
	for _, re := range []string{
		// the bad version, rolled back with each rule's effect, interval and samples
		`CANARY rolled back merchant-scoring v6 to v5 after \d+s: failed [a-z_0-9, ]+\n(?:\s+\S+ (?:fail|pass|inconclusive): canary .* effect .* in \[.*\] .*n \d+/\d+ .*\n)+`,
		`(?m)^\s+latency_p99_ratio fail: canary [0-9.]+ ms vs baseline [0-9.]+ ms, effect [0-9.]+ ratio \(fail at 1.500\), .* in \[[-0-9.]+, [-0-9.]+\] .*n \d+/\d+`,
		// the good one passed and promoted
		`CANARY chargeback-risk v5 passed after \d+s against v4: promoted`,
		`(?m)^  rolled back merchant-scoring v6$`,
		`(?m)^  passed chargeback-risk v5$`,
		// the cost anomaly with its class, and the idle GPU with its holder
		`cost anomaly: model/similar-items traffic: \$[0-9.]+; requests ×2.00 with GPU-hours ×2.00`,
		`idle GPU: GPU-demo-notebook-7 held by notebook-7 \(team research\) for 10 h`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("demo output lacks %s:\n%s", re, out)
		}
	}
	if strings.Contains(out, "chargeback-risk v5 to v4") || strings.Contains(out, "merchant-scoring v6 passed") {
		t.Errorf("a canary got the other's verdict:\n%s", out)
	}
}

// Pointed at a server whose database already holds data, the demo refuses
// rather than score another run's incidents or drop the user's data.
func TestDemoRefusesADatabaseWithData(t *testing.T) {
	c := chtest.NewDB(t)
	if err := c.Exec(context.Background(), "INSERT INTO detections (ts, detector, class, severity, entity_type, entity, key, value, summary) SELECT now(), 'x', 'x', 'info', 'gpu', 'g', 'k', 1, ''"); err != nil {
		t.Fatal(err)
	}
	t.Setenv(storage.DSNEnv, "clickhouse://"+c.Config().Addrs[0]+"/"+c.Config().Database)
	code, out, errOut := fleetctl(t, "demo", "--data", t.TempDir(), "--scenario", "testdata/demo/tiny.yaml", "--config", "../../deploy/demo/fleetwatch.yaml")
	if code != 1 || !strings.Contains(errOut, "already holds 1 rows") || !strings.Contains(errOut, "empty database") {
		t.Fatalf("exit %d: %s\n%s", code, out, errOut)
	}
	var n uint64
	if err := c.QueryScalar(context.Background(), "SELECT count() FROM detections", &n); err != nil || n != 1 {
		t.Fatalf("the user's data changed: %d rows (%v)", n, err)
	}
}

func TestConfigFile(t *testing.T) {
	cfg, err := loadConfigFile("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Database != "metrics" || len(cfg.Addrs) != 2 || cfg.DialTimeout != 3*time.Second ||
		cfg.RetentionDays["gpu_samples"] != 30 || cfg.Username != "default" {
		t.Fatalf("loaded %+v", cfg)
	}
	if _, err := loadConfigFile("testdata/bad.yml"); err == nil || !strings.Contains(err.Error(), "adresses") {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := loadConfigFile("testdata/missing.yml"); err == nil {
		t.Fatal("missing file: no error")
	}
	code, out, errOut := fleetctl(t, "retention", "--dry-run", "--config", "testdata/good.yml")
	if code != 0 || !strings.Contains(out, "gpu_samples          30 days") || !strings.Contains(out, "model_deployments    keep forever") {
		t.Fatalf("retention --dry-run: %d\n%s%s", code, out, errOut)
	}
}

// The shipped default config loads and validates.
func TestDeployConfigIsValid(t *testing.T) {
	cfg, err := loadConfigFile("../../deploy/fleetwatch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestSimulateLoadsTheScenario(t *testing.T) {
	srv := chtest.Server(t)
	dsn := "clickhouse://" + srv.Addr() + "/simulate_test"
	truth := filepath.Join(t.TempDir(), "truth.jsonl")
	code, out, errOut := fleetctl(t, "simulate", "--dsn", dsn, "--scenario", "testdata/demo/tiny.yaml", "--truth", truth)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, out, errOut)
	}
	m := regexp.MustCompile(`gpu_samples now (\d+) rows, inference_events (\d+) rows; 1 injected fault`).FindStringSubmatch(out)
	if m == nil || m[1] == "0" || m[2] == "0" {
		t.Fatalf("unexpected output:\n%s\n%s", out, errOut)
	}
	f, err := os.Open(truth)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr, err := sim.ReadTruth(f)
	if err != nil || len(tr) != 1 || tr[0].Type != sim.FaultGPUFan {
		t.Errorf("truth file: %v %+v", err, tr)
	}
}
