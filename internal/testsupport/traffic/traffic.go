// Package traffic generates synthetic model-serving traffic (inference
// events and delayed labels) with injectable shifts, for the analyzer's
// tests and benchmarks. It writes through storage.Writer like the collector
// does.
package traffic

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/lib/profile"
	"github.com/fleetwatch/fleetwatch/storage"
)

// Model is one served model and its inputs.
type Model struct {
	Name, Version string
	// Numeric features are N(Mean, SD); Categorical ones draw from Values
	// with Probs.
	Numeric     []Numeric
	Categorical []Categorical
	LatencyMs   float64
	ErrorRate   float64
	// MissingRate is the share of numeric values sent as NaN.
	MissingRate float64
	GPUs        int
}

// Numeric is a normally distributed feature.
type Numeric struct {
	Name     string
	Mean, SD float64
}

// Categorical is a feature drawn from a finite set.
type Categorical struct {
	Name   string
	Values []string
	Probs  []float64
}

// Faults change the traffic at time t; each returns a no-op value (0 or 1)
// when nothing is wrong.
type Faults struct {
	// Shift is the mean shift of a numeric feature, in SDs.
	Shift func(model, feature string, t time.Time) float64
	// Latency multiplies a model's latency.
	Latency func(model string, t time.Time) float64
	// Accuracy is the probability that a prediction is right (default 0.9).
	Accuracy func(model string, t time.Time) float64
	// Down drops a model's traffic.
	Down func(model string, t time.Time) bool
	// ErrorRate replaces a model's error rate.
	ErrorRate func(model string, t time.Time) float64
}

// Generator makes traffic; it is deterministic for a seed.
type Generator struct {
	Models []Model
	Faults Faults
	// Prebin, when set, makes Write also bin each INSERT's events into
	// these profiles and write drift_bins, as the collector does.
	Prebin *profile.Prebinner
	// Each, when set, sees every generated event.
	Each func(*fleet.InferenceEvent)
	rng  *rand.Rand
	seq  uint64
}

