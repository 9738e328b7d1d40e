package kernels_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/fleetwatch/fleetwatch/lib/kernels"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

const benchValues = 20_000_000

// Deciles of N(0, 1): the edges a profile of normal data gets.
var decileEdges = []float64{-1.2815515655446004, -0.8416212335729143, -0.5244005127080407, -0.2533471031357997, 0,
	0.2533471031357997, 0.5244005127080407, 0.8416212335729143, 1.2815515655446004}

var benchData = func() []float64 {
	r := rand.New(rand.NewPCG(1, 2))
	xs := make([]float64, benchValues)
	for i := range xs {
		xs[i] = r.NormFloat64()
	}
	return xs
}()

// perValue reports ns/value and values/s for an op over n values.
func perValue(b *testing.B, n int, d time.Duration, ops int) {
	ns := float64(d.Nanoseconds()) / float64(ops) / float64(n)
	b.ReportMetric(ns, "ns/value")
	b.ReportMetric(1e3/ns, "Mvalues/s")
}

// BenchmarkBinning20M bins the same 20M normal values into 10 decile bins
// on one core, side by side: the Go kernels (AVX2 compare, AVX2 grid,
// portable), NumPy searchsorted + bincount (Debian's python3-numpy),
// ClickHouse SQL on the same values in a table, and a memcpy of the same
// bytes (the memory-bandwidth ceiling).
func BenchmarkBinning20M(b *testing.B) {
	bn, err := kernels.NewBinner(decileEdges)
	if err != nil {
		b.Fatal(err)
	}
	h := kernels.NewHistogram(bn.Bins())
	bytes := int64(len(benchData) * 8)
	b.Run("go", func(b *testing.B) {
		b.SetBytes(bytes)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			bn.AddFloat64s(h, benchData)
		}
		perValue(b, benchValues, b.Elapsed(), b.N)
	})
	for _, mode := range kernels.BenchModes(bn) {
		b.Run("go-"+mode.Name, func(b *testing.B) {
			b.SetBytes(bytes)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				mode.Run(h, benchData)
			}
			perValue(b, benchValues, b.Elapsed(), b.N)
		})
	}
	b.Run("memcpy", func(b *testing.B) {
		dst := make([]float64, len(benchData))
		copy(dst, benchData) // fault the pages in before timing
		b.SetBytes(bytes)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			copy(dst, benchData)
		}
		perValue(b, benchValues, b.Elapsed(), b.N)
	})
	b.Run("numpy", func(b *testing.B) { benchNumPy(b) })
	b.Run("clickhouse", func(b *testing.B) { benchClickHouse(b) })
}

const numpyScript = `
import sys, time, numpy as np
x = np.fromfile(sys.argv[1], dtype=np.float64)
edges = np.array([float(v) for v in sys.argv[2].split(",")])
n = int(sys.argv[3])
best = None
for _ in range(n):
    t = time.perf_counter()
    c = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
    d = time.perf_counter() - t
    best = d if best is None else min(best, d)
print(best, " ".join(str(v) for v in c))
`

func benchNumPy(b *testing.B) {
	if err := exec.Command("/usr/bin/python3", "-c", "import numpy").Run(); err != nil {
		b.Skipf("NumPy unavailable (%v); run make setup", err)
	}
	file := filepath.Join(b.TempDir(), "values.f64")
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&benchData[0])), len(benchData)*8)
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		b.Fatal(err)
	}
	edges := make([]string, len(decileEdges))
	for i, e := range decileEdges {
		edges[i] = strconv.FormatFloat(e, 'g', -1, 64)
	}
	b.SetBytes(int64(len(benchData) * 8))
	var total time.Duration
	for i := 0; i < b.N; i++ {
		out, err := exec.Command("/usr/bin/python3", "-c", numpyScript, file, strings.Join(edges, ","), "3").Output()
		if err != nil {
			b.Fatal(err)
		}
		f := strings.Fields(string(out))
		secs, _ := strconv.ParseFloat(f[0], 64)
		total += time.Duration(secs * float64(time.Second))
		checkCounts(b, f[1:])
	}
	perValue(b, benchValues, total, b.N)
}

// checkCounts compares another implementation's counts with the Go kernel's.
func checkCounts(b *testing.B, got []string) {
	bn, _ := kernels.NewBinner(decileEdges)
	h := kernels.NewHistogram(bn.Bins())
	bn.AddFloat64s(h, benchData)
	want := make([]string, len(h.Counts))
	for i, c := range h.Counts {
		want[i] = strconv.FormatInt(c, 10)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		b.Fatalf("counts %v, Go kernel %v", got, want)
	}
}

