package profile

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"iter"
	"math"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/lib/kernels"
)

// Ingest-time binning. A drift pass over a fleet touches every feature
// value of the window once; in inference_events those values sit in
// per-event arrays that ClickHouse must unnest, which dominates the pass
// (docs/BENCHMARKS.md). The collector already holds each event in Go on its
// way in, so it bins the values there, into the stored profiles, and
// writes a few counts per minute and profile bin to drift_bins. The
// detector sums those counts instead of unnesting the window, and falls
// back to the SQL binning for any profile whose counts do not cover every
// event of the window (no profile yet at ingest, a rebuilt profile, a
// collector that died before writing, a retried write).

// Fingerprint identifies how a profile bins values: its kind, edges and
// categories (FNV-1a, 64 bits). drift_bins rows carry it so that counts
// binned with other edges are never mixed in.
func (p *Profile) Fingerprint() uint64 {
	h := fnv.New64a()
	h.Write([]byte(p.Kind))
	var b [8]byte
	for _, e := range p.Edges {
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(e))
		h.Write(b[:])
	}
	for _, c := range p.Categories {
		binary.LittleEndian.PutUint64(b[:], uint64(len(c)))
		h.Write(b[:])
		h.Write([]byte(c))
	}
	return h.Sum64()
}

// versionKey identifies a model version.
type versionKey struct{ model, version string }

// Prebinner bins inference events into their model versions' profiles. It
// is immutable once built and safe for concurrent use; each write gets its
// own PrebinBatch.
type Prebinner struct {
	versions map[versionKey]*prebinVersion
	profiles int
}

type prebinVersion struct {
	columns     []*prebinColumn
	numeric     map[string]*prebinColumn
	categorical map[string]*prebinColumn
}

type prebinColumn struct {
	p      *Profile
	fp     uint64
	slot   int
	binner *kernels.Binner
	cats   *kernels.Categories
}

// NewPrebinner indexes profiles by model version and feature; an invalid
// profile is an error.
func NewPrebinner(profiles []*Profile) (*Prebinner, error) {
	b := &Prebinner{versions: map[versionKey]*prebinVersion{}}
	for _, p := range profiles {
		if err := p.Validate(); err != nil {
			return nil, err
		}
		k := versionKey{p.Model, p.ModelVersion}
		v := b.versions[k]
		if v == nil {
			v = &prebinVersion{numeric: map[string]*prebinColumn{}, categorical: map[string]*prebinColumn{}}
			b.versions[k] = v
		}
		c := &prebinColumn{p: p, fp: p.Fingerprint(), slot: len(v.columns)}
		var err error
		if p.Kind == Numeric {
			c.binner, err = p.Binner()
			v.numeric[p.Feature] = c
		} else {
			c.cats, err = p.CategoryIndex()
			v.categorical[p.Feature] = c
		}
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", p.Key(), err)
		}
		v.columns = append(v.columns, c)
		b.profiles++
	}
	return b, nil
}

// Profiles is the number of profiles binned into.
func (b *Prebinner) Profiles() int {
	if b == nil {
		return 0
	}
	return b.profiles
}

// PrebinBatch accumulates the counts of one write.
type PrebinBatch struct {
	b   *Prebinner
	acc map[prebinKey]*prebinAcc
	// Events counts the events binned; Unprofiled those of model versions
	// without profiles, which are left to the SQL path.
	Events, Unprofiled int
}

type prebinKey struct {
	minute int64
	versionKey
}

type prebinAcc struct {
	v      *prebinVersion
	events uint64
	counts [][]uint64 // per column: value bins, then missing
}

// NewBatch starts a batch; a nil Prebinner gives a batch that bins nothing.
func (b *Prebinner) NewBatch() *PrebinBatch {
	return &PrebinBatch{b: b, acc: map[prebinKey]*prebinAcc{}}
}

// Add bins one event: each present feature with a profile, and the
// outputs (@prediction, @prediction_class) when profiled, exactly as the
// SQL binning counts them.
func (pb *PrebinBatch) Add(e *fleet.InferenceEvent) {
	var v *prebinVersion
	if pb.b != nil {
		v = pb.b.versions[versionKey{e.Model, e.ModelVersion}]
	}
	if v == nil {
		pb.Unprofiled++
		return
	}
	k := prebinKey{e.Time.Unix() / 60 * 60, versionKey{e.Model, e.ModelVersion}}
	a := pb.acc[k]
	if a == nil {
		a = &prebinAcc{v: v, counts: make([][]uint64, len(v.columns))}
		for i, c := range v.columns {
			a.counts[i] = make([]uint64, c.p.Bins()+1)
		}
		pb.acc[k] = a
	}
	a.events++
	pb.Events++
	num := func(name string, x float64) {
		if c := v.numeric[name]; c != nil {
			a.add(c, c.binner.Bin(x))
		}
	}
	cat := func(name, x string) {
		if c := v.categorical[name]; c != nil {
			a.add(c, c.cats.Bin(x))
		}
	}
	for i := range min(len(e.FeatureNames), len(e.FeatureValues)) {
		num(e.FeatureNames[i], e.FeatureValues[i])
	}
	num(PredictionFeature, e.Prediction)
	for i := range min(len(e.CatFeatureNames), len(e.CatFeatureValues)) {
		cat(e.CatFeatureNames[i], e.CatFeatureValues[i])
	}
	cat(PredictionClassFeature, e.PredictionClass)
}

func (a *prebinAcc) add(c *prebinColumn, bin int) {
	cs := a.counts[c.slot]
	if bin < 0 {
		bin = len(cs) - 1
	}
	cs[bin]++
}

// BinCount is one count of a batch: for a minute, a model version and a
// profile (by Fingerprint), the values that fell into Bin, or, for Bin -1,
// the events of the version binned, with or without this feature. Bins run
// over the profile's value bins, then one for missing values. These are the
// rows of drift_bins.
type BinCount struct {
	Minute                       time.Time
	Model, ModelVersion, Feature string
	Profile                      uint64
	Bin                          int16
	Count                        uint64
}

// Counts yields the batch's counts: per minute, model version and profile,
// the events binned (bin -1) and every non-zero bin, in no particular order.
func (pb *PrebinBatch) Counts() iter.Seq[BinCount] {
	return func(yield func(BinCount) bool) {
		for k, a := range pb.acc {
			for i, c := range a.v.columns {
				row := BinCount{Minute: time.Unix(k.minute, 0).UTC(), Model: k.model, ModelVersion: k.version, Feature: c.p.Feature, Profile: c.fp}
				row.Bin, row.Count = -1, a.events
				if !yield(row) {
					return
				}
				for bin, n := range a.counts[i] {
					if n > 0 {
						row.Bin, row.Count = int16(bin), n
						if !yield(row) {
							return
						}
					}
				}
			}
		}
	}
}