// New returns a generator.
func New(seed uint64, models ...Model) *Generator {
	return &Generator{Models: models, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Fleet returns n models with f numeric features each (means 0..f-1, SD 1),
// one categorical feature and a 20 ms latency.
func Fleet(n, f int) []Model {
	out := make([]Model, n)
	for i := range out {
		m := Model{Name: fmt.Sprintf("model-%03d", i), Version: "v1", LatencyMs: 20, ErrorRate: 0.01, GPUs: 2,
			Categorical: []Categorical{{Name: "country", Values: []string{"de", "fr", "us", "jp"}, Probs: []float64{0.4, 0.3, 0.2, 0.1}}}}
		for j := 0; j < f; j++ {
			m.Numeric = append(m.Numeric, Numeric{Name: fmt.Sprintf("f%03d", j), Mean: float64(j), SD: 1})
		}
		out[i] = m
	}
	return out
}

// Events appends n events per model, spread over [start, end), to b and
// their labels (arriving labelDelay later) to lb when lb is not nil.
func (g *Generator) Events(b *storage.InferenceEventBlock, lb *storage.DelayedLabelBlock, start, end time.Time, n int, labelDelay time.Duration) {
	g.events(b, lb, nil, start, end, n, labelDelay)
}

func (g *Generator) events(b *storage.InferenceEventBlock, lb *storage.DelayedLabelBlock, bins *profile.PrebinBatch, start, end time.Time, n int, labelDelay time.Duration) {
	span := end.Sub(start)
	for mi := range g.Models {
		m := &g.Models[mi]
		for i := 0; i < n; i++ {
			ts := start.Add(time.Duration(float64(span) * (float64(i) + 0.5) / float64(n)))
			if g.Faults.Down != nil && g.Faults.Down(m.Name, ts) {
				continue
			}
			g.seq++
			e := fleet.InferenceEvent{Time: ts, Model: m.Name, ModelVersion: m.Version, RequestID: fmt.Sprintf("%s-%d", m.Name, g.seq),
				Status: "ok", SampleRate: 1, Service: "serving", Cluster: "c1", Node: "node-1"}
			if m.GPUs > 0 {
				e.GPUUUID = fmt.Sprintf("GPU-%s-%d", m.Name, i%m.GPUs)
			}
			e.FeatureNames = make([]string, len(m.Numeric))
			e.FeatureValues = make([]float64, len(m.Numeric))
			for j, f := range m.Numeric {
				e.FeatureNames[j] = f.Name
				shift := 0.0
				if g.Faults.Shift != nil {
					shift = g.Faults.Shift(m.Name, f.Name, ts)
				}
				e.FeatureValues[j] = f.Mean + f.SD*(g.rng.NormFloat64()+shift)
				if m.MissingRate > 0 && g.rng.Float64() < m.MissingRate {
					e.FeatureValues[j] = math.NaN()
				}
			}
			for _, c := range m.Categorical {
				e.CatFeatureNames = append(e.CatFeatureNames, c.Name)
				e.CatFeatureValues = append(e.CatFeatureValues, c.Values[pick(g.rng, c.Probs)])
			}
			e.Prediction = 1 / (1 + math.Exp(-g.rng.NormFloat64()))
			e.PredictionClass = "negative"
			if e.Prediction >= 0.5 {
				e.PredictionClass = "positive"
			}
			lat := m.LatencyMs * math.Exp(0.1*g.rng.NormFloat64())
			if g.Faults.Latency != nil {
				lat *= g.Faults.Latency(m.Name, ts)
			}
			e.LatencyMs = lat
			errRate := m.ErrorRate
			if g.Faults.ErrorRate != nil {
				errRate = g.Faults.ErrorRate(m.Name, ts)
			}
			if g.rng.Float64() < errRate {
				e.Status = "error"
			}
			b.Append(&e)
			if bins != nil {
				bins.Add(&e)
			}
			if g.Each != nil {
				g.Each(&e)
			}
			if lb == nil || e.Status != "ok" {
				continue
			}
			acc := 0.9
			if g.Faults.Accuracy != nil {
				acc = g.Faults.Accuracy(m.Name, ts)
			}
			label := e.PredictionClass
			if g.rng.Float64() >= acc {
				label = map[string]string{"positive": "negative", "negative": "positive"}[label]
			}
			lb.Append(&storage.DelayedLabel{Time: ts.Add(labelDelay), Model: m.Name, RequestID: e.RequestID, Label: label, LabelValue: math.NaN()})
		}
	}
}

// Write generates n events per model per window of length step over
// [start, end) and writes them (and labels) in one INSERT per window.
func (g *Generator) Write(ctx context.Context, w *storage.Writer, start, end time.Time, step time.Duration, n int, labelDelay time.Duration) error {
	var b storage.InferenceEventBlock
	var lb storage.DelayedLabelBlock
	for t := start; t.Before(end); t = t.Add(step) {
		b.Reset()
		lb.Reset()
		bins := g.Prebin.NewBatch()
		g.events(&b, &lb, bins, t, t.Add(step), n, labelDelay)
		if err := w.Write(ctx, b.Block()); err != nil {
			return err
		}
		if bins.Events > 0 {
			if err := w.Write(ctx, storage.DriftBins(bins.Counts())); err != nil {
				return err
			}
		}
		if lb.Len() > 0 {
			if err := w.Write(ctx, lb.Block()); err != nil {
				return err
			}
		}
	}
	return nil
}

// Profiles profiles every model's columns — its numeric features, the
// prediction, its categorical features and the predicted class — from a
// reference sample of rows events per model drawn by a generator of seed,
// the way a training-data file would be (profile.SourceFile, default
// build configuration). Models are drawn one after another from one
// stream, so the profiles do not depend on how many models are asked for
// at once, and only one model's sample is held at a time.
func Profiles(seed uint64, rows int, models ...Model) ([]*profile.Profile, error) {
	gen := New(seed)
	cfg := profile.NewDefaultBuildConfig()
	var out []*profile.Profile
	var blk storage.InferenceEventBlock
	for _, model := range models {
		var events []*fleet.InferenceEvent
		gen.Models = []Model{model}
		gen.Each = func(e *fleet.InferenceEvent) { events = append(events, e) }
		blk.Reset()
		gen.Events(&blk, nil, time.Unix(0, 0), time.Unix(3600, 0), rows, 0)
		add := func(p *profile.Profile, err error, feature string) error {
			if err != nil {
				return fmt.Errorf("profile %s %s: %w", model.Name, feature, err)
			}
			p.Model, p.ModelVersion, p.Feature, p.Source = model.Name, model.Version, feature, profile.SourceFile
			out = append(out, p)
			return nil
		}
		num := make([]float64, len(events))
		for j, f := range model.Numeric {
			for r, e := range events {
				num[r] = e.FeatureValues[j]
			}
			p, err := profile.BuildNumeric(num, cfg)
			if err := add(p, err, f.Name); err != nil {
				return nil, err
			}
		}
		for r, e := range events {
			num[r] = e.Prediction
		}
		p, err := profile.BuildNumeric(num, cfg)
		if err := add(p, err, profile.PredictionFeature); err != nil {
			return nil, err
		}
		cat := make([]string, len(events))
		for j, c := range model.Categorical {
			for r, e := range events {
				cat[r] = e.CatFeatureValues[j]
			}
			p, err := profile.BuildCategorical(cat, cfg)
			if err := add(p, err, c.Name); err != nil {
				return nil, err
			}
		}
		for r, e := range events {
			cat[r] = e.PredictionClass
		}
		p, err = profile.BuildCategorical(cat, cfg)
		if err := add(p, err, profile.PredictionClassFeature); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func pick(r *rand.Rand, probs []float64) int {
	u := r.Float64()
	for i, p := range probs {
		if u < p {
			return i
		}
		u -= p
	}
	return len(probs) - 1
}
