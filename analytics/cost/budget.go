package cost

import (
	"errors"
	"fmt"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
)

// Scope is what a cost series, a budget or an anomaly is about.
type Scope struct {
	Kind ScopeKind
	Name string
}

// ScopeKind is the dimension of a scope.
type ScopeKind string

// The scopes of cost anomalies and budgets.
const (
	ScopeModel ScopeKind = "model"
	ScopeTeam  ScopeKind = "team"
	ScopeJob   ScopeKind = "job"
)

func (s Scope) String() string { return string(s.Kind) + "/" + s.Name }

// Budget is a scope's budget for one calendar month (UTC).
type Budget struct {
	Scope  Scope
	Month  time.Time // any time in the month
	Amount float64
}

// BudgetStatus is a budget's burn as of the end of a day.
type BudgetStatus struct {
	Budget
	AsOf time.Time // the end of the last day counted
	// Spent is the month-to-date cost; BurnPerDay the mean daily cost over
	// the trailing burn window; Forecast = Spent + BurnPerDay × the days
	// left in the month.
	Spent, BurnPerDay, Forecast float64
	// Over says the forecast exceeds the budget; Exhausts is when the burn
	// reaches the budget (zero if not this month).
	Over     bool
	Exhausts time.Time
}

// BurnDays is the default trailing window of the burn rate: a week, so a
// step in spend shows in the forecast within days, not at month end.
const BurnDays = 7

// Forecast computes b's status from daily costs (by UTC day, any order;
// days outside b's month are ignored) as of the end of asOf's day. The burn
// rate is the mean of the last burnDays days of the month so far (fewer at
// the start of a month).
func Forecast(b Budget, days []Day, asOf time.Time, burnDays int) (BudgetStatus, error) {
	if b.Amount <= 0 {
		return BudgetStatus{}, fmt.Errorf("budget %s: amount %v is not positive", b.Scope, b.Amount)
	}
	if burnDays < 1 {
		return BudgetStatus{}, errors.New("budget: burn window below one day")
	}
	start := time.Date(b.Month.Year(), b.Month.Month(), 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(0, 1, 0)
	day := asOf.UTC().Truncate(24 * time.Hour)
	if day.Before(start) || !day.Before(end) {
		return BudgetStatus{}, fmt.Errorf("budget %s: %s is outside %s", b.Scope, asOf.Format(time.DateOnly), start.Format("2006-01"))
	}
	st := BudgetStatus{Budget: b, AsOf: day.Add(24 * time.Hour)}
	burnFrom := st.AsOf.AddDate(0, 0, -burnDays)
	if burnFrom.Before(start) {
		burnFrom = start
	}
	var burn float64
	for _, d := range days {
		t := d.Date.UTC()
		if t.Before(start) || !t.Before(st.AsOf) {
			continue
		}
		st.Spent += d.Cost
		if !t.Before(burnFrom) {
			burn += d.Cost
		}
	}
	st.BurnPerDay = burn / st.AsOf.Sub(burnFrom).Hours() * 24
	left := end.Sub(st.AsOf).Hours() / 24
	st.Forecast = st.Spent + st.BurnPerDay*left
	st.Over = st.Forecast > b.Amount
	if st.Spent >= b.Amount {
		st.Exhausts = st.AsOf
	} else if st.Over && st.BurnPerDay > 0 {
		st.Exhausts = st.AsOf.Add(time.Duration((b.Amount - st.Spent) / st.BurnPerDay * 24 * float64(time.Hour)))
	}
	return st, nil
}

// Detection is the alert for a budget whose month-end forecast exceeds
// it, for alerting (detector "cost_budget", class "budget_forecast_over",
// severity page: a budget about to be exceeded is the one cost incident
// that pages); ok is false when the forecast is within the budget.
func (st BudgetStatus) Detection() (det fleet.Detection, ok bool) {
	if !st.Over {
		return fleet.Detection{}, false
	}
	det = fleet.Detection{
		Time: st.AsOf, WindowStart: st.AsOf.Add(-24 * time.Hour),
		Detector: "cost_budget", Class: "budget_forecast_over", Severity: SeverityPage,
		EntityType: string(st.Scope.Kind), Entity: st.Scope.Name, Key: st.Scope.String(),
		Value: st.Forecast, Threshold: st.Amount,
		Summary:  fmt.Sprintf("%s month-end forecast $%.0f exceeds its budget $%.0f", st.Scope, st.Forecast, st.Amount),
		Evidence: fmt.Sprintf("spent $%.2f by %s, burning $%.2f a day over the last days", st.Spent, st.AsOf.Format(time.DateOnly), st.BurnPerDay),
		Action:   "page the owning team: cut spend or raise the budget",
	}
	if !st.Exhausts.IsZero() {
		det.Evidence += "; the budget runs out " + st.Exhausts.Format(time.RFC3339)
	}
	switch st.Scope.Kind {
	case ScopeModel:
		det.Model = st.Scope.Name
	case ScopeJob:
		det.Job = st.Scope.Name
	}
	return det, true
}
