package kernels

import (
	"math"

	"github.com/apache/arrow/go/v17/arrow/array"
)

// DefaultAlpha is the pseudo-count PSI adds to every bin in use (Jeffreys'
// prior, 1/2). It keeps ln(A/E) finite for bins empty on one side, and it
// shrinks small samples less than a fixed epsilon does: a bin that is empty
// in a current window of n values contributes about (1/2n)·ln(1/2nE) rather
// than E·ln(E/ε).
const DefaultAlpha = 0.5

// PSI is the population stability index of cur against ref, two histograms
// over the same bins (counts, or weights):
//
//	PSI = Σ (Aᵢ − Eᵢ)·ln(Aᵢ/Eᵢ),  Aᵢ = (curᵢ + α)/(n + kα),  Eᵢ = (refᵢ + α)/(m + kα)
//
// summed over the k bins in use, those where either side has a count; bins
// empty on both sides carry no information and are left out. It returns the
// index and k. With k < 2 there is nothing to compare and PSI is 0.
func PSI(ref, cur []float64, alpha float64) (psi float64, k int) {
	var m, n float64
	for i := range ref {
		if ref[i] > 0 || cur[i] > 0 {
			k++
			m += ref[i]
			n += cur[i]
		}
	}
	if k < 2 || m <= 0 || n <= 0 {
		return 0, k
	}
	dm, dn := m+float64(k)*alpha, n+float64(k)*alpha
	for i := range ref {
		if ref[i] > 0 || cur[i] > 0 {
			e := (ref[i] + alpha) / dm
			a := (cur[i] + alpha) / dn
			psi += (a - e) * math.Log(a/e)
		}
	}
	return psi, k
}

// MRStats summarizes a series for an individuals control chart: the number
// of valid points, their mean, and the mean absolute difference between
// consecutive valid points (the average moving range, MR̄).
type MRStats struct {
	N     int
	Mean  float64
	MRBar float64
	// NMR is the number of moving ranges (N−1 when N > 0).
	NMR int
}

// D2 is the bias constant d₂ for ranges of two points: for normal data the
// mean moving range is d₂·σ, so σ̂ = MR̄/1.128.
const D2 = 1.128

// Sigma is the σ estimate MR̄/d₂.
func (s MRStats) Sigma() float64 { return s.MRBar / D2 }

// MovingRange computes MRStats over xs; NaN and ±Inf are skipped, and a
// moving range joins each valid point to the previous valid one.
func MovingRange(xs []float64) MRStats {
	var acc mrAcc
	for _, x := range xs {
		acc.add(x)
	}
	return acc.stats()
}

// MovingRangeArray is MovingRange over an Arrow column; nulls are skipped
// like NaN.
func MovingRangeArray(a *array.Float64) MRStats {
	vals := a.Float64Values()
	if a.NullN() == 0 {
		return MovingRange(vals)
	}
	var acc mrAcc
	for i, x := range vals {
		if a.IsValid(i) {
			acc.add(x)
		}
	}
	return acc.stats()
}

// mrAcc accumulates MRStats one point at a time.
type mrAcc struct {
	s             MRStats
	sum, mr, prev float64
}

func (a *mrAcc) add(x float64) {
	if x-x != 0 {
		return
	}
	if a.s.N > 0 {
		a.mr += math.Abs(x - a.prev)
		a.s.NMR++
	}
	a.sum += x
	a.prev = x
	a.s.N++
}

func (a *mrAcc) stats() MRStats {
	s := a.s
	if s.N > 0 {
		s.Mean = a.sum / float64(s.N)
	}
	if s.NMR > 0 {
		s.MRBar = a.mr / float64(s.NMR)
	}
	return s
}
