package drift

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/fleetwatch/fleetwatch/lib/kernels"
	"github.com/fleetwatch/fleetwatch/lib/profile"
)

// Band is the conventional reading of a PSI value (the design documents'
// bands): stable below 0.1, investigate below 0.25, action above.
type Band string

// Bands.
const (
	Stable      Band = "stable"
	Investigate Band = "investigate"
	Action      Band = "action"
)

// Methods of computing a p-value.
const (
	MethodChi2       = "chi2"
	MethodMonteCarlo = "monte_carlo"
	MethodNone       = "none"
)

// TestConfig sets how a current histogram is tested against a profile.
type TestConfig struct {
	// Alpha is the smoothing pseudo-count (kernels.DefaultAlpha).
	Alpha float64
	// Investigate and Action are the PSI band thresholds (0.1, 0.25).
	Investigate, Action float64
	// Replicates is the number of Monte Carlo draws of the null
	// distribution when the χ² approximation does not hold (1000).
	Replicates int
	// Seed makes the Monte Carlo draws reproducible.
	Seed uint64
}

// NewDefaultTestConfig returns the defaults.
func NewDefaultTestConfig() TestConfig {
	return TestConfig{Alpha: kernels.DefaultAlpha, Investigate: 0.1, Action: 0.25, Replicates: 1000, Seed: 1}
}

// Validate reports every problem at once.
func (c TestConfig) Validate() error {
	var errs []error
	if !(c.Alpha > 0 && c.Alpha <= 1) {
		errs = append(errs, fmt.Errorf("smoothing alpha %v: want 0 < alpha <= 1", c.Alpha))
	}
	if !(c.Investigate > 0 && c.Action > c.Investigate) {
		errs = append(errs, fmt.Errorf("bands: want 0 < investigate (%v) < action (%v)", c.Investigate, c.Action))
	}
	if c.Replicates < 99 {
		errs = append(errs, fmt.Errorf("replicates: %d, want at least 99", c.Replicates))
	}
	return errors.Join(errs...)
}

// BandOf reads psi against the thresholds.
func (c TestConfig) BandOf(psi float64) Band {
	switch {
	case psi >= c.Action:
		return Action
	case psi >= c.Investigate:
		return Investigate
	}
	return Stable
}

// Result is the comparison of one current window with a profile.
type Result struct {
	PSI    float64
	PValue float64
	// DF is the χ² degrees of freedom: bins in use − 1.
	DF     int
	Method string
	// NullMean is E[PSI] with no shift at these sample sizes: what PSI
	// reads from sampling noise alone.
	NullMean float64
	NRef     float64
	NCur     float64
	// MissingRef and MissingCur are the missing shares.
	MissingRef, MissingCur float64
	Band                   Band
	// CurCounts are the current counts per bin, then the missing count.
	CurCounts []float64
}

// Tester compares current histograms with profiles. It keeps a bounded
// cache of Monte Carlo null distributions, so it is meant to live as long as
// the analyzer; it is safe for concurrent use.
type Tester struct {
	cfg   TestConfig
	mu    sync.Mutex
	nulls map[nullKey][]float64
	order []nullKey
}

// NewTester validates cfg.
func NewTester(cfg TestConfig) (*Tester, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("drift test config: %w", err)
	}
	return &Tester{cfg: cfg, nulls: map[nullKey][]float64{}}, nil
}

