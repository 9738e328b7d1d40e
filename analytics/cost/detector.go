package cost

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
)

// DailySource gives the cost detector its input: every scope's daily
// series up to and including day (00:00 UTC), at least BaselineDays+1 days
// long where history exists, and the scopes' budgets. The analyzer's
// source will read allocation rollups from ClickHouse; the simulation's
// reads costsim's world.
type DailySource interface {
	Series(ctx context.Context, day time.Time) ([]Series, error)
	// Budgets returns the budgets in force in day's month.
	Budgets(ctx context.Context, day time.Time) ([]Budget, error)
}

// Detector runs the cost anomaly rules and the budget forecasts once a day
// as a fleet.Detector: windows are UTC days; a window's detections are the
// anomalies dated that day (tickets, or pages when the scope's budget
// forecast is over) and the budget pages of that day.
type Detector struct {
	cfg AnomalyConfig
	src DailySource
	bk  *PriceBook
	out BlockWriter // nil: no cost_daily rows
}

// BlockWriter writes rows (storage.Writer).
type BlockWriter interface {
	Write(ctx context.Context, b storage.Block) error
}

// RecordTo makes Evaluate write each judged day's rows to cost_daily
// through w (one per scope with a series that day, its budget burn and
// its anomaly, if any) before it returns.
func (d *Detector) RecordTo(w BlockWriter) { d.out = w }

// NewDetector validates cfg. book (may be nil) supplies price changes to
// cite.
func NewDetector(cfg AnomalyConfig, src DailySource, book *PriceBook) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Detector{cfg: cfg, src: src, bk: book}, nil
}

// Name implements fleet.Detector.
func (d *Detector) Name() string { return "cost" }

// Interval implements fleet.Detector: a day.
func (d *Detector) Interval() time.Duration { return 24 * time.Hour }

// Evaluate implements fleet.Detector.
func (d *Detector) Evaluate(ctx context.Context, w fleet.Window) ([]fleet.Detection, error) {
	day := w.Start.UTC()
	series, err := d.src.Series(ctx, day)
	if err != nil {
		return nil, fmt.Errorf("cost: series for %s: %w", day.Format(time.DateOnly), err)
	}
	budgets, err := d.src.Budgets(ctx, day)
	if err != nil {
		return nil, fmt.Errorf("cost: budgets for %s: %w", day.Format(time.DateOnly), err)
	}
	byScope := map[Scope][]Day{}
	for _, s := range series {
		byScope[s.Scope] = s.Days
	}
	status := map[Scope]BudgetStatus{}
	var out []fleet.Detection
	for _, b := range budgets {
		st, err := Forecast(b, byScope[b.Scope], day, BurnDays)
		if err != nil {
			return nil, err
		}
		status[b.Scope] = st
		if det, ok := st.Detection(); ok {
			out = append(out, det)
		}
	}
	lookup := func(s Scope, _ time.Time) (BudgetStatus, bool) {
		st, ok := status[s]
		return st, ok
	}
	var rows storage.CostDailyBlock
	for _, s := range series {
		// only the window's day: the last one, so earlier days are not judged again
		n := len(s.Days)
		if n == 0 || !s.Days[n-1].Date.Equal(day) {
			continue
		}
		var found *Anomaly
		for _, a := range d.cfg.Detect(Series{Scope: s.Scope, Days: s.Days[max(0, n-d.cfg.BaselineDays-1):]}, d.bk, lookup) {
			if a.Date.Equal(day) {
				out = append(out, a.Detection())
				found = &a
			}
		}
		d.appendRow(&rows, s.Scope, s.Days[n-1], status[s.Scope], found)
	}
	if d.out != nil && rows.Len() > 0 {
		if err := d.out.Write(ctx, rows.Block()); err != nil {
			return nil, fmt.Errorf("cost: write cost_daily for %s: %w", day.Format(time.DateOnly), err)
		}
	}
	return out, nil
}

// appendRow adds a scope's judged day to rows.
func (d *Detector) appendRow(rows *storage.CostDailyBlock, sc Scope, day Day, st BudgetStatus, a *Anomaly) {
	currency := ""
	if d.bk != nil {
		currency = d.bk.Currency()
	}
	per1k := math.NaN()
	if day.Requests > 0 {
		per1k = day.Cost / day.Requests * 1000
	}
	var cause, evidence string
	if a != nil {
		cause, evidence = string(a.Cause), a.Evidence
	}
	rows.Day = append(rows.Day, day.Date.Unix())
	rows.Detector = append(rows.Detector, d.Name())
	rows.ScopeKind = append(rows.ScopeKind, string(sc.Kind))
	rows.Scope = append(rows.Scope, sc.Name)
	rows.Currency = append(rows.Currency, currency)
	rows.Cost = append(rows.Cost, day.Cost)
	rows.GPUHours = append(rows.GPUHours, day.GPUHours)
	rows.BusyGPUHours = append(rows.BusyGPUHours, day.BusyGPUHours)
	rows.Requests = append(rows.Requests, day.Requests)
	rows.LatencyP99 = append(rows.LatencyP99, day.LatencyP99)
	rows.CostPer1kRequests = append(rows.CostPer1kRequests, per1k)
	rows.Change = append(rows.Change, day.Change)
	rows.Budget = append(rows.Budget, st.Amount)
	rows.MonthSpent = append(rows.MonthSpent, st.Spent)
	rows.Forecast = append(rows.Forecast, st.Forecast)
	rows.Anomaly = append(rows.Anomaly, cause)
	rows.Evidence = append(rows.Evidence, evidence)
}
