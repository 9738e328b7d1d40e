package spc

import (
	"errors"
	"fmt"

	"github.com/fleetwatch/fleetwatch/lib/kernels"
)

// AnalyzeConfig sets how one series is charted offline.
type AnalyzeConfig struct {
	// BaselinePoints is the number of leading valid points that form the
	// baseline (Phase I); the rest are monitored as the analyzer would
	// (Phase II). 0 makes the baseline from every point and checks every
	// point against it (a retrospective chart).
	BaselinePoints int
	// Params are the rules and their settings. Learning (LearnCap) applies
	// to Phase II only.
	Params kernels.ChartParams
}

// NewDefaultAnalyzeConfig charts a series as the analyzer's detectors do
// by default (NewDefaultConfig): the same baseline length, rules and
// settings, and a baseline that keeps learning from in-control points.
func NewDefaultAnalyzeConfig() AnalyzeConfig {
	a, err := NewDefaultConfig("spc").AnalyzeConfig()
	if err != nil {
		panic(err) // the shipped defaults are valid (TestDefaultsValid)
	}
	return a
}

// AnalyzeConfig charts one series offline as a detector with this
// configuration charts each of its series.
func (c Config) AnalyzeConfig() (AnalyzeConfig, error) {
	p, err := c.params()
	return AnalyzeConfig{BaselinePoints: c.BaselinePoints, Params: p}, err
}

// Validate reports every problem at once.
func (c AnalyzeConfig) Validate() error {
	var errs []error
	if c.BaselinePoints != 0 && c.BaselinePoints < 3 {
		errs = append(errs, fmt.Errorf("baseline: %d points; want 0 (every point) or at least 3", c.BaselinePoints))
	}
	if err := c.Params.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Violation is a point that fired rules.
type Violation struct {
	Index int
	Value float64
	// Z is (value − mean)/σ with the baseline in force at that point, on the
	// normal scale of the prediction statistic (kernels.PredictionZ).
	Z     float64
	Rules kernels.Signal
}

// Analysis is the result of charting one series.
type Analysis struct {
	// Points and Missing count valid and missing (NaN, ±Inf) values.
	Points, Missing int
	Baseline        Baseline
	// BaselineEnd is the index of the first monitored point.
	BaselineEnd int
	Violations  []Violation
}

// Limits are the baseline's mean ∓ k·σ limits as the rules judge the first
// monitored point: widened to prediction limits (kernels.PredictionLimit)
// after a Phase I baseline, where they narrow as the baseline learns; the
// plain limits in a retrospective chart.
func (a Analysis) Limits(k float64) (lo, hi float64) {
	b := a.Baseline
	w := k
	if a.BaselineEnd > 0 {
		w = kernels.PredictionLimit(k, float64(b.Stats.N), float64(b.Stats.NMR))
	}
	return b.Mean() - w*b.Sigma(), b.Mean() + w*b.Sigma()
}

// Analyze charts xs (NaN and ±Inf are missing) and lists every point that
// fired a rule.
func Analyze(xs []float64, cfg AnalyzeConfig) (Analysis, error) {
	if err := cfg.Validate(); err != nil {
		return Analysis{}, err
	}
	var a Analysis
	for _, x := range xs {
		if x-x == 0 {
			a.Points++
		} else {
			a.Missing++
		}
	}
	need := max(cfg.BaselinePoints, 2)
	if a.Points < need {
		return a, fmt.Errorf("%d valid values; the baseline needs at least %d", a.Points, need)
	}
	p := cfg.Params
	phase1 := xs
	if cfg.BaselinePoints > 0 {
		valid := 0
		for i, x := range xs {
			if x-x == 0 {
				valid++
			}
			if valid == cfg.BaselinePoints {
				phase1, a.BaselineEnd = xs[:i+1], i+1
				break
			}
		}
	} else {
		p.LearnCap = 0
	}
	a.Baseline = EstimateBaseline(phase1)
	if a.Baseline.Stats.N < 2 {
		return a, fmt.Errorf("only %d in-control baseline values remain after excluding outliers", a.Baseline.Stats.N)
	}
	var c kernels.Charts
	c.Resize(1)
	c.Seed(0, a.Baseline.Stats, a.Baseline.Last)
	if cfg.BaselinePoints == 0 {
		c.Known(0) // its points are its baseline: textbook Phase I limits
	}
	for i := a.BaselineEnd; i < len(xs); i++ {
		if s := c.StepOne(&p, 0, xs[i]); s != 0 {
			a.Violations = append(a.Violations, Violation{Index: i, Value: xs[i], Z: c.LastZ[0], Rules: s})
		}
	}
	return a, nil
}
