package canary

import "math"

// radius is the one-sided boundary of the mixture SPRT at information info
// (1/variance of the estimate), mixture scale tau and level alpha: the
// estimate − radius stays below the true value at every look with
// probability at least 1−α, and so does the true value below the estimate
// + radius. The judge's two decisions are one-sided each (fail: the canary
// is worse than the baseline; pass: it is not worse by the threshold), so
// each gets all of α instead of the two-sided interval's half. It falls as
// info grows (for α < 0.3).
//
// The mixture is a half-normal of scale tau on the effects in the tested
// direction. With s = √(1+τ²I) its statistic is (2/s)·exp(z²/2)·Φ(z) at
// z = d̂·I·τ/s, and the boundary is where it reaches 1/α:
// z²/2 = log(s/(2α)) − log Φ(z). The right side falls as z grows, so one
// step from the root that leaves out log Φ (which is below the boundary's
// z) lands at or above it: the radius returned is never too small.
func radius(info, tau, alpha float64) float64 {
	if !(info > 0) {
		return math.Inf(1)
	}
	s := math.Sqrt(1 + tau*tau*info)
	l := math.Log(s / (2 * alpha))
	z0 := math.Sqrt(2 * max(l, 0))
	z := math.Sqrt(2 * (l - logPhi(z0)))
	return z * s / (info * tau)
}

// logPhi is log Φ(z), the standard normal distribution function.
func logPhi(z float64) float64 { return math.Log(0.5 * math.Erfc(-z/math.Sqrt2)) }

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
