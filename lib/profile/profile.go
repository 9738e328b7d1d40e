// Package profile is the pure half of drift detection: reference profiles of
// a feature's or an output's distribution (bin edges from reference
// quantiles, or the top-K categories, with the reference counts), their
// fingerprints, and ingest-time pre-binning of inference events into them.
// It belongs to the ground layer's pure libraries (lib/README.md): the
// collector bins with it at ingest and the analyzer (analytics/drift) tests
// and stores with it, without either importing the other. Storing profiles
// and pre-binned counts is storage's (storage/drift.go).
package profile

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/fleetwatch/fleetwatch/lib/kernels"
)

// Kind is what a profiled column holds.
type Kind string

// Column kinds.
const (
	Numeric     Kind = "numeric"
	Categorical Kind = "categorical"
)

// Names of the model outputs, profiled like features. The '@' keeps them
// apart from any feature name a model may use.
const (
	PredictionFeature      = "@prediction"
	PredictionClassFeature = "@prediction_class"
)

// Where a reference profile came from.
const (
	SourceWindow     = "window"
	SourceDeployment = "deployment"
	SourceFile       = "file"
)

// Profile is the reference distribution of one column: a feature or an
// output of one model version. It is built once, stored in the
// drift_profiles table and reused by every check; nothing recomputes it.
//
// A numeric profile has bins delimited by Edges (len(Edges)+1 bins, the
// outer ones open to ±Inf); a categorical one has one bin per category and a
// last bin for every other value. Missing values (null, NaN, ±Inf, the
// empty string) are counted apart in Missing.
type Profile struct {
	Model, ModelVersion, Feature string
	Kind                         Kind
	Edges                        []float64
	Categories                   []string
	// Counts is the reference count per bin; Missing the missing count.
	Counts  []float64
	Missing float64
	// Source is window, deployment or file; RefStart/RefEnd the reference
	// window, Detail a file name or note.
	Source           string
	RefStart, RefEnd time.Time
	Detail           string
	// CreatedAt is when the profile was built: the end of its reference
	// window for the analyzer, so that a rebuild yields the same row.
	CreatedAt time.Time
}

// Key identifies the profiled column: model/version/feature.
func (p *Profile) Key() string { return p.Model + "/" + p.ModelVersion + "/" + p.Feature }

// Bins is the number of value bins: edges + 1, or categories + other.
func (p *Profile) Bins() int {
	if p.Kind == Categorical {
		return len(p.Categories) + 1
	}
	return len(p.Edges) + 1
}

// N is the number of reference values, missing ones included.
func (p *Profile) N() float64 {
	n := p.Missing
	for _, c := range p.Counts {
		n += c
	}
	return n
}

