package cost

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
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
}

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
	for _, s := range series {
		// only the window's day: the last one, so earlier days are not judged again
		if n := len(s.Days); n == 0 || !s.Days[n-1].Date.Equal(day) {
			continue
		}
		for _, a := range d.cfg.Detect(Series{Scope: s.Scope, Days: s.Days[max(0, len(s.Days)-d.cfg.BaselineDays-1):]}, d.bk, lookup) {
			if a.Date.Equal(day) {
				out = append(out, a.Detection())
			}
		}
	}
	return out, nil
}
