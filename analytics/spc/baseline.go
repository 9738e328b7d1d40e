// Package spc runs statistical process control on series: an individuals
// chart per series with its baseline (mean, and σ from the average moving
// range) estimated on in-control data only, 3σ limits, the Western Electric
// rules (7 in a row on one side, as in the design documents), and EWMA and
// CUSUM for small persistent shifts. The rule kernels are in package
// kernels; this package adds the baseline, many-series bookkeeping, the
// analyzer's detector over ClickHouse (model latency, error rate,
// throughput, feature freshness, cost, delayed-label accuracy, GPU series),
// and Analyze for fleetctl spc.
package spc

import (
	"math"
	"slices"

	"github.com/fleetwatch/fleetwatch/lib/kernels"
)

// D4 is the upper control limit factor of a moving range of two points:
// moving ranges above D4·MR̄ are excluded from a baseline's MR̄.
const D4 = 3.267

// Baseline is a Phase I estimate: the in-control points' statistics and the
// points left out.
type Baseline struct {
	Stats kernels.MRStats
	// Excluded are the indexes (into the input) of points beyond 3σ that
	// were left out of the estimate.
	Excluded []int
	// Last is the last in-control point, where the moving-range chain
	// continues.
	Last float64
}

// Mean, Sigma and the limits of the baseline.
func (b Baseline) Mean() float64  { return b.Stats.Mean }
func (b Baseline) Sigma() float64 { return max(b.Stats.Sigma(), kernels.SigmaFloor(b.Stats.Mean)) }
func (b Baseline) UCL() float64   { return b.Mean() + 3*b.Sigma() }
func (b Baseline) LCL() float64   { return b.Mean() - 3*b.Sigma() }

// EstimateBaseline estimates μ and σ from Phase I points so that faults in
// them do not become the baseline. Points are first screened against robust
// limits — the median ± 4σ̃ with σ̃ = median moving range / 0.954, which a
// few faulty points cannot move — and those beyond are left out (4σ̃, not
// 3σ̃: σ̃ is a noisy estimate on 20–30 points, and the screen is for gross
// faults; the chart's 3σ limits catch the rest). μ is then
// the mean of the kept points and σ = MR̄/1.128 over consecutive kept points,
// leaving out moving ranges above D4·MR̄. (Iterating 3σ trimming on the
// MR̄ estimate itself instead shrinks σ with every pass: it cuts the tails
// of in-control data and so under-estimates σ; the screen runs once.) NaN
// and ±Inf points are ignored.
func EstimateBaseline(xs []float64) Baseline {
	valid := make([]float64, 0, len(xs))
	for _, x := range xs {
		if x-x == 0 {
			valid = append(valid, x)
		}
	}
	b := Baseline{Last: math.NaN()}
	keep := make([]bool, len(xs))
	med, robust := robustCenter(valid)
	for i, x := range xs {
		if x-x != 0 {
			continue
		}
		if math.Abs(x-med) > screenSigmas*robust {
			b.Excluded = append(b.Excluded, i)
			continue
		}
		keep[i] = true
		b.Last = x
	}
	b.Stats = keptStats(xs, keep)
	return b
}

// screenSigmas is the width of the Phase I screen in robust σ.
const screenSigmas = 4

// robustCenter returns the median of xs and σ̃ = median |Δ| / 0.954
// (for normal data the median absolute difference of consecutive points is
// 0.954σ).
func robustCenter(xs []float64) (median, sigma float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	diffs := make([]float64, 0, len(xs))
	for i := 1; i < len(xs); i++ {
		diffs = append(diffs, math.Abs(xs[i]-xs[i-1]))
	}
	median = kernels.Median(slices.Clone(xs))
	if len(diffs) > 0 {
		sigma = kernels.Median(diffs) / 0.954
	}
	return median, max(sigma, kernels.SigmaFloor(median))
}

// keptStats is the mean of the kept points and MR̄ over consecutive kept
// points, leaving out moving ranges above D4 times their first mean.
func keptStats(xs []float64, keep []bool) kernels.MRStats {
	kept := make([]float64, 0, len(xs))
	for i, x := range xs {
		if keep[i] {
			kept = append(kept, x)
		}
	}
	s := kernels.MovingRange(kept)
	if s.NMR == 0 {
		return s
	}
	limit := D4 * s.MRBar
	var mr float64
	var n int
	for i := 1; i < len(kept); i++ {
		if d := math.Abs(kept[i] - kept[i-1]); d <= limit {
			mr += d
			n++
		}
	}
	if n > 0 {
		s.MRBar, s.NMR = mr/float64(n), n
	}
	return s
}
