package profile

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fleetwatch/fleetwatch/lib/kernels"
)

func TestNumericEdges(t *testing.T) {
	cases := []struct {
		name   string
		values []float64
		bins   int
		edges  []float64
		counts []float64
	}{
		// quantileExact at k/4 of 8 values: positions 2, 4, 6.
		{"continuous", []float64{8, 1, 7, 2, 6, 3, 5, 4}, 4, []float64{3, 5, 7}, []float64{2, 2, 2, 2}},
		// 70% zeros: the deciles are 0 ×7 and 1 ×2; the edge at the maximum
		// gets a companion just above it; nothing is below the first edge.
		{"discrete", []float64{0, 0, 0, 0, 0, 0, 0, 1, 1, 1}, 10, []float64{0, 1, math.Nextafter(1, 2)}, []float64{0, 7, 3, 0}},
		{"constant", []float64{4, 4, 4}, 10, []float64{4, math.Nextafter(4, 5)}, []float64{0, 3, 0}},
	}
	for _, c := range cases {
		p, err := BuildNumeric(c.values, BuildConfig{Bins: c.bins, TopK: 20})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(p.Edges, c.edges) || !slices.Equal(p.Counts, c.counts) {
			t.Errorf("%s: edges %v counts %v, want %v %v", c.name, p.Edges, p.Counts, c.edges, c.counts)
		}
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestCategoricalProfile(t *testing.T) {
	vals := []string{"b", "a", "c", "a", "", "b", "d", "a", "b", "e"}
	p, err := BuildCategorical(vals, BuildConfig{Bins: 10, TopK: 2})
	if err != nil {
		t.Fatal(err)
	}
	// a and b tie at 3 and come by name; c, d, e are other; one missing.
	if !slices.Equal(p.Categories, []string{"a", "b"}) || !slices.Equal(p.Counts, []float64{3, 3, 3}) || p.Missing != 1 {
		t.Fatalf("profile %+v", p)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
}

// Selecting order statistics gives exactly what sorting gives, for
// continuous, discrete and constant data.
func TestSelectPositionsMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for trial := 0; trial < 300; trial++ {
		n := 1 + r.IntN(3000)
		xs := make([]float64, n)
		for i := range xs {
			switch trial % 3 {
			case 0:
				xs[i] = r.NormFloat64()
			case 1:
				xs[i] = float64(r.IntN(5))
			default:
				xs[i] = 7
			}
		}
		sorted := slices.Sorted(slices.Values(xs))
		levels := QuantileLevels(1 + r.IntN(30))
		var pos []int
		for _, l := range levels {
			pos = append(pos, quantileIndex(l, n))
		}
		pos = slices.Compact(pos)
		sel := slices.Clone(xs)
		kernels.SelectPositions(sel, pos)
		for _, p := range pos {
			if sel[p] != sorted[p] {
				t.Fatalf("trial %d (n=%d): position %d holds %v, sorted %v", trial, n, p, sel[p], sorted[p])
			}
		}
		if !slices.Equal(slices.Sorted(slices.Values(sel)), sorted) {
			t.Fatalf("trial %d: selection lost or duplicated values", trial)
		}
	}
}
