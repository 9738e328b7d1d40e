package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// refBin is the obvious definition: the number of edges <= x, or -1.
func refBin(edges []float64, x float64) int {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return -1
	}
	return sort.Search(len(edges), func(i int) bool { return edges[i] > x })
}

func refHistogram(edges, xs []float64) *Histogram {
	h := NewHistogram(len(edges) + 1)
	for _, x := range xs {
		if k := refBin(edges, x); k >= 0 {
			h.Counts[k]++
		} else {
			h.Missing++
		}
	}
	return h
}

// edgeSets are the shapes of edges that matter: none, one, a few evenly or
// unevenly spaced, clustered (several per grid cell), many, and huge or tiny
// magnitudes.
func edgeSets(r *rand.Rand) map[string][]float64 {
	sets := map[string][]float64{
		"none":      {},
		"one":       {0.5},
		"deciles":   {-1.2816, -0.8416, -0.5244, -0.2533, 0, 0.2533, 0.5244, 0.8416, 1.2816},
		"integers":  {0, 1, 2, 3},
		"clustered": {0, 1e-12, 2e-12, 3e-12, 1, 1000},
		"huge":      {-1e300, -1e-300, 0, 1e-300, 1e300},
		"tiny":      {1e-310, 2e-310, 3e-310},
	}
	for _, n := range []int{25, 200, 3000} {
		e := make([]float64, 0, n)
		for len(e) < n {
			e = append(e, r.ExpFloat64()*10-3)
		}
		slices.Sort(e)
		sets[fmt.Sprintf("random%d", n)] = slices.Compact(e)
	}
	return sets
}

// values mixes normal draws, exact edge values, their neighbours, and
// every kind of non-finite and extreme value.
func values(r *rand.Rand, edges []float64, n int) []float64 {
	xs := make([]float64, 0, n)
	for _, e := range edges {
		xs = append(xs, e, math.Nextafter(e, math.Inf(-1)), math.Nextafter(e, math.Inf(1)))
	}
	xs = append(xs, math.NaN(), math.Inf(1), math.Inf(-1), math.MaxFloat64, -math.MaxFloat64, 0, math.Copysign(0, -1),
		math.SmallestNonzeroFloat64, 1e19, -1e19, math.Float64frombits(0x7ff8000000000001))
	for len(xs) < n {
		switch r.IntN(10) {
		case 0:
			xs = append(xs, math.NaN())
		case 1:
			if len(edges) > 0 {
				xs = append(xs, edges[r.IntN(len(edges))])
				continue
			}
			fallthrough
		default:
			xs = append(xs, r.NormFloat64()*3)
		}
	}
	r.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
	return xs
}

func equalHist(t *testing.T, name string, got, want *Histogram) {
	t.Helper()
	if !slices.Equal(got.Counts, want.Counts) || got.Missing != want.Missing {
		t.Errorf("%s:\n got  %v missing %d\n want %v missing %d", name, got.Counts, got.Missing, want.Counts, want.Missing)
	}
}

func TestBinnerMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for name, edges := range edgeSets(r) {
		b, err := NewBinner(edges)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, n := range []int{0, 1, 3, 4, 5, 1001, 20000} {
			xs := values(r, edges, n)
			want := refHistogram(edges, xs)
			for _, mode := range binModes(b) {
				got := NewHistogram(b.Bins())
				mode.run(got, xs)
				equalHist(t, name+"/"+mode.name, got, want)
			}
			for _, x := range xs[:min(len(xs), 200)] {
				if got, want := b.Bin(x), refBin(edges, x); got != want {
					t.Errorf("%s: Bin(%v) = %d, want %d", name, x, got, want)
				}
			}
		}
	}
}

func TestBinnerRejectsBadEdges(t *testing.T) {
	for _, edges := range [][]float64{{1, 1}, {2, 1}, {math.NaN()}, {0, math.Inf(1)}, make([]float64, math.MaxUint16)} {
		if _, err := NewBinner(edges); err == nil {
			t.Errorf("NewBinner(%.5v...) accepted bad edges", edges)
		}
	}
}

func TestAddArrayCountsNullsAsMissing(t *testing.T) {
	bld := array.NewFloat64Builder(memory.DefaultAllocator)
	defer bld.Release()
	vals := []float64{0.1, 5, -3, 2, 7, 0.5, 9, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	valid := make([]bool, len(vals))
	for i := range valid {
		valid[i] = i%3 != 1
	}
	bld.AppendValues(vals, valid)
	arr := bld.NewFloat64Array()
	defer arr.Release()
	edges := []float64{1, 2, 5}
	b, _ := NewBinner(edges)
	for _, off := range []int{0, 1, 5, 9} {
		sl := array.NewSlice(arr, int64(off), int64(len(vals))).(*array.Float64)
		var xs []float64
		nulls := 0
		for i := off; i < len(vals); i++ {
			if valid[i] {
				xs = append(xs, vals[i])
			} else {
				nulls++
			}
		}
		want := refHistogram(edges, xs)
		want.Missing += int64(nulls)
		got := NewHistogram(b.Bins())
		b.AddArray(got, sl)
		equalHist(t, fmt.Sprintf("offset %d", off), got, want)
		sl.Release()
	}
}

func TestHistogramHelpers(t *testing.T) {
	h := &Histogram{Counts: []int64{1, 2, 3}, Missing: 4}
	h.Add(&Histogram{Counts: []int64{1, 1, 1}, Missing: 1})
	if h.Total() != 14 || h.Counts[2] != 4 || h.Missing != 5 {
		t.Fatalf("Add/Total: %+v", h)
	}
	h.Reset()
	if h.Total() != 0 || len(h.Counts) != 3 {
		t.Fatalf("Reset: %+v", h)
	}
}

func FuzzBinner(f *testing.F) {
	f.Add(0.0, 1.0, 2.0, 1.5)
	f.Add(-1e300, 0.0, 1e-300, math.NaN())
	f.Fuzz(func(t *testing.T, e0, e1, e2, x float64) {
		edges := slices.Compact(slices.Sorted(slices.Values([]float64{e0, e1, e2})))
		b, err := NewBinner(edges)
		if err != nil {
			return
		}
		xs := []float64{x, x, x, x, x, -x, x * 2, x / 3}
		want := refHistogram(edges, xs)
		for _, mode := range binModes(b) {
			got := NewHistogram(b.Bins())
			mode.run(got, xs)
			equalHist(t, mode.name, got, want)
		}
	})
}
