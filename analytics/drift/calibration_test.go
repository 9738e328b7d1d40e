package drift

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/fleetwatch/fleetwatch/lib/profile"
	"gonum.org/v1/gonum/stat/distuv"
)

// population draws values of one distribution.
type population struct {
	name    string
	numeric func(r *rand.Rand) float64
	cat     func(r *rand.Rand) string
}

var populations = []population{
	{name: "normal", numeric: func(r *rand.Rand) float64 { return r.NormFloat64() }},
	{name: "poisson-like", numeric: func(r *rand.Rand) float64 { return float64(r.IntN(3) + r.IntN(4)) }},
	{name: "lognormal with 3% missing", numeric: func(r *rand.Rand) float64 {
		if r.IntN(33) == 0 {
			return math.NaN()
		}
		return math.Exp(r.NormFloat64())
	}},
	{name: "categorical zipf", cat: func(r *rand.Rand) string {
		return string(rune('a' + min(r.IntN(12), r.IntN(12), r.IntN(12))))
	}},
}

// nullTrial draws a reference of m and a current window of n values from
// the same population and tests one against the other.
func nullTrial(t testing.TB, tester *Tester, pop population, r *rand.Rand, m, n, bins int) Result {
	var p *profile.Profile
	var cur []float64
	var err error
	if pop.cat != nil {
		ref, cv := make([]string, m), make([]string, n)
		for i := range ref {
			ref[i] = pop.cat(r)
		}
		for i := range cv {
			cv[i] = pop.cat(r)
		}
		p, err = profile.BuildCategorical(ref, profile.BuildConfig{Bins: bins, TopK: 8})
		if err == nil {
			idx, _ := p.CategoryIndex()
			h := p.Histogram()
			idx.AddStrings(h, cv)
			cur = h.Floats()
		}
	} else {
		ref, cv := make([]float64, m), make([]float64, n)
		for i := range ref {
			ref[i] = pop.numeric(r)
		}
		for i := range cv {
			cv[i] = pop.numeric(r)
		}
		p, err = profile.BuildNumeric(ref, profile.BuildConfig{Bins: bins, TopK: 8})
		if err == nil {
			b, _ := p.Binner()
			h := p.Histogram()
			b.AddFloat64s(h, cv)
			cur = h.Floats()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	p.Model, p.ModelVersion, p.Feature = "m", "v", fmt.Sprintf("%s-%d", pop.name, r.Uint64())
	res, err := tester.Test(p, cur)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// within reports whether a flagged fraction is within 4 binomial standard
// errors of alpha (a false failure once in ~16,000 runs per check).
func within(rate, alpha float64, trials int) bool {
	return math.Abs(rate-alpha) <= 4*math.Sqrt(alpha*(1-alpha)/float64(trials))
}

// With no shift, the fraction of windows flagged at level α matches α, for
// continuous, discrete, partly missing and categorical data, in the regime
// where the χ² approximation is used.
func TestChi2Calibration(t *testing.T) {
	tester := newTester(t)
	r := rand.New(rand.NewPCG(21, 22))
	const trials = 2000
	for _, pop := range populations {
		var below05, below01 int
		for i := 0; i < trials; i++ {
			res := nullTrial(t, tester, pop, r, 4000, 800, 10)
			if res.Method != MethodChi2 {
				t.Fatalf("%s: method %s, want chi2", pop.name, res.Method)
			}
			if res.PValue < 0.05 {
				below05++
			}
			if res.PValue < 0.01 {
				below01++
			}
		}
		r05, r01 := float64(below05)/trials, float64(below01)/trials
		t.Logf("%s: flagged %.4f at α=0.05, %.4f at α=0.01", pop.name, r05, r01)
		if !within(r05, 0.05, trials) || !within(r01, 0.01, trials) {
			t.Errorf("%s: flagged %.4f at α=0.05 and %.4f at α=0.01", pop.name, r05, r01)
		}
	}
}

// Small windows (30 values over 10 bins) are where χ² is off: smoothing
// makes PSI read small and the test flags far less than α. The Monte Carlo
// p-value used there is calibrated.
func TestSmallWindowsUseACalibratedMonteCarloPValue(t *testing.T) {
	cfg := NewDefaultTestConfig()
	cfg.Replicates = 400
	tester, err := NewTester(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(23, 24))
	const trials = 1000
	var mc, chi2 int
	for i := 0; i < trials; i++ {
		res := nullTrial(t, tester, populations[0], r, 2000, 30, 10)
		if res.Method != MethodMonteCarlo {
			t.Fatalf("method %s, want monte_carlo", res.Method)
		}
		if res.PValue < 0.05 {
			mc++
		}
		scale := 1/res.NCur + 1/res.NRef
		if chi2Survival(res.DF, res.PSI/scale) < 0.05 {
			chi2++
		}
	}
	rmc, rchi2 := float64(mc)/trials, float64(chi2)/trials
	t.Logf("n=30, 10 bins: Monte Carlo flags %.3f, χ² would flag %.3f at α=0.05", rmc, rchi2)
	if !within(rmc, 0.05, trials) {
		t.Errorf("Monte Carlo p-value flags %.3f at α=0.05", rmc)
	}
	if rchi2 > 0.025 {
		t.Errorf("χ² flags %.3f here; the finding that it is conservative no longer holds", rchi2)
	}
}

// Under the global null with independent tests, Benjamini–Hochberg at q
// rejects anything in a fraction q of families.
func TestBenjaminiHochbergCalibration(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	const families, tests, q = 20000, 30, 0.1
	any := 0
	p := make([]float64, tests)
	for f := 0; f < families; f++ {
		for i := range p {
			p[i] = r.Float64()
		}
		rej, _ := BenjaminiHochberg(p, q)
		for _, x := range rej {
			if x {
				any++
				break
			}
		}
	}
	if rate := float64(any) / families; !within(rate, q, families) {
		t.Errorf("uniform p-values: a rejection in %.4f of families, want %.2f", rate, q)
	}

	// End to end: 25 features tested with real profiles and no shift.
	tester := newTester(t)
	const passes = 400
	any = 0
	p = p[:25]
	for f := 0; f < passes; f++ {
		for i := range p {
			p[i] = nullTrial(t, tester, populations[i%len(populations)], r, 2000, 500, 10).PValue
		}
		rej, _ := BenjaminiHochberg(p, q)
		for _, x := range rej {
			if x {
				any++
				break
			}
		}
	}
	rate := float64(any) / passes
	t.Logf("drift passes of 25 null features: a discovery in %.3f at q=%.1f", rate, q)
	if !within(rate, q, passes) {
		t.Errorf("null drift passes: a discovery in %.3f of passes, want %.2f", rate, q)
	}
}

func TestBenjaminiHochbergByHand(t *testing.T) {
	p := []float64{0.01, 0.04, 0.03, 0.005, 0.5, math.NaN()}
	rej, adj := BenjaminiHochberg(p, 0.05)
	// Sorted: 0.005, 0.01, 0.03, 0.04, 0.5, NaN(=1) with m = 6: p·6/rank =
	// 0.03, 0.03, 0.06, 0.06, 0.6, 1 → step-up minima 0.03, 0.03, 0.06, 0.06, 0.6, 1.
	want := []float64{0.03, 0.06, 0.06, 0.03, 0.6, 1}
	for i := range p {
		if math.Abs(adj[i]-want[i]) > 1e-12 {
			t.Errorf("q-value %d = %v, want %v", i, adj[i], want[i])
		}
	}
	wantRej := []bool{true, false, false, true, false, false}
	for i := range rej {
		if rej[i] != wantRej[i] {
			t.Errorf("rejected %v, want %v", rej, wantRej)
			break
		}
	}
}

// The CUSUM's in-control run length on N(0,1) probits matches Siegmund's
// approximation (about 1.9·10⁴ windows for k = 0.5, h = 8).
func TestSequentialFalseAlarmRate(t *testing.T) {
	r := rand.New(rand.NewPCG(27, 28))
	cfg := NewDefaultSequentialConfig()
	cfg.MinShift = 0 // the raw CUSUM, without the practical-size gate
	const runs = 150
	total := 0
	for i := 0; i < runs; i++ {
		var c CUSUM
		for n := 1; ; n++ {
			p := 1 - normalCDF(r.NormFloat64())
			if c.Update(Result{PValue: p, Method: MethodChi2}, cfg) {
				total += n
				break
			}
		}
	}
	arl := float64(total) / runs
	t.Logf("in-control ARL %.0f windows", arl)
	if arl < 12000 || arl > 30000 {
		t.Errorf("in-control ARL %.0f, want about 19000", arl)
	}
}

// A persistent shift that matters (0.35σ, population PSI ≈ 0.12) in
// windows too small to show it (60 values) is caught by the CUSUM within a
// few windows, far sooner than the per-window test at the same false-alarm
// rate (PSI ≥ 0.1 and p < 5e-5: one false alarm in 2·10⁴ windows, the CUSUM's
// in-control run length). With no shift, neither raises anything over 1,000
// windows.
func TestSequentialCatchesSmallPersistentShift(t *testing.T) {
	tester := newTester(t)
	r := rand.New(rand.NewPCG(29, 30))
	ref := make([]float64, 20000)
	for i := range ref {
		ref[i] = r.NormFloat64()
	}
	p := numericProfile(t, ref, 10)
	p.Feature = "x"
	seq := NewDefaultSequentialConfig()
	run := func(shift float64, windows int) (cusumAt, windowAt int) {
		var c CUSUM
		cusumAt, windowAt = -1, -1
		cur := make([]float64, 60)
		for w := 0; w < windows; w++ {
			for i := range cur {
				cur[i] = r.NormFloat64() + shift
			}
			res, err := tester.Test(p, histogramOf(t, p, cur))
			if err != nil {
				t.Fatal(err)
			}
			if c.Update(res, seq) && cusumAt < 0 {
				cusumAt = w
			}
			if res.PSI >= 0.1 && res.PValue < 5e-5 && windowAt < 0 {
				windowAt = w
			}
		}
		return cusumAt, windowAt
	}
	if c, w := run(0, 1000); c >= 0 || w >= 0 {
		t.Errorf("no shift: CUSUM alarm at window %d, per-window at %d", c, w)
	}
	var cusumDelays, windowDelays []int
	for trial := 0; trial < 20; trial++ {
		c, w := run(0.35, 60)
		cusumDelays = append(cusumDelays, c)
		windowDelays = append(windowDelays, w)
	}
	t.Logf("first alarm, 0.35σ shift: CUSUM %v; per-window test %v", cusumDelays, windowDelays)
	sooner := 0
	for i := range cusumDelays {
		if cusumDelays[i] < 0 {
			t.Fatalf("trial %d: CUSUM never caught the shift", i)
		}
		if windowDelays[i] < 0 || cusumDelays[i] < windowDelays[i] {
			sooner++
		}
		if cusumDelays[i] > 30 {
			t.Errorf("trial %d: CUSUM took %d windows", i, cusumDelays[i])
		}
	}
	if sooner < 16 {
		t.Errorf("CUSUM was sooner in only %d of 20 trials", sooner)
	}
}

// TestCalibrationReport prints the flagged fraction of no-shift windows at
// several sample sizes for docs/BENCHMARKS.md. It is slow; set
// FLEETWATCH_CALIBRATION=1 to run it (FLEETWATCH_CALIBRATION_TRIALS sets the
// trials per row, 20,000 by default).
func TestCalibrationReport(t *testing.T) {
	if os.Getenv("FLEETWATCH_CALIBRATION") == "" {
		t.Skip("set FLEETWATCH_CALIBRATION=1 to print the calibration table")
	}
	tester := newTester(t)
	r := rand.New(rand.NewPCG(31, 32))
	trials := 20000
	if v, err := strconv.Atoi(os.Getenv("FLEETWATCH_CALIBRATION_TRIALS")); err == nil && v > 0 {
		trials = v
	}
	fmt.Println("| data | n (current) | m (reference) | bins | Monte Carlo share | flagged at α=0.05 | at 0.01 | at 0.001 | χ² alone at 0.05 | at 0.01 |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, pop := range populations[:2] {
		for _, n := range []int{20, 50, 100, 300, 1000, 10000} {
			for _, bins := range []int{10, 20} {
				var f05, f01, f001, c05, c01 int
				mc := 0
				for i := 0; i < trials; i++ {
					res := nullTrial(t, tester, pop, r, 5000, n, bins)
					mc += b2i(res.Method == MethodMonteCarlo)
					f05 += b2i(res.PValue < 0.05)
					f01 += b2i(res.PValue < 0.01)
					f001 += b2i(res.PValue < 0.001)
					if res.DF > 0 {
						c := chi2Survival(res.DF, res.PSI/(1/res.NCur+1/res.NRef))
						c05 += b2i(c < 0.05)
						c01 += b2i(c < 0.01)
					}
				}
				fr := func(k int) string { return fmt.Sprintf("%.4f", float64(k)/float64(trials)) }
				fmt.Printf("| %s | %d | 5000 | %d | %s | %s | %s | %s | %s | %s |\n", pop.name, n, bins, fr(mc), fr(f05), fr(f01), fr(f001), fr(c05), fr(c01))
			}
		}
	}
}

func chi2Survival(df int, x float64) float64 { return distuv.ChiSquared{K: float64(df)}.Survival(x) }

func normalCDF(x float64) float64 { return distuv.UnitNormal.CDF(x) }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A window's Monte Carlo p-value does not depend on the windows tested
// before it with the same sample sizes (the null is cached by profile and
// sizes), so a window evaluated again after a restart gets the same one.
func TestMonteCarloPValueIgnoresEarlierWindows(t *testing.T) {
	cfg := NewDefaultTestConfig()
	cfg.Replicates = 400
	r := rand.New(rand.NewPCG(5, 6))
	ref := make([]float64, 2000)
	for i := range ref {
		ref[i] = r.NormFloat64()
	}
	p, err := profile.BuildNumeric(ref, profile.BuildConfig{Bins: 10})
	if err != nil {
		t.Fatal(err)
	}
	p.Model, p.ModelVersion, p.Feature = "m", "v", "x"
	window := func(shift float64) []float64 {
		b, _ := p.Binner()
		h := p.Histogram()
		cv := make([]float64, 30)
		for i := range cv {
			cv[i] = r.NormFloat64() + shift
		}
		b.AddFloat64s(h, cv)
		return h.Floats()
	}
	calm, shifted := window(0), window(2)
	test := func(tester *Tester, cur []float64) Result {
		res, err := tester.Test(p, cur)
		if err != nil {
			t.Fatal(err)
		}
		if res.Method != MethodMonteCarlo {
			t.Fatalf("method %s, want monte_carlo", res.Method)
		}
		return res
	}
	fresh, _ := NewTester(cfg)
	used, _ := NewTester(cfg)
	alone := test(fresh, calm)
	test(used, shifted)
	after := test(used, calm)
	if alone.PValue != after.PValue {
		t.Errorf("p-value %v alone, %v after a shifted window of the same size", alone.PValue, after.PValue)
	}
}
