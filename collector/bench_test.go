package collector_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/otlp"
	"github.com/fleetwatch/fleetwatch/collector"
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
}

// startBenchCollector builds cmd/fleetwatch-collector and runs it with the
// default configuration, its ports moved to free loopback ones.
// With persistent false the sending queue is kept in memory.
func startBenchCollector(b *testing.B, dsn string, persistent bool) *benchCollector {
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
	path := filepath.Join(dir, "collector.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	bc.cmd = exec.Command(bin, "--config", path)
	logf, err := os.Create(filepath.Join(dir, "collector.log"))
	if err != nil {
		b.Fatal(err)
	}
	bc.cmd.Stdout, bc.cmd.Stderr = logf, logf
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

// waitRows waits until gpu_samples holds at least want rows.
func waitRows(b *testing.B, c *storage.Client, want uint64) uint64 {
	b.Helper()
	deadline := time.Now().Add(15 * time.Minute)
	for {
		var n uint64
		if err := c.QueryScalar(context.Background(), "SELECT count() FROM "+c.Config().Database+".gpu_samples", &n); err != nil {
			b.Fatal(err)
		}
		if n >= want {
			return n
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d samples reached ClickHouse", n, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func envInt(b *testing.B, name string, def int64) int64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	return n
}

// BenchmarkEndToEnd measures GPU samples per second from a load generator
// (the agent's OTLP requests of a simulated 1,000-GPU fleet) through a
// fleetwatch-collector process running deploy/collector.yaml into
// ClickHouse: the clock runs from the first send until the last row is
// visible in gpu_samples. In the same run, the same rows exported as Native
// are inserted with clickhouse-client into the emptied table. It reports the
// CPU each process spent per sample and the collector's peak resident memory.
//
// Sub-benchmarks: queue=persistent is the shipped configuration,
// queue=memory the same with the sending queue in memory; form=resource
// sends each GPU's labels once on its resource (the agent's default),
// form=data_points on every data point (agents before issue 18).
//
// FLEETWATCH_BENCH_SAMPLES sets the samples per op (default 5,000,000);
// FLEETWATCH_BENCH_PROFILE=prefix saves a 10 s CPU profile of the collector,
// taken from a third of the way in, to prefix-<queue>.pprof.
func BenchmarkEndToEnd(b *testing.B) {
	for _, queue := range []string{"persistent", "memory"} {
		for _, form := range []otlp.Form{otlp.PerGPU, otlp.PerPoint} {
			b.Run("queue="+queue+"/form="+form.String(), func(b *testing.B) { endToEnd(b, queue, form) })
		}
	}
}

func endToEnd(b *testing.B, queue string, form otlp.Form) {
	srv := chtest.Server(b)
	c := chtest.NewDB(b)
	bc := startBenchCollector(b, c.Config().DSN(), queue == "persistent")
	cfg := loadgen.NewDefaultConfig()
	cfg.Endpoint = bc.grpc
	cfg.Form = form
	cfg.Samples = envInt(b, "FLEETWATCH_BENCH_SAMPLES", 5_000_000)
	pid := bc.cmd.Process.Pid

	var colCPU, chCPU, genCPU, elapsed time.Duration
	var total int64
	var extra uint64
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
						if err := bc.profile(10, prefix+"-"+queue+".pprof"); err != nil {
							b.Errorf("profile: %v", err)
						}
					}()
				})
			}
		}
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
	}
	mem, err := proc.Mem(pid)
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
	b.ReportMetric(float64(extra), "duplicate-rows")

	// The same rows, inserted raw.
	clientRate := clientInsertRate(b, srv, c)
	b.ReportMetric(clientRate, "client-rows/s")
	b.ReportMetric(rate/clientRate, "ratio-to-client")
}

// clientInsertRate exports gpu_samples as Native, empties it, and times
// clickhouse-client inserting the export back.
func clientInsertRate(b *testing.B, srv *chserver.Server, c *storage.Client) float64 {
	b.Helper()
	db := c.Config().Database
	const cols = "ts, metric, series, value, delta"
	native := filepath.Join(b.TempDir(), "samples.native")
	var rows uint64
	if err := c.QueryScalar(context.Background(), "SELECT count() FROM "+db+".gpu_samples", &rows); err != nil {
		b.Fatal(err)
	}
	chtest.ClientExport(b, srv, fmt.Sprintf("SELECT %s FROM %s.gpu_samples FORMAT Native", cols, db), native)
	truncateSamples(b, c)
	start := time.Now()
	chtest.ClientInsert(b, srv, fmt.Sprintf("INSERT INTO %s.gpu_samples (%s) FORMAT Native", db, cols), native)
	return float64(rows) / time.Since(start).Seconds()
}
