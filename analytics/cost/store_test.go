package cost_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/cost"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/storage/heldrows"
)

// TestStoreHandComputed stores one day of a small fleet and checks what
// the store derives against hand-computed values:
//
//   - GPU-A (H100, cluster c1, $2/h): pod ranker-0 (team search, model
//     ranker, version v1) holds it hours 0–2 at SM 0.5, 0.5, 0.02 with 60,000 of
//     80,000 MiB used (0.75); hour 3 nobody (SM 0, 0 MiB used).
//   - GPU-B MIG instance 1 (3g.40gb, 3/7 of a $2/h GPU): Slurm job train-7,
//     hours 0–1 at SM 0.9, memory half used.
//   - ranker: 10 rows at sample rate 0.5 = 20 requests, latencies 10–100
//     ms (p99 0.1 s); one deploy.
//
// So over hours 0–4: provisioned 4 + 2·3/7 GPU-hours; search holds 3
// GPU-hours for $6, train-7 6/7 GPU-hours for $12/7, unallocated 1
// GPU-hour for $2; ranker's busy GPU-hours are 0.5+0.5+0.02 = 1.02,
// train-7's 2 × 0.9 × 3/7.
func TestStoreHandComputed(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -2)
	h := heldrows.Hours(day, 4)
	var s heldrows.Rows
	a := heldrows.Device{UUID: "GPU-A", Cluster: "c1", GPUModel: "NVIDIA H100 80GB HBM3"}
	b := heldrows.Device{UUID: "GPU-B", Instance: "1", Profile: "3g.40gb", Cluster: "c1", GPUModel: "NVIDIA H100 80GB HBM3"}
	ranker := heldrows.Holder{Namespace: "search", Pod: "ranker-0", Team: "search", Model: "ranker", ModelVersion: "v1"}
	s.GPU(a, ranker, h[:2], 0.5, 60000, 20000)
	s.GPU(a, ranker, h[2:3], 0.02, 60000, 20000)
	s.GPU(a, heldrows.Holder{}, h[3:4], 0, 0, 80000)
	s.GPU(b, heldrows.Holder{Job: "train-7"}, h[:2], 0.9, 20000, 20000)
	s.Requests("ranker", day, 10, 0.5)
	s.Deploy("ranker", "deploy", "v0", "v1", day.Add(time.Hour))
	if err := s.Write(ctx, db); err != nil {
		t.Fatal(err)
	}

	store, err := cost.NewStore(db, cost.NewDefaultStoreConfig())
	if err != nil {
		t.Fatal(err)
	}
	book, err := cost.NewPriceBook(cost.PriceBookConfig{Currency: "USD", Prices: []cost.Price{
		{PriceKey: cost.PriceKey{GPUModel: "NVIDIA H100 80GB HBM3", Cluster: "c1", Purchase: cost.OnDemand}, Effective: day.AddDate(0, -1, 0), PerGPUHour: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := store.Read(ctx, day, day.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("intervals", func(t *testing.T) {
		if len(p.GPUs) != 2 || p.GPUs[0].ID != "GPU-A" || p.GPUs[1].ID != "GPU-B/1" {
			t.Fatalf("GPUs %+v, want GPU-A and GPU-B/1", p.GPUs)
		}
		if g := p.GPUs[0]; !g.From.Equal(h[0]) || !g.To.Equal(h[3].Add(time.Hour)) || g.Fraction != 0 {
			t.Errorf("GPU-A %+v, want hours 0–4, whole", g)
		}
		if g := p.GPUs[1]; !g.To.Equal(h[2]) || !near(g.Fraction, 3.0/7) {
			t.Errorf("GPU-B/1 %+v, want to hour 2, fraction 3/7", g)
		}
		want := []cost.Allocation{
			{GPU: "GPU-A", From: h[0], To: h[3], Tags: cost.Tags{Namespace: "search", Pod: "ranker-0", Team: "search", Model: "ranker", ModelVersion: "v1"}},
			{GPU: "GPU-B/1", From: h[0], To: h[2], Tags: cost.Tags{Job: "train-7"}},
		}
		if len(p.Allocations) != len(want) {
			t.Fatalf("allocations %+v, want %+v", p.Allocations, want)
		}
		for i, w := range want {
			if g := p.Allocations[i]; g.GPU != w.GPU || !g.From.Equal(w.From) || !g.To.Equal(w.To) || g.Tags != w.Tags || g.System {
				t.Errorf("allocation %d = %+v, want %+v", i, g, w)
			}
		}
		wantSM := []float64{0.5, 0.5, 0.02, 0, 0.9, 0.9}
		wantMem := []float64{0.75, 0.75, 0.75, 0, 0.5, 0.5}
		if len(p.Usage) != len(wantSM) {
			t.Fatalf("usage %+v, want %d hours", p.Usage, len(wantSM))
		}
		for i, u := range p.Usage {
			if !near(u.SMActive, wantSM[i]) || !near(u.MemUse, wantMem[i]) {
				t.Errorf("usage %d = %+v, want SM %v mem %v", i, u, wantSM[i], wantMem[i])
			}
		}
		if r := p.Requests()["ranker"]; !near(r, 20) {
			t.Errorf("ranker requests %v, want 20", r)
		}
		if len(p.Changes) != 1 || p.Changes[0].What != "deploy v0 -> v1" {
			t.Errorf("changes %+v, want one deploy v0 -> v1", p.Changes)
		}
	})

	t.Run("attribution", func(t *testing.T) {
		a, err := p.Attribute(book, cost.AttributionConfig{GroupBy: []cost.Dimension{cost.ByTeam}, Shared: cost.SharedSeparately})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			key          string
			hours, total float64
		}{{"search", 3, 6}, {cost.UnlabelledValue, 6.0 / 7, 12.0 / 7}, {cost.SharedKey, 0, 2}} {
			if r := a.Row(c.key); !near(r.GPUHours, c.hours) || !near(r.Total, c.total) {
				t.Errorf("row %s = %+v, want %v GPU-hours, $%v", c.key, r, c.hours, c.total)
			}
		}
		if !near(a.ProvisionedCost, 8+12.0/7) || !near(a.UnallocatedGPUHours, 1) {
			t.Errorf("provisioned $%v, unallocated %v GPU-hours; want $%v and 1", a.ProvisionedCost, a.UnallocatedGPUHours, 8+12.0/7)
		}
	})

	t.Run("daily series", func(t *testing.T) {
		ss, err := cost.DailySeries(book, p)
		if err != nil {
			t.Fatal(err)
		}
		want := map[cost.Scope]cost.Day{
			{Kind: cost.ScopeModel, Name: "ranker"}: {Cost: 6, GPUHours: 3, BusyGPUHours: 1.02, Requests: 20, LatencyP99: 0.1, Change: "deploy v0 -> v1"},
			{Kind: cost.ScopeTeam, Name: "search"}:  {Cost: 6, GPUHours: 3, BusyGPUHours: 1.02, Requests: 20, LatencyP99: 0.1, Change: "deploy v0 -> v1"},
			{Kind: cost.ScopeJob, Name: "train-7"}:  {Cost: 12.0 / 7, GPUHours: 6.0 / 7, BusyGPUHours: 2 * 0.9 * 3 / 7},
		}
		if len(ss) != len(want) {
			t.Fatalf("%d series %+v, want %d", len(ss), ss, len(want))
		}
		for _, s := range ss {
			w, ok := want[s.Scope]
			if !ok || len(s.Days) != 1 {
				t.Errorf("unexpected series %+v", s)
				continue
			}
			d := s.Days[0]
			if !d.Date.Equal(day) || !near(d.Cost, w.Cost) || !near(d.GPUHours, w.GPUHours) || !near(d.BusyGPUHours, w.BusyGPUHours) ||
				!near(d.Requests, w.Requests) || math.Abs(d.LatencyP99-w.LatencyP99) > 1e-6 || d.Change != w.Change || len(d.PriceKeys) != 1 {
				t.Errorf("%s: %+v, want %+v", s.Scope, d, w)
			}
		}
	})

	t.Run("daily series in ClickHouse", func(t *testing.T) {
		inGo, err := cost.DailySeries(book, p)
		if err != nil {
			t.Fatal(err)
		}
		sameSeries(t, store, book, inGo, day, day.AddDate(0, 0, 1))
	})

	t.Run("hourly rollup", func(t *testing.T) {
		req := cost.NewDefaultStoreConfig()
		req.Rollup = cost.RollupRequire
		strict, err := cost.NewStore(db, req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := strict.Totals(ctx, book, day, day.AddDate(0, 0, 1)); !errors.Is(err, cost.ErrRollupMissing) {
			t.Fatalf("totals before the pass: %v, want ErrRollupMissing", err)
		}
		// the raw fallback gives the hand-computed totals too
		raw, err := store.Totals(ctx, book, day, day.AddDate(0, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		n, err := store.RollUp(ctx, day, day.AddDate(0, 0, 1))
		if err != nil || n != 24 {
			t.Fatalf("rolled up %d hours (%v), want 24", n, err)
		}
		if n, err := store.RollUp(ctx, day, day.AddDate(0, 0, 1)); err != nil || n != 0 {
			t.Fatalf("second pass rolled up %d hours (%v), want 0", n, err)
		}
		got, err := strict.Totals(ctx, book, day, day.AddDate(0, 0, 1)) // gpu_held_1d
		if err != nil {
			t.Fatal(err)
		}
		// hours 0–4 only: from gpu_held_1h, the same GPU-hours
		hourly, err := strict.Totals(ctx, book, day, day.Add(4*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		// provisioned 4 + 2·3/7 GPU-hours for $8 + $12/7; held: search 3
		// ($6) + train-7 6/7 ($12/7); 1 unallocated ($2); busy 1.02 +
		// 2·0.9·3/7; hour 2 of GPU-A is idle (SM 0.02); ranker served 20
		// requests for $6: $300 per 1,000.
		for _, tt := range []cost.Totals{raw, got, hourly} {
			for _, c := range []struct {
				what      string
				got, want float64
			}{
				{"provisioned hours", tt.ProvisionedHours, 4 + 6.0/7}, {"provisioned cost", tt.ProvisionedCost, 8 + 12.0/7},
				{"held hours", tt.HeldHours, 3 + 6.0/7}, {"held cost", tt.HeldCost, 6 + 12.0/7},
				{"busy hours", tt.BusyHours, 1.02 + 2*0.9*3/7}, {"idle held hours", tt.IdleHeldHours, 1},
				{"unallocated hours", tt.UnallocatedHours, 1}, {"unallocated cost", tt.UnallocatedCost, 2},
				{"system hours", tt.SystemHours, 0},
			} {
				if !near(c.got, c.want) {
					t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
				}
			}
			want := []cost.VersionCost{
				{Model: "", GPUHours: 6.0 / 7, BusyGPUHours: 2 * 0.9 * 3 / 7, Cost: 12.0 / 7},
				{Model: "ranker", Version: "v1", GPUHours: 3, BusyGPUHours: 1.02, Cost: 6, Requests: 20, Per1000Requests: 300},
			}
			if len(tt.Versions) != len(want) {
				t.Fatalf("versions %+v, want %+v", tt.Versions, want)
			}
			for i, w := range want {
				g := tt.Versions[i]
				if g.Model != w.Model || g.Version != w.Version || !near(g.GPUHours, w.GPUHours) || !near(g.BusyGPUHours, w.BusyGPUHours) ||
					!near(g.Cost, w.Cost) || !near(g.Requests, w.Requests) || !near(g.Per1000Requests, w.Per1000Requests) {
					t.Errorf("version %d = %+v, want %+v", i, g, w)
				}
			}
		}
		inGo, err := cost.DailySeries(book, p)
		if err != nil {
			t.Fatal(err)
		}
		sameSeries(t, strict, book, inGo, day, day.AddDate(0, 0, 1))
		// a period reaching past the rolled-up day is refused, not short
		if _, err := strict.DailySeries(ctx, book, day, day.AddDate(0, 0, 2)); !errors.Is(err, cost.ErrRollupMissing) {
			t.Errorf("series past the rollup: %v, want ErrRollupMissing", err)
		}
	})

	t.Run("owners from the catalog", func(t *testing.T) {
		owned, err := cost.NewStore(db, cost.NewDefaultStoreConfig())
		if err != nil {
			t.Fatal(err)
		}
		owned.Owners = func(model string) (string, string, bool) {
			return "catalog-team", "CC-9", model == "ranker"
		}
		q, err := owned.Read(ctx, day, day.AddDate(0, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		// the pod's own team label wins; the cost centre comes from the catalog
		want := cost.Tags{Namespace: "search", Pod: "ranker-0", Team: "search", Model: "ranker", ModelVersion: "v1", CostCenter: "CC-9"}
		if len(q.Allocations) != 2 || q.Allocations[0].Tags != want || q.Allocations[1].Tags != (cost.Tags{Job: "train-7"}) {
			t.Errorf("allocations %+v, want ranker's with cost centre CC-9 and train-7's unchanged", q.Allocations)
		}
	})

	t.Run("waste", func(t *testing.T) {
		cfg := cost.NewDefaultWasteConfig()
		cfg.IdleHours = 1
		r, err := p.Waste(book, cfg)
		if err != nil {
			t.Fatal(err)
		}
		// GPU-A hour 2: held at SM 0.02 with 75 % memory (idle-held);
		// hour 3: unallocated.
		if g := r.GPUs(cost.IdleHeld); len(g) != 1 || g[0] != "GPU-A" {
			t.Errorf("idle-held %v, want [GPU-A]", g)
		}
		if g := r.GPUs(cost.Unallocated); len(g) != 1 || g[0] != "GPU-A" {
			t.Errorf("unallocated %v, want [GPU-A]", g)
		}
		if !near(r.Spend.Provisioned, 8+12.0/7) || !near(r.Spend.Useful, 2*1.02+2*3.0/7*0.9*2) {
			t.Errorf("spend %+v, want provisioned %v useful %v", r.Spend, 8+12.0/7, 2*1.02+2*3.0/7*0.9*2)
		}
	})
}

// TestDetectorOverStoreClassifies stores 21 days of five models, each
// holding 2 GPUs all day at SM activity 0.6 with 1,000 requests a day,
// and injects one cost fault of each class on the last day; the detector
// over the store raises exactly one anomaly per model, of its class:
//
//   - traffic: 4 GPUs, 2,000 requests;
//   - pricing_change: its cluster's price goes from $2 to $4 at midnight;
//   - efficiency_regression: 4 GPUs at 0.6, requests flat (busy
//     GPU-seconds per request ×2);
//   - configuration: 4 GPUs at 0.3 (busy flat), requests flat, a
//     deployment that day;
//   - resource_leak: 2 more GPUs held at SM 0, requests flat, no change.
func TestDetectorOverStoreClassifies(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	last := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	first := last.AddDate(0, 0, -20)
	type gpus struct {
		n  int
		sm float64
	}
	faults := map[string][]gpus{ // the last day's GPUs per model
		"m-traffic":    {{4, 0.6}},
		"m-price":      {{2, 0.6}},
		"m-efficiency": {{4, 0.6}},
		"m-config":     {{4, 0.3}},
		"m-leak":       {{2, 0.6}, {2, 0}},
	}
	want := map[string]cost.Cause{"m-traffic": cost.CauseTraffic, "m-price": cost.CausePricing, "m-efficiency": cost.CauseEfficiency,
		"m-config": cost.CauseConfiguration, "m-leak": cost.CauseLeak}
	var rows heldrows.Rows
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		for model, fault := range faults {
			cluster := "c1"
			if model == "m-price" {
				cluster = "c2"
			}
			gs, req := []gpus{{2, 0.6}}, 10
			if d.Equal(last) {
				gs = fault
				if model == "m-traffic" {
					req = 20
				}
			}
			i := 0
			for _, g := range gs {
				for range g.n {
					dev := heldrows.Device{UUID: fmt.Sprintf("%s-%d", model, i), Cluster: cluster, GPUModel: "H100"}
					rows.GPU(dev, heldrows.Holder{Namespace: "serving", Pod: fmt.Sprintf("%s-%d", model, i), Model: model}, heldrows.Hours(d, 24), g.sm, 1, 1)
					i++
				}
			}
			rows.Requests(model, d, req, 0.01)
		}
	}
	rows.Deploy("m-config", "scale", "v1", "v1", last.Add(6*time.Hour))
	if err := rows.Write(ctx, db); err != nil {
		t.Fatal(err)
	}
	key := func(cluster string) cost.PriceKey {
		return cost.PriceKey{GPUModel: "H100", Cluster: cluster, Purchase: cost.OnDemand}
	}
	book, err := cost.NewPriceBook(cost.PriceBookConfig{Currency: "USD", Prices: []cost.Price{
		{PriceKey: key("c1"), Effective: first.AddDate(0, -1, 0), PerGPUHour: 2},
		{PriceKey: key("c2"), Effective: first.AddDate(0, -1, 0), PerGPUHour: 2},
		{PriceKey: key("c2"), Effective: last, PerGPUHour: 4},
	}})
	if err != nil {
		t.Fatal(err)
	}
	store, err := cost.NewStore(db, cost.NewDefaultStoreConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := cost.NewDefaultAnomalyConfig()
	src, err := cost.NewStoreSource(store, book, cfg.BaselineDays, nil)
	if err != nil {
		t.Fatal(err)
	}
	det, err := cost.NewDetector(cfg, src, book)
	if err != nil {
		t.Fatal(err)
	}
	w, err := db.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	det.RecordTo(w)
	ds, err := det.Evaluate(ctx, fleet.Window{Start: last, End: last.AddDate(0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range ds {
		if _, dup := got[d.Entity]; dup || d.EntityType != string(cost.ScopeModel) {
			t.Errorf("unexpected detection %s %s: %s", d.Key, d.Class, d.Summary)
		}
		got[d.Entity] = d.Class
	}
	for model, cause := range want {
		if got[model] != string(cause) {
			t.Errorf("%s: class %q, want %q", model, got[model], cause)
		}
	}
	if len(ds) != len(want) {
		t.Errorf("%d detections, want %d", len(ds), len(want))
	}
	p, err := store.Read(ctx, first, last.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	inGo, err := cost.DailySeries(book, p)
	if err != nil {
		t.Fatal(err)
	}
	sameSeries(t, store, book, inGo, first, last.AddDate(0, 0, 1))
	// the same 21 days from the hourly rollup
	if n, err := store.RollUp(ctx, first, last.AddDate(0, 0, 1)); err != nil || n != 21*24 {
		t.Fatalf("rolled up %d hours (%v), want %d", n, err, 21*24)
	}
	req := cost.NewDefaultStoreConfig()
	req.Rollup = cost.RollupRequire
	strict, err := cost.NewStore(db, req)
	if err != nil {
		t.Fatal(err)
	}
	sameSeries(t, strict, book, inGo, first, last.AddDate(0, 0, 1))
	// with every model's team from its owner: a team series from the
	// rollup as from the raw hours
	owners := func(model string) (string, string, bool) { return "owner-of-" + model[2:], "", true }
	raw, err := cost.NewStore(db, cost.NewDefaultStoreConfig())
	if err != nil {
		t.Fatal(err)
	}
	raw.Owners, strict.Owners = owners, owners
	po, err := raw.Read(ctx, first, last.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	owned, err := cost.DailySeries(book, po)
	if err != nil {
		t.Fatal(err)
	}
	if len(owned) != 2*len(inGo) {
		t.Errorf("%d series with owners, want %d (a team per model)", len(owned), 2*len(inGo))
	}
	sameSeries(t, strict, book, owned, first, last.AddDate(0, 0, 1))
	var n uint64
	if err := db.QueryScalar(ctx, "SELECT count() FROM "+db.Config().Database+".cost_daily FINAL WHERE anomaly != ''", &n); err != nil || n != uint64(len(want)) {
		t.Errorf("%d cost_daily rows with an anomaly (%v), want %d", n, err, len(want))
	}
}

// BenchmarkStoreSourceSeries is the cost detector's daily read over the
// store: 200 GPUs (20 models × 10) held all day for 31 days (148,800
// held GPU-hours from 446,400 samples) turned into every model's and
// team's 31-day series, summed per day and scope in ClickHouse
// (StoreSource) or with every held GPU-hour read into Go.
func BenchmarkStoreSourceSeries(b *testing.B) {
	db := chtest.NewDB(b)
	ctx := context.Background()
	last := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	first := last.AddDate(0, 0, -30)
	var rows heldrows.Rows
	for g := range 200 {
		m := fmt.Sprintf("m%02d", g/10)
		rows.GPU(heldrows.Device{UUID: fmt.Sprintf("GPU-%03d", g), Cluster: "c1", GPUModel: "H100"},
			heldrows.Holder{Namespace: "serving", Pod: fmt.Sprintf("%s-%d", m, g%10), Model: m, Team: fmt.Sprintf("t%d", g/50)},
			heldrows.Hours(first, 31*24), 0.5, 1, 1)
	}
	if err := rows.Write(ctx, db); err != nil {
		b.Fatal(err)
	}
	book, err := cost.NewPriceBook(cost.PriceBookConfig{Currency: "USD", Prices: []cost.Price{
		{PriceKey: cost.PriceKey{GPUModel: "H100", Cluster: "c1", Purchase: cost.OnDemand}, Effective: first.AddDate(0, -1, 0), PerGPUHour: 2}}})
	if err != nil {
		b.Fatal(err)
	}
	store, err := cost.NewStore(db, cost.NewDefaultStoreConfig())
	if err != nil {
		b.Fatal(err)
	}
	src, err := cost.NewStoreSource(store, book, 30, nil)
	if err != nil {
		b.Fatal(err)
	}
	check := func(b *testing.B, ss []cost.Series, err error) {
		if err != nil {
			b.Fatal(err)
		}
		if len(ss) != 24 || len(ss[0].Days) != 31 {
			b.Fatalf("%d series of %d days, want 24 of 31", len(ss), len(ss[0].Days))
		}
	}
	// StoreSource: sums per day and scope in ClickHouse
	b.Run("clickhouse", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			ss, err := src.Series(ctx, last)
			check(b, ss, err)
		}
	})
	// the alternative: every held GPU-hour into Go, then DailySeries
	b.Run("go", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			p, err := store.Read(ctx, first, last.AddDate(0, 0, 1))
			if err != nil {
				b.Fatal(err)
			}
			ss, err := cost.DailySeries(book, p)
			check(b, ss, err)
		}
	})
}

// sameSeries checks that Store.DailySeries over [from, to) gives want
// (DailySeries over the period read into Go): the same scopes and days,
// numbers equal to 1e-9, the same price keys.
func sameSeries(t *testing.T, store *cost.Store, book *cost.PriceBook, want []cost.Series, from, to time.Time) {
	t.Helper()
	got, err := store.DailySeries(context.Background(), book, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d series in ClickHouse, %d in Go", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Scope != w.Scope || len(g.Days) != len(w.Days) {
			t.Errorf("series %d: %s with %d days in ClickHouse, %s with %d in Go", i, g.Scope, len(g.Days), w.Scope, len(w.Days))
			continue
		}
		for j, wd := range w.Days {
			gd := g.Days[j]
			slices.SortFunc(gd.PriceKeys, func(a, b cost.PriceKey) int { return strings.Compare(a.String(), b.String()) })
			slices.SortFunc(wd.PriceKeys, func(a, b cost.PriceKey) int { return strings.Compare(a.String(), b.String()) })
			if !gd.Date.Equal(wd.Date) || !near(gd.Cost, wd.Cost) || !near(gd.GPUHours, wd.GPUHours) || !near(gd.BusyGPUHours, wd.BusyGPUHours) ||
				!near(gd.Requests, wd.Requests) || gd.LatencyP99 != wd.LatencyP99 || gd.Change != wd.Change || !slices.Equal(gd.PriceKeys, wd.PriceKeys) {
				t.Errorf("%s day %d: ClickHouse %+v, Go %+v", w.Scope, j, gd, wd)
			}
		}
	}
}

// TestRollUpRepair: a pass that died between its two inserts leaves an
// hour's rows without a record; RollUp refuses it, the runbook's
// statements take the rows out of gpu_held_1h and gpu_held_1d, and the
// hour rolls up again to the same totals as the raw samples (one GPU held
// for 2 hours at $2: $4, not $6).
func TestRollUpRepair(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -2)
	var rows heldrows.Rows
	rows.GPU(heldrows.Device{UUID: "GPU-A", Cluster: "c1", GPUModel: "H100"}, heldrows.Holder{Namespace: "ns", Pod: "p", Model: "m"}, heldrows.Hours(day, 2), 0.5, 1, 1)
	if err := rows.Write(ctx, db); err != nil {
		t.Fatal(err)
	}
	book, err := cost.NewPriceBook(cost.PriceBookConfig{Currency: "USD", Prices: []cost.Price{
		{PriceKey: cost.PriceKey{GPUModel: "H100", Cluster: "c1", Purchase: cost.OnDemand}, Effective: day.AddDate(0, -1, 0), PerGPUHour: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	store := requireStore(t, db)
	d := db.Config().Database
	// hour 1 inserted, its record never written
	if err := db.Exec(ctx, cost.RollUpSQL(d, day.Add(time.Hour), day.Add(2*time.Hour), nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.RollUp(ctx, day, day.AddDate(0, 0, 1)); err == nil || !strings.Contains(err.Error(), "interrupted pass") {
		t.Fatalf("RollUp over an interrupted hour: %v, want a refusal", err)
	}
	hour := fmt.Sprintf("toDateTime(%d)", day.Add(time.Hour).Unix())
	for _, q := range []string{
		`INSERT INTO ` + d + `.gpu_held_1d SELECT toStartOfDay(hour), kind, model_name, cluster, purchase, gpu_profile, namespace, team, model,
    model_version, cost_center, job, toUInt64(-toInt64(gpus)), -gpu_hours, -busy_gpu_hours, -mem_gpu_hours, -idle_gpu_hours
FROM ` + d + `.gpu_held_1h WHERE hour = ` + hour,
		`ALTER TABLE ` + d + `.gpu_held_1h DELETE WHERE hour = ` + hour,
	} {
		if err := db.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var n uint64
		if err := db.QueryScalar(ctx, "SELECT count() FROM "+d+".gpu_held_1h WHERE hour = "+hour, &n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the DELETE mutation did not finish in 30 s")
		}
	}
	if n, err := store.RollUp(ctx, day, day.AddDate(0, 0, 1)); err != nil || n != 24 {
		t.Fatalf("RollUp after the repair: %d hours (%v), want 24", n, err)
	}
	tot, err := store.Totals(ctx, book, day, day.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	if !near(tot.HeldHours, 2) || !near(tot.HeldCost, 4) || !near(tot.BusyHours, 1) || !near(tot.ProvisionedCost, 4) {
		t.Errorf("totals after the repair %+v, want 2 held GPU-hours, $4, 1 busy", tot)
	}
}
