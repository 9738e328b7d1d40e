package kernels

import "golang.org/x/sys/cpu"

// useAVX2 selects the assembly binning kernel.
var useAVX2 = cpu.X86.HasAVX2

// binAVX2 bins len(xs) values (a multiple of four) into four sub-histograms
// laid out one after another in counts, each of missing+1 slots: lane l of
// every group of four values counts into counts[l*(missing+1):], non-finite
// values into slot missing. It computes exactly Binner.binFinite.
//
//go:noescape
func binAVX2(xs []float64, table []uint32, cellEdge []float64, lo, scale, maxF float64, missing int, counts []int64)

// binCmpAVX2 bins len(xs) values (a multiple of four) by comparing each
// with every edge; edges4 holds each of the nEdges (>= 1) edges four times.
// Same layout and result as binAVX2.
//
//go:noescape
func binCmpAVX2(xs []float64, edges4 []float64, nEdges, missing int, counts []int64)
