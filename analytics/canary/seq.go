package canary

import "math"

// radius is the half-width of the mixture-SPRT confidence sequence at
// information info (1/variance of the estimate), mixture scale tau and
// level alpha: the estimate ± radius holds the true value at every look
// with probability at least 1−α. It falls as info grows (for α < 0.6).
func radius(info, tau, alpha float64) float64 {
	if !(info > 0) {
		return math.Inf(1)
	}
	t2 := tau * tau
	return math.Sqrt((info+1/t2)*(2*math.Log(1/alpha)+math.Log1p(t2*info))) / info
}

// infoFor returns the least information at which radius ≤ r, by bisection
// on a log scale; +Inf when r ≤ 0.
func infoFor(r, tau, alpha float64) float64 {
	if !(r > 0) {
		return math.Inf(1)
	}
	lo, hi := 1.0, 2.0
	for radius(hi, tau, alpha) > r {
		lo, hi = hi, hi*2
		if hi > 1e300 {
			return math.Inf(1)
		}
	}
	for range 60 {
		mid := math.Sqrt(lo * hi)
		if radius(mid, tau, alpha) > r {
			lo = mid
		} else {
			hi = mid
		}
		if hi/lo < 1.001 {
			break
		}
	}
	return hi
}

// shrunk is the add-½ rate of x events in n trials: never 0 or 1.
func shrunk(x, n float64) float64 { return (x + 0.5) / (n + 1) }

// twoSample returns the difference of rates xc/nc − xb/nb and its
// information, the variance taking on each side the larger of the side's
// add-½ rate and the pooled one (the null variance when the versions
// agree). Both n must be positive.
func twoSample(xc, nc, xb, nb float64) (est, info float64) {
	pooled := shrunk(xc+xb, nc+nb)
	pc, pb := max(shrunk(xc, nc), pooled), max(shrunk(xb, nb), pooled)
	pc, pb = min(pc, 1-0.5/(nc+1)), min(pb, 1-0.5/(nb+1))
	v := pc*(1-pc)/nc + pb*(1-pb)/nb
	return xc/nc - xb/nb, 1 / v
}

// oneSample returns x/n − q0 and its information, the variance taken at
// the larger of the add-½ rate and q0.
func oneSample(x, n, q0 float64) (est, info float64) {
	p := min(max(shrunk(x, n), q0), 1-0.5/(n+1))
	return x/n - q0, n / (p * (1 - p))
}
