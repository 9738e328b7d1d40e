package kernels

type binMode struct {
	name string
	run  func(h *Histogram, xs []float64)
}

// binModes runs every kernel a Binner can use on this machine: the AVX2
// compare and grid kernels and the portable one.
func binModes(b *Binner) []binMode {
	grid := *b
	grid.edges4 = nil
	modes := []binMode{{"portable", func(h *Histogram, xs []float64) {
		useAVX2 = false
		defer func() { useAVX2 = true }()
		b.AddFloat64s(h, xs)
	}}}
	if !useAVX2 {
		return modes
	}
	return append(modes,
		binMode{"avx2", func(h *Histogram, xs []float64) { b.AddFloat64s(h, xs) }},
		binMode{"avx2-grid", func(h *Histogram, xs []float64) { grid.AddFloat64s(h, xs) }})
}
