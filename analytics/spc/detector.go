package spc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/lib/kernels"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
)

// Config configures one SPC detector.
type Config struct {
	// Name is the detector's name in the engine (spc_models, spc_labels, ...).
	Name string `yaml:"name"`
	// Interval is the window length; Lateness overrides the engine's
	// allowance when set (the label delay for spc_labels).
	Interval time.Duration `yaml:"interval"`
	Lateness time.Duration `yaml:"lateness"`
	// BaselinePoints is the Phase I length of a new series.
	BaselinePoints int `yaml:"baseline_points"`
	// Rules lists the rules evaluated: we1, we2, we3, we4, ewma, cusum.
	Rules []string `yaml:"rules"`
	// EWMALambda, EWMAL, CUSUMK, CUSUMH: see kernels.ChartParams.
	EWMALambda float64 `yaml:"ewma_lambda"`
	EWMAL      float64 `yaml:"ewma_l"`
	CUSUMK     float64 `yaml:"cusum_k"`
	CUSUMH     float64 `yaml:"cusum_h"`
	// LearnCap is how many in-control points the baseline remembers.
	LearnCap float64 `yaml:"learn_cap"`
	// ForgetAfter drops a series after this long without data.
	ForgetAfter time.Duration `yaml:"forget_after"`
	// Persist is how many consecutive out-of-control windows make a
	// detection critical; CriticalZ the |z| that does so at once.
	Persist   int     `yaml:"persist"`
	CriticalZ float64 `yaml:"critical_z"`
	// Shard limits the charts restored to the series of one shard's
	// models, when analyzers share the fleet (zero: all); the sources are
	// limited to the same shard. State stays under the detector's name.
	Shard fleet.Shard `yaml:"-"`
}

// DefaultRules are the rules a chart evaluates unless configured: beyond
// 3σ (we1), 2 of 3 beyond 2σ (we2), EWMA and CUSUM. The run rules we3 and
// we4 are off: they multiply false alarms (we4 alone fires on 1.56% of
// in-control points, and keeps firing while a run lasts, so noise reaches
// the consecutive windows that make a detection critical), and EWMA and
// CUSUM detect the small persistent shifts they are for sooner at a far
// lower in-control rate (Montgomery, Introduction to Statistical Quality
// Control, 5.3.6 and chapter 9; Champ and Woodall 1987 put the in-control
// run length of rules 1–4 together at 92 points against 370 for rule 1).
const DefaultRules = kernels.Rule1 | kernels.Rule2 | kernels.RuleEWMA | kernels.RuleCUSUM

// NewDefaultConfig returns the one SPC configuration Fleetwatch ships: the
// analyzer's detectors and fleetctl spc both start from it. A one-minute
// window, DefaultRules, a 30-point Phase I baseline that keeps learning from
// in-control points (remembering 2,000), EWMA λ = 0.2, L = 3, CUSUM k = 0.5σ,
// h = 5σ, series forgotten after a week without data, and detections
// critical after 4 consecutive windows out of control (Persist) or at
// |z| ≥ 6. Persist is 4 because the rules answer one noise excursion in
// consecutive windows: a run of 3 comes on 26 of 10⁶ in-control points, a
// run of 4 on 0.9 (TestShippedDefaultsCriticalRate). Its measured in-control false-alarm rates are in
// analytics/README.md (TestShippedDefaultsFalseAlarmRates).
func NewDefaultConfig(name string) Config {
	p := kernels.DefaultChartParams()
	return Config{Name: name, Interval: time.Minute, BaselinePoints: 30, Rules: DefaultRules.Names(),
		EWMALambda: p.EWMALambda, EWMAL: p.EWMAL, CUSUMK: p.CUSUMK, CUSUMH: p.CUSUMH, LearnCap: p.LearnCap,
		ForgetAfter: 7 * 24 * time.Hour, Persist: 4, CriticalZ: 6}
}

// params converts the config to chart parameters.
func (c Config) params() (kernels.ChartParams, error) {
	rules, err := kernels.ParseSignal(strings.Join(c.Rules, ","))
	p := kernels.ChartParams{Rules: rules, EWMALambda: c.EWMALambda, EWMAL: c.EWMAL, CUSUMK: c.CUSUMK, CUSUMH: c.CUSUMH, LearnCap: c.LearnCap}
	return p, err
}

// SetConfig is the configuration of the detector's Set.
func (c Config) SetConfig() (SetConfig, error) {
	p, err := c.params()
	if err != nil {
		return SetConfig{}, err
	}
	forget := 1
	if c.Interval > 0 {
		forget = max(1, int(c.ForgetAfter/c.Interval))
	}
	return SetConfig{BaselinePoints: c.BaselinePoints, Params: p, ForgetAfter: forget}, nil
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	errs := engine.CheckSchedule(c.Name, c.Interval, c.Lateness)
	if c.ForgetAfter < c.Interval {
		errs = append(errs, fmt.Errorf("forget_after: %v is shorter than the interval", c.ForgetAfter))
	}
	if c.Persist < 1 {
		errs = append(errs, fmt.Errorf("persist: %d, want at least 1", c.Persist))
	}
	if !(c.CriticalZ > 3) {
		errs = append(errs, fmt.Errorf("critical_z: %v, want > 3", c.CriticalZ))
	}
	if sc, err := c.SetConfig(); err != nil {
		errs = append(errs, err)
	} else if err := sc.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("spc %s: %w", c.Name, err)
	}
	return nil
}

