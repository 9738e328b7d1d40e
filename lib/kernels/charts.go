package kernels

import (
	"fmt"
	"math"
	"math/bits"
	"strings"

	"github.com/apache/arrow/go/v17/arrow/array"
)

// Signal is the set of control-chart rules one point fired.
type Signal uint8

// The rules. Rules 1–4 are the Western Electric rules with the run length
// of the design documents (7 in a row; the Western Electric handbook says 8,
// Nelson 9). A rule fires on the point that completes its pattern, and again
// on every following point while the pattern holds; EWMA and CUSUM restart
// (at the target and at zero) after they fire, so each of their signals
// needs fresh evidence.
const (
	// Rule1 is one point beyond 3σ from the mean.
	Rule1 Signal = 1 << iota
	// Rule2 is 2 of 3 consecutive points beyond 2σ on the same side.
	Rule2
	// Rule3 is 4 of 5 consecutive points beyond 1σ on the same side.
	Rule3
	// Rule4 is 7 consecutive points on the same side of the mean.
	Rule4
	// RuleEWMA is the exponentially weighted moving average outside its limits.
	RuleEWMA
	// RuleCUSUM is the upper or lower tabular CUSUM above its decision interval.
	RuleCUSUM

	// AllRules enables every rule.
	AllRules = Rule1 | Rule2 | Rule3 | Rule4 | RuleEWMA | RuleCUSUM
)

var ruleNames = [...]string{"we1", "we2", "we3", "we4", "ewma", "cusum"}

