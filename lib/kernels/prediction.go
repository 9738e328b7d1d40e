package kernels

import "math"

// A chart's μ and σ are estimates. Judging a new point against μ̂ ± 3σ̂ as if
// they were exact raises the false-alarm rate of a young chart well above
// what its rules promise: σ̂ from 30 points is off by ±15% (one standard
// error), and a series whose σ̂ came out 30% low fires rule 1 on 3.6% of its
// points and runs its CUSUM out of control, so across a thousand new series
// some page on noise within their first hours. The rules therefore judge
// the prediction statistic instead: for a new point x of an in-control
// series, t = (x − μ̂) / (σ̂ √(1 + 1/n)) follows Student's t with the
// degrees of freedom ν of σ̂, n being the points behind μ̂; t is mapped to
// the standard normal deviate with the same tail probability, so that every
// rule (3σ, 2σ and 1σ zones, EWMA, CUSUM) keeps its in-control rate whatever
// the baseline's length. This is Quesenberry's Q statistic for short runs
// (Journal of Quality Technology 23, 1991). The correction is large for a
// young chart (a point at 3.48σ̂ reads as 3σ at ν = 18) and vanishes as the
// baseline grows (3.005σ̂ at the ν = 1,500 of a learned 2,000-point
// baseline).

// mrDegreesOfFreedom is the degrees of freedom of σ̂ = MR̄/d₂ per moving
// range, as the t approximation needs it. Matching the variance of σ̂
// gives about 0.62 (Nelson, Journal of Quality Technology 14, 1982), but
// MR̄ is closer to normal than a χ² estimate, and with 0.62 the t limits
// come out too wide (rule 1 fires on 0.23% instead of 0.27% after a 30-point
// baseline). 0.75 matches the 3σ and 2σ tails of the exact (simulated)
// distribution for baselines of 15 to 100 points within ±0.02 percentage
// points (TestYoungBaselinesKeepTheRulesRates).
const mrDegreesOfFreedom = 0.75

// PredictionZ maps z = (x − μ̂)/σ̂, with μ̂ from n points and σ̂ from nMR
// moving ranges, to the standard normal deviate with the same tail
// probability as its prediction statistic t (see above), by Wallace's
// approximation z′ = (8ν+1)/(8ν+3) · √(ν ln(1 + t²/ν)) (Annals of
// Mathematical Statistics 30, 1959), within 0.02 of the exact transform for
// ν ≥ 5 (TestPredictionZMatchesTheExactTransform). Without a baseline
// (n or nMR zero) z is returned as is.
func PredictionZ(z, n, nMR float64) float64 {
	if !(n > 0 && nMR > 0) || z == 0 {
		return z
	}
	nu := max(mrDegreesOfFreedom*nMR, 1)
	if nu >= fastNu && n >= fastNu {
		// A mature baseline: the mapping below expanded to second order
		// in 1/ν (and 1/√(1+1/n) to first in 1/n), within 10⁻³ of it for
		// |z| ≤ 6, without its logarithm and square roots: the analyzer's
		// steady state.
		t := z * (1 - 0.5/n)
		t2, inv := t*t, 1/nu
		return t * (1 - inv*((t2+1)/4-inv*(13*t2*t2+6*t2+9)/96))
	}
	t := z / math.Sqrt(1+1/n)
	q := (8*nu + 1) / (8*nu + 3) * math.Sqrt(nu*math.Log1p(t*t/nu))
	return math.Copysign(q, t)
}

// fastNu is the ν (and n) from which PredictionZ takes its expansion.
const fastNu = 500

// Z is x's distance from series i's mean as its rules judge it: in σ̂, on
// the normal scale of PredictionZ. It is NaN for a missing x or a series
// without a baseline.
func (c *Charts) Z(i int, x float64) float64 {
	sigma := c.Sigma[i]
	if x-x != 0 || !(sigma > 0) {
		return math.NaN()
	}
	z := PredictionZ((x-c.Mean[i])/sigma, c.LearnN[i], c.LearnMRN[i])
	if math.Abs(z) < zNoise {
		z = 0 // rounding noise of a constant series is on neither side
	}
	return z
}

// PredictionLimit is the inverse of PredictionZ: the distance from μ̂, in
// σ̂, that the rules read as k σ, for a baseline of n points and nMR moving
// ranges. It is k without a baseline. fleetctl spc prints the limits with
// it.
func PredictionLimit(k, n, nMR float64) float64 {
	if !(n > 0 && nMR > 0) || k == 0 {
		return k
	}
	nu := max(mrDegreesOfFreedom*nMR, 1)
	q := k * (8*nu + 3) / (8*nu + 1)
	t := math.Sqrt(nu * math.Expm1(q*q/nu))
	return math.Copysign(t*math.Sqrt(1+1/n), k)
}

// Known makes series i's rules judge z = (x − μ)/σ itself, as for a μ and
// σ known rather than estimated (a retrospective chart, whose points are
// its own baseline). The series must not learn (ChartParams.LearnCap 0):
// it forgets the counts behind its baseline.
func (c *Charts) Known(i int) {
	c.LearnN[i], c.LearnSum[i], c.LearnMR[i], c.LearnMRN[i] = 0, 0, 0, 0
}
