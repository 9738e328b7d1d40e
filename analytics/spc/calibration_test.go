package spc

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat/distuv"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/lib/kernels"
)

// Theoretical per-point in-control rates of each rule on i.i.d. N(μ, σ²)
// points with μ and σ known. A rule fires on every point that completes
// its pattern, so for we1–we4 the rate is the stationary probability of
// the pattern; EWMA and CUSUM restart after a signal, so each signal is a
// renewal and their rate is 1/ARL₀.

// tail is P(Z > z) for a standard normal Z.
func tail(z float64) float64 { return distuv.UnitNormal.Survival(z) }

// theoryRate returns the in-control per-point rate of one rule under p.
func theoryRate(t *testing.T, rule kernels.Signal, p kernels.ChartParams) float64 {
	t.Helper()
	switch rule {
	case kernels.Rule1: // beyond 3σ, two-sided: 0.27%
		return 2 * tail(3)
	case kernels.Rule2: // this point beyond 2σ and one of the 2 before it, same side
		q := tail(2)
		return 2 * q * (1 - (1-q)*(1-q))
	case kernels.Rule3: // this point beyond 1σ and 3 of the 4 before it, same side
		q := tail(1)
		return 2 * q * (4*q*q*q*(1-q) + q*q*q*q)
	case kernels.Rule4: // 7 in a row on one side
		return 2 * math.Pow(0.5, 7)
	case kernels.RuleEWMA:
		return 1 / ewmaARL(p.EWMALambda, p.EWMAL)
	case kernels.RuleCUSUM:
		return 1 / cusumARL(p.CUSUMK, p.CUSUMH)
	}
	t.Fatalf("no theory for rule %v", rule)
	return 0
}

// cusumARL is the in-control average run length of the two-sided tabular
// CUSUM started at zero: each side's ARL by the Markov-chain approximation
// of Brook and Evans (Biometrika 59, 1972) with 300 states, combined as
// 1/ARL = 1/ARL⁺ + 1/ARL⁻ (Montgomery, Introduction to Statistical Quality
// Control, 6th ed., 9.1.4). Montgomery's Table 9.3 gives 168 for k = 0.5,
// h = 4 and 465 for h = 5 (TestCUSUMTheoryMatchesMontgomery).
func cusumARL(k, h float64) float64 {
	const m = 300
	w := 2 * h / (2*m - 1) // state j holds C in ((j−½)w, (j+½)w]; state 0 is C ≤ w/2
	a := mat.NewDense(m, m, nil)
	for i := 0; i < m; i++ {
		ci := float64(i) * w
		for j := 0; j < m; j++ {
			hi := distuv.UnitNormal.CDF((float64(j)+0.5)*w - ci + k)
			lo := 0.0
			if j > 0 {
				lo = distuv.UnitNormal.CDF((float64(j)-0.5)*w - ci + k)
			}
			v := -(hi - lo)
			if i == j {
				v++
			}
			a.Set(i, j, v)
		}
	}
	ones := mat.NewVecDense(m, nil)
	for i := 0; i < m; i++ {
		ones.SetVec(i, 1)
	}
	var arl mat.VecDense
	if err := arl.SolveVec(a, ones); err != nil {
		panic(err)
	}
	return arl.AtVec(0) / 2 // two sides, symmetric
}

// ewmaARL is the in-control average run length of the EWMA chart as
// kernels charts it: started at the target, with the exact (time-varying)
// limits ±L·sqrt(λ/(2−λ)·(1−(1−λ)^{2t})). The distribution of the statistic
// is carried forward on a 400-cell grid, cells beyond the limit at t
// removed (the Markov-chain method of Lucas and Saccucci, Technometrics 32,
// 1990, with the time-varying limits of Steiner, J. Quality Technology 31,
// 1999); past t = 400 the limits are constant to 1e-77 and the survival
// decays geometrically, which closes the sum.
func ewmaARL(lambda, l float64) float64 {
	const m, steps = 400, 400
	a := l * math.Sqrt(lambda/(2-lambda))
	w := 2 * a / m
	edge := func(j int) float64 { return -a + float64(j)*w }
	center := func(j int) float64 { return -a + (float64(j)+0.5)*w }
	// trans[i][j] = P((1−λ)·x_i + λZ lands in cell j).
	trans := make([][]float64, m)
	for i := range trans {
		trans[i] = make([]float64, m)
		from := (1 - lambda) * center(i)
		for j := 0; j < m; j++ {
			trans[i][j] = distuv.UnitNormal.CDF((edge(j+1)-from)/lambda) - distuv.UnitNormal.CDF((edge(j)-from)/lambda)
		}
	}
	limit := func(t int) float64 { return a * math.Sqrt(1-math.Pow(1-lambda, 2*float64(t))) }
	v := make([]float64, m)
	for j := range v { // e₁ = λZ
		v[j] = distuv.UnitNormal.CDF(edge(j+1)/lambda) - distuv.UnitNormal.CDF(edge(j)/lambda)
	}
	arl, prev, surv := 1.0, 1.0, 0.0 // arl = Σ_{t≥0} P(T > t); P(T > 0) = 1
	for t := 1; ; t++ {
		surv = 0
		for j := range v {
			if math.Abs(center(j)) > limit(t) {
				v[j] = 0
			}
			surv += v[j]
		}
		arl += surv
		if t == steps {
			ratio := surv / prev
			return arl + surv*ratio/(1-ratio)
		}
		prev = surv
		next := make([]float64, m)
		for i, vi := range v {
			if vi == 0 {
				continue
			}
			for j, p := range trans[i] {
				next[j] += vi * p
			}
		}
		v = next
	}
}

