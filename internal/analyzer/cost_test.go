package analyzer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/cost"
	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/storage/heldrows"
)

func TestCostConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*CostConfig)
		want string // in the error; empty: valid
	}{
		{"defaults with a book", func(*CostConfig) {}, ""},
		{"no price book", func(c *CostConfig) { c.PriceBook = "" }, "price_book is required"},
		{"lateness a day", func(c *CostConfig) { c.Lateness = 24 * time.Hour }, "lateness"},
		{"bad purchase", func(c *CostConfig) { c.Store.Purchase = "lease" }, "purchase"},
		{"bad anomaly", func(c *CostConfig) { c.Anomaly.Z = 0 }, "z 0"},
		{"bad waste", func(c *CostConfig) { c.Waste.IdleHours = 0 }, "idle_hours"},
		{"rollup lateness an hour", func(c *CostConfig) { c.Rollup.Lateness = time.Hour }, "rollup_pass lateness"},
		{"waste off skips its checks", func(c *CostConfig) { c.Waste.Enabled, c.Waste.IdleHours = false, 0 }, ""},
		{"budget scope", func(c *CostConfig) { c.Budgets = []cost.BudgetConfig{{Scope: "org/x", Monthly: 1}} }, "scope \"org/x\""},
		{"budget amount", func(c *CostConfig) { c.Budgets = []cost.BudgetConfig{{Scope: "team/x", Monthly: 0}} }, "monthly 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := NewDefaultCostConfig()
			cfg.PriceBook = "prices.yaml"
			c.edit(&cfg)
			err := cfg.Validate()
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Errorf("Validate() = %v, want %q", err, c.want)
			}
		})
	}
}

