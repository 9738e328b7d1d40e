package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"
)

// The exact transform: the normal deviate with the tail probability of
// Student's t at t = z/√(1+1/n) with ν = 0.62·nMR.
func exactPredictionZ(z, n, nMR float64) float64 {
	nu := mrDegreesOfFreedom * nMR
	t := z / math.Sqrt(1+1/n)
	return distuv.UnitNormal.Quantile(distuv.StudentsT{Mu: 0, Sigma: 1, Nu: nu}.CDF(t))
}

func TestPredictionZMatchesTheExactTransform(t *testing.T) {
	for _, nMR := range []float64{9, 29, 50, 99, 400, 2000} {
		for _, z := range []float64{-4, -3, -2, -1, 0.5, 1, 2, 3, 3.5, 4} {
			n := nMR + 1
			got, want := PredictionZ(z, n, nMR), exactPredictionZ(z, n, nMR)
			if math.Abs(got-want) > 0.02 {
				t.Errorf("PredictionZ(%v, n=%v, nMR=%v) = %.4f, exact %.4f", z, n, nMR, got, want)
			}
			if math.Abs(got) > math.Abs(z) || math.Signbit(got) != math.Signbit(z) {
				t.Errorf("PredictionZ(%v, n=%v, nMR=%v) = %.4f: want the same side and no farther out", z, n, nMR, got)
			}
		}
	}
	for _, nMR := range []float64{9, 29, 400} {
		for _, k := range []float64{-3, 1, 2, 3} {
			if back := PredictionZ(PredictionLimit(k, nMR+1, nMR), nMR+1, nMR); math.Abs(back-k) > 1e-9 {
				t.Errorf("PredictionZ(PredictionLimit(%v)) = %v at nMR=%v", k, back, nMR)
			}
		}
	}
	if got := PredictionZ(3, 0, 0); got != 3 {
		t.Errorf("without a baseline PredictionZ(3) = %v, want 3", got)
	}
	// A young chart needs a farther point for the same evidence; a learned
	// one is the textbook chart.
	if young, learned := PredictionZ(3, 30, 29), PredictionZ(3, 2000, 2000); young > 2.7 || learned < 2.99 {
		t.Errorf("3σ̂ reads as %.3f on a 30-point baseline and %.3f on a 2,000-point one", young, learned)
	}
}

// TestYoungBaselinesKeepTheRulesRates: charts seeded from m points each
// and frozen there put 0.27% of in-control points beyond the 3σ limit and
// 4.55% beyond 2σ, as charts with known μ and σ do, within 5% of those
// rates (the t approximation's error) and 4 binomial standard errors;
// judged against μ̂ ± 3σ̂ they put 1.4 to 5.5 times as many beyond 3σ.
func TestYoungBaselinesKeepTheRulesRates(t *testing.T) {
	const series, points = 20000, 50
	for _, m := range []int{15, 30, 100} {
		rng := rand.New(rand.NewPCG(9, uint64(m)))
		var c Charts
		c.Resize(series)
		xs := make([]float64, m)
		for i := 0; i < series; i++ {
			for k := range xs {
				xs[k] = rng.NormFloat64()
			}
			c.Seed(i, MovingRange(xs), xs[m-1])
		}
		p := DefaultChartParams()
		p.Rules, p.LearnCap = Rule1, 0
		var naive, beyond2, fired int
		for k := 0; k < points; k++ {
			for i := 0; i < series; i++ {
				x := rng.NormFloat64()
				if math.Abs(x-c.Mean[i]) > 3*c.Sigma[i] {
					naive++
				}
				if math.Abs(c.Z(i, x)) > 2 {
					beyond2++
				}
				if c.StepOne(&p, i, x) != 0 {
					fired++
				}
			}
		}
		total := float64(series * points)
		check := func(what string, n int, want float64) {
			rate := float64(n) / total
			se := math.Sqrt(want * (1 - want) / total)
			t.Logf("%d-point baselines: %s on %.3f%% of points (theory %.3f%%, %+.1f SE)", m, what, 100*rate, 100*want, (rate-want)/se)
			if tol := 0.05*want + 4*se; math.Abs(rate-want) > tol {
				t.Errorf("%d-point baselines: %s on %.3f%%, want %.3f%% ± %.3f%%", m, what, 100*rate, 100*want, 100*tol)
			}
		}
		check("rule 1 fires", fired, 2*distuv.UnitNormal.Survival(3))
		check("beyond 2σ", beyond2, 2*distuv.UnitNormal.Survival(2))
		naiveRate := float64(naive) / total
		t.Logf("%d-point baselines: against μ̂ ± 3σ̂ rule 1 would fire on %.3f%%", m, 100*naiveRate)
		if m <= 30 && naiveRate < 0.004 {
			t.Errorf("%d-point baselines: the naive limits fire on only %.3f%%: the test no longer shows the young-baseline problem", m, 100*naiveRate)
		}
	}
}

// The mature-baseline expansion agrees with Wallace's mapping where it
// takes over, for every |z| a rule reads.
func TestPredictionZExpansionMatchesTheMapping(t *testing.T) {
	for _, nMR := range []float64{fastNu / mrDegreesOfFreedom, 1000, 2000, 1e5} {
		n := nMR + 1
		nu := mrDegreesOfFreedom * nMR
		for z := -6.0; z <= 6; z += 0.25 {
			tt := z / math.Sqrt(1+1/n)
			wallace := math.Copysign((8*nu+1)/(8*nu+3)*math.Sqrt(nu*math.Log1p(tt*tt/nu)), tt)
			if got := PredictionZ(z, n, nMR); math.Abs(got-wallace) > 1e-3 {
				t.Errorf("nMR=%v z=%v: expansion %.5f, mapping %.5f", nMR, z, got, wallace)
			}
		}
	}
}
