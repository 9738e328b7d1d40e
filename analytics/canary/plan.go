package canary

import (
	"errors"
	"fmt"
	"math"
	"time"

	"gonum.org/v1/gonum/stat/distuv"
)

// PlanConfig sizes a staged rollout (design document 003, "Canary
// deployment", equations 5 and 6).
type PlanConfig struct {
	// RequestsPerHour is the model's traffic, all versions together.
	RequestsPerHour float64
	// Stages are the canary's traffic shares, e.g. 0.01, 0.05, 0.25, 0.5.
	Stages []float64
	// Samples, when set, is the samples the canary needs (equation 5's
	// n); otherwise equation 6 gives it from BaselineRate and Effect.
	Samples float64
	// BaselineRate is the metric's rate (CTR, error rate) and Effect the
	// absolute change to detect.
	BaselineRate, Effect float64
	// Alpha is the two-sided significance and Power the power of the
	// fixed-n test of equation 6 (0.05 and 0.8 in the document).
	Alpha, Power float64
	// SequentialAlpha is the false-fail rate of the judge's always-valid
	// test for this metric (Config.Alpha over the rules in force); 0 leaves
	// the sequential column out.
	SequentialAlpha float64
}

// NewDefaultPlanConfig returns the document's stages (1, 5, 25, 50%),
// α = 0.05, power 0.8 and about the default judge's per-rule α (0.01 over
// three rules, rounded down to 0.0033).
func NewDefaultPlanConfig() PlanConfig {
	return PlanConfig{Stages: []float64{0.01, 0.05, 0.25, 0.5}, Alpha: 0.05, Power: 0.8, SequentialAlpha: 0.0033}
}

// Validate reports every problem at once.
func (c PlanConfig) Validate() error {
	var errs []error
	if !(c.RequestsPerHour > 0) || math.IsInf(c.RequestsPerHour, 0) {
		errs = append(errs, fmt.Errorf("requests per hour %v: want > 0", c.RequestsPerHour))
	}
	if len(c.Stages) == 0 {
		errs = append(errs, errors.New("no stages"))
	}
	for _, s := range c.Stages {
		if !(s > 0 && s <= 1) {
			errs = append(errs, fmt.Errorf("stage %v: want a share in (0, 1]", s))
		}
	}
	switch {
	case c.Samples < 0 || math.IsNaN(c.Samples):
		errs = append(errs, fmt.Errorf("samples %v: want >= 0", c.Samples))
	case c.Samples == 0:
		if !(c.BaselineRate > 0 && c.BaselineRate < 1) {
			errs = append(errs, fmt.Errorf("baseline rate %v: want in (0, 1) (or give the samples)", c.BaselineRate))
		}
		if !(c.Effect > 0 && c.Effect < 1) {
			errs = append(errs, fmt.Errorf("effect %v: want an absolute change in (0, 1) (or give the samples)", c.Effect))
		}
	}
	if !(c.Alpha > 0 && c.Alpha < 1) {
		errs = append(errs, fmt.Errorf("alpha %v: want in (0, 1)", c.Alpha))
	}
	if !(c.Power > 0 && c.Power < 1) {
		errs = append(errs, fmt.Errorf("power %v: want in (0, 1)", c.Power))
	}
	if !(c.SequentialAlpha >= 0 && c.SequentialAlpha < 0.5) {
		errs = append(errs, fmt.Errorf("sequential alpha %v: want in [0, 0.5)", c.SequentialAlpha))
	}
	return errors.Join(errs...)
}

// StagePlan is one stage's sizing.
type StagePlan struct {
	Share float64 `json:"share"`
	// CanaryPerHour is the canary's requests per hour at this stage.
	CanaryPerHour float64 `json:"canary_per_hour"`
	// Duration is equation 5: Samples / (requests × share).
	Duration time.Duration `json:"duration_ns"`
	// SequentialSamples and SequentialDuration are what the judge's
	// always-valid test needs to fail a canary whose effect is Effect with
	// probability Power, the baseline serving the rest of the traffic
	// (0 when not computed).
	SequentialSamples  float64       `json:"sequential_samples,omitempty"`
	SequentialDuration time.Duration `json:"sequential_duration_ns,omitempty"`
}

// Plan is a rollout's sizing.
type Plan struct {
	// Samples is the canary samples per stage (given, or equation 6).
	Samples float64     `json:"samples"`
	Stages  []StagePlan `json:"stages"`
}

// SampleSize is equation 6: the samples per variant for a two-sided
// two-proportion test at significance alpha and the given power to
// detect an absolute change delta from rate p.
func SampleSize(p, delta, alpha, power float64) float64 {
	z := distuv.UnitNormal.Quantile(1-alpha/2) + distuv.UnitNormal.Quantile(power)
	return z * z * 2 * p * (1 - p) / (delta * delta)
}

// sequentialSamples is the canary samples at which the mixture SPRT (scale
// τ = delta, level alpha) is significant with probability power when the
// true difference is delta, the canary holding share s of the traffic.
func sequentialSamples(p, delta, s, alpha, power float64) float64 {
	zb := distuv.UnitNormal.Quantile(power)
	// Need δ − z_β/√I ≥ radius(I): bisection on I (the left side grows).
	f := func(info float64) bool { return delta-zb/math.Sqrt(info) >= radius(info, delta, alpha) }
	lo, hi := 1.0, 2.0
	for !f(hi) {
		lo, hi = hi, hi*2
		if hi > 1e30 {
			return math.Inf(1)
		}
	}
	for hi/lo > 1.0001 {
		mid := math.Sqrt(lo * hi)
		if f(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	// 1/I = p(1−p)·(1/n_c + 1/n_b) with n_b = n_c·(1−s)/s.
	return hi * p * (1 - p) / (1 - min(s, 0.5))
}

// MakePlan sizes every stage.
func MakePlan(c PlanConfig) (Plan, error) {
	if err := c.Validate(); err != nil {
		return Plan{}, fmt.Errorf("canary plan: %w", err)
	}
	p := Plan{Samples: c.Samples}
	if p.Samples == 0 {
		p.Samples = math.Ceil(SampleSize(c.BaselineRate, c.Effect, c.Alpha, c.Power))
	}
	hours := func(n, perHour float64) time.Duration {
		return time.Duration(n / perHour * float64(time.Hour)).Round(time.Second)
	}
	for _, s := range c.Stages {
		st := StagePlan{Share: s, CanaryPerHour: c.RequestsPerHour * s}
		st.Duration = hours(p.Samples, st.CanaryPerHour)
		if c.SequentialAlpha > 0 && c.BaselineRate > 0 && c.Effect > 0 {
			st.SequentialSamples = math.Ceil(sequentialSamples(c.BaselineRate, c.Effect, s, c.SequentialAlpha, c.Power))
			st.SequentialDuration = hours(st.SequentialSamples, st.CanaryPerHour)
		}
		p.Stages = append(p.Stages, st)
	}
	return p, nil
}
