package drift

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fleetwatch/fleetwatch/lib/profile"
)

func numericProfile(t *testing.T, values []float64, bins int) *profile.Profile {
	t.Helper()
	p, err := profile.BuildNumeric(values, profile.BuildConfig{Bins: bins, TopK: 20})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// histogramOf bins values into p's bins, then the missing count.
func histogramOf(t *testing.T, p *profile.Profile, values []float64) []float64 {
	t.Helper()
	b, err := p.Binner()
	if err != nil {
		t.Fatal(err)
	}
	h := p.Histogram()
	b.AddFloat64s(h, values)
	return h.Floats()
}

func TestAllMissingColumn(t *testing.T) {
	missing := slices.Repeat([]float64{math.NaN(), math.Inf(1), math.Inf(-1)}, 100)
	p := numericProfile(t, missing, 10)
	if len(p.Edges) != 0 || p.Missing != 300 || p.Bins() != 1 || p.Counts[0] != 0 {
		t.Fatalf("profile %+v", p)
	}
	tester := newTester(t)
	r, err := tester.Test(p, []float64{0, 50})
	if err != nil {
		t.Fatal(err)
	}
	if r.PSI != 0 || r.PValue != 1 || r.Method != MethodNone || r.MissingCur != 1 {
		t.Fatalf("all missing on both sides: %+v", r)
	}
	// Values appearing where the reference had none is drift.
	r, _ = tester.Test(p, []float64{50, 0})
	if r.PSI < 1 || r.PValue > 1e-6 {
		t.Fatalf("values where the reference was all missing: %+v", r)
	}
}

func TestConstantColumnCatchesAnyChange(t *testing.T) {
	p := numericProfile(t, slices.Repeat([]float64{1}, 1000), 10)
	tester := newTester(t)
	same, _ := tester.Test(p, histogramOf(t, p, slices.Repeat([]float64{1}, 500)))
	if same.PSI != 0 || same.PValue != 1 {
		t.Fatalf("unchanged constant: %+v", same)
	}
	for _, v := range []float64{0.5, 2} {
		cur := append(slices.Repeat([]float64{1}, 400), slices.Repeat([]float64{v}, 100)...)
		r, _ := tester.Test(p, histogramOf(t, p, cur))
		if r.Band == Stable || r.PValue > 1e-6 {
			t.Errorf("constant column changing to %v: %+v", v, r)
		}
	}
}

func TestIdenticalDistributionsDoNotAlert(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	ref := make([]float64, 20000)
	cur := make([]float64, 5000)
	for i := range ref {
		ref[i] = r.NormFloat64()
	}
	for i := range cur {
		cur[i] = r.NormFloat64()
	}
	p := numericProfile(t, ref, 10)
	tester := newTester(t)
	self, _ := tester.Test(p, histogramOf(t, p, ref))
	if self.PSI != 0 {
		t.Errorf("reference against itself: PSI %v", self.PSI)
	}
	res, _ := tester.Test(p, histogramOf(t, p, cur))
	// PSI ≈ (1/n + 1/m)·9 ≈ 0.0023 from sampling alone.
	if res.PSI > 0.01 || res.Band != Stable || res.PValue < 0.001 || res.Method != MethodChi2 || res.DF != 9 {
		t.Errorf("same distribution: %+v", res)
	}
	shifted := make([]float64, len(cur))
	for i, x := range cur {
		shifted[i] = x + 0.5
	}
	res, _ = tester.Test(p, histogramOf(t, p, shifted))
	if res.Band == Stable || res.PValue > 1e-12 {
		t.Errorf("half-σ shift: %+v", res)
	}
}

func newTester(t *testing.T) *Tester {
	t.Helper()
	tester, err := NewTester(NewDefaultTestConfig())
	if err != nil {
		t.Fatal(err)
	}
	return tester
}

type refCase struct {
	Kind  string  `json:"kind"`
	Bins  int     `json:"bins"`
	TopK  int     `json:"top_k"`
	Alpha float64 `json:"alpha"`
	Ref   any     `json:"ref"`
	Cur   any     `json:"cur"`
}

type refResult struct {
	Bins json.RawMessage `json:"bins"`
	Ref  []float64       `json:"ref"`
	Cur  []float64       `json:"cur"`
	PSI  float64         `json:"psi"`
}

// numbers renders NaN as null for JSON.
func numbers(xs []float64) []*float64 {
	out := make([]*float64, len(xs))
	for i := range xs {
		if !math.IsNaN(xs[i]) {
			out[i] = &xs[i]
		}
	}
	return out
}

// The whole numeric and categorical pipeline (quantile edges, dedup,
// binning, top-K, smoothing, PSI) against an independent NumPy
// implementation (testdata/psi_reference.py) on random data, to 1e-9.
func TestPSIMatchesNumPy(t *testing.T) {
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import numpy").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and NumPy is missing (%v); run make setup", err)
		}
		t.Skipf("skipping: %s cannot import numpy (%v); run make setup", python, err)
	}
	r := rand.New(rand.NewPCG(11, 12))
	gens := map[string]func() float64{
		"normal":    r.NormFloat64,
		"lognormal": func() float64 { return math.Exp(2 * r.NormFloat64()) },
		"poisson":   func() float64 { return float64(r.IntN(3) + r.IntN(3)) },
		"constant":  func() float64 { return 42 },
	}
	var cases []refCase
	var names []string
	for name, gen := range gens {
		for _, bins := range []int{5, 10, 20} {
			ref := make([]float64, 3000+r.IntN(2000))
			cur := make([]float64, 200+r.IntN(3000))
			for i := range ref {
				ref[i] = gen()
				if r.IntN(50) == 0 {
					ref[i] = math.NaN()
				}
			}
			shift := float64(r.IntN(3)) * 0.3
			for i := range cur {
				cur[i] = gen() + shift
				if r.IntN(20) == 0 {
					cur[i] = math.NaN()
				}
			}
			cases = append(cases, refCase{Kind: "numeric", Bins: bins, Alpha: 0.5, Ref: numbers(ref), Cur: numbers(cur)})
			names = append(names, name)
		}
	}
	words := []string{"de", "fr", "us", "jp", "br", "in", "cn", "", "mx", "ca", "au"}
	for _, topK := range []int{3, 20} {
		ref := make([]string, 4000)
		cur := make([]string, 1500)
		for i := range ref {
			ref[i] = words[min(r.IntN(len(words)), r.IntN(len(words)))]
		}
		for i := range cur {
			cur[i] = words[r.IntN(len(words))]
		}
		cases = append(cases, refCase{Kind: "categorical", TopK: topK, Alpha: 0.5, Ref: ref, Cur: cur})
		names = append(names, "categorical")
	}
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "cases.json")
	if err := os.WriteFile(file, in, 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(python, "testdata/psi_reference.py", file)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("psi_reference.py: %v\n%s", err, stderr.String())
	}
	var want []refResult
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	tester := newTester(t)
	for i, c := range cases {
		var p *profile.Profile
		var cur []float64
		switch c.Kind {
		case "numeric":
			ref, curv := fromJSON(c.Ref.([]*float64)), fromJSON(c.Cur.([]*float64))
			p = numericProfile(t, ref, c.Bins)
			cur = histogramOf(t, p, curv)
			var edges []float64
			if err := json.Unmarshal(want[i].Bins, &edges); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Edges, edges) && !(len(p.Edges) == 0 && len(edges) == 0) {
				t.Errorf("case %d (%s): edges %v, NumPy %v", i, names[i], p.Edges, edges)
			}
		default:
			p, err = profile.BuildCategorical(c.Ref.([]string), profile.BuildConfig{Bins: 10, TopK: c.TopK})
			if err != nil {
				t.Fatal(err)
			}
			idx, _ := p.CategoryIndex()
			h := p.Histogram()
			idx.AddStrings(h, c.Cur.([]string))
			cur = h.Floats()
		}
		ref := append(slices.Clone(p.Counts), p.Missing)
		if !slices.Equal(ref, want[i].Ref) || !slices.Equal(cur, want[i].Cur) {
			t.Errorf("case %d (%s): counts %v / %v, NumPy %v / %v", i, names[i], ref, cur, want[i].Ref, want[i].Cur)
		}
		res, err := tester.Test(p, cur)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(res.PSI-want[i].PSI) > 1e-9 {
			t.Errorf("case %d (%s): PSI %.12g, NumPy %.12g", i, names[i], res.PSI, want[i].PSI)
		}
	}
}

func fromJSON(ps []*float64) []float64 {
	out := make([]float64, len(ps))
	for i, p := range ps {
		out[i] = math.NaN()
		if p != nil {
			out[i] = *p
		}
	}
	return out
}
