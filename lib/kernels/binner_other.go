//go:build !amd64

package kernels

const useAVX2 = false

func binAVX2(xs []float64, table []uint32, cellEdge []float64, lo, scale, maxF float64, missing int, counts []int64) {
	panic("kernels: no AVX2 kernel on this architecture")
}

func binCmpAVX2(xs []float64, edges4 []float64, nEdges, missing int, counts []int64) {
	panic("kernels: no AVX2 kernel on this architecture")
}
