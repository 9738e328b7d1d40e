package health

import (
	"math"

	"github.com/fleetwatch/fleetwatch/lib/kernels"
)

// madScale turns a median absolute deviation into a standard deviation for
// normal data (1/Φ⁻¹(3/4)).
const madScale = 1.4826

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
		med := kernels.Median(seg)
		for i, v := range seg {
			seg[i] = math.Abs(v - med)
		}
		st.Median[gi], st.Sigma[gi] = med, madScale*kernels.Median(seg)
	}
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
