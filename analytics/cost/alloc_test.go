package cost_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/cost"
)

// handCase is a day computed by hand. The H100 on-demand price moves from
// $2.50 to $3.00 at noon; A100 spot is $1.00.
//
//	g1 H100  00–24 team A / m1                       12×2.5+12×3 = 66, 24 h
//	g2 H100  00–12 team B / m2                       12×2.5      = 30, 12 h
//	         12–18 time-sliced: A/m1 and B/m3         6×3 = 18 → 9 and 9, 3 h each
//	         18–24 nobody                             6×3         = 18 unallocated
//	g3 A100  00–24 a system pod                      24×1        = 24 system
//	g4 A100  provisioned from 06; 06–18 team B / m2  12×1        = 12, 12 h
//	         18–24 nobody                             6×1         =  6 unallocated
//
// Provisioned: 90 GPU-hours, $174. Team A: 27 h, $75 direct; team B: 27 h,
// $51 direct; shared: $18 + $6 unallocated + $24 system = $48.
func handCase() cost.AttributeInput {
	d := func(h string) string { return "2026-11-01T" + h + ":00:00Z" }
	A := cost.Tags{Team: "A", Model: "m1", Namespace: "rec", CostCenter: "CC-1"}
	B2 := cost.Tags{Team: "B", Model: "m2", Namespace: "fraud", CostCenter: "CC-2"}
	B3 := cost.Tags{Team: "B", Model: "m3", Namespace: "fraud", CostCenter: "CC-2"}
	return cost.AttributeInput{
		GPUs: []cost.GPU{
			{ID: "g1", PriceKey: h100OD},
			{ID: "g2", PriceKey: h100OD},
			{ID: "g3", PriceKey: a100SP},
			{ID: "g4", PriceKey: a100SP, From: at(d("06"))},
		},
		Allocations: []cost.Allocation{
			{GPU: "g1", From: at("2026-10-31T20:00:00Z"), To: at("2026-11-02T04:00:00Z"), Tags: A}, // clipped to the day
			{GPU: "g2", From: at(d("00")), To: at(d("12")), Tags: B2},
			{GPU: "g2", From: at(d("12")), To: at(d("18")), Tags: A},
			{GPU: "g2", From: at(d("12")), To: at(d("18")), Tags: B3},
			{GPU: "g3", From: at(d("00")), To: at("2026-11-02T00:00:00Z"), Tags: cost.Tags{Namespace: "kube-system", Pod: "dcgm"}, System: true},
			{GPU: "g4", From: at(d("06")), To: at(d("18")), Tags: B2},
		},
		Volume: map[string]float64{"A": 300, "B": 100},
	}
}

