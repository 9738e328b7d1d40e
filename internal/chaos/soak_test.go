package chaos_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/internal/testsupport/proc"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// soakScenario is a 4-node fleet of 8-GPU nodes serving two models, in real
// time: about 760 items a second, the rate of the measurement.
const soakScenario = `name: soak
seed: 11
duration: %s
interval: 1s
fleet:
  racks_per_row: 2
  nodes_per_rack: 2
  gpus_per_node: 8
jobs:
  - {name: pretrain, first_node: 0, nodes: 2, step_seconds: 1.1}
models:
  - name: fraud-detector
    pipeline: payments
    rps: 20
    label_delay: 2m
    label_fraction: 0.3
    features:
      - {name: amount, mean: 120, sd: 40}
      - {name: country, values: [DE, FR, US], probs: [0.5, 0.3, 0.2]}
  - name: churn
    pipeline: payments
    rps: 5
    features:
      - {name: tenure, mean: 24, sd: 12}
`

// TestSoak runs the agent, the collector and the analyzer for
// FLEETWATCH_SOAK (a duration, e.g. 30m) at a steady rate and records each
// process's resident memory every minute. It is a benchmark, not part of the
// ordinary suite (skipped without FLEETWATCH_SOAK); the table it prints goes
// into docs/BENCHMARKS.md. It fails if a process's memory in the last third
// of the run is more than 25% above its median in the middle third: memory
// that keeps growing at a steady rate is a leak.
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("FLEETWATCH_SOAK"))
	if err != nil || d < 3*time.Minute {
		t.Skip("a soak benchmark: set FLEETWATCH_SOAK to a duration of at least 3m (30m for docs/BENCHMARKS.md)")
	}
	srv := chtest.StartServer(t)
	p := newPipeline(t, chtest.OpenDB(t, srv, true), pipelineOpts{duration: "60s"})
	write(t, p.scenario, fmt.Sprintf(soakScenario, (d+5*time.Minute).String()))
	analyzerAt := promtest.FreePort(t)
	analyzer := newProc(t, "fleetwatch-analyzer", "--dsn", p.db.Config().DSN(), "--listen", fmt.Sprintf("127.0.0.1:%d", analyzerAt), "--log-level", "warn")
	p.collector.start()
	p.agent.start()
	analyzer.start()
	procs := []*process{p.agent, p.collector, analyzer}
	var table strings.Builder
	fmt.Fprintf(&table, "| minute | agent RSS (MiB) | collector RSS (MiB) | analyzer RSS (MiB) | gpu_samples rows |\n|---|---|---|---|---|\n")
	rss := make([][]float64, len(procs))
	start := time.Now()
	for m := 1; time.Since(start) < d; m++ {
		time.Sleep(time.Until(start.Add(time.Duration(m) * time.Minute)))
		fmt.Fprintf(&table, "| %d |", m)
		for i, pr := range procs {
			pr.mu.Lock()
			cmd := pr.cmd
			pr.mu.Unlock()
			if cmd == nil {
				t.Fatalf("%s is not running:\n%s", pr.name, pr.tail(20))
			}
			mem, err := proc.Mem(cmd.Process.Pid)
			if err != nil {
				t.Fatalf("%s: %v\n%s", pr.name, err, pr.tail(20))
			}
			mib := float64(mem.RSS) / (1 << 20)
			rss[i] = append(rss[i], mib)
			fmt.Fprintf(&table, " %.1f |", mib)
		}
		var rows uint64
		_ = p.db.QueryScalar(t.Context(), "SELECT count() FROM gpu_samples", &rows)
		fmt.Fprintf(&table, " %d |\n", rows)
	}
	t.Logf("soak of %v:\n%s", d, table.String())
	_ = os.WriteFile(filepath.Join(os.TempDir(), "fleetwatch-soak.md"), []byte(table.String()), 0o644)
	for i, pr := range procs {
		n := len(rss[i])
		mid, last := median(rss[i][n/3:2*n/3]), rss[i][n/3*2:]
		for _, v := range last {
			if v > 1.25*mid {
				t.Errorf("%s grows: %.1f MiB in the last third of the run, median %.1f MiB in the middle third", pr.name, v, mid)
				break
			}
		}
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
