package collector_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/otlp"
	"github.com/fleetwatch/fleetwatch/collector"
	"github.com/fleetwatch/fleetwatch/collector/chexporter"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/knob"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/loadgen"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/proc"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chserver"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// benchCollector is a fleetwatch-collector process running the shipped
// default configuration (deploy/collector.yaml) on private ports.
type benchCollector struct {
	cmd                *exec.Cmd
	grpc, health, prof string
	log                string // the process's stdout and stderr
}

// startBenchCollector builds cmd/fleetwatch-collector and runs it with the
// default configuration, its ports moved to free loopback ones.
// With persistent false the sending queue is kept in memory.
func startBenchCollector(b *testing.B, dsn string, persistent bool, batch chexporter.BatchConfig) *benchCollector {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "fleetwatch-collector")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/fleetwatch-collector").CombinedOutput(); err != nil {
		b.Fatalf("build collector: %v\n%s", err, out)
	}
	port := func() string { return strconv.Itoa(promtest.FreePort(b)) }
	bc := &benchCollector{grpc: "127.0.0.1:" + port(), health: "127.0.0.1:" + port(), prof: "127.0.0.1:" + port()}
	cfg, err := collector.LocalConfig(collector.Local{GRPC: bc.grpc, HTTP: "127.0.0.1:" + port(), Health: bc.health, PProf: bc.prof,
		MetricsHost: "127.0.0.1", MetricsPort: promtest.FreePort(b), DSN: dsn, QueueDir: filepath.Join(dir, "queue"), Memory: !persistent})
	if err != nil {
		b.Fatal(err)
	}
	if cfg, err = withBatch(cfg, batch); err != nil {
		b.Fatal(err)
	}
	if v := os.Getenv("FLEETWATCH_BENCH_DECODER"); v != "" {
		if !strings.Contains(cfg, receiverLine) {
			b.Fatal("the default configuration has no fleetwatch_otlp receiver to set metrics_decoder on")
		}
		cfg = strings.Replace(cfg, receiverLine, receiverLine+"    metrics_decoder: "+v+"\n", 1)
	}
	pod := int(knob.Int(b, "FLEETWATCH_BENCH_POD_MIB", 0))
	if pod > 0 {
		if cfg, err = withPodMemory(cfg, pod); err != nil {
			b.Fatal(err)
		}
	}
	path := filepath.Join(dir, "collector.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	args := []string{"--config", path}
	if v := os.Getenv("FLEETWATCH_BENCH_FEATURE_GATES"); v != "" {
		args = append(args, "--feature-gates="+v)
	}
	bc.cmd = exec.Command(bin, args...)
	bc.cmd.Env = os.Environ()
	if v := os.Getenv("FLEETWATCH_BENCH_GOGC"); v != "" {
		bc.cmd.Env = append(bc.cmd.Env, "GOGC="+v)
	}
	if pod > 0 {
		// What cmd/fleetwatch-collector sets from a cgroup limit of pod MiB.
		bc.cmd.Env = append(bc.cmd.Env, fmt.Sprintf("GOMEMLIMIT=%dMiB", pod*9/10))
	}
	logf, err := os.Create(filepath.Join(dir, "collector.log"))
	if err != nil {
		b.Fatal(err)
	}
	bc.cmd.Stdout, bc.cmd.Stderr, bc.log = logf, logf, logf.Name()
	if err := bc.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = bc.cmd.Process.Signal(os.Interrupt)
		_ = bc.cmd.Wait()
		logf.Close()
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + bc.health + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return bc
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			b.Fatalf("collector not healthy after 60s:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// receiverLine starts the receiver's settings in the default configuration.
const receiverLine = "  fleetwatch_otlp:\n"

// memoryLimiterLines are the memory_limiter's limits in the default
// configuration, as percentages of the container's memory.
var memoryLimiterLines = regexp.MustCompile(`(?m)^(    )limit_percentage: (\d+)\n    spike_limit_percentage: (\d+)\n`)

// withPodMemory rewrites the memory_limiter's percentages into the MiB they
// come to in a container limited to pod MiB (the benchmark runs outside
// one, where they would be of the host's memory).
func withPodMemory(cfg string, pod int) (string, error) {
	m := memoryLimiterLines.FindStringSubmatch(cfg)
	if m == nil {
		return "", fmt.Errorf("the default configuration has no memory_limiter percentages to rewrite")
	}
	limit, _ := strconv.Atoi(m[2])
	spike, _ := strconv.Atoi(m[3])
	return strings.Replace(cfg, m[0], fmt.Sprintf("%slimit_mib: %d\n%sspike_limit_mib: %d\n", m[1], pod*limit/100, m[1], pod*spike/100), 1), nil
}

// batchLines are the exporter's insert thresholds in the default
// configuration.
var batchLines = regexp.MustCompile(`(?m)^(      flush_rows: )\d+\n(      flush_bytes: )\d+(.*)\n(      max_delay: )\S+\n`)

// withBatch rewrites the insert thresholds of a configuration made from the
// default one.
func withBatch(cfg string, c chexporter.BatchConfig) (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	if !batchLines.MatchString(cfg) {
		return "", fmt.Errorf("the default configuration has no batch thresholds to rewrite")
	}
	return batchLines.ReplaceAllString(cfg, fmt.Sprintf("${1}%d\n${2}%d${3}\n${4}%v\n", c.FlushRows, c.FlushBytes, c.MaxDelay)), nil
}

// profile saves a CPU profile of the collector, seconds long, to path.
func (bc *benchCollector) profile(seconds int, path string) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", bc.prof, seconds))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func mustCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	d, err := proc.CPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

func truncateSamples(b *testing.B, c *storage.Client) {
	b.Helper()
	for _, t := range []string{"gpu_samples", "gpu_samples_1m"} {
		if err := c.Exec(context.Background(), "TRUNCATE TABLE "+c.Config().Database+"."+t); err != nil {
			b.Fatal(err)
		}
	}
}

// waitRows waits until gpu_samples holds at least want rows besides the
// visibility probe's. It counts from system.parts (metadata, no scan) and
// the probe's rows through the primary key, so that waiting costs
// ClickHouse next to nothing: a count() per poll would scan the table and
// add to the ClickHouse CPU the benchmark measures.
func waitRows(b *testing.B, c *storage.Client, want uint64) uint64 {
	b.Helper()
	db := c.Config().Database
	parts := "SELECT sum(rows) FROM system.parts WHERE database = '" + db + "' AND table = 'gpu_samples' AND active"
	probes := "SELECT count() FROM " + db + ".gpu_samples WHERE metric = '" + probeMetric + "'"
	deadline := time.Now().Add(15 * time.Minute)
	for {
		var n, p uint64
		if err := c.QueryScalar(context.Background(), parts, &n); err != nil {
			b.Fatal(err)
		}
		if err := c.QueryScalar(context.Background(), probes, &p); err != nil {
			b.Fatal(err)
		}
		if n-p >= want {
			return n - p
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d samples reached ClickHouse", n-p, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// BenchmarkEndToEnd measures GPU samples per second from a load generator
// (the agent's OTLP requests of a simulated 1,000-GPU fleet) through a
// fleetwatch-collector process running deploy/collector.yaml into
// ClickHouse: the clock runs from the first send until the last row is
// visible in gpu_samples. In the same run, the same rows exported as Native
// are inserted with clickhouse-client into the emptied table. It reports the
// CPU each process spent per sample, peak resident memory, and the time
// from a sample's send until a query sees it (a probe point every 200 ms,
// polled every 50 ms; p50 and p99 under load and, after the load, idle).
//
// Sub-benchmarks: queue=persistent is the shipped configuration,
// queue=memory the same with the log's fsync off; form=resource sends each
// GPU's labels once on its resource (the agent's default), form=data_points
// on every data point (agents before issue 18); batch=shipped inserts with
// the default thresholds, batch=before with those before issue 18 item 4
// (16,384 rows or 200 ms).
//
// FLEETWATCH_BENCH_SAMPLES sets the samples per op (default 5,000,000);
// FLEETWATCH_BENCH_PACE=d sends one round (a request per node) every d
// instead of as fast as the collector answers: latency at a load the
// pipeline keeps up with, rather than the backlog of a saturated one;
// FLEETWATCH_BENCH_BATCH=rows,bytes,delay adds batch=custom with those
// thresholds; FLEETWATCH_BENCH_PROFILE=prefix saves a 10 s CPU profile of
// the collector, taken from a third of the way in, to
// prefix-<queue>-<batch>.pprof; FLEETWATCH_BENCH_GOGC=v runs the collector
// (only) with GOGC=v; FLEETWATCH_BENCH_POD_MIB=n runs it as in a container
// limited to n MiB: the memory_limiter's percentages turned into MiB of n,
// and GOMEMLIMIT at 90 % of n, as cmd/fleetwatch-collector sets it there;
// FLEETWATCH_BENCH_FEATURE_GATES=list passes --feature-gates=list to the
// collector (e.g. -pdata.useProtoPooling to turn pdata's pooling off);
// FLEETWATCH_BENCH_DECODER=v sets the receiver's metrics_decoder (the
// shipped auto is direct for the default pipelines; pdata for the decoder
// before issue 18 item 3).
func BenchmarkEndToEnd(b *testing.B) {
	batches := []struct {
		name string
		cfg  chexporter.BatchConfig
	}{{"shipped", chexporter.NewDefaultBatchConfig()}, {"before", batchBefore}}
	if v := os.Getenv("FLEETWATCH_BENCH_BATCH"); v != "" {
		c, err := parseBatch(v)
		if err != nil {
			b.Fatalf("FLEETWATCH_BENCH_BATCH: %v", err)
		}
		batches = append(batches, struct {
			name string
			cfg  chexporter.BatchConfig
		}{"custom", c})
	}
	for _, queue := range []string{"persistent", "memory"} {
		for _, form := range []otlp.Form{otlp.PerGPU, otlp.PerPoint} {
			for _, bt := range batches {
				b.Run("queue="+queue+"/form="+form.String()+"/batch="+bt.name, func(b *testing.B) { endToEnd(b, queue, form, bt.name, bt.cfg) })
			}
		}
	}
}

// batchBefore are the insert thresholds before issue 18 item 4: 16,384 rows
// or 200 ms (the drain loop read at most 64 MiB at a time).
var batchBefore = chexporter.BatchConfig{FlushRows: 16384, FlushBytes: 64 << 20, MaxDelay: 200 * time.Millisecond}

// parseBatch reads "rows,bytes,delay".
func parseBatch(v string) (chexporter.BatchConfig, error) {
	f := strings.Split(v, ",")
	if len(f) != 3 {
		return chexporter.BatchConfig{}, fmt.Errorf("want rows,bytes,delay, got %q", v)
	}
	rows, err1 := strconv.Atoi(f[0])
	bytes, err2 := strconv.ParseInt(f[1], 10, 64)
	delay, err3 := time.ParseDuration(f[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return chexporter.BatchConfig{}, err
	}
	c := chexporter.BatchConfig{FlushRows: rows, FlushBytes: bytes, MaxDelay: delay}
	return c, c.Validate()
}

// rssWatch samples a process's resident memory once a second.
type rssWatch struct {
	mu      sync.Mutex
	samples []int64
}

func (w *rssWatch) run(ctx context.Context, pid int) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if m, err := proc.Mem(pid); err == nil {
			w.mu.Lock()
			w.samples = append(w.samples, m.RSS)
			w.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// halves returns the highest RSS seen in the first and in the second half
// of the samples: equal when memory stays flat under sustained load.
func (w *rssWatch) halves() (first, second int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(w.samples)
	if n < 2 {
		return 0, 0
	}
	return slices.Max(w.samples[:n/2]), slices.Max(w.samples[n/2:])
}

func endToEnd(b *testing.B, queue string, form otlp.Form, batchName string, batch chexporter.BatchConfig) {
	srv := chtest.Server(b)
	c := chtest.NewDB(b)
	bc := startBenchCollector(b, c.Config().DSN(), queue == "persistent", batch)
	cfg := loadgen.NewDefaultConfig()
	cfg.Endpoint = bc.grpc
	cfg.Form = form
	cfg.Samples = knob.Int(b, "FLEETWATCH_BENCH_SAMPLES", 5_000_000)
	if v := os.Getenv("FLEETWATCH_BENCH_PACE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("FLEETWATCH_BENCH_PACE: %v", err)
		}
		cfg.Pace = d
	}
	pid := bc.cmd.Process.Pid

	var colCPU, chCPU, genCPU, elapsed time.Duration
	var total int64
	var extra uint64
	var probe *visibilityProbe
	var rss rssWatch
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		truncateSamples(b, c)
		g, err := loadgen.New(cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		// The profile starts once a third of the samples are sent, past the
		// first sight of every series, so that it shows the steady state.
		var progress func(loadgen.Stats)
		if prefix := os.Getenv("FLEETWATCH_BENCH_PROFILE"); prefix != "" && i == 0 {
			var once sync.Once
			progress = func(st loadgen.Stats) {
				if os.Getenv("FLEETWATCH_BENCH_VERBOSE") != "" {
					var n uint64
					_ = c.QueryScalar(context.Background(), "SELECT count() FROM "+c.Config().Database+".gpu_samples", &n)
					m, _ := proc.Mem(pid)
					fmt.Fprintf(os.Stderr, "%5.1fs sent %d retries %d stored %d collector rss %d MiB\n", st.Elapsed.Seconds(), st.Samples, st.Retries, n, m.RSS>>20)
				}
				if st.Samples < g.Total()/3 {
					return
				}
				once.Do(func() {
					go func() {
						if err := bc.profile(10, prefix+"-"+queue+"-"+batchName+".pprof"); err != nil {
							b.Errorf("profile: %v", err)
						}
					}()
				})
			}
		}
		// The last op's probe and memory watch are reported.
		probe, rss = newVisibilityProbe(b, bc.grpc, c), rssWatch{}
		ctx, stop := context.WithCancel(context.Background())
		var watchers sync.WaitGroup
		watchers.Go(func() { probe.run(ctx) })
		watchers.Go(func() { rss.run(ctx, pid) })
		c0, s0, g0 := mustCPU(b, pid), mustCPU(b, srv.PID()), proc.SelfCPU()
		start := time.Now()
		b.StartTimer()
		st, err := g.Run(context.Background(), progress)
		if err != nil {
			b.Fatal(err)
		}
		if st.Rejected != 0 {
			b.Fatalf("collector rejected %d samples", st.Rejected)
		}
		n := waitRows(b, c, uint64(g.Total()))
		b.StopTimer()
		elapsed += time.Since(start)
		colCPU += mustCPU(b, pid) - c0
		chCPU += mustCPU(b, srv.PID()) - s0
		genCPU += proc.SelfCPU() - g0
		total += g.Total()
		extra += n - uint64(g.Total())
		// Idle: probes alone show the batch's own delay.
		probe.setLoaded(false)
		time.Sleep(4*time.Second + 2*batch.MaxDelay)
		stop()
		watchers.Wait()
		if probe.err != nil {
			b.Fatal(probe.err)
		}
	}
	mem, err := proc.Mem(pid)
	if err != nil {
		b.Fatal(err)
	}
	chMem, err := proc.Mem(srv.PID())
	if err != nil {
		b.Fatal(err)
	}
	perSample := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(total) }
	rate := float64(total) / elapsed.Seconds()
	b.ReportMetric(rate, "samples/s")
	b.ReportMetric(perSample(colCPU), "collector-cpu-µs/sample")
	b.ReportMetric(perSample(chCPU), "clickhouse-cpu-µs/sample")
	b.ReportMetric(perSample(genCPU), "loadgen-cpu-µs/sample")
	b.ReportMetric(float64(mem.PeakRSS)/(1<<20), "collector-peak-rss-MiB")
	first, second := rss.halves()
	b.ReportMetric(float64(first)/(1<<20), "collector-rss-max-1st-half-MiB")
	b.ReportMetric(float64(second)/(1<<20), "collector-rss-max-2nd-half-MiB")
	b.ReportMetric(float64(chMem.PeakRSS)/(1<<20), "clickhouse-peak-rss-MiB")
	b.ReportMetric(float64(extra), "duplicate-rows")
	log, err := os.ReadFile(bc.log)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(strings.Count(string(log), "Forcing a GC")), "memory-limiter-forced-gcs")
	b.ReportMetric(float64(strings.Count(string(log), "Refusing data")), "memory-limiter-refusals")
	for _, l := range []struct {
		name   string
		loaded bool
	}{{"load", true}, {"idle", false}} {
		p50, p99, n := probe.latency(l.loaded)
		if n == 0 {
			b.Fatalf("no probe seen %s", l.name)
		}
		b.ReportMetric(p50.Seconds()*1e3, "visible-"+l.name+"-p50-ms")
		b.ReportMetric(p99.Seconds()*1e3, "visible-"+l.name+"-p99-ms")
	}

	// The same rows, inserted raw.
	raw := clientInsert(b, srv, c)
	b.ReportMetric(raw.rate, "client-rows/s")
	b.ReportMetric(raw.clientCPU, "client-cpu-µs/sample")
	b.ReportMetric(raw.serverCPU, "client-clickhouse-cpu-µs/sample")
	b.ReportMetric(raw.wall.Seconds()*1e3, "client-visible-ms")
	b.ReportMetric(rate/raw.rate, "ratio-to-client")
}

// rawInsert is how clickhouse-client inserted the benchmark's rows.
type rawInsert struct {
	rate                 float64 // rows/s
	clientCPU, serverCPU float64 // µs per row
	wall                 time.Duration
}

// clientInsert exports gpu_samples (less the probe's rows) as Native,
// empties it, and times clickhouse-client inserting the export back in one
// INSERT: every row becomes visible when it ends.
func clientInsert(b *testing.B, srv *chserver.Server, c *storage.Client) rawInsert {
	b.Helper()
	db := c.Config().Database
	const cols = "ts, metric, series, value, delta"
	native := filepath.Join(b.TempDir(), "samples.native")
	where := " WHERE metric != '" + probeMetric + "'"
	var rows uint64
	if err := c.QueryScalar(context.Background(), "SELECT count() FROM "+db+".gpu_samples"+where, &rows); err != nil {
		b.Fatal(err)
	}
	chtest.ClientExport(b, srv, fmt.Sprintf("SELECT %s FROM %s.gpu_samples%s FORMAT Native", cols, db, where), native)
	truncateSamples(b, c)
	s0 := mustCPU(b, srv.PID())
	start := time.Now()
	clientCPU := chtest.ClientInsert(b, srv, fmt.Sprintf("INSERT INTO %s.gpu_samples (%s) FORMAT Native", db, cols), native)
	wall := time.Since(start)
	serverCPU := mustCPU(b, srv.PID()) - s0
	perRow := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(rows) }
	return rawInsert{rate: float64(rows) / wall.Seconds(), clientCPU: perRow(clientCPU), serverCPU: perRow(serverCPU), wall: wall}
}