// The Markov-chain CUSUM run lengths match the published table.
func TestCUSUMTheoryMatchesMontgomery(t *testing.T) {
	for _, c := range []struct{ h, want float64 }{{4, 168}, {5, 465}} {
		got := cusumARL(0.5, c.h)
		t.Logf("CUSUM k=0.5 h=%v: ARL0 %.1f (Montgomery Table 9.3: %v)", c.h, got, c.want)
		if math.Abs(got-c.want) > 0.01*c.want {
			t.Errorf("CUSUM k=0.5 h=%v: ARL0 %.1f, Montgomery %v", c.h, got, c.want)
		}
	}
	t.Logf("EWMA λ=0.2 L=3, exact limits, restarted at the target: ARL0 %.1f", ewmaARL(0.2, 3))
}

// rates counts, per rule and for any rule, the points that fired.
type rates struct {
	n       int
	perRule [6]int
	any     int
}

func (r *rates) add(out []kernels.Signal) {
	for _, s := range out {
		r.n++
		if s != 0 {
			r.any++
		}
		for b := range r.perRule {
			if s&(1<<b) != 0 {
				r.perRule[b]++
			}
		}
	}
}

func (r *rates) rate(k int) float64 { return float64(k) / float64(r.n) }

// check compares each enabled rule's rate with theory, and the rate of any
// rule with the bounds max ≤ any ≤ Σ, each within 4 binomial standard
// errors sqrt(p(1−p)/n) (a two-sided 6·10⁻⁵ chance per comparison of
// failing by luck). It returns a table row per rule.
func (r *rates) check(t *testing.T, p kernels.ChartParams) string {
	t.Helper()
	se := func(q float64) float64 { return math.Sqrt(q * (1 - q) / float64(r.n)) }
	var sum, hi float64
	row := ""
	for b := range r.perRule {
		rule := kernels.Signal(1 << b)
		if p.Rules&rule == 0 {
			continue
		}
		want := theoryRate(t, rule, p)
		got := r.rate(r.perRule[b])
		sum += want
		hi = max(hi, want)
		row += fmt.Sprintf("%s %.3f%% (theory %.3f%%, %+.1f SE); ", rule, 100*got, 100*want, (got-want)/se(want))
		if math.Abs(got-want) > 4*se(want) {
			t.Errorf("%s fires on %.4f%% of in-control points; theory %.4f%% ± %.4f%% (4 SE)", rule, 100*got, 100*want, 400*se(want))
		}
	}
	a := r.rate(r.any)
	row += fmt.Sprintf("any %.3f%% (between %.3f%% and %.3f%%)", 100*a, 100*hi, 100*sum)
	if a < hi-4*se(hi) || a > sum+4*se(sum) {
		t.Errorf("any rule fires on %.4f%% of in-control points; want between %.4f%% and %.4f%%", 100*a, 100*hi, 100*sum)
	}
	return row
}

// With μ and σ known, every rule's kernel fires at its theoretical rate
// (2·10⁶ points). Known means a baseline of 2⁴⁰ points, so that the
// prediction statistic (kernels.PredictionZ) equals z.
func TestKnownParameterFalseAlarmRates(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const series, points = 1000, 2000
	p := kernels.DefaultChartParams()
	p.Rules, p.LearnCap = kernels.AllRules, 0
	var c kernels.Charts
	c.Resize(series)
	for i := 0; i < series; i++ {
		c.Seed(i, kernels.MRStats{N: 1 << 40, Mean: 0, MRBar: kernels.D2, NMR: 1<<40 - 1}, math.NaN())
	}
	xs := make([]float64, series)
	out := make([]kernels.Signal, series)
	var got rates
	for k := 0; k < points; k++ {
		for i := range xs {
			xs[i] = r.NormFloat64()
		}
		c.Step(&p, xs, out)
		got.add(out)
	}
	t.Logf("known μ, σ: %s", got.check(t, p))
}