// Test compares cur (counts per profile bin, then the missing count) with
// the profile.
//
// The p-value is that of "no shift": with no shift, PSI is approximately
// (1/n + 1/m)·χ²(k−1) for n current and m reference values over k bins in
// use (Yurdakul & Naranjo 2020). That approximation is used while the
// expected counts are large enough for it (Cochran's rule: none below 1, at
// most a fifth below 5, at the smaller of n and m). Below that, PSI under
// the smoothing reads smaller than the approximation says and the test
// would lose power, so the p-value comes from a parametric bootstrap
// instead: both histograms drawn again from their pooled proportions,
// Replicates times (see docs/BENCHMARKS.md, "calibration").
func (t *Tester) Test(p *profile.Profile, cur []float64) (Result, error) {
	if len(cur) != p.Bins()+1 {
		return Result{}, fmt.Errorf("profile %s: current histogram has %d slots, want %d bins + missing", p.Key(), len(cur), p.Bins())
	}
	ref := make([]float64, 0, len(cur))
	ref = append(append(ref, p.Counts...), p.Missing)
	r := Result{NRef: sum(ref), NCur: sum(cur), CurCounts: slices.Clone(cur), PValue: 1, Method: MethodNone}
	if r.NRef > 0 {
		r.MissingRef = p.Missing / r.NRef
	}
	if r.NCur > 0 {
		r.MissingCur = cur[len(cur)-1] / r.NCur
	}
	var k int
	r.PSI, k = kernels.PSI(ref, cur, t.cfg.Alpha)
	r.Band = t.cfg.BandOf(r.PSI)
	r.DF = k - 1
	if r.DF < 1 || r.NCur == 0 || r.NRef == 0 {
		return r, nil
	}
	scale := 1/r.NCur + 1/r.NRef
	if chi2Holds(ref, cur, r.NRef, r.NCur) {
		r.Method = MethodChi2
		r.NullMean = float64(r.DF) * scale
		r.PValue = distuv.ChiSquared{K: float64(r.DF)}.Survival(r.PSI / scale)
		return r, nil
	}
	r.Method = MethodMonteCarlo
	null := t.null(p.Key(), ref, r.NRef, r.NCur)
	r.NullMean = mean(null)
	// The first tied replicate counts as exceeding, hence the +1s.
	exceed := len(null) - sortSearch(null, r.PSI*(1-1e-12))
	r.PValue = float64(exceed+1) / float64(len(null)+1)
	return r, nil
}

// chi2Holds applies Cochran's rule to the expected counts of the bins in
// use under the pooled proportions, at the smaller sample.
func chi2Holds(ref, cur []float64, m, n float64) bool {
	small := min(m, n)
	var used, below5 int
	for i := range ref {
		if ref[i] == 0 && cur[i] == 0 {
			continue
		}
		used++
		e := small * (ref[i] + cur[i]) / (m + n)
		if e < 1 {
			return false
		}
		if e < 5 {
			below5++
		}
	}
	return below5*5 <= used
}

type nullKey struct {
	profile string
	m, n    float64
}

const maxNulls = 4096

// null returns the sorted Monte Carlo null distribution of PSI for the
// profile at sample sizes m and n, cached.
func (t *Tester) null(key string, ref []float64, m, n float64) []float64 {
	k := nullKey{key, m, n}
	t.mu.Lock()
	if d, ok := t.nulls[k]; ok {
		t.mu.Unlock()
		return d
	}
	t.mu.Unlock()
	d := t.simulate(key, ref, m, n)
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.nulls[k]; !ok {
		if len(t.order) >= maxNulls {
			delete(t.nulls, t.order[0])
			t.order = t.order[1:]
		}
		t.nulls[k] = d
		t.order = append(t.order, k)
	}
	return d
}

// simulate draws Replicates pairs of histograms of sizes m and n from the
// reference proportions (multinomials as chains of conditional binomials)
// and returns their PSI values, sorted. The null depends only on the profile
// and the sample sizes — what the cache is keyed by — so a window's p-value
// does not depend on which windows were tested before it (a replayed window
// gets the same one). The draws are seeded from the same, so a p-value is
// reproducible.
func (t *Tester) simulate(key string, ref []float64, m, n float64) []float64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%v/%v", key, m, n)
	src := rand.NewPCG(t.cfg.Seed, h.Sum64())
	pool := make([]float64, len(ref))
	for i := range ref {
		pool[i] = ref[i] / m
	}
	rs, cs := make([]float64, len(ref)), make([]float64, len(ref))
	out := make([]float64, t.cfg.Replicates)
	for r := range out {
		multinomial(src, m, pool, rs)
		multinomial(src, n, pool, cs)
		out[r], _ = kernels.PSI(rs, cs, t.cfg.Alpha)
	}
	slices.Sort(out)
	return out
}

// multinomial fills dst with a draw of n trials over proportions p.
func multinomial(src rand.Source, n float64, p, dst []float64) {
	left, mass := n, 1.0
	for i, pi := range p {
		switch {
		case left <= 0 || pi <= 0:
			dst[i] = 0
		case i == len(p)-1 || pi >= mass:
			dst[i] = left
		default:
			dst[i] = distuv.Binomial{N: left, P: pi / mass, Src: src}.Rand()
		}
		left -= dst[i]
		mass -= pi
	}
}

func sum(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return sum(xs) / float64(len(xs))
}

// sortSearch is the index of the first element of sorted >= x.
func sortSearch(sorted []float64, x float64) int {
	i, _ := slices.BinarySearch(sorted, x)
	return i
}
