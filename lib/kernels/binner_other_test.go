//go:build !amd64

package kernels

type binMode struct {
	name string
	run  func(h *Histogram, xs []float64)
}

func binModes(b *Binner) []binMode {
	return []binMode{{"portable", func(h *Histogram, xs []float64) { b.AddFloat64s(h, xs) }}}
}