// binSQL is the fastest single-column binning expression measured on
// ClickHouse 18.16 (a sum of comparisons; countIf per bin and multiIf were
// slower, arrayCount with a lambda 20x slower).
func binSQL(table string) string {
	terms := make([]string, len(decileEdges))
	for i, e := range decileEdges {
		terms[i] = "(x >= " + strconv.FormatFloat(e, 'g', -1, 64) + ")"
	}
	return fmt.Sprintf("SELECT if(isFinite(x), %s, 255) AS b, count() FROM %s GROUP BY b ORDER BY b", strings.Join(terms, " + "), table)
}

func benchClickHouse(b *testing.B) {
	c := chtest.NewDB(b)
	ctx := context.Background()
	tbl := c.Config().Database + ".bench_values"
	if err := c.Exec(ctx, "CREATE TABLE "+tbl+" (x Float64) ENGINE = MergeTree ORDER BY tuple()"); err != nil {
		b.Fatal(err)
	}
	w, _ := c.NewWriter(storage.NewDefaultWriterConfig())
	if err := w.Write(ctx, storage.Block{Table: "bench_values", Columns: []string{"x"}, Data: []any{benchData}}); err != nil {
		b.Fatal(err)
	}
	if err := c.Exec(ctx, "OPTIMIZE TABLE "+tbl+" FINAL"); err != nil {
		b.Fatal(err)
	}
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			qctx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_threads": threads}))
			b.SetBytes(int64(len(benchData) * 8))
			for i := 0; i < b.N; i++ {
				var counts []string
				rr, err := c.QueryArrow(qctx, binSQL(tbl))
				if err != nil {
					b.Fatal(err)
				}
				for rr.Next() {
					rec := rr.Record()
					for r := 0; r < int(rec.NumRows()); r++ {
						counts = append(counts, rec.Column(1).ValueStr(r))
					}
				}
				if err := rr.Err(); err != nil {
					b.Fatal(err)
				}
				rr.Release()
				checkCounts(b, counts)
			}
			perValue(b, benchValues, b.Elapsed(), b.N)
		})
	}
}

// BenchmarkChartsStep evaluates one new point for each of 100,000 series
// (every rule, learning on), with baselines of 100 points (young: the
// prediction statistic's full mapping) and of 2,000 (learned: its
// expansion, the analyzer's steady state).
func BenchmarkChartsStep(b *testing.B) {
	for _, base := range []int{100, 2000} {
		b.Run(fmt.Sprintf("baseline=%d", base), func(b *testing.B) {
			const n = 100_000
			var c kernels.Charts
			c.Resize(n)
			for i := 0; i < n; i++ {
				c.Seed(i, kernels.MRStats{N: base, Mean: 50, MRBar: 2, NMR: base - 1}, 50)
			}
			r := rand.New(rand.NewPCG(3, 4))
			xs := make([]float64, n)
			for i := range xs {
				xs[i] = 50 + 2/kernels.D2*r.NormFloat64()
			}
			out := make([]kernels.Signal, n)
			p := kernels.DefaultChartParams()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.Step(&p, xs, out)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/series")
		})
	}
}

// BenchmarkPSI computes PSI over 11 bins.
func BenchmarkPSI(b *testing.B) {
	ref := []float64{100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 3}
	cur := []float64{90, 110, 95, 105, 100, 100, 98, 102, 99, 101, 0}
	var s float64
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		v, _ := kernels.PSI(ref, cur, kernels.DefaultAlpha)
		s += v
	}
	if math.IsNaN(s) {
		b.Fatal("NaN")
	}
}

// BenchmarkCategories counts strings into 20 categories plus other.
func BenchmarkCategories(b *testing.B) {
	names := make([]string, 20)
	for i := range names {
		names[i] = fmt.Sprintf("country-%02d", i)
	}
	c, _ := kernels.NewCategories(names)
	vals := make([]string, 1<<16)
	for i := range vals {
		vals[i] = names[(i*7)%len(names)]
		if i%13 == 0 {
			vals[i] = "unseen"
		}
	}
	h := kernels.NewHistogram(c.Bins())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.AddStrings(h, vals)
	}
	perValue(b, len(vals), b.Elapsed(), b.N)
}
