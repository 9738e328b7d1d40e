package kernels

import "math"

// Exact order statistics without a full sort: medians for robust peer
// statistics (health) and baselines (spc), and the B−1 quantile positions
// of a reference profile (drift). Selection runs in linear expected time,
// about 3× cheaper than sorting.

// Median returns the median of xs, reordering xs in place. The median of an
// even count is the mean of the two middle values; of none, NaN.
func Median(xs []float64) float64 {
	n := len(xs)
	switch n {
	case 0:
		return math.NaN()
	case 1:
		return xs[0]
	}
	k := n / 2
	NthElement(xs, k)
	hi := xs[k]
	if n%2 == 1 {
		return hi
	}
	// After NthElement, xs[:k] holds the k smallest: the lower middle is
	// their maximum.
	lo := xs[0]
	for _, x := range xs[1:k] {
		lo = max(lo, x)
	}
	return (lo + hi) / 2
}

// SelectPositions rearranges xs so that xs[p] holds the value of sorted
// position p for every p in positions (ascending, within xs), as repeated
// NthElement would.
func SelectPositions(xs []float64, positions []int) {
	multiSelect(xs, positions, 0)
}

// multiSelect selects positions (relative to the whole slice, offset by
// base) within xs.
func multiSelect(xs []float64, positions []int, base int) {
	for len(positions) > 0 && len(xs) > 1 {
		m := len(positions) / 2
		k := positions[m] - base
		NthElement(xs, k)
		multiSelect(xs[:k], positions[:m], base)
		xs, positions, base = xs[k+1:], positions[m+1:], base+k+1
	}
}

// NthElement partially sorts xs so that xs[k] is the k-th smallest, smaller
// or equal values before it and larger or equal after: Hoare's quickselect
// with a median-of-three pivot. Both scans stop on values equal to the
// pivot, so runs of equal values (common in discrete data) still split
// evenly. xs must hold no NaN.
func NthElement(xs []float64, k int) {
	lo, hi := 0, len(xs)-1
	for hi-lo > 16 {
		mid := lo + (hi-lo)/2
		// Median of three to xs[mid], then use it as the pivot.
		if xs[mid] < xs[lo] {
			xs[mid], xs[lo] = xs[lo], xs[mid]
		}
		if xs[hi] < xs[lo] {
			xs[hi], xs[lo] = xs[lo], xs[hi]
		}
		if xs[hi] < xs[mid] {
			xs[hi], xs[mid] = xs[mid], xs[hi]
		}
		p := xs[mid]
		i, j := lo, hi
		for i <= j {
			for xs[i] < p {
				i++
			}
			for xs[j] > p {
				j--
			}
			if i <= j {
				xs[i], xs[j] = xs[j], xs[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return // j < k < i: xs[k] equals the pivot
		}
	}
	for i := lo + 1; i <= hi; i++ { // insertion sort of the small rest
		x := xs[i]
		j := i - 1
		for j >= lo && xs[j] > x {
			xs[j+1] = xs[j]
			j--
		}
		xs[j+1] = x
	}
}
