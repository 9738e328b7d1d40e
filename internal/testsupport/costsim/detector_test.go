package costsim_test

import (
	"context"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/cost"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/costsim"
)

// TestDetectorDayByDay runs the cost detector as the analyzer's engine
// would, one UTC day per window, over worlds with and without faults, with
// budgets of 1.3× each scope's early daily mean: the injected anomalies come
// out on their days with their class, nothing else does, budget pages come
// only for scopes with a fault, and an anomaly pages only when its scope's
// forecast is over budget.
func TestDetectorDayByDay(t *testing.T) {
	const worlds = 20
	var injected, found, tickets, pages, budgetPages int
	for seed := range uint64(worlds) {
		for _, faults := range []bool{true, false} {
			cfg := costsim.NewDefaultConfig(seed + 1)
			cfg.Faults = faults
			w, err := costsim.Generate(cfg)
			if err != nil {
				t.Fatal(err)
			}
			src, err := w.Source(1.2)
			if err != nil {
				t.Fatal(err)
			}
			det, err := cost.NewDetector(cost.NewDefaultAnomalyConfig(), src, w.Book)
			if err != nil {
				t.Fatal(err)
			}
			type key = costsim.ScopeDay
			truth := w.Injected()
			faulty := map[string]int{} // scope → first fault day
			for _, tr := range w.Truth {
				if d, ok := faulty[tr.Scope.Name]; !ok || tr.Day < d {
					faulty[tr.Scope.Name] = tr.Day
				}
			}
			injected += len(truth)
			for d := range cfg.Days {
				start := cfg.Start.AddDate(0, 0, d)
				dets, err := det.Evaluate(context.Background(), fleet.Window{Start: start, End: start.Add(24 * time.Hour)})
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range dets {
					switch x.Detector {
					case "cost":
						want, ok := truth[key{x.Entity, d}]
						if !ok || x.Class != string(want) {
							t.Errorf("seed %d day %d: %s %s (%s), injected %q", cfg.Seed, d, x.Key, x.Class, x.Evidence, want)
							continue
						}
						found++
						if x.Severity == cost.SeverityPage {
							pages++
						} else {
							tickets++
						}
					case "cost_budget":
						budgetPages++
						if fd, ok := faulty[x.Entity]; !ok || d < fd {
							t.Errorf("seed %d day %d: budget page for %s without a fault before it: %s", cfg.Seed, d, x.Key, x.Summary)
						}
					}
				}
			}
		}
	}
	t.Logf("%d worlds with faults and %d without: %d anomalies injected, %d found on their day with their class (%d tickets, %d pages); %d budget pages",
		worlds, worlds, injected, found, tickets, pages, budgetPages)
	if float64(found) < 0.995*float64(injected) || tickets == 0 || pages == 0 || budgetPages == 0 {
		t.Errorf("found %d of %d, %d tickets, %d pages, %d budget pages", found, injected, tickets, pages, budgetPages)
	}
}
