package storage_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/proc"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

var benchMetrics = []string{"DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_MEMORY_TEMP", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
	"DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_MEM_CLOCK", "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_MEM_COPY_UTIL", "DCGM_FI_DEV_FB_USED",
	"DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
	"DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "DCGM_FI_PROF_SM_ACTIVE", "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
	"DCGM_FI_PROF_DRAM_ACTIVE", "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "DCGM_FI_PROF_PCIE_TX_BYTES", "DCGM_FI_PROF_NVLINK_TX_BYTES"}

// fleetSeries describes a fleet of 64 nodes x 8 GPUs with 20 DCGM fields each,
// labelled the way dcgm-exporter labels them.
func fleetSeries() *storage.GPUSeriesBlock {
	b := &storage.GPUSeriesBlock{}
	seen := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	for g := 0; g < 512; g++ {
		id := fleet.GPUIdentity{Index: fmt.Sprint(g % 8), UUID: fmt.Sprintf("GPU-%08x-0000-4000-8000-%012x", g, g),
			PCIBusID: fmt.Sprintf("00000000:%02X:00.0", 0x10+g%8), Device: fmt.Sprintf("nvidia%d", g%8), ModelName: "NVIDIA H100 80GB HBM3"}
		for m, name := range benchMetrics {
			b.Append(&storage.GPUSeries{
				Series: storage.HashSeries(name, id.UUID), Metric: name, Counter: m == 3 || m == 10,
				Topology: fleet.Topology{Datacenter: "dc-east", Cluster: "train-a", Rack: fmt.Sprintf("rack-%02d", g/128), Node: fmt.Sprintf("gpu-node-%03d", g/8)},
				GPU:      id, K8s: fleet.Kubernetes{Namespace: "training", Pod: fmt.Sprintf("llm-pretrain-%d", g/64), Container: "trainer"},
				Job: "llm-pretrain", FirstSeen: seen, LastSeen: seen,
			})
		}
	}
	return b
}

// fleetSamples makes n gpu_samples rows for fleetSeries' series at a
// one-second interval, in arrival order (all series at t, then at t+1s, ...).
func fleetSamples(n int) *storage.GPUSampleBlock {
	var series []uint64
	for g := 0; g < 512; g++ {
		uuid := fmt.Sprintf("GPU-%08x-0000-4000-8000-%012x", g, g)
		for _, name := range benchMetrics {
			series = append(series, storage.HashSeries(name, uuid))
		}
	}
	start := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	b := &storage.GPUSampleBlock{}
	for i := 0; i < n; i++ {
		k := i % len(series)
		b.Append(&storage.GPUSample{Time: start.Add(time.Duration(i/len(series)) * time.Second),
			Metric: benchMetrics[k%len(benchMetrics)], Series: series[k], Value: float64(40 + (i*7)%50)})
	}
	return b
}

const benchRows = 1_000_000

// serverCPU is the CPU time the ClickHouse server has used so far.
func serverCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	d, err := proc.CPU(pid)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// insertBench times insert(), which must insert benchRows rows, into an
// empty gpu_samples each time, and reports rows/s and the CPU the server
// and the client spent per million rows.
func insertBench(b *testing.B, c *storage.Client, serverPID int, insert func() (clientCPU time.Duration)) {
	ctx := context.Background()
	var server, client time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for _, t := range []string{"gpu_samples", "gpu_samples_1m"} {
			if err := c.Exec(ctx, "TRUNCATE TABLE "+c.Config().Database+"."+t); err != nil {
				b.Fatal(err)
			}
		}
		s0 := serverCPU(b, serverPID)
		b.StartTimer()
		client += insert()
		b.StopTimer()
		server += serverCPU(b, serverPID) - s0
		b.StartTimer()
	}
	rows := float64(benchRows * b.N)
	b.ReportMetric(rows/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(server.Seconds()*1e6/rows, "server-cpu-s/Mrows")
	b.ReportMetric(client.Seconds()*1e6/rows, "client-cpu-s/Mrows")
}

// BenchmarkInsertGPUSamples compares the Writer with the raw
// clickhouse-client Native insert of the same rows, in the same order, into
// the same empty table, in one run. Each op inserts 1M rows.
func BenchmarkInsertGPUSamples(b *testing.B) {
	srv := chtest.Server(b)
	c := chtest.NewDB(b)
	ctx := context.Background()
	db := c.Config().Database
	rows := fleetSamples(benchRows)
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("writer", func(b *testing.B) {
		b.ReportAllocs()
		insertBench(b, c, srv.PID(), func() time.Duration {
			c0 := proc.SelfCPU()
			if err := w.Write(ctx, rows.Block()); err != nil {
				b.Fatal(err)
			}
			return proc.SelfCPU() - c0
		})
	})

	// The same rows in ClickHouse's Native format, in generation order: staged
	// through a Log table, which keeps insertion order.
	if err := c.Exec(ctx, fmt.Sprintf("CREATE TABLE %s.stage AS %s.gpu_samples ENGINE = Log", db, db)); err != nil {
		b.Fatal(err)
	}
	staged := rows.Block()
	staged.Table = "stage"
	if err := w.Write(ctx, staged); err != nil {
		b.Fatal(err)
	}
	cols := strings.Join(staged.Columns, ", ")
	native := filepath.Join(b.TempDir(), "rows.native")
	chtest.ClientExport(b, srv, fmt.Sprintf("SELECT %s FROM %s.stage FORMAT Native", cols, db), native)
	b.Run("clickhouse-client", func(b *testing.B) {
		insertBench(b, c, srv.PID(), func() time.Duration {
			return chtest.ClientInsert(b, srv, fmt.Sprintf("INSERT INTO %s.gpu_samples (%s) FORMAT Native", db, cols), native)
		})
	})
}

// BenchmarkQueryArrow reads 1M gpu_samples rows (5 columns) into Arrow
// records, beside clickhouse-client reading the same query as Native into
// /dev/null (the transport's ceiling; no conversion to anything usable).
func BenchmarkQueryArrow(b *testing.B) {
	srv := chtest.Server(b)
	c := chtest.NewDB(b)
	ctx := context.Background()
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Write(ctx, fleetSamples(benchRows).Block()); err != nil {
		b.Fatal(err)
	}
	const q = "SELECT ts, metric, series, value, delta FROM gpu_samples"
	b.Run("arrow", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			rr, err := c.QueryArrow(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for rr.Next() {
				n += int(rr.Record().NumRows())
			}
			if rr.Err() != nil || n != benchRows {
				b.Fatalf("read %d rows: %v", n, rr.Err())
			}
			rr.Release()
		}
		b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	port := srv.Addr()[strings.LastIndexByte(srv.Addr(), ':')+1:]
	b.Run("clickhouse-client-native", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			cmd := exec.Command("clickhouse-client", "--port", port, "-d", c.Config().Database, "--query", q+" FORMAT Native")
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}

// BenchmarkBuildGPUSampleBlock appends 100k rows per op into a reused builder.
func BenchmarkBuildGPUSampleBlock(b *testing.B) {
	s := storage.GPUSample{Time: time.Now(), Metric: "DCGM_FI_DEV_GPU_TEMP", Value: 42, Series: 7}
	var blk storage.GPUSampleBlock
	const rows = 100_000
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		blk.Reset()
		for j := 0; j < rows; j++ {
			blk.Append(&s)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rows*b.N), "ns/row")
}
