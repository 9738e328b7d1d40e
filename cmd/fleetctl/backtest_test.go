package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestBacktestUsage(t *testing.T) {
	for _, args := range [][]string{
		{"backtest"},
		{"backtest", "--from", "2026-11-23T00:00:00Z"},
		{"backtest", "--from", "2026-11-23T00:10:00Z", "--to", "2026-11-23T00:00:00Z"},
		{"backtest", "--from", "yesterday", "--to", "2026-11-23T00:00:00Z"},
	} {
		if code, _, errOut := fleetctl(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errOut)
		}
	}
	code, _, errOut := fleetctl(t, "backtest", "--help")
	if code != 0 || !strings.Contains(errOut, "Ground truth (--truth): JSON lines") {
		t.Errorf("--help: exit %d, lacks the truth format:\n%s", code, errOut)
	}
}

// A backtest of a range without data runs every detector's windows up to
// --to, says the range holds no data, scores the (unseen) fault as missed
// and refuses to run into the same target twice. The stored-data case is
// internal/backtest's test.
func TestBacktestCommand(t *testing.T) {
	c := chtest.NewDB(t)
	truth := filepath.Join(t.TempDir(), "truth.jsonl")
	line := `{"fault":"fan","type":"gpu_fan","level":"gpu","start":"2026-11-23T00:01:00Z","end":"2026-11-23T00:02:00Z","node":"node-002","gpu":"GPU-x"}` + "\n"
	if err := os.WriteFile(truth, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"backtest", "--dsn", c.Config().DSN(), "--from", "2026-11-23T00:00:00Z", "--to", "2026-11-23T00:03:00Z", "--truth", truth}
	code, out, errOut := fleetctl(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"results in database " + c.Config().Database + "_backtest", "no GPU samples",
		"fleet_health   6 ", "training_jobs  3 ", "2026-11-23T00:03:00Z", "0 incidents paged", "missed: gpu_fan fan", "| fan | gpu_fan | gpu | 0 |"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code, _, errOut := fleetctl(t, args...); code != 1 || !strings.Contains(errOut, "already holds") {
		t.Errorf("second run into the same target: exit %d: %s", code, errOut)
	}
}