// TestCostThroughTheAnalyzer stores 21 days of a small fleet in ClickHouse
// and runs the analyzer's engine over the last day with alerting on:
//
//   - ranker holds 2 H100s all day for 20 days with 1,000 requests a day,
//     then 4 with 2,000 requests: a traffic step (cost $96 → $192);
//   - embed (team nlp) holds 1 GPU all along with 500 requests a day;
//   - on the last day notebook-1 (team research) holds a GPU for 8 hours
//     at 1 % SM activity with half its memory used: idle-held.
//
// The cost detector raises exactly one anomaly, ranker's, classified
// traffic, as an alerting warning (a ticket: recorded, not paged), and
// team nlp's $100 budget forecast over as critical, which opens (pages)
// at its first window; the waste detector raises exactly the idle-held
// GPU.
func TestCostThroughTheAnalyzer(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	last := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	first := last.AddDate(0, 0, -20)
	var rows heldrows.Rows
	dev := func(uuid string) heldrows.Device {
		return heldrows.Device{UUID: uuid, Cluster: "c1", GPUModel: "NVIDIA H100 80GB HBM3"}
	}
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		n, req := 2, 10
		if d.Equal(last) {
			n, req = 4, 20
		}
		for i := range n {
			rows.GPU(dev("GPU-R"+string(rune('0'+i))), heldrows.Holder{Namespace: "search", Pod: "ranker-" + string(rune('0'+i)), Model: "ranker"},
				heldrows.Hours(d, 24), 0.6, 40000, 40000)
		}
		rows.GPU(dev("GPU-E"), heldrows.Holder{Namespace: "nlp", Pod: "embed-0", Team: "nlp", Model: "embed"}, heldrows.Hours(d, 24), 0.5, 40000, 40000)
		rows.Requests("ranker", d, req, 0.01)
		rows.Requests("embed", d, 5, 0.01)
	}
	rows.GPU(dev("GPU-N"), heldrows.Holder{Namespace: "research", Pod: "notebook-1", Team: "research"}, heldrows.Hours(last.Add(8*time.Hour), 8), 0.01, 40000, 40000)
	if err := rows.Write(ctx, c); err != nil {
		t.Fatal(err)
	}
	book := filepath.Join(t.TempDir(), "prices.yaml")
	if err := os.WriteFile(book, []byte("currency: USD\nprices:\n  - {gpu_model: NVIDIA H100 80GB HBM3, cluster: c1, purchase: on_demand, effective: 2020-01-01T00:00:00Z, per_gpu_hour: 2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	cfg := NewDefaultConfig()
	cfg.ClickHouse = c.Config()
	cfg.Listen = ""
	cfg.Drift.Enabled, cfg.SPCModels.Enabled, cfg.SPCLabels.Enabled, cfg.SPCGPU.Enabled = false, false, false, false
	cfg.Health.Enabled, cfg.Jobs.Enabled = false, false
	cfg.Alerting.Enabled = true
	cfg.Cost.Enabled, cfg.Cost.PriceBook = true, book
	// team nlp spends $48 a day: a $100 month is forecast over at once
	cfg.Cost.Budgets = []cost.BudgetConfig{{Scope: "team/nlp", Monthly: 100}}
	cfg.Engine.StartAt = last
	clock := engine.NewManualClock(last.Add(24*time.Hour + cfg.Cost.Lateness + time.Minute))
	a, err := New(ctx, cfg, c, chtest.Logger(t), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Engine.Step(ctx); err != nil {
		t.Fatal(err)
	}
	var res struct{ det, class, sev, entity []string }
	q := "SELECT toString(detector), toString(class), toString(severity), toString(key) FROM " + c.Config().Database + ".detections WHERE detector LIKE 'cost%' ORDER BY detector, key"
	rs, err := c.Conn().Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var d, cl, s, k string
		if err := rs.Scan(&d, &cl, &s, &k); err != nil {
			t.Fatal(err)
		}
		res.det, res.class, res.sev, res.entity = append(res.det, d), append(res.class, cl), append(res.sev, s), append(res.entity, k)
	}
	rs.Close()
	want := [][4]string{
		{"cost", string(cost.CauseTraffic), "warning", "model/ranker"},
		{"cost_budget", "budget_forecast_over", "critical", "team/nlp"},
		{"cost_waste", string(cost.IdleHeld), "warning", "idle_held/GPU-N"},
	}
	if len(res.det) != len(want) {
		t.Fatalf("cost detections %v %v %v %v, want %v", res.det, res.class, res.sev, res.entity, want)
	}
	for i, w := range want {
		if got := [4]string{res.det[i], res.class[i], res.sev[i], res.entity[i]}; got != w {
			t.Errorf("detection %d = %v, want %v", i, got, w)
		}
	}
	// cost_daily: the judged day of ranker, embed, team nlp and team
	// research (its first day: 8 GPU-hours, too little history to judge); ranker's
	// with its anomaly: 4 GPUs × 24 h × $2 = $192 for 2,000 requests.
	var n, rankerCost, per1k float64
	var anomaly string
	db := c.Config().Database
	if err := c.QueryScalar(ctx, "SELECT toFloat64(count()) FROM "+db+".cost_daily FINAL", &n); err != nil || n != 4 {
		t.Errorf("%v cost_daily rows (%v), want 4", n, err)
	}
	if err := c.QueryScalar(ctx, "SELECT cost, cost_per_1k_requests, toString(anomaly) FROM "+db+".cost_daily FINAL WHERE scope = 'ranker'", &rankerCost, &per1k, &anomaly); err != nil ||
		rankerCost != 192 || per1k != 96 || anomaly != string(cost.CauseTraffic) {
		t.Errorf("ranker's cost_daily row: $%v, $%v per 1,000 requests, anomaly %q (%v); want $192, $96, traffic", rankerCost, per1k, anomaly, err)
	}
	// the hourly pass (cost_rollup) rolled up the hours it was due
	var rolled, rolledHours uint64
	if err := c.QueryScalar(ctx, "SELECT count(), uniqExact(hour) FROM "+db+".gpu_held_1h_hours", &rolled, &rolledHours); err != nil {
		t.Fatal(err)
	}
	// the clock is 25 h past the start: the hours of the judged day
	if rolled != 24 || rolledHours != 24 {
		t.Errorf("gpu_held_1h_hours: %d rows for %d hours, want 24 hours, each once", rolled, rolledHours)
	}
	// the on-call view lists the three findings
	var views uint64
	var viewClasses string
	if err := c.QueryScalar(ctx, "SELECT count(), arrayStringConcat(arraySort(groupArray(class)), ',') FROM "+db+".oncall_cost_findings", &views, &viewClasses); err != nil ||
		views != 3 || viewClasses != "budget_forecast_over,idle_held,traffic" {
		t.Errorf("oncall_cost_findings: %d rows, classes %q (%v); want 3, budget_forecast_over,idle_held,traffic", views, viewClasses, err)
	}
	var classes []string
	budgetOpen := false
	for _, inc := range a.Incidents() {
		budget := false
		for _, e := range inc.Evidence {
			classes = append(classes, e.Class)
			budget = budget || e.Class == "budget_forecast_over"
		}
		opened := inc.Status.Active() && !inc.OpenedAt.IsZero()
		if budget {
			budgetOpen = opened
		} else if opened {
			t.Errorf("incident %s opened (paged); cost tickets never page", inc.Key)
		}
	}
	if !budgetOpen {
		t.Errorf("the budget forecast over did not open (page) at its first window; incidents %+v", a.Incidents())
	}
	if !strings.Contains(strings.Join(classes, ","), string(cost.CauseTraffic)) {
		t.Errorf("alerting's incidents carry %v, want the traffic anomaly as evidence", classes)
	}
}
