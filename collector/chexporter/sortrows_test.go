package chexporter

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/fleetwatch/fleetwatch/storage"
)

// samplesBlock is n gpu_samples rows as the drain loop writes them: GPUs'
// metrics in the order their requests came, rounds of increasing time.
func samplesRows(n int, rng *rand.Rand) storage.Block {
	temp := "DCGM_FI_DEV_GPU_TEMP"
	// temp[:15] starts where temp does: the same data pointer, another name.
	metrics := []string{temp, "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_PROF_SM_ACTIVE", "DCGM_FI_DEV_XID_ERRORS", "fleetwatch_train_step_seconds", temp[:15]}
	// Series ids are hashes: every byte takes every value.
	ids := make([][]uint64, len(metrics))
	for m := range ids {
		for range 50 {
			ids[m] = append(ids[m], rng.Uint64())
		}
	}
	var ts []int64
	var metric []string
	var series []uint64
	var value []float64
	var tsns []uint32
	for i := range n {
		m := rng.IntN(len(metrics))
		name := metrics[m]
		if i%2 == 0 {
			name = strings.Clone(name) // not interned: another pointer, the same name
		}
		metric = append(metric, name)
		series = append(series, ids[m][rng.IntN(len(ids[m]))])
		ts = append(ts, 1_700_000_000+int64(i/100))
		value = append(value, float64(i))
		tsns = append(tsns, uint32(i))
	}
	return storage.Block{Table: "gpu_samples", Columns: []string{"ts", "metric", "series", "value", "ts_ns"},
		Data: []any{ts, metric, series, value, tsns}}
}

// rowsOfBlock lists a block's rows as strings.
func rowsOfBlock(b storage.Block) []string {
	n := rowsOf(b)
	out := make([]string, n)
	for i := range n {
		for _, d := range b.Data {
			switch v := d.(type) {
			case []int64:
				out[i] += fmt.Sprint(v[i], "|")
			case []string:
				out[i] += v[i] + "|"
			case []uint64:
				out[i] += fmt.Sprint(v[i], "|")
			case []float64:
				out[i] += fmt.Sprint(v[i], "|")
			case []uint32:
				out[i] += fmt.Sprint(v[i], "|")
			}
		}
	}
	return out
}

// The drain loop hands ClickHouse its rows in the table's order (metric,
// series, ts): the same rows, ordered, whether or not equal metric names
// share memory, and when two names start at the same address; a block
// already in order is left as it is.
func TestSortSamplesOrdersByTheSortingKey(t *testing.T) {
	var s sampleSorter
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 1000, 5000} {
		in := samplesRows(n, rng)
		want := rowsOfBlock(in)
		out := s.sortSamples(in)
		got := rowsOfBlock(out)
		if !slices.Equal(sortedCopy(got), sortedCopy(want)) {
			t.Fatalf("%d rows: the rows changed", n)
		}
		metric, series, ts := out.Data[1].([]string), out.Data[2].([]uint64), out.Data[0].([]int64)
		for i := 1; i < n; i++ {
			if c := cmp.Or(cmp.Compare(metric[i-1], metric[i]), cmp.Compare(series[i-1], series[i]), cmp.Compare(ts[i-1], ts[i])); c > 0 {
				t.Fatalf("%d rows: row %d (%s %d %d) before row %d (%s %d %d)", n, i-1, metric[i-1], series[i-1], ts[i-1], i, metric[i], series[i], ts[i])
			}
		}
		again := s.sortSamples(out)
		if n > 1 && &again.Data[0].([]int64)[0] != &out.Data[0].([]int64)[0] {
			t.Fatalf("%d rows: an ordered block was copied", n)
		}
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// BenchmarkSortSamples is the drain loop's cost of ordering a batch, per
// row: 200,000 rows of 150 metrics in request order.
func BenchmarkSortSamples(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 200_000
	var metrics []string
	for i := range 150 {
		metrics = append(metrics, fmt.Sprintf("DCGM_FI_DEV_FIELD_%03d", i))
	}
	ts := make([]int64, n)
	metric := make([]string, n)
	series := make([]uint64, n)
	value := make([]float64, n)
	for i := range n {
		gpu, m := i/150, i%150
		metric[i], series[i], ts[i], value[i] = metrics[m], rng.Uint64(), 1_700_000_000+int64(gpu/1000), float64(i)
		_ = gpu
	}
	blk := storage.Block{Table: "gpu_samples", Columns: []string{"ts", "metric", "series", "value"}, Data: []any{ts, metric, series, value}}
	var s sampleSorter
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s.sortSamples(blk)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/row")
}