func TestAttributeHandComputed(t *testing.T) {
	b := book(t)
	from, to := at("2026-11-01T00:00:00Z"), at("2026-11-02T00:00:00Z")
	type want struct {
		key                          string
		hours, direct, shared, total float64
	}
	for _, c := range []struct {
		name string
		cfg  cost.AttributionConfig
		rows []want
	}{
		{"team by gpu-hours", cost.AttributionConfig{GroupBy: []cost.Dimension{cost.ByTeam}, Shared: cost.SharedByGPUHours},
			[]want{{"A", 27, 75, 24, 99}, {"B", 27, 51, 24, 75}}},
		{"team by query volume", cost.AttributionConfig{GroupBy: []cost.Dimension{cost.ByTeam}, Shared: cost.SharedByQueryVolume},
			[]want{{"A", 27, 75, 36, 111}, {"B", 27, 51, 12, 63}}},
		{"model equally", cost.AttributionConfig{GroupBy: []cost.Dimension{cost.ByModel}, Shared: cost.SharedEqually},
			[]want{{"m1", 27, 75, 16, 91}, {"m2", 24, 42, 16, 58}, {"m3", 3, 9, 16, 25}}},
		{"model by gpu-hours", cost.AttributionConfig{GroupBy: []cost.Dimension{cost.ByModel}, Shared: cost.SharedByGPUHours},
			[]want{{"m1", 27, 75, 24, 99}, {"m2", 24, 42, 48.0 * 24 / 54, 42 + 48.0*24/54}, {"m3", 3, 9, 48.0 * 3 / 54, 9 + 48.0*3/54}}},
		{"cost centre and namespace, shared separately", cost.AttributionConfig{GroupBy: []cost.Dimension{cost.ByCostCenter, cost.ByNamespace}, Shared: cost.SharedSeparately},
			[]want{{"(shared)", 0, 0, 48, 48}, {"CC-1/rec", 27, 75, 0, 75}, {"CC-2/fraud", 27, 51, 0, 51}}},
		{"job: no job labels", cost.AttributionConfig{GroupBy: []cost.Dimension{cost.ByJob}, Shared: cost.SharedByGPUHours},
			[]want{{"(none)", 54, 126, 48, 174}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := cost.Attribute(b, c.cfg, handCase(), from, to)
			if err != nil {
				t.Fatal(err)
			}
			if !near(a.ProvisionedGPUHours, 90) || !near(a.ProvisionedCost, 174) || !near(a.UnallocatedGPUHours, 12) ||
				!near(a.UnallocatedCost, 24) || !near(a.SystemGPUHours, 24) || !near(a.SystemCost, 24) {
				t.Errorf("totals %+v", a)
			}
			if len(a.Rows) != len(c.rows) {
				t.Fatalf("rows %+v", a.Rows)
			}
			var sum float64
			for i, w := range c.rows {
				r := a.Rows[i]
				sum += r.Total
				if r.Key != w.key || !near(r.GPUHours, w.hours) || !near(r.Direct, w.direct) || !near(r.Shared, w.shared) || !near(r.Total, w.total) {
					t.Errorf("row %d = %+v, want %+v", i, r, w)
				}
			}
			if !near(sum, a.ProvisionedCost) {
				t.Errorf("rows add up to %v, provisioned %v", sum, a.ProvisionedCost)
			}
		})
	}
}

