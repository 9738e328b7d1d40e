package cost

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
)

// Day is one scope's daily rollup: what the anomaly detector and budgets
// read. Cost and GPUHours come from Attribute over the day; BusyGPUHours
// is Σ SM activity × hours of the scope's GPUs; Requests and LatencyP99
// from the serving telemetry (zero for training jobs).
type Day struct {
	Date         time.Time // 00:00 UTC
	Cost         float64
	GPUHours     float64
	BusyGPUHours float64
	Requests     float64
	LatencyP99   float64 // seconds; 0 if unknown
	// Change describes a deployment spec change that took effect that day
	// (replica count or autoscaler bounds, instance type, model version);
	// empty if none. Autoscaled replica counts are not changes.
	Change string
	// PriceKeys are the keys the scope's GPUs were priced at, to cite the
	// price book's changes.
	PriceKeys []PriceKey
}

// Series is one scope's days, consecutive and in order.
type Series struct {
	Scope Scope
	Days  []Day
}

// Cause is one of the design documents' five root-cause classes (table
// 23), or unknown.
type Cause string

// The causes.
const (
	CauseTraffic       Cause = "traffic"
	CauseEfficiency    Cause = "efficiency_regression"
	CauseLeak          Cause = "resource_leak"
	CausePricing       Cause = "pricing_change"
	CauseConfiguration Cause = "configuration"
	CauseUnknown       Cause = "unknown"
)

// Causes lists the five classes.
var Causes = []Cause{CauseTraffic, CauseEfficiency, CauseLeak, CausePricing, CauseConfiguration}

// Severities of cost incidents: a ticket to the owning team, a page only
// when a budget is about to be exceeded.
const (
	SeverityTicket = "ticket"
	SeverityPage   = "page"
)

// AnomalyConfig sets the rules of the cost anomaly detector.
type AnomalyConfig struct {
	// BaselineDays is the trailing baseline (30); a day is judged once
	// MinBaselineDays of history exist.
	BaselineDays    int `yaml:"baseline_days"`
	MinBaselineDays int `yaml:"min_baseline_days"`
	// Z is the |Z| threshold against the baseline (3).
	Z float64 `yaml:"z"`
	// DeltaPct is the day-over-day |Δ%| threshold (50).
	DeltaPct float64 `yaml:"delta_pct"`
	// Overrides sets DeltaPct per scope ("model/ranking"): the documents
	// suggest 25–30 for stable services and 75–100 for volatile ones.
	Overrides map[string]float64 `yaml:"overrides"`
	// SigmaFloor holds σ at least this fraction of the baseline mean, so a
	// perfectly flat history cannot turn a cent into a huge Z (0.01).
	SigmaFloor float64 `yaml:"sigma_floor"`
	// Traffic: requests explain the move when log(requests ratio) is at
	// least this fraction of log(GPU-hours ratio) (0.5); the same fraction
	// of busy GPU-hours says the work done explains a growth (not a leak).
	Traffic float64 `yaml:"traffic"`
	// Regression: busy GPU-seconds per request or p99 latency up by this
	// ratio is an efficiency regression (1.3).
	Regression float64 `yaml:"regression"`
}

// NewDefaultAnomalyConfig returns the documents' rules: |Z| > 3 against 30
// days and |Δ%| > 50 day over day.
func NewDefaultAnomalyConfig() AnomalyConfig {
	return AnomalyConfig{BaselineDays: 30, MinBaselineDays: 14, Z: 3, DeltaPct: 50, SigmaFloor: 0.01, Traffic: 0.5, Regression: 1.3}
}

// Validate checks the rules.
func (c AnomalyConfig) Validate() error {
	var errs []error
	if c.BaselineDays < 2 || c.MinBaselineDays < 2 || c.MinBaselineDays > c.BaselineDays {
		errs = append(errs, fmt.Errorf("cost anomalies: need 2 <= min_baseline_days (%d) <= baseline_days (%d)", c.MinBaselineDays, c.BaselineDays))
	}
	if !(c.Z > 0) {
		errs = append(errs, fmt.Errorf("cost anomalies: z %v is not positive", c.Z))
	}
	if !(c.DeltaPct > 0) {
		errs = append(errs, fmt.Errorf("cost anomalies: delta_pct %v is not positive", c.DeltaPct))
	}
	for k, v := range c.Overrides {
		if !(v > 0) {
			errs = append(errs, fmt.Errorf("cost anomalies: overrides[%s] %v is not positive", k, v))
		}
	}
	if !(c.SigmaFloor >= 0) {
		errs = append(errs, fmt.Errorf("cost anomalies: sigma_floor %v is negative", c.SigmaFloor))
	}
	if !(c.Traffic > 0 && c.Traffic <= 1) {
		errs = append(errs, fmt.Errorf("cost anomalies: traffic %v is not in (0, 1]", c.Traffic))
	}
	if !(c.Regression > 1) {
		errs = append(errs, fmt.Errorf("cost anomalies: regression %v is not above 1", c.Regression))
	}
	return errors.Join(errs...)
}

