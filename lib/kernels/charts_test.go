package kernels

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// standard seeds series 0 of a one-series chart with μ = 0, σ = 1.
func standard() *Charts {
	c := &Charts{}
	c.Resize(1)
	c.Seed(0, MRStats{N: 100, Mean: 0, MRBar: D2, NMR: 99}, math.NaN())
	return c
}

// fired runs xs through a standard chart with only rules enabled and no
// learning, and returns the indexes of the points that fired.
func fired(rules Signal, xs []float64) []int {
	c := standard()
	p := DefaultChartParams()
	p.Rules, p.LearnCap = rules, 0
	var out []int
	for i, x := range xs {
		if c.StepOne(&p, 0, x) != 0 {
			out = append(out, i)
		}
	}
	return out
}

func repeat(x float64, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = x
	}
	return s
}

func TestWesternElectricRulesOnCraftedSequences(t *testing.T) {
	cases := []struct {
		name  string
		rules Signal
		xs    []float64
		want  []int
	}{
		{"rule 1 both sides", Rule1, []float64{0, 0.5, 3.5, 0, -3.2, 2.99, -3}, []int{2, 4}},
		{"rule 2 upper", Rule2, []float64{2.5, 0, 2.5}, []int{2}},
		{"rule 2 lower, consecutive", Rule2, []float64{-2.1, -2.2, 0}, []int{1}},
		{"rule 2 needs the same side", Rule2, []float64{2.5, -2.5, 0.1, 2.5, -2.6}, nil},
		{"rule 2 needs 2 of the last 3", Rule2, []float64{2.5, 0.1, 0.2, 2.5}, nil},
		{"rule 3", Rule3, []float64{1.5, 1.5, 0, 1.5, 1.5}, []int{4}},
		{"rule 3 needs 4 of the last 5", Rule3, []float64{1.5, 1.5, 0, 0, 1.5, 1.5}, nil},
		{"rule 3 lower", Rule3, []float64{-1.2, -1.5, -1.1, -1.9}, []int{3}},
		{"rule 4 fires on the 7th and while the run lasts", Rule4, repeat(0.1, 9), []int{6, 7, 8}},
		{"rule 4 broken run", Rule4, append(repeat(0.1, 6), -0.1, 0.1), nil},
		{"rule 4 below", Rule4, repeat(-0.01, 7), []int{6}},
		{"mean itself is on neither side", Rule4, append(repeat(0.1, 6), 0), nil},
		// Tabular CUSUM at a 1σ shift: C⁺ grows by z − k = 0.5 per point
		// and passes h = 5 at the 11th point; it then restarts at 0 and
		// passes h again 11 points later.
		{"cusum", RuleCUSUM, repeat(1, 23), []int{10, 21}},
		{"cusum lower", RuleCUSUM, repeat(-1, 12), []int{10}},
		// EWMA of a 1.5σ shift: 1.5·(1 − 0.8ᵗ) first exceeds
		// 3·sqrt(0.2/1.8·(1 − 0.64ᵗ)) at t = 5; restarted at the target
		// with fresh limits, again 5 points later.
		{"ewma", RuleEWMA, repeat(1.5, 10), []int{4, 9}},
		{"ewma asymptote: a 1σ shift stays inside", RuleEWMA, repeat(1, 50), nil},
		// One wild point is rule 1's: clipped at 4σ it leaves CUSUM below h
		// (3.5 < 5) and the EWMA back inside its limits at the next point
		// (0.64 < 0.77), instead of both firing for ~30 points after it.
		{"a single spike does not linger", RuleCUSUM | RuleEWMA, []float64{16, 0, 0, 0, 0}, []int{0}},
		{"missing points change nothing", Rule2, []float64{2.5, math.NaN(), math.Inf(1), 2.5}, []int{3}},
	}
	for _, c := range cases {
		if got := fired(c.rules, c.xs); !slices.Equal(got, c.want) {
			t.Errorf("%s: fired at %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSignalNames(t *testing.T) {
	s := Rule1 | Rule4 | RuleCUSUM
	if s.String() != "we1,we4,cusum" {
		t.Fatalf("String = %q", s)
	}
	got, err := ParseSignal(" we1,we4 ,cusum")
	if err != nil || got != s {
		t.Fatalf("ParseSignal = %v, %v", got, err)
	}
	if _, err := ParseSignal("we9"); err == nil {
		t.Fatal("ParseSignal accepted we9")
	}
}

func TestChartParamsValidate(t *testing.T) {
	if err := DefaultChartParams().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := ChartParams{Rules: 0x80, EWMALambda: 2, CUSUMH: -1, LearnCap: 1}
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad params accepted")
	}
	for _, want := range []string{"rule bits", "lambda", "ewma limit", "cusum", "learn cap"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// A level shift is flagged and never learned: the baseline keeps the
// in-control mean and σ while the fault lasts.
func TestBaselineNotContaminatedByAFault(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	c := standard()
	p := DefaultChartParams()
	var flagged, shifted int
	for i := 0; i < 1000; i++ {
		x := r.NormFloat64()
		if i >= 300 && i < 600 {
			x += 4 // the fault
			shifted++
		}
		s := c.StepOne(&p, 0, x)
		if i >= 300 && i < 600 && s != 0 {
			flagged++
		}
		if math.Abs(c.Mean[0]) > 0.25 || c.Sigma[0] < 0.8 || c.Sigma[0] > 1.2 {
			t.Fatalf("point %d: baseline moved to μ=%.3f σ=%.3f", i, c.Mean[0], c.Sigma[0])
		}
	}
	if flagged < shifted*95/100 {
		t.Errorf("flagged %d of %d shifted points", flagged, shifted)
	}
}

// Step over many series equals StepOne series by series, and nulls leave a
// series untouched.
func TestStepManySeriesMatchesOneByOne(t *testing.T) {
	const series, points = 50, 40
	r := rand.New(rand.NewPCG(5, 6))
	many, one := &Charts{}, &Charts{}
	many.Resize(series)
	one.Resize(series)
	for i := 0; i < series; i++ {
		s := MRStats{N: 30, Mean: float64(i), MRBar: 1 + float64(i)/10, NMR: 29}
		many.Seed(i, s, math.NaN())
		one.Seed(i, s, math.NaN())
	}
	p := DefaultChartParams()
	xs := make([]float64, series)
	valid := make([]bool, series)
	got := make([]Signal, series)
	for t0 := 0; t0 < points; t0++ {
		for i := range xs {
			xs[i] = float64(i) + r.NormFloat64()*(1+float64(i)/10)/D2 + float64(t0/20)*3
			valid[i] = r.IntN(10) > 0
		}
		b := array.NewFloat64Builder(memory.DefaultAllocator)
		b.AppendValues(xs, valid)
		a := b.NewFloat64Array()
		many.StepArray(&p, a, got)
		a.Release()
		b.Release()
		for i := range xs {
			var want Signal
			if valid[i] {
				want = one.StepOne(&p, i, xs[i])
			}
			if got[i] != want {
				t.Fatalf("point %d series %d: %v, want %v", t0, i, got[i], want)
			}
		}
	}
	if !slices.Equal(many.Mean, one.Mean) || !slices.Equal(many.CusumHi, one.CusumHi) || !slices.Equal(many.Zones, one.Zones) {
		t.Fatal("states differ")
	}
}

func TestResizeLeavesNewSeriesUncharted(t *testing.T) {
	c := &Charts{}
	c.Resize(2)
	c.Seed(0, MRStats{N: 10, Mean: 5, MRBar: 1, NMR: 9}, 5)
	c.Resize(4)
	p := DefaultChartParams()
	out := make([]Signal, 4)
	c.Step(&p, []float64{100, 100, 100, 100}, out)
	if out[0] == 0 || out[1] != 0 || out[2] != 0 || out[3] != 0 || !math.IsNaN(c.Last[3]) {
		t.Fatalf("signals %v, last %v", out, c.Last)
	}
}
