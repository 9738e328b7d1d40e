package canary

import (
	"math"
	"math/rand/v2"
	"time"
)

// Behaviour is how a simulated version serves: what share of requests
// fail, the share that succeed in business terms (0: no outcome events),
// a log-normal latency, and predictions N(PredShift, 1) in PredBins bins.
type Behaviour struct {
	ErrorRate       float64
	CTR             float64
	LatencyMedianMs float64
	LatencySigma    float64
	PredShift       float64
}

// PredBins is the number of prediction bins in simulations: edges at
// −2, −1.5, …, 2 with open ends.
const PredBins = 10

// Scenario is a canary run with known ground truth.
type Scenario struct {
	Name string
	Type ModelType
	// RatePerSec is the model's request rate; CanaryShare the canary's
	// part of it (the baseline serves the rest).
	RatePerSec, CanaryShare float64
	Baseline, Canary        Behaviour
	// RegressionAt is when the canary starts to behave as Canary; before
	// then it behaves as the baseline.
	RegressionAt time.Duration
	// Bad is the ground truth: the canary should be rolled back.
	Bad bool
	// Horizon is how long the run lasts if the judge never fails it.
	Horizon time.Duration
}

// Run is the outcome of one simulated canary.
type Run struct {
	// FailedAt is the first look with a fail verdict since the canary
	// started, −1 if none; Failed the rules that failed then.
	FailedAt time.Duration
	Failed   []string
	// PassedAt is the first look with a pass verdict, −1 if none.
	PassedAt time.Duration
	// Looks is how many times the judge looked; Last is its last verdict.
	Looks int
	Last  Verdict
}

// Simulate runs scenario s with the given seed, the judge looking every
// look, until it fails the canary or the horizon passes.
func Simulate(s Scenario, seed uint64, look time.Duration, j *Judge) Run {
	return SimulateWith(s, seed, look, j.Evaluate)
}

// SimulateWith is Simulate with any judge: evaluate writes its verdict on
// the cumulative observation into the verdict.
func SimulateWith(s Scenario, seed uint64, look time.Duration, evaluate func(*Observation, *Verdict)) Run {
	rng := newRand(seed)
	base, good, bad := newServer(s.Baseline), newServer(s.Baseline), newServer(s.Canary)
	o := Observation{
		Canary:   Counts{Latency: &Histogram{}, Predictions: make([]float64, PredBins)},
		Baseline: Counts{Latency: &Histogram{}, Predictions: make([]float64, PredBins)},
	}
	run := Run{FailedAt: -1, PassedAt: -1}
	sec := look.Seconds()
	for t := look; t <= s.Horizon; t += look {
		base.serve(rng, &o.Baseline, poisson(rng, s.RatePerSec*(1-s.CanaryShare)*sec))
		canary := good
		if t > s.RegressionAt {
			canary = bad
		}
		canary.serve(rng, &o.Canary, poisson(rng, s.RatePerSec*s.CanaryShare*sec))
		o.Elapsed = t
		evaluate(&o, &run.Last)
		run.Looks++
		if run.Last.Outcome == Pass && run.PassedAt < 0 {
			run.PassedAt = t
		}
		if run.Last.Outcome == Fail {
			run.FailedAt, run.Failed = t, run.Last.Failed()
			break
		}
	}
	return run
}

// server draws one version's counts.
type server struct {
	b Behaviour
	// first is the first latency bucket with mass; probs the bucket
	// probabilities from there on (tails beyond ±6σ folded in).
	first int
	probs []float64
	pred  [PredBins]float64
}

func newServer(b Behaviour) *server {
	s := &server{b: b}
	mu, sd := math.Log(b.LatencyMedianMs), b.LatencySigma
	cdf := func(x float64) float64 { return 0.5 * math.Erfc(-(math.Log(x)-mu)/(sd*math.Sqrt2)) }
	lo, hi := BucketOf(math.Exp(mu-6*sd)), BucketOf(math.Exp(mu+6*sd))
	s.first = lo
	prev := 0.0
	for i := lo; i <= hi; i++ {
		c := 1.0
		if i < hi {
			c = cdf(UpperEdge(i))
		}
		s.probs = append(s.probs, c-prev)
		prev = c
	}
	norm := func(x float64) float64 { return 0.5 * math.Erfc(-(x-b.PredShift)/math.Sqrt2) }
	prev = 0
	for i := range PredBins {
		c := 1.0
		if i < PredBins-1 {
			c = norm(-2 + 0.5*float64(i))
		}
		s.pred[i] = c - prev
		prev = c
	}
	return s
}

func (s *server) serve(rng *rand.Rand, c *Counts, n uint64) {
	c.Requests += n
	c.Errors += binomial(rng, n, s.b.ErrorRate)
	if s.b.CTR > 0 {
		c.Trials += n
		c.Successes += binomial(rng, n, s.b.CTR)
	}
	multinomial(rng, n, s.probs, func(i int, k uint64) { c.Latency.AddN(s.first+i, k) })
	multinomial(rng, n, s.pred[:], func(i int, k uint64) { c.Predictions[i] += float64(k) })
}

// multinomial splits n over the probabilities by conditional binomials.
func multinomial(rng *rand.Rand, n uint64, probs []float64, add func(int, uint64)) {
	rest := 1.0
	for i, p := range probs {
		if n == 0 {
			return
		}
		var k uint64
		if i == len(probs)-1 || p >= rest {
			k = n
		} else {
			k = binomial(rng, n, p/rest)
		}
		if k > 0 {
			add(i, k)
		}
		n -= k
		rest -= p
	}
}

