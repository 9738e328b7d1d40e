package collector_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/otlp"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/knob"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/loadgen"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/proc"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// contribConfig runs the contrib clickhouseexporter behind the upstream otlp
// receiver and the batch processor, as its README suggests, into database
// contrib of the benchmark's ClickHouse.
const contribConfig = `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
        max_recv_msg_size_mib: 64
processors:
  batch:
    send_batch_size: 100000
    timeout: 1s
exporters:
  clickhouse:
    endpoint: tcp://%s?dial_timeout=10s
    database: contrib
    create_schema: true
    async_insert: false           # ClickHouse 18.16 refuses the setting (code 115)
    timeout: 30s
    sending_queue:
      queue_size: 1000
    retry_on_failure:
      enabled: true
extensions: {}
service:
  pipelines:
    metrics:
      receivers: [otlp]
      processors: [batch]
      exporters: [clickhouse]
  telemetry:
    metrics:
      level: none
`

// BenchmarkContribExporter runs the load of BenchmarkEndToEnd (per-GPU
// form) through the OpenTelemetry contrib clickhouseexporter into the same
// ClickHouse: FLEETWATCH_CONTRIB_COLLECTOR names the binary that
// bench/contribch builds (its own module:
// `cd bench/contribch && go build -o /tmp/contribch .`). Without it the
// benchmark is skipped.
func BenchmarkContribExporter(b *testing.B) {
	bin := os.Getenv("FLEETWATCH_CONTRIB_COLLECTOR")
	if bin == "" {
		b.Skip("FLEETWATCH_CONTRIB_COLLECTOR is not set (build bench/contribch)")
	}
	srv := chtest.Server(b)
	c := chtest.NewDB(b)
	if err := c.Exec(context.Background(), "CREATE DATABASE IF NOT EXISTS contrib"); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	grpcAddr := "127.0.0.1:" + strconv.Itoa(promtest.FreePort(b))
	path := filepath.Join(dir, "contrib.yaml")
	if err := os.WriteFile(path, fmt.Appendf(nil, contribConfig, grpcAddr, srv.Addr()), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", path)
	logPath := filepath.Join(dir, "contrib.log")
	logf, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
	})
	fatal := func(format string, args ...any) {
		b.Helper()
		log, _ := os.ReadFile(logPath)
		b.Fatalf(format+"\ncontrib collector log:\n%s", append(args, log)...)
	}
	// Ready once the gRPC port answers.
	for deadline := time.Now().Add(60 * time.Second); ; {
		select {
		case err := <-exited:
			fatal("contrib collector exited: %v", err)
		default:
		}
		if conn, err := net.Dial("tcp", grpcAddr); err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			fatal("contrib collector not listening after 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	cfg := loadgen.NewDefaultConfig()
	cfg.Endpoint = grpcAddr
	cfg.Form = otlp.PerGPU
	cfg.Samples = knob.Int(b, "FLEETWATCH_BENCH_SAMPLES", 5_000_000)
	g, err := loadgen.New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	pid := cmd.Process.Pid
	stored := "SELECT sum(rows) FROM system.parts WHERE database = 'contrib' AND table LIKE 'otel_metrics_%' AND active"
	b.ReportAllocs()
	c0, s0 := mustCPU(b, pid), mustCPU(b, srv.PID())
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := g.Run(ctx, nil)
	if err != nil {
		fatal("load: %v", err)
	}
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var n uint64
		if err := c.QueryScalar(context.Background(), stored, &n); err != nil {
			b.Fatal(err)
		}
		if int64(n) >= st.Samples {
			break
		}
		select {
		case err := <-exited:
			fatal("contrib collector exited with %d of %d samples stored: %v", n, st.Samples, err)
		default:
		}
		if time.Now().After(deadline) {
			fatal("only %d of %d samples stored after 3 minutes", n, st.Samples)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	perSample := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(st.Samples) }
	mem, err := proc.Mem(pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(st.Samples)/elapsed.Seconds(), "samples/s")
	b.ReportMetric(perSample(mustCPU(b, pid)-c0), "collector-cpu-µs/sample")
	b.ReportMetric(perSample(mustCPU(b, srv.PID())-s0), "clickhouse-cpu-µs/sample")
	b.ReportMetric(float64(mem.PeakRSS)/(1<<20), "collector-peak-rss-MiB")
}
