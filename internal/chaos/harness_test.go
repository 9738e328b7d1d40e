package chaos_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// bin holds the binaries built for the suite.
var bin string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "fleetwatch-chaos-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		// The agent runs a simulated fleet: its simulator is linked only
		// with the "simulator" tag.
		build := exec.Command("go", "build", "-tags", "simulator", "-o", dir+string(filepath.Separator),
			"./cmd/fleetwatch-agent", "./cmd/fleetwatch-collector", "./cmd/fleetwatch-analyzer")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: build the binaries: %v\n%s", err, out)
			return 1
		}
		bin = dir
		return chtest.Run(m)
	}()
	os.Exit(code)
}

// long reports whether outages should last minutes (FLEETWATCH_CHAOS_LONG=1).
func long() bool { return os.Getenv("FLEETWATCH_CHAOS_LONG") == "1" }

// process is one of the binaries, run as its own process.
type process struct {
	t    *testing.T
	name string
	args []string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	runs int
}

func newProc(t *testing.T, name string, args ...string) *process {
	p := &process{t: t, name: name, args: args, log: filepath.Join(t.TempDir(), name+".log")}
	t.Cleanup(p.stop)
	return p
}

func (p *process) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	p.runs++
	fmt.Fprintf(f, "=== run %d: %s %s\n", p.runs, p.name, strings.Join(p.args, " "))
	cmd := exec.Command(filepath.Join(bin, p.name), p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		f.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill() { p.signal(syscall.SIGKILL, 0) }

// stop asks the process to stop (SIGTERM), then kills it after 30 s.
func (p *process) stop() { p.signal(syscall.SIGTERM, 30*time.Second) }

func (p *process) signal(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(grace + 10*time.Millisecond):
		cmd.Process.Kill()
		<-done
	}
}

// tail returns the last lines of the process's log, for failure messages.
func (p *process) tail(n int) string {
	data, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// simStart is the simulated fleet's start: fixed for the test process, so
// that every run sends exactly the same data, and recent enough for the
// collector's max_age.
var simStart = time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Hour)

// scenario is the simulated fleet every case runs: a fixed start and seed,
// so two runs send exactly the same data.
const scenario = `name: chaos
seed: 7
duration: %s
interval: 1s
start: %s
fleet:
  racks_per_row: 1
  nodes_per_rack: 2
  gpus_per_node: 2
models:
  - name: fraud-detector
    rps: 10
    label_delay: 20s
    label_fraction: 0.3
    features:
      - {name: amount, mean: 120, sd: 40}
      - {name: country, values: [DE, FR], probs: [0.5, 0.5]}
faults:
  - {name: straggler, type: straggler, target: {node: node-001, gpu: 1}, start: 20s, end: 50s}
  - {name: ecc, type: ecc_ramp, target: {node: node-000, gpu: 0}, start: 10s, end: 45s}
  - {name: bus, type: xid79, target: {node: node-001, gpu: 0}, start: 40s}
`

// collectorConfig is a collector's configuration: its gRPC port, the
// DSN, its queue directory and its metrics port.
const collectorConfig = `receivers:
  fleetwatch_otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
exporters:
  fleetwatch_clickhouse:
    dsn: %s
    queue:
      directory: %s
      block_timeout: 2s
    batch:
      max_delay: 200ms
    retry:
      initial_interval: 200ms
      max_interval: 2s
service:
  pipelines:
    metrics: {receivers: [fleetwatch_otlp], exporters: [fleetwatch_clickhouse]}
    logs: {receivers: [fleetwatch_otlp], exporters: [fleetwatch_clickhouse]}
  telemetry:
    logs: {level: warn}
    metrics:
      level: detailed
      readers:
        - pull: {exporter: {prometheus: {host: 127.0.0.1, port: %d}}}
`

// pipeline is one agent and one collector writing into a fresh database.
type pipeline struct {
	t        *testing.T
	db       *storage.Client
	scenario string
	grpc     int
	colProm  int
	agentAt  int
	queueDir string
	agentDir string

	collector, agent *process
	// collectors are every collector, collector the first; each has its
	// own gRPC port and persistent queue, and the agent balances over
	// them.
	collectors []*process
	colProms   []int // each collector's metrics port
}

type pipelineOpts struct {
	duration           string // of the simulated scenario
	fast               bool   // simulate as fast as possible
	queueDir, agentDir string // default: temporary directories
	agentBufferBytes   int64  // default: the agent's default
	collectors         int    // default 1
}

