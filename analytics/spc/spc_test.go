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
	// Every rule, a frozen 20-point baseline: the rules' mechanics, not the
	// shipped defaults (TestShippedDefaultsFalseAlarmRates).
	cfg := NewDefaultAnalyzeConfig()
	cfg.BaselinePoints, cfg.Params.Rules, cfg.Params.LearnCap = 20, kernels.AllRules, 0
	a, err := Analyze(xs, cfg)
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
		t.Error("2 values accepted for a 30-point baseline")
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