// Validate checks the profile's shape.
func (p *Profile) Validate() error {
	var errs []error
	switch p.Kind {
	case Numeric:
		if len(p.Counts) != len(p.Edges)+1 {
			errs = append(errs, fmt.Errorf("%d counts for %d edges", len(p.Counts), len(p.Edges)))
		}
		if _, err := kernels.NewBinner(p.Edges); err != nil {
			errs = append(errs, err)
		}
	case Categorical:
		if len(p.Counts) != len(p.Categories)+1 {
			errs = append(errs, fmt.Errorf("%d counts for %d categories (+ other)", len(p.Counts), len(p.Categories)))
		}
		if _, err := kernels.NewCategories(p.Categories); err != nil {
			errs = append(errs, err)
		}
	default:
		errs = append(errs, fmt.Errorf("kind %q is not numeric or categorical", p.Kind))
	}
	if p.N() <= 0 {
		errs = append(errs, errors.New("no reference values"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("profile %s: %w", p.Key(), err)
	}
	return nil
}

// Histogram returns an empty histogram with the profile's bins.
func (p *Profile) Histogram() *kernels.Histogram { return kernels.NewHistogram(p.Bins()) }

// Binner returns the numeric binner of the profile.
func (p *Profile) Binner() (*kernels.Binner, error) { return kernels.NewBinner(p.Edges) }

// CategoryIndex returns the categorical binner of the profile.
func (p *Profile) CategoryIndex() (*kernels.Categories, error) {
	return kernels.NewCategories(p.Categories)
}

// QuantileLevels are the levels k/bins, k = 1 … bins−1, whose reference
// quantiles become the bin edges. They are rendered in SQL with strconv's
// shortest representation, which parses back to the same float64.
func QuantileLevels(bins int) []float64 {
	out := make([]float64, 0, max(0, bins-1))
	for k := 1; k < bins; k++ {
		out = append(out, float64(k)/float64(bins))
	}
	return out
}

// quantileIndex is the position ClickHouse's quantileExact takes for level
// among n sorted values: floor(level·n) in float64 arithmetic, clamped.
func quantileIndex(level float64, n int) int {
	if level >= 1 {
		return n - 1
	}
	return min(n-1, int(level*float64(n)))
}

// NumericEdges turns reference quantiles at QuantileLevels(bins) into bin
// edges: duplicates (discrete data) are merged, and when the highest edge
// is the reference maximum itself an edge just above it is added, so that
// values beyond the reference maximum get a bin of their own instead of
// sharing the top bin with it. (Values below the reference minimum already
// fall below the first edge.) quantiles must be sorted and finite.
func NumericEdges(quantiles []float64, refMax float64) []float64 {
	edges := slices.Compact(slices.Clone(quantiles))
	if n := len(edges); n > 0 && edges[n-1] == refMax {
		edges = append(edges, math.Nextafter(refMax, math.Inf(1)))
	}
	return edges
}

// Quantiles returns the quantileExact values of sorted at levels.
func Quantiles(sorted []float64, levels []float64) []float64 {
	out := make([]float64, len(levels))
	for i, l := range levels {
		out[i] = sorted[quantileIndex(l, len(sorted))]
	}
	return out
}

// BuildConfig sets how profiles are built.
type BuildConfig struct {
	// Bins is the number of numeric bins before deduplication (default 10).
	Bins int
	// TopK is the number of categories kept; the rest share "other" (default 20).
	TopK int
}

// NewDefaultBuildConfig returns 10 bins and the top 20 categories.
func NewDefaultBuildConfig() BuildConfig { return BuildConfig{Bins: 10, TopK: 20} }

// Validate reports every problem at once.
func (c BuildConfig) Validate() error {
	var errs []error
	if c.Bins < 2 || c.Bins > 1000 {
		errs = append(errs, fmt.Errorf("bins: %d, want 2-1000", c.Bins))
	}
	if c.TopK < 1 || c.TopK > 10000 {
		errs = append(errs, fmt.Errorf("top_k: %d, want 1-10000", c.TopK))
	}
	return errors.Join(errs...)
}

// BuildNumeric profiles numeric reference values (NaN and ±Inf count as
// missing). The edges come from the values' quantiles exactly as ClickHouse's
// quantilesExact computes them, so a profile built from a file and one built
// in ClickHouse from the same values are identical.
func BuildNumeric(values []float64, cfg BuildConfig) (*Profile, error) {
	finite := make([]float64, 0, len(values))
	for _, v := range values {
		if v-v == 0 {
			finite = append(finite, v)
		}
	}
	missing := float64(len(values) - len(finite))
	p := &Profile{Kind: Numeric, Missing: missing}
	if len(finite) == 0 {
		p.Counts = []float64{0}
		return p, nil
	}
	levels := QuantileLevels(cfg.Bins)
	pos := make([]int, len(levels))
	for i, l := range levels {
		pos[i] = quantileIndex(l, len(finite))
	}
	pos = slices.Compact(pos)
	sel := slices.Clone(finite)
	kernels.SelectPositions(sel, pos)
	q := make([]float64, len(levels))
	for i, l := range levels {
		q[i] = sel[quantileIndex(l, len(finite))]
	}
	p.Edges = NumericEdges(q, slices.Max(finite))
	b, err := p.Binner()
	if err != nil {
		return nil, err
	}
	h := kernels.NewHistogram(b.Bins())
	b.AddFloat64s(h, finite)
	p.Counts = h.Floats()[:len(h.Counts):len(h.Counts)] // the missing count is set above
	return p, nil
}

// BuildCategorical profiles string reference values: the TopK most
// frequent (ties broken by name) get bins, every other value goes to
// "other", and "" is missing.
func BuildCategorical(values []string, cfg BuildConfig) (*Profile, error) {
	counts := map[string]int64{}
	missing := 0.0
	for _, v := range values {
		if v == "" {
			missing++
			continue
		}
		counts[v]++
	}
	return CategoricalFromCounts(counts, missing, cfg.TopK), nil
}

// CategoricalFromCounts builds a categorical profile from value counts.
func CategoricalFromCounts(counts map[string]int64, missing float64, topK int) *Profile {
	type vc struct {
		v string
		c int64
	}
	all := make([]vc, 0, len(counts))
	for v, c := range counts {
		all = append(all, vc{v, c})
	}
	slices.SortFunc(all, func(a, b vc) int {
		if c := cmp.Compare(b.c, a.c); c != 0 {
			return c
		}
		return cmp.Compare(a.v, b.v)
	})
	p := &Profile{Kind: Categorical, Missing: missing}
	var other float64
	for i, e := range all {
		if i < topK {
			p.Categories = append(p.Categories, e.v)
			p.Counts = append(p.Counts, float64(e.c))
		} else {
			other += float64(e.c)
		}
	}
	p.Counts = append(p.Counts, other)
	return p
}