// newPipeline prepares an agent and a collector writing into db (a fresh,
// migrated database).
func newPipeline(t *testing.T, db *storage.Client, o pipelineOpts) *pipeline {
	t.Helper()
	dir := t.TempDir()
	p := &pipeline{t: t, db: db, grpc: promtest.FreePort(t), colProm: promtest.FreePort(t),
		agentAt: promtest.FreePort(t), queueDir: o.queueDir, agentDir: o.agentDir}
	if p.queueDir == "" {
		p.queueDir = filepath.Join(dir, "queue")
	}
	if p.agentDir == "" {
		p.agentDir = filepath.Join(dir, "agent")
	}
	p.scenario = filepath.Join(dir, "scenario.yaml")
	write(t, p.scenario, fmt.Sprintf(scenario, o.duration, simStart.Format(time.RFC3339)))
	var endpoints []string
	for i := 0; i < max(o.collectors, 1); i++ {
		grpcPort, promPort, queue := p.grpc, p.colProm, p.queueDir
		if i > 0 {
			grpcPort, promPort, queue = promtest.FreePort(t), promtest.FreePort(t), filepath.Join(dir, fmt.Sprintf("queue%d", i+1))
		}
		colCfg := filepath.Join(dir, fmt.Sprintf("collector%d.yaml", i+1))
		write(t, colCfg, fmt.Sprintf(collectorConfig, grpcPort, p.db.Config().DSN(), queue, promPort))
		p.collectors = append(p.collectors, newProc(t, "fleetwatch-collector", "--config", colCfg))
		p.colProms = append(p.colProms, promPort)
		endpoints = append(endpoints, fmt.Sprintf("127.0.0.1:%d", grpcPort))
	}
	p.collector = p.collectors[0]
	args := []string{"--simulate", p.scenario, "--collector", strings.Join(endpoints, ","),
		"--data-dir", p.agentDir, "--listen", fmt.Sprintf("127.0.0.1:%d", p.agentAt), "--log-level", "warn"}
	if o.fast {
		args = append(args, "--fast")
	}
	if o.agentBufferBytes > 0 {
		agentCfg := filepath.Join(dir, "agent.yaml")
		write(t, agentCfg, fmt.Sprintf("buffer:\n  max_bytes: %d\n  segment_bytes: %d\n", o.agentBufferBytes, o.agentBufferBytes/16))
		args = append(args, "--config", agentCfg)
	}
	p.agent = newProc(t, "fleetwatch-agent", args...)
	return p
}