// Ratios are today's values over yesterday's (0 where yesterday's is 0).
type Ratios struct {
	Cost, GPUHours, PricePerGPUHour, Requests, BusyGPUHours, BusyPerRequest, Latency float64
}

// Anomaly is one anomalous day of one scope with its cause.
type Anomaly struct {
	Scope    Scope
	Date     time.Time
	Cost     float64 // the day's
	Previous float64 // the day before's
	Mean     float64 // the baseline's
	Sigma    float64
	Z        float64
	DeltaPct float64
	// Threshold is the |Δ%| threshold that applied (an override or DeltaPct).
	Threshold    float64
	Cause        Cause
	Evidence     string
	Ratios       Ratios
	PriceChanges []PriceChange // the book's changes that day on the scope's keys
	Severity     string
	Budget       *BudgetStatus // the scope's budget, when one was given
}

// BudgetLookup returns a scope's budget status as of the end of a day, if
// it has a budget.
type BudgetLookup func(s Scope, day time.Time) (BudgetStatus, bool)

// Detect returns the anomalous days of s (c must be valid: Validate, or
// NewDetector, checks it). book (may be nil) supplies the price changes to
// cite; budgets (may be nil) decides the severity.
func (c AnomalyConfig) Detect(s Series, book *PriceBook, budgets BudgetLookup) []Anomaly {
	thr := c.DeltaPct
	if v, ok := c.Overrides[s.Scope.String()]; ok {
		thr = v
	}
	var out []Anomaly
	for i := c.MinBaselineDays; i < len(s.Days); i++ {
		d, prev := s.Days[i], s.Days[i-1]
		if prev.Cost <= 0 {
			continue
		}
		base := s.Days[max(0, i-c.BaselineDays):i]
		var mean, ss float64
		for _, b := range base {
			mean += b.Cost
		}
		mean /= float64(len(base))
		for _, b := range base {
			ss += (b.Cost - mean) * (b.Cost - mean)
		}
		sigma := math.Max(math.Sqrt(ss/float64(len(base)-1)), c.SigmaFloor*mean)
		if sigma == 0 {
			continue
		}
		z := (d.Cost - mean) / sigma
		delta := (d.Cost - prev.Cost) / prev.Cost * 100
		if math.Abs(z) <= c.Z || math.Abs(delta) <= thr {
			continue
		}
		a := Anomaly{Scope: s.Scope, Date: d.Date, Cost: d.Cost, Previous: prev.Cost, Mean: mean, Sigma: sigma, Z: z, DeltaPct: delta, Threshold: thr, Severity: SeverityTicket}
		if book != nil {
			for _, ch := range book.Changes(d.Date, d.Date.Add(24*time.Hour)) {
				for _, k := range d.PriceKeys {
					if k == ch.PriceKey {
						a.PriceChanges = append(a.PriceChanges, ch)
						break
					}
				}
			}
		}
		a.Ratios = ratios(d, prev)
		a.Cause, a.Evidence = c.classify(d, a.Ratios, a.PriceChanges)
		if budgets != nil {
			if st, ok := budgets(s.Scope, d.Date); ok {
				a.Budget = &st
				if st.Over {
					a.Severity = SeverityPage
				}
			}
		}
		out = append(out, a)
	}
	return out
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func ratios(d, p Day) Ratios {
	return Ratios{
		Cost:            ratio(d.Cost, p.Cost),
		GPUHours:        ratio(d.GPUHours, p.GPUHours),
		PricePerGPUHour: ratio(ratio(d.Cost, d.GPUHours), ratio(p.Cost, p.GPUHours)),
		Requests:        ratio(d.Requests, p.Requests),
		BusyGPUHours:    ratio(d.BusyGPUHours, p.BusyGPUHours),
		BusyPerRequest:  ratio(ratio(d.BusyGPUHours, d.Requests), ratio(p.BusyGPUHours, p.Requests)),
		Latency:         ratio(d.LatencyP99, p.LatencyP99),
	}
}

// lg is log of a ratio, 0 for an unknown (zero) ratio.
func lg(r float64) float64 {
	if r <= 0 {
		return 0
	}
	return math.Log(r)
}

// classify decides the cause. The cost ratio is the GPU-hours ratio times
// the price-per-GPU-hour ratio; the larger factor (in log terms) says
// whether prices or usage moved. A usage move is traffic when requests
// moved with it (log ratio at least Traffic of the GPU-hours'), an
// efficiency regression when they did not but the work per request or p99
// latency rose by Regression, configuration when the deployment spec
// changed that day, and a leak when GPU-hours grew with little more work
// done (busy GPU-hours' log ratio below Traffic of the GPU-hours').
func (c AnomalyConfig) classify(d Day, r Ratios, changes []PriceChange) (Cause, string) {
	f := func(x float64) string { return fmt.Sprintf("×%.2f", x) }
	lp, lgh := lg(r.PricePerGPUHour), lg(r.GPUHours)
	if r.PricePerGPUHour > 0 && math.Abs(lp) > math.Abs(lgh) {
		ev := fmt.Sprintf("cost per GPU-hour %s with GPU-hours %s", f(r.PricePerGPUHour), f(r.GPUHours))
		if len(changes) == 0 {
			return CausePricing, ev + "; no change in the price book for the scope's GPUs (purchase mix: reserved expiry, spot/on-demand shift?)"
		}
		var cs []string
		for _, ch := range changes {
			cs = append(cs, ch.String())
		}
		return CausePricing, ev + "; " + strings.Join(cs, "; ")
	}
	lq := lg(r.Requests)
	if r.Requests > 0 && lgh != 0 && lq/lgh >= c.Traffic {
		return CauseTraffic, fmt.Sprintf("requests %s with GPU-hours %s: cost tracks request volume", f(r.Requests), f(r.GPUHours))
	}
	// Requests did not explain the move (else traffic above): more work
	// per request or slower requests is an efficiency regression.
	if r.GPUHours > 1 && (r.BusyPerRequest >= c.Regression || r.Latency >= c.Regression) {
		ev := fmt.Sprintf("requests %s, busy GPU-seconds per request %s, p99 latency %s", f(r.Requests), f(r.BusyPerRequest), f(r.Latency))
		if d.Change != "" {
			ev += "; after " + d.Change
		}
		return CauseEfficiency, ev
	}
	if d.Change != "" {
		return CauseConfiguration, fmt.Sprintf("step in GPU-hours %s with requests %s the day of %s", f(r.GPUHours), f(r.Requests), d.Change)
	}
	// GPU-hours grew and the work done explains less than Traffic of it.
	if r.GPUHours > 1 && r.BusyGPUHours > 0 && lg(r.BusyGPUHours) < c.Traffic*lgh {
		return CauseLeak, fmt.Sprintf("GPU-hours %s with busy GPU-hours %s and requests %s, no deployment change: %.0f GPU-hours allocated doing no work",
			f(r.GPUHours), f(r.BusyGPUHours), f(r.Requests), d.GPUHours-d.BusyGPUHours)
	}
	return CauseUnknown, fmt.Sprintf("GPU-hours %s, requests %s, busy GPU-hours %s, cost per GPU-hour %s", f(r.GPUHours), f(r.Requests), f(r.BusyGPUHours), f(r.PricePerGPUHour))
}

// Detection turns an anomaly into the analyzer's detection for alerting:
// detector "cost", the cause as class, the severity policy's severity.
func (a Anomaly) Detection() fleet.Detection {
	det := fleet.Detection{
		Time: a.Date.Add(24 * time.Hour), WindowStart: a.Date,
		Detector: "cost", Class: string(a.Cause), Severity: a.Severity,
		EntityType: string(a.Scope.Kind), Entity: a.Scope.Name, Key: a.Scope.String(),
		Value: a.Cost, Threshold: a.Threshold,
		Summary:  fmt.Sprintf("%s cost $%.2f (Z %.1f, %+.0f%% day over day): %s", a.Scope, a.Cost, a.Z, a.DeltaPct, a.Cause),
		Evidence: a.Evidence,
		Action:   "ticket to the owning team",
	}
	switch a.Scope.Kind {
	case ScopeModel:
		det.Model = a.Scope.Name
	case ScopeJob:
		det.Job = a.Scope.Name
	}
	if a.Budget != nil && a.Budget.Over {
		det.Action = fmt.Sprintf("page: budget $%.0f forecast $%.0f for the month", a.Budget.Amount, a.Budget.Forecast)
	}
	return det
}
