package kernels

// BenchMode is one binning kernel, for benchmarks outside the package.
type BenchMode struct {
	Name string
	Run  func(h *Histogram, xs []float64)
}

// BenchModes lists every kernel a Binner can use on this machine.
func BenchModes(b *Binner) []BenchMode {
	var out []BenchMode
	for _, m := range binModes(b) {
		out = append(out, BenchMode{Name: m.name, Run: m.run})
	}
	return out
}