// schedule returns step, which waits until at after the call to schedule,
// logs what and runs f: a fault plan read as a timeline.
func schedule(t *testing.T) func(at time.Duration, what string, f func()) {
	start := time.Now()
	return func(at time.Duration, what string, f func()) {
		t.Helper()
		time.Sleep(time.Until(start.Add(at)))
		t.Logf("%5.1fs: %s", time.Since(start).Seconds(), what)
		f()
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// scrape reads the sum of a metric's series whose labels include want from a
// Prometheus endpoint on port; ok is false when the endpoint does not answer.
func scrape(port int, name string, want map[string]string) (float64, bool) {
	v, err := promtest.Sum(fmt.Sprintf("http://127.0.0.1:%d/metrics", port), name, want)
	return v, err == nil
}

// snapshot is what a database holds, merged: distinct rows per table, and per
// metric the raw rows, raw sum(delta), and the rollup's sample count and
// increase.
type snapshot struct {
	tables  map[string]uint64
	metrics map[string]metricTotals
}

type metricTotals struct {
	rows, rollSamples   uint64
	rawDelta, rollDelta float64
}

var compared = []string{"gpu_samples", "gpu_series", "gpu_events", "inference_events", "delayed_labels", "model_deployments"}

func snapshotOf(t *testing.T, db *storage.Client, optimize bool) (snapshot, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := snapshot{tables: map[string]uint64{}, metrics: map[string]metricTotals{}}
	if optimize {
		for _, tbl := range append([]string{"gpu_samples_1m"}, compared...) {
			if err := db.OptimizeFinal(ctx, tbl); err != nil {
				return s, err
			}
		}
	}
	for _, tbl := range compared {
		var n uint64
		if err := db.QueryScalar(ctx, "SELECT count() FROM "+tbl+" FINAL", &n); err != nil {
			return s, err
		}
		s.tables[tbl] = n
	}
	rows, err := db.Conn().Query(ctx, `SELECT r.metric, r.rows, r.delta, m.samples, m.delta
FROM (SELECT metric, count() AS rows, sum(delta) AS delta FROM gpu_samples FINAL GROUP BY metric) AS r
ANY LEFT JOIN (SELECT metric, countMerge(samples) AS samples, sumMerge(delta_sum) AS delta FROM gpu_samples_1m GROUP BY metric) AS m
USING metric`)
	if err != nil {
		return s, err
	}
	defer rows.Close()
	for rows.Next() {
		var m string
		var mt metricTotals
		if err := rows.Scan(&m, &mt.rows, &mt.rawDelta, &mt.rollSamples, &mt.rollDelta); err != nil {
			return s, err
		}
		s.metrics[m] = mt
	}
	return s, rows.Err()
}

// differences lists how got differs from the reference want; empty when it
// holds the same data, raw and rollup agreeing.
func differences(got, want snapshot) []string {
	var out []string
	for _, tbl := range compared {
		if got.tables[tbl] != want.tables[tbl] {
			out = append(out, fmt.Sprintf("%s: %d distinct rows, reference %d", tbl, got.tables[tbl], want.tables[tbl]))
		}
	}
	names := make([]string, 0, len(want.metrics))
	for m := range want.metrics {
		names = append(names, m)
	}
	sort.Strings(names)
	for _, m := range names {
		g, w := got.metrics[m], want.metrics[m]
		switch {
		case g.rows != w.rows:
			out = append(out, fmt.Sprintf("%s: %d points, reference %d", m, g.rows, w.rows))
		case g.rollSamples != g.rows:
			out = append(out, fmt.Sprintf("%s: the rollup counts %d points of %d (doubled or lost)", m, g.rollSamples, g.rows))
		case !near(g.rawDelta, w.rawDelta):
			out = append(out, fmt.Sprintf("%s: sum(delta) %v, reference %v", m, g.rawDelta, w.rawDelta))
		case !near(g.rollDelta, g.rawDelta):
			out = append(out, fmt.Sprintf("%s: the rollup's increase %v, raw %v", m, g.rollDelta, g.rawDelta))
		}
	}
	return out
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-6*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// converge waits until db holds the reference's data, then checks raw and
// rollup agree; it fails with the differences otherwise.
func converge(t *testing.T, db *storage.Client, ref snapshot, timeout time.Duration, procs ...*process) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var diff []string
	for {
		s, err := snapshotOf(t, db, false)
		if err == nil {
			if diff = differences(s, ref); len(diff) == 0 || time.Now().After(deadline) {
				break
			}
		} else if time.Now().After(deadline) {
			diff = []string{err.Error()}
			break
		}
		time.Sleep(2 * time.Second)
	}
	if len(diff) == 0 {
		// Counts match; now merge everything and check raw against rollup.
		s, err := snapshotOf(t, db, true)
		if err != nil {
			t.Fatal(err)
		}
		diff = differences(s, ref)
	}
	if len(diff) > 0 {
		var logs strings.Builder
		logs.WriteString(largestIncreases(db))
		for _, p := range procs {
			fmt.Fprintf(&logs, "\n--- %s (last lines)\n%s", p.name, p.tail(15))
		}
		t.Fatalf("not the reference's data after %v:\n  %s%s", timeout, strings.Join(diff, "\n  "), logs.String())
	}
}

// reference runs the scenario once without faults and returns what it
// stored; cached per scenario duration.
var (
	refMu sync.Mutex
	refs  = map[string]snapshot{}
)

func reference(t *testing.T, duration string) snapshot {
	t.Helper()
	refMu.Lock()
	defer refMu.Unlock()
	if s, ok := refs[duration]; ok {
		return s
	}
	p := newPipeline(t, chtest.OpenDB(t, chtest.Server(t), true), pipelineOpts{duration: duration, fast: true})
	p.collector.start()
	p.agent.start()
	var last snapshot
	stable := 0
	deadline := time.Now().Add(3 * time.Minute)
	for stable < 3 { // the same counts three polls in a row: the run is complete
		if time.Now().After(deadline) {
			t.Fatalf("the reference run did not settle:\n%s\n%s", p.agent.tail(10), p.collector.tail(10))
		}
		time.Sleep(2 * time.Second)
		s, err := snapshotOf(t, p.db, false)
		if err != nil {
			continue
		}
		pending, _ := scrape(p.agentAt, "fleetwatch_agent_items_buffered", nil)
		if fmt.Sprint(s.tables) == fmt.Sprint(last.tables) && s.tables["gpu_samples"] > 0 && pending == 0 {
			stable++
		} else {
			stable = 0
		}
		last = s
	}
	p.agent.stop()
	p.collector.stop()
	s, err := snapshotOf(t, p.db, true)
	if err != nil {
		t.Fatal(err)
	}
	for m, mt := range s.metrics {
		if mt.rollSamples != mt.rows || !near(mt.rollDelta, mt.rawDelta) {
			t.Fatalf("the reference run itself disagrees on %s: %+v", m, mt)
		}
	}
	t.Logf("reference (%s simulated): %v", duration, s.tables)
	refs[duration] = s
	return s
}

// largestIncreases lists the counter points with the largest increases,
// which is where a wrong sum(delta) usually shows.
func largestIncreases(db *storage.Client) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := db.Conn().Query(ctx, `SELECT metric, series, toString(ts), ts_ns, value, delta FROM gpu_samples FINAL ORDER BY delta DESC LIMIT 8`)
	if err != nil {
		return "\n(largest increases: " + err.Error() + ")"
	}
	defer rows.Close()
	var b strings.Builder
	b.WriteString("\n--- the largest stored increases (metric, series, ts, ts_ns, value, delta)")
	for rows.Next() {
		var metric, ts string
		var series uint64
		var ns uint32
		var v, d float64
		if rows.Scan(&metric, &series, &ts, &ns, &v, &d) == nil {
			fmt.Fprintf(&b, "\n%s %d %s %d %v %v", metric, series, ts, ns, v, d)
		}
	}
	return b.String()
}
