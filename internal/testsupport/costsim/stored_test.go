package costsim_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/cost"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/costsim"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/storage/heldrows"
)

// store writes a world's 60 days into ClickHouse as the collector would:
// every GPU's series with its holder (pod labels team, model, cost
// centre, purchase; a job's hpc_job) and hourly SM activity (each model's
// busy GPU-hours of the day spread over its working GPUs; leaked ones,
// costsim's orphan pods, idle), the hours before an
// allocation unheld; requests as 100 sampled rows a day per model;
// deployment changes as markers.
func store(w *costsim.World) heldrows.Rows {
	var rows heldrows.Rows
	for _, d := range w.Days {
		held := map[string]cost.Allocation{}
		count := map[string]int{} // GPUs per model or job
		for _, a := range d.Allocations {
			held[a.GPU] = a
			if !orphan(a) {
				count[a.Model+a.Job]++
			}
		}
		for _, g := range d.GPUs {
			dev := heldrows.Device{UUID: g.ID, Cluster: g.Cluster, GPUModel: g.GPUModel, Purchase: string(g.Purchase)}
			a, ok := held[g.ID]
			if !ok {
				rows.GPU(dev, heldrows.Holder{}, heldrows.Hours(d.Date, 24), 0, 0, 1)
				continue
			}
			if lead := int(a.From.Sub(d.Date).Hours()); lead > 0 {
				rows.GPU(dev, heldrows.Holder{}, heldrows.Hours(d.Date, lead), 0, 0, 1)
			}
			sm := 0.3 // the team's dev GPUs
			if s := a.Model + a.Job; orphan(a) {
				sm = 0.001 // leaked: held, doing nothing (as costsim's last day)
			} else if s != "" {
				sm = d.Busy[s] / float64(count[s]) / 24
			}
			h := heldrows.Holder{Namespace: a.Namespace, Pod: a.Pod, Job: a.Job, Team: a.Team, Model: a.Model, CostCenter: a.CostCenter}
			rows.GPU(dev, h, heldrows.Hours(a.From, int(a.To.Sub(a.From).Hours())), sm, 1, 1)
		}
		for _, m := range w.Models {
			if r := d.Requests[m.Name]; r > 0 {
				rows.Requests(m.Name, d.Date, 100, 100/r)
			}
			if c := d.Change[m.Name]; c != "" {
				rows.Deploy(m.Name, c, "v1", "v1", d.Date.Add(time.Hour))
			}
		}
	}
	return rows
}

// orphan reports whether a is a leaked GPU's (costsim names its pod
// <model>-orphan-<i>).
func orphan(a cost.Allocation) bool { return strings.Contains(a.Pod, "-orphan-") }

// TestStoredWorldDayByDay is the scored simulation through ClickHouse: a
// world with faults and one without, each 60 days written as samples,
// rolled up hour by hour (cost.Store.RollUp) and judged day by day by the
// cost detector reading the rollup (cost.StoreSource, rollup: require).
// In 60 fault-free days nothing is flagged; with faults every injected
// anomaly is found on its day and classified as injected (a job's
// configuration change from its working width, WidthStep), and no model
// or job is flagged otherwise.
func TestStoredWorldDayByDay(t *testing.T) {
	if testing.Short() {
		t.Skip("60 days through ClickHouse")
	}
	for _, faults := range []bool{false, true} {
		t.Run(fmt.Sprintf("faults=%v", faults), func(t *testing.T) {
			ctx := context.Background()
			cfg := costsim.NewDefaultConfig(7)
			cfg.Faults = faults
			w, err := costsim.Generate(cfg)
			if err != nil {
				t.Fatal(err)
			}
			db := chtest.NewDB(t)
			rows := store(w)
			if err := rows.Write(ctx, db); err != nil {
				t.Fatal(err)
			}
			scfg := cost.NewDefaultStoreConfig()
			scfg.Rollup = cost.RollupRequire
			st, err := cost.NewStore(db, scfg)
			if err != nil {
				t.Fatal(err)
			}
			// the 30 days before the world (nothing reported) too: the
			// detector reads them as the baseline of the first days
			begin, end := cfg.Start.AddDate(0, 0, -30), cfg.Start.AddDate(0, 0, cfg.Days)
			if n, err := st.RollUp(ctx, begin, end); err != nil || n != 24*(cfg.Days+30) {
				t.Fatalf("rolled up %d hours (%v), want %d", n, err, 24*(cfg.Days+30))
			}
			src, err := cost.NewStoreSource(st, w.Book, 30, nil)
			if err != nil {
				t.Fatal(err)
			}
			det, err := cost.NewDetector(cost.NewDefaultAnomalyConfig(), src, w.Book)
			if err != nil {
				t.Fatal(err)
			}
			type key = costsim.ScopeDay
			truth := w.Injected()
			found, classified, teamFlags := map[key]bool{}, 0, 0
			for d := range cfg.Days {
				start := cfg.Start.AddDate(0, 0, d)
				ds, err := det.Evaluate(ctx, fleet.Window{Start: start, End: start.AddDate(0, 0, 1)})
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range ds {
					if x.EntityType == string(cost.ScopeTeam) {
						teamFlags++
						if !faults {
							t.Errorf("day %d: team flag %s %s in a fault-free world: %s", d, x.Entity, x.Class, x.Evidence)
						}
						continue
					}
					want, ok := truth[key{x.Entity, d}]
					if !ok {
						t.Errorf("day %d: %s %s flagged, nothing injected: %s", d, x.Key, x.Class, x.Evidence)
						continue
					}
					found[key{x.Entity, d}] = true
					if x.Class == string(want) {
						classified++
					} else {
						t.Errorf("day %d: %s classified %s, injected %s: %s", d, x.Entity, x.Class, want, x.Evidence)
					}
				}
			}
			for k, c := range truth {
				if !found[k] {
					t.Errorf("injected %s on %s day %d not found", c, k.Scope, k.Day)
				}
			}
			t.Logf("%d injected, %d found, %d classified right, %d team flags", len(truth), len(found), classified, teamFlags)
		})
	}
}