// binomial draws Binomial(n, p): exactly by inversion while the mean is
// small, by the normal approximation once n·p·(1−p) ≥ 25.
func binomial(rng *rand.Rand, n uint64, p float64) uint64 {
	switch {
	case n == 0 || !(p > 0):
		return 0
	case p >= 1:
		return n
	case p > 0.5:
		return n - binomial(rng, n, 1-p)
	}
	nf := float64(n)
	if v := nf * p * (1 - p); v >= 25 {
		k := math.Round(nf*p + math.Sqrt(v)*rng.NormFloat64())
		return uint64(min(max(k, 0), nf))
	}
	// Inversion from k = 0 with the pmf recurrence.
	q := p / (1 - p)
	f := math.Exp(nf * math.Log1p(-p))
	u := rng.Float64()
	var k uint64
	for u > f && k < n {
		u -= f
		f *= q * float64(n-k) / float64(k+1)
		k++
	}
	return k
}

// poisson draws Poisson(lambda): inversion for small means, the normal
// approximation above 50.
func poisson(rng *rand.Rand, lambda float64) uint64 {
	if !(lambda > 0) {
		return 0
	}
	if lambda > 50 {
		return uint64(max(math.Round(lambda+math.Sqrt(lambda)*rng.NormFloat64()), 0))
	}
	f := math.Exp(-lambda)
	u := rng.Float64()
	var k uint64
	for u > f && k < 1000 {
		u -= f
		k++
		f *= lambda / float64(k)
	}
	return k
}

// Scenarios returns the scoring scenarios, drift-only last, at the design
// documents' traffic: 1M requests/h with a 5% canary (003, equation 5's example), a
// recommendation service at 5,000 requests/s (Napkin Math 1.7: CTR 5% →
// 4.5%), a fraud model at 1,000 TPS (003, latency gates) with a 1% canary.
func Scenarios() []Scenario {
	rec := Behaviour{ErrorRate: 0.005, CTR: 0.05, LatencyMedianMs: 4, LatencySigma: 0.5}
	fraud := Behaviour{ErrorRate: 0.0002, LatencyMedianMs: 2, LatencySigma: 0.4}
	with := func(b Behaviour, f func(*Behaviour)) Behaviour { f(&b); return b }
	const perHour1M = 1e6 / 3600
	long, short := 30*time.Minute, 15*time.Minute
	late := func(s Scenario) Scenario {
		s.RegressionAt, s.Horizon = 12*time.Minute, 12*time.Minute+short
		return s
	}
	return []Scenario{
		{Name: "good", Type: TypeRecommendation, RatePerSec: perHour1M, CanaryShare: 0.05, Baseline: rec, Canary: rec, Horizon: long},
		{Name: "good-busy", Type: TypeRecommendation, RatePerSec: 5000, CanaryShare: 0.05, Baseline: rec, Canary: rec, Horizon: long},
		{Name: "good-fraud", Type: TypeFraud, RatePerSec: 1000, CanaryShare: 0.01, Baseline: fraud, Canary: fraud, Horizon: long},
		{Name: "latency-regression", Type: TypeRecommendation, RatePerSec: perHour1M, CanaryShare: 0.05, Baseline: rec, Bad: true, Horizon: short,
			Canary: with(rec, func(b *Behaviour) { b.LatencyMedianMs *= 2 })},
		{Name: "error-spike", Type: TypeRecommendation, RatePerSec: perHour1M, CanaryShare: 0.05, Baseline: rec, Bad: true, Horizon: short,
			Canary: with(rec, func(b *Behaviour) { b.ErrorRate = 0.03 })},
		{Name: "sparse-error-regression", Type: TypeFraud, RatePerSec: 1000, CanaryShare: 0.01, Baseline: fraud, Bad: true, Horizon: short,
			Canary: with(fraud, func(b *Behaviour) { b.ErrorRate = 0.02 })},
		{Name: "business-metric-drop", Type: TypeRecommendation, RatePerSec: 5000, CanaryShare: 0.05, Baseline: rec, Bad: true, Horizon: short,
			Canary: with(rec, func(b *Behaviour) { b.CTR = 0.045 })},
		// The same regressions beginning 12 minutes into the canary,
		// between two of the Tracker's restarts.
		late(Scenario{Name: "late-latency-regression", Type: TypeRecommendation, RatePerSec: perHour1M, CanaryShare: 0.05, Baseline: rec, Bad: true,
			Canary: with(rec, func(b *Behaviour) { b.LatencyMedianMs *= 2 })}),
		late(Scenario{Name: "late-error-spike", Type: TypeRecommendation, RatePerSec: perHour1M, CanaryShare: 0.05, Baseline: rec, Bad: true,
			Canary: with(rec, func(b *Behaviour) { b.ErrorRate = 0.03 })}),
		late(Scenario{Name: "late-sparse-error-regression", Type: TypeFraud, RatePerSec: 1000, CanaryShare: 0.01, Baseline: fraud, Bad: true,
			Canary: with(fraud, func(b *Behaviour) { b.ErrorRate = 0.02 })}),
		late(Scenario{Name: "late-business-metric-drop", Type: TypeRecommendation, RatePerSec: 5000, CanaryShare: 0.05, Baseline: rec, Bad: true,
			Canary: with(rec, func(b *Behaviour) { b.CTR = 0.045 })}),
		{Name: "drift-only", Type: TypeRecommendation, RatePerSec: perHour1M, CanaryShare: 0.05, Baseline: rec, Horizon: long,
			Canary: with(rec, func(b *Behaviour) { b.PredShift = 0.6 })},
	}
}

// newRand returns the simulation's generator for a seed.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }
