package drift

// Exact order statistics without a full sort: BuildNumeric needs the values
// at B−1 sorted positions and the maximum, and selecting them is about 3×
// cheaper than sorting (it matters for wide files: 1,000 columns of a
// 65,536-row sample).

// selectPositions rearranges xs so that xs[p] holds the value of sorted
// position p for every p in positions (ascending, within xs), as repeated
// nth_element would.
func selectPositions(xs []float64, positions []int) {
	multiSelect(xs, positions, 0)
}

// multiSelect selects positions (relative to the whole slice, offset by
// base) within xs.
func multiSelect(xs []float64, positions []int, base int) {
	for len(positions) > 0 && len(xs) > 1 {
		m := len(positions) / 2
		k := positions[m] - base
		nthElement(xs, k)
		multiSelect(xs[:k], positions[:m], base)
		xs, positions, base = xs[k+1:], positions[m+1:], base+k+1
	}
}

// nthElement partially sorts xs so that xs[k] is the k-th smallest, smaller
// or equal values before it and larger or equal after (quickselect with a
// median-of-three pivot and three-way partitioning, so runs of equal values,
// common in discrete data, cost nothing).
func nthElement(xs []float64, k int) {
	for len(xs) > 16 {
		a, b, c := xs[0], xs[len(xs)/2], xs[len(xs)-1]
		pivot := max(min(a, b), min(max(a, b), c))
		lt, i, gt := 0, 0, len(xs)
		for i < gt {
			switch v := xs[i]; {
			case v < pivot:
				xs[lt], xs[i] = xs[i], xs[lt]
				lt++
				i++
			case v > pivot:
				gt--
				xs[gt], xs[i] = xs[i], xs[gt]
			default:
				i++
			}
		}
		switch {
		case k < lt:
			xs = xs[:lt]
		case k >= gt:
			xs, k = xs[gt:], k-gt
		default:
			return
		}
	}
	for i := 1; i < len(xs); i++ { // insertion sort of the small rest
		for j := i; j > 0 && xs[j] < xs[j-1]; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}
