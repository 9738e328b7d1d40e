package cost_test

import (
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/cost"
)

func TestForecast(t *testing.T) {
	nov := at("2026-11-01T00:00:00Z")
	days := func(costs ...float64) []cost.Day {
		var out []cost.Day
		out = append(out, cost.Day{Date: nov.AddDate(0, 0, -1), Cost: 1e6}) // October: not this month's
		for i, c := range costs {
			out = append(out, cost.Day{Date: nov.AddDate(0, 0, i), Cost: c})
		}
		return out
	}
	flat := []float64{100, 100, 100, 100, 100, 100, 100, 100, 100, 100}
	b := cost.Budget{Scope: cost.Scope{Kind: cost.ScopeTeam, Name: "rec"}, Month: nov, Amount: 3000}
	for _, c := range []struct {
		name                  string
		costs                 []float64
		asOf                  time.Time
		spent, burn, forecast float64
		over                  bool
		exhausts              string
	}{
		// 10 days at $100: $1,000 spent, $100/day, 20 days left: exactly $3,000, not over.
		{"on budget", flat, nov.AddDate(0, 0, 9), 1000, 100, 3000, false, ""},
		// Day 11 costs $250: burn (6×100+250)/7, forecast 1250 + 19 × burn.
		{"a jump", append(flat, 250), nov.AddDate(0, 0, 10), 1250, 850.0 / 7, 1250 + 19*850.0/7, true, "2026-11-26T09:52:56Z"}, // 1750/(850/7) = 14.41 days after Nov 12,
		// Day 2: the burn window is the two days so far.
		{"early month", []float64{100, 140}, nov.AddDate(0, 0, 1), 240, 120, 240 + 28*120, true, "2026-11-26T00:00:00Z"}, // 2760/120 = 23 days after Nov 3,
		// Days after asOf are not counted.
		{"future ignored", append(flat, 250), nov.AddDate(0, 0, 9), 1000, 100, 3000, false, ""},
	} {
		st, err := cost.Forecast(b, days(c.costs...), c.asOf, cost.BurnDays)
		if err != nil {
			t.Fatal(err)
		}
		ex := ""
		if !st.Exhausts.IsZero() {
			ex = st.Exhausts.Format(time.RFC3339)
		}
		if !near(st.Spent, c.spent) || !near(st.BurnPerDay, c.burn) || !near(st.Forecast, c.forecast) || st.Over != c.over || ex != c.exhausts {
			t.Errorf("%s: %+v (exhausts %q)", c.name, st, ex)
		}
		det, ok := st.Detection()
		if ok != c.over || ok && (det.Severity != cost.SeverityPage || det.Class != "budget_forecast_over" || det.Entity != "rec" || det.Threshold != 3000 || !near(det.Value, c.forecast)) {
			t.Errorf("%s: detection %v %+v", c.name, ok, det)
		}
	}
	if _, err := cost.Forecast(b, nil, nov.AddDate(0, 1, 0), 7); err == nil {
		t.Error("a day outside the month was accepted")
	}
	if _, err := cost.Forecast(cost.Budget{Month: nov}, nil, nov, 7); err == nil {
		t.Error("a zero budget was accepted")
	}
}
