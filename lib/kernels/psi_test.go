package kernels

import (
	"math"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

func TestPSIHandComputed(t *testing.T) {
	cases := []struct {
		name      string
		ref, cur  []float64
		alpha     float64
		want      float64
		wantBins  int
		tolerance float64
	}{
		// (0.4−0.5)·ln(0.4/0.5) + (0.4−0.3)·ln(0.4/0.3) + 0 = 0.0223144 + 0.0287682
		{"unsmoothed", []float64{50, 30, 20}, []float64{40, 40, 20}, 0, 0.051082562376599076, 3, 1e-15},
		// A = (40.5, 40.5, 20.5)/101.5, E = (50.5, 30.5, 20.5)/101.5
		{"smoothed", []float64{50, 30, 20}, []float64{40, 40, 20}, 0.5, 0.04967947316925596, 3, 1e-15},
		// A bin empty in the reference: E = 0.5/102
		{"new bin", []float64{50, 30, 20, 0}, []float64{40, 40, 18, 2}, 0.5, 0.08300637901635147, 4, 1e-15},
		// The middle bin is empty on both sides and left out: k = 2,
		// E = (10.5, 5.5)/16, A = (0.5, 5.5)/6.
		{"unused bin", []float64{10, 0, 5}, []float64{0, 0, 5}, 0.5, 1.7442576466123776, 2, 1e-15},
		// Same shape; smoothing pulls the small sample harder towards uniform.
		{"same shape", []float64{3, 4, 5}, []float64{30, 40, 50}, 0.5, 0.0004301360405340812, 3, 1e-15},
		{"one bin", []float64{7, 0}, []float64{9, 0}, 0.5, 0, 1, 0},
		{"empty current", []float64{7, 3}, []float64{0, 0}, 0.5, 0, 2, 0},
	}
	for _, c := range cases {
		got, k := PSI(c.ref, c.cur, c.alpha)
		if math.Abs(got-c.want) > c.tolerance || k != c.wantBins {
			t.Errorf("%s: PSI = %.17g over %d bins, want %.17g over %d", c.name, got, k, c.want, c.wantBins)
		}
	}
	// Proportional histograms of the same shape give exactly 0 without smoothing.
	if got, _ := PSI([]float64{1, 2, 3}, []float64{10, 20, 30}, 0); got != 0 {
		t.Errorf("same proportions: %v", got)
	}
}

func TestMovingRange(t *testing.T) {
	s := MovingRange([]float64{1, 3, math.NaN(), 2, math.Inf(1), 6})
	// Valid points 1, 3, 2, 6: mean 3, moving ranges 2, 1, 4.
	if s.N != 4 || s.Mean != 3 || s.NMR != 3 || math.Abs(s.MRBar-7.0/3) > 1e-15 {
		t.Fatalf("MovingRange = %+v", s)
	}
	if math.Abs(s.Sigma()-7.0/3/1.128) > 1e-15 {
		t.Fatalf("Sigma = %v", s.Sigma())
	}
	b := array.NewFloat64Builder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues([]float64{1, 100, 3, 2, 6}, []bool{true, false, true, true, true})
	a := b.NewFloat64Array()
	defer a.Release()
	if got := MovingRangeArray(a); got != (MRStats{N: 4, Mean: 3, MRBar: 7.0 / 3, NMR: 3}) {
		t.Fatalf("MovingRangeArray = %+v", got)
	}
	if got := MovingRange(nil); got != (MRStats{}) {
		t.Fatalf("empty: %+v", got)
	}
}

func TestCategories(t *testing.T) {
	c, err := NewCategories([]string{"DE", "FR"})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHistogram(c.Bins())
	c.AddStrings(h, []string{"DE", "FR", "DE", "US", "", "JP"})
	b := array.NewStringBuilder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues([]string{"FR", "x", "", "DE"}, []bool{true, false, true, true})
	a := b.NewStringArray()
	defer a.Release()
	c.AddArray(h, a)
	// DE 3, FR 2, other (US, JP) 2; missing: "", null, "".
	if h.Counts[0] != 3 || h.Counts[1] != 2 || h.Counts[2] != 2 || h.Missing != 3 {
		t.Fatalf("counts %v missing %d", h.Counts, h.Missing)
	}
	for _, bad := range [][]string{{"a", "a"}, {""}} {
		if _, err := NewCategories(bad); err == nil {
			t.Errorf("NewCategories(%q) accepted", bad)
		}
	}
}
