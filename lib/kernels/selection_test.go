package kernels

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestMedianMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 2, 3, 16, 17, 18, 100, 1001, 4096} {
		for _, dist := range []string{"normal", "ties", "sorted", "reversed"} {
			xs := make([]float64, n)
			for i := range xs {
				switch dist {
				case "normal":
					xs[i] = rng.NormFloat64()
				case "ties":
					xs[i] = float64(rng.IntN(3))
				case "sorted":
					xs[i] = float64(i)
				case "reversed":
					xs[i] = float64(n - i)
				}
			}
			s := slices.Sorted(slices.Values(xs))
			want := s[n/2]
			if n%2 == 0 {
				want = (s[n/2-1] + s[n/2]) / 2
			}
			if got := Median(xs); got != want {
				t.Errorf("n=%d %s: median %v, want %v", n, dist, got, want)
			}
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("median of nothing should be NaN")
	}
}

func TestNthElementPlacesTheKthSmallest(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(300)
		xs := make([]float64, n)
		for i := range xs {
			if trial%2 == 0 {
				xs[i] = rng.NormFloat64()
			} else {
				xs[i] = float64(rng.IntN(4)) // long runs of ties
			}
		}
		sorted := slices.Sorted(slices.Values(xs))
		k := rng.IntN(n)
		NthElement(xs, k)
		if xs[k] != sorted[k] {
			t.Fatalf("trial %d: xs[%d] = %v, sorted %v", trial, k, xs[k], sorted[k])
		}
		for i, x := range xs {
			if (i < k && x > xs[k]) || (i > k && x < xs[k]) {
				t.Fatalf("trial %d: xs[%d] = %v on the wrong side of xs[%d] = %v", trial, i, x, k, xs[k])
			}
		}
		if !slices.Equal(slices.Sorted(slices.Values(xs)), sorted) {
			t.Fatalf("trial %d: values lost or duplicated", trial)
		}
	}
}

// BenchmarkSelection is BuildNumeric's selection: the 9 decile positions of
// a 65,536-value reference sample, normal and with heavy ties.
func BenchmarkSelection(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dist := range []string{"normal", "ties"} {
		xs := make([]float64, 1<<16)
		for i := range xs {
			if dist == "normal" {
				xs[i] = rng.NormFloat64()
			} else {
				xs[i] = float64(rng.IntN(5))
			}
		}
		var pos []int
		for d := 1; d < 10; d++ {
			pos = append(pos, d*len(xs)/10)
		}
		buf := make([]float64, len(xs))
		b.Run(dist, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				copy(buf, xs)
				SelectPositions(buf, pos)
			}
		})
	}
}