// Names lists the rules in s, strongest first (we1 … cusum).
func (s Signal) Names() []string {
	var out []string
	for i, n := range ruleNames {
		if s&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// String is the comma-separated Names.
func (s Signal) String() string { return strings.Join(s.Names(), ",") }

// ParseSignal reads a comma-separated list of rule names.
func ParseSignal(list string) (Signal, error) {
	var s Signal
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		found := false
		for i, n := range ruleNames {
			if n == f {
				s |= 1 << i
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown rule %q (want %s)", f, strings.Join(ruleNames[:], ", "))
		}
	}
	return s, nil
}

// ChartParams are the settings shared by the series of a Charts.
type ChartParams struct {
	// Rules are the rules evaluated.
	Rules Signal
	// EWMALambda is the EWMA weight λ of the newest point; EWMAL the width
	// of its limits in standard deviations of the EWMA statistic.
	EWMALambda, EWMAL float64
	// CUSUMK is the CUSUM reference value and CUSUMH its decision interval,
	// both in σ.
	CUSUMK, CUSUMH float64
	// LearnCap is how many points the baseline remembers while it learns
	// from in-control points (exponential forgetting beyond); 0 freezes the
	// baseline.
	LearnCap float64
}

// DefaultChartParams are the textbook settings: λ = 0.2 with 3σ limits,
// k = 0.5σ and h = 5σ, learning over the last 2,000 in-control points.
func DefaultChartParams() ChartParams {
	return ChartParams{Rules: AllRules, EWMALambda: 0.2, EWMAL: 3, CUSUMK: 0.5, CUSUMH: 5, LearnCap: 2000}
}

// Validate reports every problem at once.
func (p ChartParams) Validate() error {
	var errs []string
	if p.Rules&^AllRules != 0 {
		errs = append(errs, fmt.Sprintf("unknown rule bits %#x", uint8(p.Rules&^AllRules)))
	}
	if !(p.EWMALambda > 0 && p.EWMALambda <= 1) {
		errs = append(errs, fmt.Sprintf("ewma lambda %v: want 0 < λ <= 1", p.EWMALambda))
	}
	if !(p.EWMAL > 0) {
		errs = append(errs, fmt.Sprintf("ewma limit %v: want > 0", p.EWMAL))
	}
	if !(p.CUSUMK >= 0) || !(p.CUSUMH > 0) {
		errs = append(errs, fmt.Sprintf("cusum k=%v h=%v: want k >= 0, h > 0", p.CUSUMK, p.CUSUMH))
	}
	if !(p.LearnCap == 0 || p.LearnCap >= 2) {
		errs = append(errs, fmt.Sprintf("learn cap %v: want 0 (frozen) or >= 2", p.LearnCap))
	}
	if len(errs) > 0 {
		return fmt.Errorf("chart params: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Zone history bits: six 8-bit shift registers of the recent points, newest
// in the low bit of each byte.
const (
	zAbove2 = 0  // x > μ+2σ
	zBelow2 = 8  // x < μ−2σ
	zAbove1 = 16 // x > μ+σ
	zBelow1 = 24 // x < μ−σ
	zAbove0 = 32 // x > μ
	zBelow0 = 40 // x < μ
	zShift  = 0xFEFE_FEFE_FEFE
	// zHold (bits 48–63) counts down the points before the mean may learn
	// again after a signal (see learnHoldoff).
	zHold = 48
)

// learnHoldoff is how many points after any signal the mean does not learn.
// EWMA and CUSUM restart after they fire, so under a small persistent shift
// they are quiet for a while between signals; without the hold-off the mean
// would learn the shifted points in those gaps and the fault would slowly
// become the new normal. 50 points is longer than the CUSUM's run length at
// a 0.5σ shift (38 for k = 0.5, h = 5; Montgomery, Introduction to
// Statistical Quality Control, Table 9.3), the smallest shift it is for. In
// control the exclusion depends on time, not on the value, so the mean
// stays unbiased.
const learnHoldoff = 50

// Charts is the state of many series' individuals control charts as
// parallel slices, one element per series, so that one Step evaluates a
// whole column of new points (one per series) without allocating. The slices
// are exported so that callers can store and restore them column by column.
//
// A series is charted once Sigma > 0 (see Seed). The baseline then keeps
// learning: Mean from points that fire no rule, with neither CUSUM past half
// its decision interval and no signal in the last learnHoldoff points, so a
// fault never becomes the new normal; Sigma from the average moving range of
// consecutive points within zClip σ of the mean. Moving ranges are not
// changed by a level shift, and screening them at 4σ rather than by the
// rules keeps σ unbiased: leaving out the points that fired (≈ 1% of
// in-control points, the largest ones) underestimated σ by 4% and raised
// rule 1's rate from 0.27% to 0.40%.
type Charts struct {
	Mean, Sigma []float64
	// Zones is the recent history of zones, for rules 2–4 (bits 0–47),
	// and the learning hold-off after a signal (bits 48–63).
	Zones []uint64
	// EWMA is the EWMA statistic; EWMAF is (1−λ)^(2t) for its exact limits.
	EWMA, EWMAF []float64
	// CusumHi and CusumLo are the tabular CUSUMs, in σ.
	CusumHi, CusumLo []float64
	// LearnN, LearnSum, LearnMR, LearnMRN are the baseline's (decayed)
	// point count, sum, moving-range sum and moving-range count.
	LearnN, LearnSum, LearnMR, LearnMRN []float64
	// Last is the previous point when it was within zClip σ of the mean,
	// else NaN (a moving range never spans a screened-out point).
	Last []float64
	// LastZ is the z (see Z) the last Step judged each series' point at:
	// NaN for a missing point or a series not charted yet. It is output,
	// not state: nothing needs it restored.
	LastZ []float64
}

// Len is the number of series.
func (c *Charts) Len() int { return len(c.Mean) }

// Resize sets the number of series to n; new series are not charted yet.
func (c *Charts) Resize(n int) {
	old := c.Len()
	for _, s := range c.floatSlices() {
		*s = resize(*s, n)
	}
	c.Zones = resize(c.Zones, n)
	for i := old; i < n; i++ {
		c.Last[i], c.LastZ[i] = math.NaN(), math.NaN()
	}
}

func (c *Charts) floatSlices() []*[]float64 {
	return []*[]float64{&c.Mean, &c.Sigma, &c.EWMA, &c.EWMAF, &c.CusumHi, &c.CusumLo,
		&c.LearnN, &c.LearnSum, &c.LearnMR, &c.LearnMRN, &c.Last, &c.LastZ}
}

func resize[T any](s []T, n int) []T {
	if n <= len(s) {
		return s[:n]
	}
	var zero T
	for len(s) < n {
		s = append(s, zero)
	}
	return s
}

// zNoise is the |z| below which a point counts as on the mean: the mean
// of a constant series drifts by rounding, and with σ at SigmaFloor that
// rounding alone would read as a run on one side.
const zNoise = 1e-6

// zClip bounds the z a single point feeds into EWMA and CUSUM.
const zClip = 4

// SigmaFloor is the smallest σ a chart uses: a constant series would
// otherwise have σ = 0 and no limits. Any change of such a series fires
// rule 1.
func SigmaFloor(mean float64) float64 { return 1e-9 * max(1, math.Abs(mean)) }

// Seed starts charting series i from a baseline of s (its in-control
// points), resetting the rule state.
func (c *Charts) Seed(i int, s MRStats, last float64) {
	c.Mean[i] = s.Mean
	c.Sigma[i] = max(s.Sigma(), SigmaFloor(s.Mean))
	c.Zones[i] = 0
	c.EWMA[i], c.EWMAF[i] = s.Mean, 1
	c.CusumHi[i], c.CusumLo[i] = 0, 0
	c.LearnN[i], c.LearnSum[i] = float64(s.N), s.Mean*float64(s.N)
	c.LearnMR[i], c.LearnMRN[i] = s.MRBar*float64(s.NMR), float64(s.NMR)
	c.Last[i] = last
}

// Step evaluates xs[i] as the next point of series i for every series and
// writes the rules it fired to out[i]. A NaN or infinite point, or a series
// not charted yet, leaves the state unchanged and yields no signal. xs and
// out must have Len() elements.
func (c *Charts) Step(p *ChartParams, xs []float64, out []Signal) {
	n := c.Len()
	if len(xs) != n || len(out) != n {
		panic(fmt.Sprintf("kernels: Charts.Step with %d series, %d points, %d outputs", n, len(xs), len(out)))
	}
	for i, x := range xs {
		out[i] = c.step(p, i, x)
	}
}

// StepArray is Step over an Arrow column; null points yield no signal.
func (c *Charts) StepArray(p *ChartParams, a *array.Float64, out []Signal) {
	vals := a.Float64Values()
	if a.NullN() == 0 {
		c.Step(p, vals, out)
		return
	}
	if len(vals) != c.Len() || len(out) != c.Len() {
		panic(fmt.Sprintf("kernels: Charts.StepArray with %d series, %d points, %d outputs", c.Len(), len(vals), len(out)))
	}
	for i, x := range vals {
		if a.IsNull(i) {
			out[i], c.LastZ[i] = 0, math.NaN()
			continue
		}
		out[i] = c.step(p, i, x)
	}
}

// StepOne evaluates x as the next point of series i.
func (c *Charts) StepOne(p *ChartParams, i int, x float64) Signal { return c.step(p, i, x) }

func (c *Charts) step(p *ChartParams, i int, x float64) Signal {
	mu, sigma := c.Mean[i], c.Sigma[i]
	c.LastZ[i] = math.NaN()
	if x-x != 0 || !(sigma > 0) {
		return 0
	}
	// z in σ̂ on the normal scale of the prediction statistic (PredictionZ).
	z := c.Z(i, x)
	c.LastZ[i] = z
	var s Signal
	if math.Abs(z) > 3 {
		s |= Rule1
	}
	var nb uint64
	if z > 2 {
		nb |= 1 << zAbove2
	}
	if z < -2 {
		nb |= 1 << zBelow2
	}
	if z > 1 {
		nb |= 1 << zAbove1
	}
	if z < -1 {
		nb |= 1 << zBelow1
	}
	if z > 0 {
		nb |= 1 << zAbove0
	}
	if z < 0 {
		nb |= 1 << zBelow0
	}
	hold := c.Zones[i] >> zHold
	h := (c.Zones[i]<<1)&zShift | nb
	if (nb>>zAbove2&1 != 0 && bits.OnesCount64(h>>zAbove2&0x7) >= 2) ||
		(nb>>zBelow2&1 != 0 && bits.OnesCount64(h>>zBelow2&0x7) >= 2) {
		s |= Rule2
	}
	if (nb>>zAbove1&1 != 0 && bits.OnesCount64(h>>zAbove1&0x1f) >= 4) ||
		(nb>>zBelow1&1 != 0 && bits.OnesCount64(h>>zBelow1&0x1f) >= 4) {
		s |= Rule3
	}
	if h>>zAbove0&0x7f == 0x7f || h>>zBelow0&0x7f == 0x7f {
		s |= Rule4
	}

	// EWMA and CUSUM see z clipped to ±4 (a winsorized CUSUM, Hawkins
	// 1993): they are for small persistent shifts, and one wild point,
	// rule 1's business, would otherwise keep them out of control for
	// many points after it.
	zc := min(max(z, -zClip), zClip)
	lam := p.EWMALambda
	e := lam*(mu+zc*sigma) + (1-lam)*c.EWMA[i]
	f := c.EWMAF[i] * (1 - lam) * (1 - lam)
	c.EWMA[i], c.EWMAF[i] = e, f
	if math.Abs(e-mu) > p.EWMAL*sigma*math.Sqrt(lam/(2-lam)*(1-f)) {
		s |= RuleEWMA
		// Restart at the target after a signal, as a new chart starts
		// (Montgomery, Introduction to Statistical Quality Control, 9.2):
		// each signal is then a renewal and the per-point in-control rate
		// is 1/ARL₀, instead of one excursion firing on every point until
		// the statistic drifts back.
		c.EWMA[i], c.EWMAF[i] = mu, 1
	}

	hi := max(0, c.CusumHi[i]+zc-p.CUSUMK)
	lo := max(0, c.CusumLo[i]-zc-p.CUSUMK)
	quiet := max(hi, lo) <= p.CUSUMH/2
	if hi > p.CUSUMH || lo > p.CUSUMH {
		s |= RuleCUSUM
		// Restart both sums at zero after a signal (Montgomery 9.1.2),
		// for the same reason: a sum that stays above h would otherwise
		// signal on every point for as long as it takes to decay.
		hi, lo = 0, 0
	}
	c.CusumHi[i], c.CusumLo[i] = hi, lo
	s &= p.Rules

	switch {
	case s != 0:
		hold = learnHoldoff
	case hold > 0:
		hold--
	}
	c.Zones[i] = h | hold<<zHold
	if p.LearnCap > 0 {
		c.learn(p.LearnCap, i, x, math.Abs(z) <= zClip, s == 0 && quiet && hold == 0)
	}
	return s
}

// learn adds x to series i's baseline: to σ's moving ranges when it and
// the previous point are within zClip σ (screened), to the mean when
// accepted. Beyond capN points the older ones are forgotten exponentially.
func (c *Charts) learn(capN float64, i int, x float64, screened, accepted bool) {
	decay := func(n float64) float64 {
		if n >= capN {
			return (capN - 1) / capN
		}
		return 1
	}
	if last := c.Last[i]; screened && last == last {
		d := decay(c.LearnMRN[i])
		c.LearnMR[i] = c.LearnMR[i]*d + math.Abs(x-last)
		c.LearnMRN[i] = c.LearnMRN[i]*d + 1
	}
	c.Last[i] = math.NaN()
	if screened {
		c.Last[i] = x
	}
	if accepted {
		d := decay(c.LearnN[i])
		c.LearnN[i] = c.LearnN[i]*d + 1
		c.LearnSum[i] = c.LearnSum[i]*d + x
		c.Mean[i] = c.LearnSum[i] / c.LearnN[i]
	}
	if c.LearnMRN[i] > 0 {
		c.Sigma[i] = max(c.LearnMR[i]/c.LearnMRN[i]/D2, SigmaFloor(c.Mean[i]))
	}
}