// Detector charts every series its sources observe, writes their state to
// spc_state after every window, and raises a detection for each series
// that fires a rule. It implements fleet.Detector, fleet.Restorer and
// fleet.LatenessOverride.
type Detector struct {
	cfg     Config
	client  *storage.Client
	writer  *storage.Writer
	sources []Source
	set     *Set
}

// NewDetector validates cfg and returns a detector over sources.
func NewDetector(cfg Config, c *storage.Client, sources ...Source) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(sources) == 0 {
		return nil, fmt.Errorf("spc %s: no sources", cfg.Name)
	}
	sc, _ := cfg.SetConfig()
	set, err := NewSet(sc, cfg.Interval.Seconds())
	if err != nil {
		return nil, err
	}
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		return nil, err
	}
	return &Detector{cfg: cfg, client: c, writer: w, sources: sources, set: set}, nil
}

// Name implements fleet.Detector.
func (d *Detector) Name() string { return d.cfg.Name }

// Interval implements fleet.Detector.
func (d *Detector) Interval() time.Duration { return d.cfg.Interval }

// Lateness implements fleet.LatenessOverride; zero means the engine's.
func (d *Detector) Lateness() time.Duration { return d.cfg.Lateness }

// Set exposes the charts (for tests and tools).
func (d *Detector) Set() *Set { return d.set }

// Restore implements fleet.Restorer: it loads every series' chart as of
// the end of the last evaluated window.
func (d *Detector) Restore(ctx context.Context, last fleet.Window) error {
	var keep func(Series) bool
	if sh := d.cfg.Shard; !sh.All() {
		keep = func(sr Series) bool { return chsql.ShardOf(sr.Model, sh.Of) == sh.Index }
	}
	return d.set.Restore(ctx, d.client, d.cfg.Name, last.End, keep)
}

// Evaluate implements fleet.Detector.
func (d *Detector) Evaluate(ctx context.Context, w fleet.Window) ([]fleet.Detection, error) {
	var obs []Observation
	for _, s := range d.sources {
		o, err := s.Observe(ctx, w)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", s.Name(), err)
		}
		obs = append(obs, o...)
	}
	d.set.Observe(obs)
	if d.set.Len() > 0 {
		if err := d.writer.Write(ctx, d.set.Block(d.cfg.Name, w.End)); err != nil {
			return nil, fmt.Errorf("write spc_state: %w", err)
		}
	}
	fired := d.set.Fired()
	out := make([]fleet.Detection, 0, len(fired))
	for _, p := range fired {
		out = append(out, d.cfg.Detection(p, w))
	}
	return out, nil
}

// Detection is what a detector with this configuration raises for a fired
// point in window w: critical after Persist windows out of control or at
// |z| ≥ CriticalZ, warning for we1, EWMA and CUSUM, else info.
func (c Config) Detection(p Point, w fleet.Window) fleet.Detection {
	strongest := p.Rules.Names()[0]
	sev := "info"
	switch {
	case p.OutRun >= c.Persist || (p.Rules&kernels.Rule1 != 0 && math.Abs(p.Z) >= c.CriticalZ):
		sev = "critical"
	case p.Rules&(kernels.Rule1|kernels.RuleEWMA|kernels.RuleCUSUM) != 0:
		sev = "warning"
	}
	pval := math.NaN()
	if p.Rules&kernels.Rule1 != 0 {
		pval = 2 * distuv.UnitNormal.Survival(math.Abs(p.Z))
	}
	side, limit := "above UCL", p.Mean+3*p.Sigma
	if p.Z < 0 {
		side, limit = "below LCL", p.Mean-3*p.Sigma
	}
	if math.Abs(p.Z) <= 3 {
		side, limit = "above the mean", p.Mean
		if p.Z < 0 {
			side = "below the mean"
		}
	}
	ev, _ := json.Marshal(map[string]any{
		"metric": p.Metric, "value": finite(p.Value), "mean": p.Mean, "sigma": p.Sigma, "ucl": p.Mean + 3*p.Sigma,
		"lcl": p.Mean - 3*p.Sigma, "z": finite(p.Z), "rules": p.Rules.Names(), "ewma": p.EWMA, "cusum_hi": p.CusumHi,
		"cusum_lo": p.CusumLo, "windows_out": p.OutRun,
	})
	return fleet.Detection{
		Time: w.End, WindowStart: w.Start, Detector: "spc_" + strongest, Class: p.Class, Severity: sev,
		EntityType: p.EntityType, Entity: p.Entity, Key: "spc/" + p.Key, Topology: p.Topology,
		GPUUUID: p.GPUUUID, GPUModel: p.GPUModel, Model: p.Model, ModelVersion: p.ModelVersion, Feature: p.Feature,
		Value: finite(p.Z), Threshold: 3, PValue: pval, Action: "investigate",
		Summary: fmt.Sprintf("%s %s = %.4g%s %s %.4g (z = %.2f; %s; %d window(s) out of control)",
			p.Entity, p.Metric, p.Value, unit(p.Unit), side, limit, p.Z, p.Rules, p.OutRun),
		Evidence: string(ev),
	}
}

func unit(u string) string {
	if u == "" {
		return ""
	}
	return " " + u
}

// finite keeps JSON and the detections table free of ±Inf.
func finite(x float64) float64 {
	if math.IsInf(x, 1) {
		return math.MaxFloat64
	}
	if math.IsInf(x, -1) {
		return -math.MaxFloat64
	}
	return x
}
