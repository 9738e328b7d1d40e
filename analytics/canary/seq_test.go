package canary

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestPeekingFalseFailRate: with no difference between the versions, the
// mixture SPRT looked at every 5 s for an hour calls the canary worse (the
// estimate past the one-sided radius) in at most α of the runs, and better
// in at most α, while the fixed-n z-test repeated at every look (|z| >
// 1.96, nominally 5%) rejects far more often. Counts arrive at the
// judge's scoring traffic (1M requests/h, 5% canary).
func TestPeekingFalseFailRate(t *testing.T) {
	const (
		alpha = 0.05
		runs  = 2000
		looks = 720 // every 5 s for an hour
	)
	nc, nb := 278.0*0.05*5, 278.0*0.95*5 // requests per look
	for _, tc := range []struct {
		name   string
		p, tau float64
		// oneSample tests the canary alone against p (latency shares).
		oneSample bool
	}{
		{name: "error rate 0.5%", p: 0.005, tau: 0.01},
		{name: "sparse errors 0.02%", p: 0.0002, tau: 0.01},
		{name: "engagement 5%", p: 0.05, tau: 0.05 * 0.02},
		{name: "latency share 1% (one sample)", p: 0.01, tau: 0.01, oneSample: true},
		{name: "latency share 50% (one sample)", p: 0.5, tau: 0.5, oneSample: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 11))
			var seq, seqLow, naive int
			for range runs {
				var xc, xb, cn, bn float64
				hitSeq, hitLow, hitNaive := false, false, false
				for range looks {
					c, b := poisson(rng, nc), poisson(rng, nb)
					xc += float64(binomial(rng, c, tc.p))
					xb += float64(binomial(rng, b, tc.p))
					cn += float64(c)
					bn += float64(b)
					if cn == 0 || bn == 0 {
						continue
					}
					var est, info float64
					if tc.oneSample {
						est, info = oneSample(xc, cn, tc.p)
					} else {
						est, info = twoSample(xc, cn, xb, bn)
					}
					r := radius(info, tc.tau, alpha)
					hitSeq = hitSeq || est > r
					hitLow = hitLow || est < -r
					if z := est * math.Sqrt(info); math.Abs(z) > 1.96 && xc+xb > 0 {
						hitNaive = true
					}
				}
				if hitSeq {
					seq++
				}
				if hitLow {
					seqLow++
				}
				if hitNaive {
					naive++
				}
			}
			seqRate, lowRate, naiveRate := float64(seq)/runs, float64(seqLow)/runs, float64(naive)/runs
			t.Logf("%s: mSPRT false-fail %.4f (other side %.4f), repeated z-test %.4f (α = %.2f, %d runs × %d looks)", tc.name, seqRate, lowRate, naiveRate, alpha, runs, looks)
			if seqRate > alpha || lowRate > alpha {
				t.Errorf("mSPRT false rejection rates %.4f (worse) and %.4f (better): want both ≤ α %.2f", seqRate, lowRate, alpha)
			}
			if tc.p >= 0.005 && naiveRate < 3*alpha {
				t.Errorf("repeated z-test false-fail rate %.4f: expected the peeking inflation (> %.2f)", naiveRate, 3*alpha)
			}
		})
	}
}

// TestRadiusIsTheMixtureBoundary: radius is at or just above the exact
// boundary of the half-normal mixture (its statistic reaches 1/α there,
// found by bisection), and below the two-sided interval's half-width.
func TestRadiusIsTheMixtureBoundary(t *testing.T) {
	for _, alpha := range []float64{0.2, 0.01, 1.7e-3, 2.8e-5} {
		for _, tau := range []float64{0.0025, 0.01, 0.5} {
			for _, info := range []float64{1, 1e2, 1e4, 1e6, 1e8} {
				s := math.Sqrt(1 + tau*tau*info)
				// log of the mixture statistic at estimate d.
				logM := func(d float64) float64 {
					z := d * info * tau / s
					return math.Log(2/s) + z*z/2 + logPhi(z)
				}
				two := twoSidedRadius(info, tau, alpha)
				lo, hi := 0.0, two
				for range 200 {
					if mid := (lo + hi) / 2; logM(mid) > math.Log(1/alpha) {
						hi = mid
					} else {
						lo = mid
					}
				}
				r := radius(info, tau, alpha)
				if r < hi*(1-1e-9) || r > hi*1.005 {
					t.Errorf("α %g τ %g I %g: radius %g, exact boundary %g", alpha, tau, info, r, hi)
				}
				if !(r < two) {
					t.Errorf("α %g τ %g I %g: one-sided radius %g not below the two-sided %g", alpha, tau, info, r, two)
				}
			}
		}
	}
}

// twoSidedRadius is the half-width of the normal-mixture SPRT's two-sided
// confidence sequence, the judge's boundary before it tested each side on
// its own; kept to compare against.
func twoSidedRadius(info, tau, alpha float64) float64 {
	if !(info > 0) {
		return math.Inf(1)
	}
	t2 := tau * tau
	return math.Sqrt((info+1/t2)*(2*math.Log(1/alpha)+math.Log1p(t2*info))) / info
}

func TestRadiusAndInfoFor(t *testing.T) {
	prev := math.Inf(1)
	for _, info := range []float64{1, 10, 1e2, 1e3, 1e4, 1e5, 1e6, 1e8} {
		r := radius(info, 0.01, 0.01)
		if !(r < prev) {
			t.Errorf("radius(%g) = %g, not below radius at smaller info %g", info, r, prev)
		}
		prev = r
		got := infoFor(r, 0.01, 0.01)
		if math.Abs(got-info)/info > 0.002 {
			t.Errorf("infoFor(radius(%g)) = %g", info, got)
		}
	}
	if r := radius(0, 0.01, 0.01); !math.IsInf(r, 1) {
		t.Errorf("radius at no information = %g, want +Inf", r)
	}
	if i := infoFor(0, 0.01, 0.01); !math.IsInf(i, 1) {
		t.Errorf("infoFor(0) = %g, want +Inf", i)
	}
}

// TestSamplers checks the simulation's samplers' means and variances.
func TestSamplers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		n uint64
		p float64
	}{{10, 0.3}, {1000, 0.002}, {5000, 0.05}, {100000, 0.7}} {
		var s, s2 float64
		const k = 20000
		for range k {
			x := float64(binomial(rng, tc.n, tc.p))
			s += x
			s2 += x * x
		}
		mean, v := s/k, s2/k-(s/k)*(s/k)
		wm, wv := float64(tc.n)*tc.p, float64(tc.n)*tc.p*(1-tc.p)
		if math.Abs(mean-wm) > 4*math.Sqrt(wv/k) || math.Abs(v-wv)/wv > 0.1 {
			t.Errorf("binomial(%d, %g): mean %g var %g, want %g, %g", tc.n, tc.p, mean, v, wm, wv)
		}
	}
	for _, l := range []float64{0.5, 8, 40, 500} {
		var s float64
		const k = 20000
		for range k {
			s += float64(poisson(rng, l))
		}
		if m := s / k; math.Abs(m-l) > 4*math.Sqrt(l/k) {
			t.Errorf("poisson(%g): mean %g", l, m)
		}
	}
}
