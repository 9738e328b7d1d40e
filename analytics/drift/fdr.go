package drift

import (
	"cmp"
	"slices"
)

// BenjaminiHochberg controls the false-discovery rate at q over the
// p-values of tests evaluated together (every feature × model of one drift
// pass). It returns which hypotheses are rejected and the BH-adjusted
// p-values (q-values): a test is rejected exactly when its q-value is <= q.
// NaN p-values are never rejected and count as tests with p = 1.
func BenjaminiHochberg(pvalues []float64, q float64) (rejected []bool, adjusted []float64) {
	m := len(pvalues)
	rejected, adjusted = make([]bool, m), make([]float64, m)
	if m == 0 {
		return rejected, adjusted
	}
	idx := make([]int, m)
	for i := range idx {
		idx[i] = i
	}
	p := func(i int) float64 {
		if v := pvalues[i]; v == v {
			return v
		}
		return 1
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(p(a), p(b)) })
	// Step-up: q-value of rank r is min over ranks >= r of p·m/rank.
	running := 1.0
	for r := m - 1; r >= 0; r-- {
		i := idx[r]
		running = min(running, p(i)*float64(m)/float64(r+1))
		adjusted[i] = running
	}
	for i := range adjusted {
		rejected[i] = adjusted[i] <= q && pvalues[i] == pvalues[i]
	}
	return rejected, adjusted
}

// Flag is the decision every drift pass makes over its columns' results:
// Benjamini–Hochberg at fdr across all of them, and a column is flagged
// only when it is both significant and practically large (out of the
// stable band). It returns the flags and the q-values.
func Flag(results []Result, fdr float64) (flagged []bool, q []float64) {
	ps := make([]float64, len(results))
	for i, r := range results {
		ps[i] = r.PValue
	}
	flagged, q = BenjaminiHochberg(ps, fdr)
	for i, r := range results {
		flagged[i] = flagged[i] && r.Band != Stable
	}
	return flagged, q
}