func TestAttributeErrors(t *testing.T) {
	b := book(t)
	from, to := at("2026-11-01T00:00:00Z"), at("2026-11-02T00:00:00Z")
	in := handCase()
	in.Allocations = append(in.Allocations, cost.Allocation{GPU: "g9", From: from, To: to})
	for _, c := range []struct {
		name string
		cfg  cost.AttributionConfig
		in   cost.AttributeInput
		want string
	}{
		{"unknown GPU", cost.NewDefaultAttributionConfig(), in, `unknown GPU "g9"`},
		{"bad config", cost.AttributionConfig{GroupBy: []cost.Dimension{"squad"}, Shared: "fair"}, handCase(), `group_by "squad" is not one of`},
		{"reversed allocation", cost.NewDefaultAttributionConfig(), cost.AttributeInput{GPUs: []cost.GPU{{ID: "g1", PriceKey: h100OD}},
			Allocations: []cost.Allocation{{GPU: "g1", From: to, To: from}}}, "not after it starts"},
		{"unpriced GPU", cost.NewDefaultAttributionConfig(), cost.AttributeInput{GPUs: []cost.GPU{{ID: "x", PriceKey: cost.PriceKey{GPUModel: "B200", Cluster: "us-east", Purchase: cost.Spot}}}}, "no price"},
	} {
		if _, err := cost.Attribute(b, c.cfg, c.in, from, to); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestAttributeMIGAndUnitCost(t *testing.T) {
	b := book(t) // H100 on-demand $2.50 in June
	day := at("2026-06-01T00:00:00Z")
	end := day.Add(24 * time.Hour)
	in := cost.AttributeInput{
		GPUs: []cost.GPU{
			{ID: "mig-a", PriceKey: h100OD, Fraction: 0.25}, // a quarter of an H100: 24 h × $2.50 × 0.25 = $15, 6 GPU-hours
			{ID: "mig-b", PriceKey: h100OD, Fraction: 0.25}, // unallocated: $15 shared
			{ID: "full", PriceKey: h100OD},                  // v2 all day: $60, 24 GPU-hours
		},
		Allocations: []cost.Allocation{
			{GPU: "mig-a", From: day, To: end, Tags: cost.Tags{Team: "A", Model: "m1", ModelVersion: "v1"}},
			{GPU: "full", From: day, To: end, Tags: cost.Tags{Team: "A", Model: "m1", ModelVersion: "v2"}},
		},
	}
	cfg := cost.AttributionConfig{GroupBy: []cost.Dimension{cost.ByModel, cost.ByVersion}, Shared: cost.SharedByGPUHours}
	a, err := cost.Attribute(b, cfg, in, day, end)
	if err != nil {
		t.Fatal(err)
	}
	if !near(a.ProvisionedGPUHours, 36) || !near(a.ProvisionedCost, 90) || !near(a.UnallocatedCost, 15) {
		t.Errorf("totals %+v", a)
	}
	// shared $15 by GPU-hours 6 : 24 → $3 and $12
	if r := a.Row("m1/v1"); !near(r.GPUHours, 6) || !near(r.Total, 18) {
		t.Errorf("v1 %+v", r)
	}
	if r := a.Row("m1/v2"); !near(r.GPUHours, 24) || !near(r.Total, 72) {
		t.Errorf("v2 %+v", r)
	}
	u := cost.UnitCosts(a, map[string]float64{"m1/v1": 36000, "m1/v2": 720000})
	if len(u) != 2 || !near(u[0].PerRequest, 0.0005) || !near(u[0].Per1000Requests, 0.5) || !near(u[1].Per1000Requests, 0.1) {
		t.Errorf("unit costs %+v", u)
	}
	if u := cost.UnitCosts(a, nil); u[0].PerRequest != 0 || u[0].Cost != 18 {
		t.Errorf("no traffic: %+v", u)
	}
	in.GPUs[0].Fraction = 1.5
	if _, err := cost.Attribute(b, cfg, in, day, end); err == nil || !strings.Contains(err.Error(), "fraction 1.5") {
		t.Errorf("fraction 1.5: %v", err)
	}
}

// BenchmarkAttributeDay100kGPUs attributes one day of a 100,000-GPU fleet
// (each GPU held by one pod for 20 hours, idle 4) by team and model.
func BenchmarkAttributeDay100kGPUs(b *testing.B) {
	bk, err := cost.LoadPriceBook("testdata/prices.good.yaml")
	if err != nil {
		b.Fatal(err)
	}
	day := at("2026-06-01T00:00:00Z")
	var in cost.AttributeInput
	for i := range 100_000 {
		id := fmt.Sprintf("gpu-%06d", i)
		in.GPUs = append(in.GPUs, cost.GPU{ID: id, PriceKey: h100OD})
		in.Allocations = append(in.Allocations, cost.Allocation{GPU: id, From: day, To: day.Add(20 * time.Hour),
			Tags: cost.Tags{Team: fmt.Sprintf("team%02d", i%50), Model: fmt.Sprintf("model%03d", i%1000)}})
	}
	cfg := cost.AttributionConfig{GroupBy: []cost.Dimension{cost.ByTeam, cost.ByModel}, Shared: cost.SharedByGPUHours}
	var a cost.Attribution
	b.ReportAllocs()
	for b.Loop() {
		if a, err = cost.Attribute(bk, cfg, in, day, day.Add(24*time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	if len(a.Rows) != 1000 || !near(a.ProvisionedCost, 100_000*24*2.5) {
		b.Fatalf("%d rows, $%v", len(a.Rows), a.ProvisionedCost)
	}
}
