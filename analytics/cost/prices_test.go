package cost_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/cost"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

var (
	h100OD = cost.PriceKey{GPUModel: "H100", Cluster: "us-east", Purchase: cost.OnDemand}
	h100RI = cost.PriceKey{GPUModel: "H100", Cluster: "us-east", Purchase: cost.Reserved}
	a100SP = cost.PriceKey{GPUModel: "A100", Cluster: "us-east", Purchase: cost.Spot}
)

func book(t *testing.T) *cost.PriceBook {
	t.Helper()
	b, err := cost.LoadPriceBook("testdata/prices.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestPriceBookAt(t *testing.T) {
	b := book(t)
	for _, c := range []struct {
		k    cost.PriceKey
		t    string
		want float64
		err  error
	}{
		{h100OD, "2026-06-01T00:00:00Z", 2.5, nil},
		{h100OD, "2026-11-01T11:59:59Z", 2.5, nil},
		{h100OD, "2026-11-01T12:00:00Z", 3, nil}, // effective is inclusive
		{h100OD, "2027-03-01T00:00:00Z", 3, nil},
		{h100RI, "2026-11-01T13:00:00Z", 1.6, nil},
		{h100OD, "2025-12-31T23:59:59Z", 0, cost.ErrNoPrice}, // before the first entry
		{cost.PriceKey{GPUModel: "H100", Cluster: "eu-west", Purchase: cost.Spot}, "2026-06-01T00:00:00Z", 0, cost.ErrNoPrice},
	} {
		got, err := b.At(c.k, at(c.t))
		if !errors.Is(err, c.err) || got != c.want {
			t.Errorf("At(%s, %s) = %v, %v; want %v, %v", c.k, c.t, got, err, c.want, c.err)
		}
	}
}

func TestPriceBookCostAcrossChange(t *testing.T) {
	b := book(t)
	// 06:00–18:00 on the day the price moves at noon: 6 h × 2.50 + 6 h × 3.00.
	got, err := b.Cost(h100OD, at("2026-11-01T06:00:00Z"), at("2026-11-01T18:00:00Z"))
	if err != nil || !near(got, 33) {
		t.Fatalf("cost %v %v, want 33", got, err)
	}
	if got, _ := b.Cost(h100OD, at("2026-11-02T00:00:00Z"), at("2026-11-01T00:00:00Z")); got != 0 {
		t.Errorf("reversed interval cost %v", got)
	}
}

func TestPriceBookChanges(t *testing.T) {
	b := book(t)
	ch := b.Changes(at("2026-11-01T00:00:00Z"), at("2026-11-02T00:00:00Z"))
	if len(ch) != 1 || ch[0].PriceKey != h100OD || ch[0].Old != 2.5 || ch[0].New != 3 || !ch[0].At.Equal(at("2026-11-01T12:00:00Z")) || ch[0].Ratio() != 1.2 {
		t.Fatalf("changes %+v", ch)
	}
	if ch := b.Changes(at("2026-01-01T00:00:00Z"), at("2026-11-01T12:00:00Z")); len(ch) != 0 {
		t.Errorf("first entries or changes at the end are not changes in the period: %+v", ch)
	}
}

func TestPriceBookValidate(t *testing.T) {
	_, err := cost.LoadPriceBook("testdata/prices.bad.yaml")
	if err == nil {
		t.Fatal("bad book accepted")
	}
	for _, want := range []string{
		"currency is empty",
		"prices[0] (/us-east/on_demand): gpu_model is empty",
		"prices[1] (H100//preemptible): cluster is empty",
		`purchase "preemptible" is not on_demand, reserved or spot`,
		"prices[1] (H100//preemptible): effective date is missing",
		"per_gpu_hour -1 is not a price",
		"prices[3] (A100/us-east/spot): same key and effective date as prices[2]",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := cost.ReadPriceBook(strings.NewReader("currency: USD\nprice: []\n")); err == nil || !strings.Contains(err.Error(), "field price not found") {
		t.Errorf("unknown field: %v", err)
	}
}
