package health

import "math"

// madScale turns a median absolute deviation into a standard deviation for
// normal data (1/Φ⁻¹(3/4)).
const madScale = 1.4826

// Median returns the median of xs, reordering xs in place. The median of an
// even count is the mean of the two middle values; of none, NaN. It runs in
// linear expected time by selection (Hoare's quickselect with a
// median-of-three pivot), never sorting the whole slice.
func Median(xs []float64) float64 {
	n := len(xs)
	switch n {
	case 0:
		return math.NaN()
	case 1:
		return xs[0]
	}
	k := n / 2
	hi := nth(xs, k)
	if n%2 == 1 {
		return hi
	}
	// After nth, xs[:k] holds the k smallest: the lower middle is their max.
	lo := xs[0]
	for _, x := range xs[1:k] {
		lo = max(lo, x)
	}
	return lo + (hi-lo)/2
}

// nth reorders xs so that xs[k] is the value a sort would put there, every
// value before it ≤ it and every value after it ≥ it, and returns xs[k].
func nth(xs []float64, k int) float64 {
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
			return xs[k] // j < k < i: xs[k] equals the pivot
		}
	}
	// Insertion sort for the last few.
	for i := lo + 1; i <= hi; i++ {
		x := xs[i]
		j := i - 1
		for j >= lo && xs[j] > x {
			xs[j+1] = xs[j]
			j--
		}
		xs[j+1] = x
	}
	return xs[k]
}

// Grouping places the rows of a frame in groups: Order lists the rows of
// group g at Order[Start[g]:Start[g+1]]. Rows in no group (−1) are left out.
type Grouping struct {
	Order []int32
	Start []int32
	next  []int32
}

// Build fills g from group ids (−1 for none) with a counting sort, reusing
// g's memory.
func (g *Grouping) Build(ids []int32, groups int) {
	g.Start = resize(g.Start, groups+1)
	clear(g.Start)
	n := 0
	for _, id := range ids {
		if id >= 0 {
			g.Start[id+1]++
			n++
		}
	}
	for i := 1; i <= groups; i++ {
		g.Start[i] += g.Start[i-1]
	}
	g.Order = resize(g.Order, n)
	g.next = append(g.next[:0], g.Start[:groups]...)
	for r, id := range ids {
		if id >= 0 {
			g.Order[g.next[id]] = int32(r)
			g.next[id]++
		}
	}
}

// Groups is the number of groups.
func (g *Grouping) Groups() int { return max(len(g.Start)-1, 0) }

// Stats are one signal's per-group robust statistics.
type Stats struct {
	Median []float64 // per group; NaN for a group without values
	// Sigma is 1.4826·MAD, a standard deviation robust to outliers.
	Sigma []float64
	// N is the number of values (non-NaN) per group.
	N []int32
}

// GroupStats computes the median and MAD of vals per group of g, skipping
// NaNs, into st; scratch is reused between calls (it grows to the number of
// grouped rows).
func GroupStats(vals []float64, g *Grouping, st *Stats, scratch *[]float64) {
	ng := g.Groups()
	st.Median, st.Sigma, st.N = resize(st.Median, ng), resize(st.Sigma, ng), resize(st.N, ng)
	buf := resize(*scratch, len(g.Order))
	*scratch = buf
	for gi := 0; gi < ng; gi++ {
		rows := g.Order[g.Start[gi]:g.Start[gi+1]]
		seg := buf[:0]
		for _, r := range rows {
			if v := vals[r]; v == v { // skip NaN
				seg = append(seg, v)
			}
		}
		st.N[gi] = int32(len(seg))
		med := Median(seg)
		for i, v := range seg {
			seg[i] = math.Abs(v - med)
		}
		st.Median[gi], st.Sigma[gi] = med, madScale*Median(seg)
	}
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