// The shipped defaults (NewDefaultConfig, which the analyzer and fleetctl
// spc run) on pure noise: 1,000 series of N(100, 5²), each charted as the
// analyzer charts it — a Phase I baseline of its first points, then
// learning — for 6,000 points after the baseline. Every enabled rule fires
// at its known-parameter rate once the baseline has learned (the last
// 3,000 points, 3·10⁶ in all); the first 3,000 points after Phase I, while
// the baseline is still young, are reported (analytics/README.md) but not
// held to theory. With learn_cap 500 the learned σ̂ scattered by 3% and
// lifted every rate 5–8% (4 SE); at 2,000 the residual is about 1.5%.
// shippedSet is an empty Set with the shipped defaults.
func shippedSet(t *testing.T) (Config, SetConfig, *Set) {
	t.Helper()
	cfg := NewDefaultConfig("spc_calibration")
	sc, err := cfg.SetConfig()
	if err != nil {
		t.Fatal(err)
	}
	set, err := NewSet(sc, cfg.Interval.Seconds())
	if err != nil {
		t.Fatal(err)
	}
	return cfg, sc, set
}

func TestShippedDefaultsFalseAlarmRates(t *testing.T) {
	_, sc, set := shippedSet(t)
	const series, young, learned = 1000, 3000, 3000
	obs := make([]Observation, series)
	for i := range obs {
		obs[i].Series = Series{Key: fmt.Sprintf("s%04d", i), Metric: "latency_p99"}
	}
	r := rand.New(rand.NewPCG(7, 8))
	var early, late rates
	for k := 0; k < sc.BaselinePoints+young+learned; k++ {
		for i := range obs {
			obs[i].Value = 100 + 5*r.NormFloat64()
		}
		set.Observe(obs)
		switch {
		case k < sc.BaselinePoints:
			if len(set.Fired()) != 0 {
				t.Fatalf("point %d: a rule fired during Phase I", k)
			}
		case k < sc.BaselinePoints+young:
			early.add(set.rules)
		default:
			late.add(set.rules)
		}
	}
	t.Logf("shipped defaults (%s, baseline %d, learn_cap %v), first %d points after Phase I: any %.3f%%",
		sc.Params.Rules, sc.BaselinePoints, sc.Params.LearnCap, young, 100*early.rate(early.any))
	for b, n := range early.perRule {
		if sc.Params.Rules&(1<<b) != 0 {
			t.Logf("  %s %.3f%%", kernels.Signal(1<<b), 100*early.rate(n))
		}
	}
	t.Logf("shipped defaults, learned baseline: %s", late.check(t, sc.Params))
}

// The shipped defaults' critical detections on pure noise: 4,000 series,
// 6,000 points each after Phase I (2.4·10⁷ points). Alerting's defaults
// page on the second consecutive window at error or above, so the rate that
// matters is that of two consecutive critical windows. The target is at
// most 0.5 such events per 2.016·10⁶ points — a week of 1,000 series at
// 5-minute windows, the design documents' alert-fatigue scenario — which
// Persist = 3 missed (a run of 4 out-of-control windows comes on about 0.9
// of 10⁶ noise points, 1.8 per such week).
func TestShippedDefaultsCriticalRate(t *testing.T) {
	if testing.Short() {
		t.Skip("2.4·10⁷ points")
	}
	cfg, sc, set := shippedSet(t)
	const series, points = 4000, 6000
	obs := make([]Observation, series)
	for i := range obs {
		obs[i].Series = Series{Key: fmt.Sprintf("s%04d", i), Metric: "latency_p99"}
	}
	r := rand.New(rand.NewPCG(17, 18))
	critRun := make([]int, series)
	runs := map[int]int{} // out-of-control run length reached → count
	var pages int
	w := fleet.Window{Start: time.Unix(0, 0), End: time.Unix(60, 0)}
	for k := 0; k < sc.BaselinePoints+points; k++ {
		for i := range obs {
			obs[i].Value = 100 + 5*r.NormFloat64()
		}
		set.Observe(obs)
		if k < sc.BaselinePoints {
			continue
		}
		critical := map[string]bool{}
		for _, p := range set.Fired() {
			runs[p.OutRun]++
			if cfg.Detection(p, w).Severity == "critical" {
				critical[p.Key] = true
			}
		}
		for i := range obs {
			if !critical[obs[i].Key] {
				critRun[i] = 0
				continue
			}
			if critRun[i]++; critRun[i] == 2 {
				pages++
			}
		}
	}
	total := float64(series * points)
	perWeek := float64(pages) / total * 2.016e6
	t.Logf("%g noise points: out-of-control runs of 3: %d, of 4: %d, of 5: %d; two consecutive critical windows: %d (%.2f per 1,000-series week at 5-minute windows)",
		total, runs[3], runs[4], runs[5], pages, perWeek)
	if perWeek > 0.5 {
		t.Errorf("%.2f noise pages per 1,000-series week with the shipped defaults; want at most 0.5", perWeek)
	}
}
