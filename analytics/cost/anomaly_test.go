package cost_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/cost"
)

// series builds 40 days of a steady service ($100/day at $2.50 per GPU-hour,
// 40 GPU-hours, 1M requests, p99 50 ms, busy 26 GPU-hours, a few percent of
// deterministic noise) and lets last change the final day.
func series(noise float64, last func(d *cost.Day)) cost.Series {
	start := at("2026-10-01T00:00:00Z")
	s := cost.Series{Scope: cost.Scope{Kind: cost.ScopeModel, Name: "ranking"}}
	for i := range 40 {
		w := 1 + noise*math.Sin(float64(i)*1.7)
		d := cost.Day{Date: start.AddDate(0, 0, i), GPUHours: 40 * w, BusyGPUHours: 26 * w, Requests: 1e6 * w, LatencyP99: 0.050, PriceKeys: []cost.PriceKey{h100OD}}
		d.Cost = d.GPUHours * 2.5
		if i == 39 {
			last(&d)
		}
		s.Days = append(s.Days, d)
	}
	return s
}

func TestDetectClassifies(t *testing.T) {
	// A book whose H100 on-demand price moves the final day (Nov 9).
	b, err := cost.NewPriceBook(cost.PriceBookConfig{Currency: "USD", Prices: []cost.Price{
		{PriceKey: h100OD, Effective: at("2026-01-01T00:00:00Z"), PerGPUHour: 2.5},
		{PriceKey: h100OD, Effective: at("2026-11-09T00:00:00Z"), PerGPUHour: 4.5},
	}})
	if err != nil {
		t.Fatal(err)
	}
	scale := func(gpu, busy, req, lat float64) func(d *cost.Day) {
		return func(d *cost.Day) {
			d.GPUHours *= gpu
			d.BusyGPUHours *= busy
			d.Requests *= req
			d.LatencyP99 *= lat
			d.Cost = d.GPUHours * 2.5
		}
	}
	for _, c := range []struct {
		name     string
		last     func(d *cost.Day)
		cause    cost.Cause
		evidence string
	}{
		{"traffic", scale(2, 2, 2.1, 1), cost.CauseTraffic, "cost tracks request volume"},
		// The documents' worked example: volume flat, p99 50 → 125 ms, each
		// request 2.5× the GPU-seconds, cost $100 → $250.
		{"efficiency regression", func(d *cost.Day) {
			scale(2.5, 2.5, 1, 2.5)(d)
			d.Change = "version v7 → v8"
		}, cost.CauseEfficiency, "busy GPU-seconds per request ×2.50, p99 latency ×2.50; after version v7 → v8"},
		{"configuration", func(d *cost.Day) {
			scale(2, 1, 1, 1)(d)
			d.Change = "min replicas 5 → 10"
		}, cost.CauseConfiguration, "the day of min replicas 5 → 10"},
		{"leak", scale(1.8, 1, 1, 1), cost.CauseLeak, "no deployment change"},
		{"pricing", func(d *cost.Day) { d.Cost = d.GPUHours * 4.5 }, cost.CausePricing, "price of H100/us-east/on_demand changed 2.5 → 4.5"},
		{"pricing without a book change", func(d *cost.Day) { d.Cost = d.GPUHours * 4.5; d.PriceKeys = nil }, cost.CausePricing, "no change in the price book"},
	} {
		t.Run(c.name, func(t *testing.T) {
			an := cost.NewDefaultAnomalyConfig().Detect(series(0.03, c.last), b, nil)
			if len(an) != 1 {
				t.Fatalf("anomalies %+v", an)
			}
			a := an[0]
			if a.Cause != c.cause || !strings.Contains(a.Evidence, c.evidence) || a.Severity != cost.SeverityTicket || a.Z <= 3 || a.DeltaPct <= 50 || !a.Date.Equal(at("2026-11-09T00:00:00Z")) {
				t.Errorf("%+v", a)
			}
			if det := a.Detection(); det.Class != string(c.cause) || det.Model != "ranking" || det.Severity != "ticket" || det.Detector != "cost" {
				t.Errorf("detection %+v", det)
			}
		})
	}
}

func TestDetectThresholds(t *testing.T) {
	up := func(f float64) func(d *cost.Day) {
		return func(d *cost.Day) { d.GPUHours *= f; d.BusyGPUHours *= f; d.Requests *= f; d.Cost = d.GPUHours * 2.5 }
	}
	for _, c := range []struct {
		name      string
		noise     float64
		last      func(d *cost.Day)
		overrides map[string]float64
		want      int
	}{
		{"steady", 0.03, up(1), nil, 0},
		{"+35% on a stable service: Z > 3 but Δ% < 50", 0.03, up(1.35), nil, 0},
		{"+35% with the stable override 25%", 0.03, up(1.35), map[string]float64{"model/ranking": 25}, 1},
		{"+80% with the volatile override 100%", 0.03, up(1.8), map[string]float64{"model/ranking": 100}, 0},
		{"+60% on a noisy service: Δ% > 50 but |Z| < 3", 0.35, up(1.6), nil, 0},
		{"−60%: a fall is an anomaly too", 0.03, up(0.4), nil, 1},
	} {
		cfg := cost.NewDefaultAnomalyConfig()
		cfg.Overrides = c.overrides
		if got := cfg.Detect(series(c.noise, c.last), nil, nil); len(got) != c.want {
			t.Errorf("%s: %d anomalies, want %d: %+v", c.name, len(got), c.want, got)
		}
	}
}

func TestDetectPagesWhenBudgetForecastIsOver(t *testing.T) {
	s := series(0.03, func(d *cost.Day) { d.Cost *= 3 })
	for _, c := range []struct {
		amount float64
		sev    string
	}{{1e6, cost.SeverityTicket}, {2000, cost.SeverityPage}} {
		lookup := func(sc cost.Scope, day time.Time) (cost.BudgetStatus, bool) {
			st, err := cost.Forecast(cost.Budget{Scope: sc, Month: day, Amount: c.amount}, s.Days, day, cost.BurnDays)
			return st, err == nil
		}
		an := cost.NewDefaultAnomalyConfig().Detect(s, nil, lookup)
		if len(an) != 1 || an[0].Severity != c.sev || an[0].Budget == nil {
			t.Errorf("budget %v: %+v", c.amount, an)
		}
	}
}

func TestAnomalyConfigValidate(t *testing.T) {
	if err := cost.NewDefaultAnomalyConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	err := cost.AnomalyConfig{BaselineDays: 10, MinBaselineDays: 20, Overrides: map[string]float64{"team/x": 0}}.Validate()
	for _, want := range []string{"min_baseline_days (20) <= baseline_days (10)", "z 0", "delta_pct 0", "overrides[team/x] 0", "traffic 0", "regression 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
