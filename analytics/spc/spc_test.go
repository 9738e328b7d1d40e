package spc

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fleetwatch/fleetwatch/lib/kernels"
)

func normals(r *rand.Rand, n int, mu, sigma float64) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = mu + sigma*r.NormFloat64()
	}
	return xs
}

// Faults in the baseline period do not become the baseline: spikes are
// excluded and a level shift's jump does not inflate σ.
func TestBaselineExcludesFaults(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	clean := normals(r, 60, 100, 5)
	dirty := slices.Clone(clean)
	dirty[10], dirty[30], dirty[31] = 200, 20, 190
	b := EstimateBaseline(dirty)
	for _, i := range []int{10, 30, 31} {
		if !slices.Contains(b.Excluded, i) {
			t.Errorf("spike %d not excluded: %v", i, b.Excluded)
		}
	}
	if len(b.Excluded) > 4 {
		t.Errorf("excluded %v: more than the spikes and one tail point", b.Excluded)
	}
	ref := EstimateBaseline(clean)
	if math.Abs(b.Mean()-ref.Mean()) > 1 || math.Abs(b.Sigma()-ref.Sigma()) > 0.8 {
		t.Errorf("with faults μ=%.2f σ=%.2f, clean μ=%.2f σ=%.2f", b.Mean(), b.Sigma(), ref.Mean(), ref.Sigma())
	}
	if math.Abs(ref.Mean()-100) > 2.5 || math.Abs(ref.Sigma()-5) > 1.5 {
		t.Errorf("clean baseline μ=%.2f σ=%.2f for N(100, 5)", ref.Mean(), ref.Sigma())
	}
	if b.Last != clean[59] {
		t.Errorf("last kept %v", b.Last)
	}
}

// A backtest over a deterministic in-control series (alternating around 10,
// so neither runs nor outliers) with a spike and a level shift: exactly the
// faults are flagged, each by the rule made for it.
func TestAnalyzeBacktest(t *testing.T) {
	var xs []float64
	for i := 0; i < 40; i++ {
		sign := float64(1 - 2*(i%2))
		xs = append(xs, 10+sign*0.5*(1+0.2*math.Sin(float64(i))))
	}
	xs = append(xs, math.NaN(), 10.3, 9.7, 16, 10.1)      // a spike at 43
	xs = append(xs, slices.Repeat([]float64{12.5}, 4)...) // a shift at 45–48
	a, err := Analyze(xs, NewDefaultAnalyzeConfig())
	if err != nil {
		t.Fatal(err)
	}
	if a.Points != len(xs)-1 || a.Missing != 1 || a.BaselineEnd != 20 {
		t.Fatalf("points %d missing %d baseline end %d", a.Points, a.Missing, a.BaselineEnd)
	}
	if math.Abs(a.Baseline.Mean()-10) > 0.05 || a.Baseline.Sigma() < 0.7 || a.Baseline.Sigma() > 1.1 {
		t.Fatalf("baseline μ=%v σ=%v", a.Baseline.Mean(), a.Baseline.Sigma())
	}
	idx := map[int]kernels.Signal{}
	for _, v := range a.Violations {
		idx[v.Index] = v.Rules
		if v.Index < 43 {
			t.Errorf("in-control point flagged: %+v", v)
		}
	}
	if idx[43]&kernels.Rule1 == 0 {
		t.Errorf("spike at 43 not flagged by rule 1: %v", a.Violations)
	}
	if idx[46]&kernels.Rule2 == 0 || idx[48]&kernels.Rule3 == 0 {
		t.Errorf("shift not flagged by rules 2 and 3: %v", a.Violations)
	}
}

func TestAnalyzeErrors(t *testing.T) {
	if _, err := Analyze([]float64{1, 2, math.NaN()}, NewDefaultAnalyzeConfig()); err == nil {
		t.Error("2 values accepted for a 20-point baseline")
	}
	cfg := NewDefaultAnalyzeConfig()
	cfg.BaselinePoints = 1
	if _, err := Analyze(slices.Repeat([]float64{1}, 50), cfg); err == nil {
		t.Error("1-point baseline accepted")
	}
	cfg = NewDefaultAnalyzeConfig()
	cfg.BaselinePoints = 0
	a, err := Analyze([]float64{1, 2, 1, 2, 1, 2, 9}, cfg)
	if err != nil || a.BaselineEnd != 0 {
		t.Fatalf("retrospective: %+v, %v", a, err)
	}
}

// On in-control normal data every rule fires at its known per-point rate
// (the false-alarm rates the detector states): rule 1 two-sided 0.27%, rule 4
// (7 in a row) 2·0.5⁷ = 1.56%, and all rules together about 2.9% of points.
func TestInControlFalseAlarmRates(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const series, points = 200, 1000
	p := kernels.DefaultChartParams()
	p.LearnCap = 0
	var c kernels.Charts
	c.Resize(series)
	for i := 0; i < series; i++ {
		c.Seed(i, kernels.MRStats{N: 1000, Mean: 0, MRBar: kernels.D2, NMR: 999}, math.NaN())
	}
	var perRule [6]int
	var any int
	xs := make([]float64, series)
	out := make([]kernels.Signal, series)
	for t0 := 0; t0 < points; t0++ {
		for i := range xs {
			xs[i] = r.NormFloat64()
		}
		c.Step(&p, xs, out)
		for _, s := range out {
			if s != 0 {
				any++
			}
			for b := 0; b < 6; b++ {
				if s&(1<<b) != 0 {
					perRule[b]++
				}
			}
		}
	}
	n := float64(series * points)
	rate := func(k int) float64 { return float64(k) / n }
	t.Logf("per-point false alarm rates: we1 %.4f we2 %.4f we3 %.4f we4 %.4f ewma %.4f cusum %.4f any %.4f",
		rate(perRule[0]), rate(perRule[1]), rate(perRule[2]), rate(perRule[3]), rate(perRule[4]), rate(perRule[5]), rate(any))
	if r1 := rate(perRule[0]); math.Abs(r1-0.0027) > 0.0005 {
		t.Errorf("rule 1 fires at %.4f, want 0.0027", r1)
	}
	// Rule 4 at a run of 7: the point and the 6 before it on one side.
	if r4 := rate(perRule[3]); math.Abs(r4-2/128.0) > 0.001 {
		t.Errorf("rule 4 fires at %.4f", r4)
	}
	if a := rate(any); a < 0.025 || a > 0.033 {
		t.Errorf("all rules fire at %.4f", a)
	}
}
