package cost_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/cost"
)

func TestPlatformUtilizationWeighsCapacity(t *testing.T) {
	for _, c := range []struct {
		rs   []cost.Resource
		want float64
	}{
		// An idle eight-GPU node and one busy GPU: 1/9, not the plain mean 0.5.
		{[]cost.Resource{{Utilization: 0, Capacity: 8}, {Utilization: 1, Capacity: 1}}, 1.0 / 9},
		{[]cost.Resource{{Utilization: 0.65, Capacity: 100}}, 0.65},
		{[]cost.Resource{{Utilization: 0.9, Capacity: 2}, {Utilization: 0.3, Capacity: 6}}, (0.9*2 + 0.3*6) / 8},
		{nil, 0},
	} {
		if got := cost.PlatformUtilization(c.rs); !near(got, c.want) {
			t.Errorf("%+v: %v, want %v", c.rs, got, c.want)
		}
	}
}

// The design documents' worked example: 100 GPUs at $2.50 per GPU-hour,
// 65 % busy, cost $6,000 a day of which $3,900 is useful; at 80 %, $4,800.
func TestUsefulSpendDocumentExample(t *testing.T) {
	b := book(t) // H100 on-demand is $2.50 in June
	day := at("2026-06-01T00:00:00Z")
	var gpus []cost.GPU
	for i := range 100 {
		gpus = append(gpus, cost.GPU{ID: fmt.Sprintf("g%03d", i), PriceKey: h100OD})
	}
	for _, c := range []struct{ sm, useful float64 }{{0.65, 3900}, {0.80, 4800}} {
		var usage []cost.Usage
		for _, g := range gpus {
			for h := range 24 {
				usage = append(usage, cost.Usage{GPU: g.ID, Hour: day.Add(time.Duration(h) * time.Hour), SMActive: c.sm})
			}
		}
		s, err := cost.UsefulSpend(b, gpus, usage, day, day.Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if !near(s.Provisioned, 6000) || !near(s.Useful, c.useful) || !near(s.Utilization, c.sm) {
			t.Errorf("at %v: %+v, want 6000 provisioned, %v useful", c.sm, s, c.useful)
		}
	}
}

func TestWasteHandCase(t *testing.T) {
	b := book(t)
	day := at("2026-06-01T00:00:00Z")
	hr := func(h int) time.Time { return day.Add(time.Duration(h) * time.Hour) }
	m1 := cost.Tags{Team: "A", Model: "m1"}
	m2 := cost.Tags{Team: "B", Model: "m2"}
	in := cost.WasteInput{
		Requests: map[string]float64{"m1": 1e6, "m2": 3},
		Allocations: []cost.Allocation{
			{GPU: "w1", From: hr(0), To: hr(24), Tags: m1},
			{GPU: "w2", From: hr(0), To: hr(24), Tags: m1},
			{GPU: "w3", From: hr(0), To: hr(24), Tags: m2},
			{GPU: "w4", From: hr(0), To: hr(12), Tags: m1},
			{GPU: "w5", From: hr(4), To: hr(24), Tags: m1},
			{GPU: "w6", From: hr(0), To: hr(24), System: true, Tags: cost.Tags{Namespace: "kube-system"}},
		},
	}
	// sm gives each GPU's SM activity and memory use at hour h.
	sm := map[string]func(h int) (float64, float64){
		"w1": func(h int) (float64, float64) { // a 3-hour lull: not idle
			if h >= 2 && h < 5 {
				return 0.01, 0.5
			}
			return 0.5, 0.6
		},
		"w2": func(h int) (float64, float64) { // 8 idle hours, nothing loaded
			if h < 8 {
				return 0.01, 0.02
			}
			return 0.6, 0.6
		},
		"w3": func(int) (float64, float64) { return 0, 0.7 }, // model loaded, no compute
		"w4": func(int) (float64, float64) { return 0.7, 0.6 },
		"w5": func(int) (float64, float64) { return 0.7, 0.6 },
		"w6": func(int) (float64, float64) { return 0.02, 0.1 }, // system pod: shared, not waste
	}
	for _, id := range []string{"w1", "w2", "w3", "w4", "w5", "w6"} {
		in.GPUs = append(in.GPUs, cost.GPU{ID: id, PriceKey: h100OD})
		for h := range 24 {
			s, m := sm[id](h)
			if id == "w4" && h >= 12 || id == "w5" && h < 4 {
				s, m = 0, 0
			}
			in.Usage = append(in.Usage, cost.Usage{GPU: id, Hour: hr(h), SMActive: s, MemUse: m})
		}
	}
	rep, err := cost.Waste(b, cost.NewDefaultWasteConfig(), in, day, hr(24))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		kind cost.WasteKind
		want []string
	}{{cost.Idle, []string{"w2"}}, {cost.IdleHeld, []string{"w3"}}, {cost.Unallocated, []string{"w4"}}} {
		if got := rep.GPUs(c.kind); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.kind, got, c.want)
		}
	}
	for _, f := range rep.Findings {
		var want float64
		switch f.GPU {
		case "w2":
			want = 8
		case "w3":
			want = 24
		case "w4":
			want = 12
		}
		if f.Hours() != want || !near(f.Cost, want*2.5) {
			t.Errorf("finding %+v: want %v hours, $%v", f, want, want*2.5)
		}
	}
	if len(rep.Zombies) != 1 || rep.Zombies[0].Model != "m2" || rep.Zombies[0].GPUHours != 24 || !slices.Equal(rep.Zombies[0].GPUs, []string{"w3"}) || !near(rep.Zombies[0].Cost, 60) {
		t.Errorf("zombies %+v", rep.Zombies)
	}
	if !near(rep.Spend.Provisioned, 6*24*2.5) {
		t.Errorf("spend %+v", rep.Spend)
	}
}

func TestWasteConfigValidate(t *testing.T) {
	err := cost.WasteConfig{IdleSM: 2, HeldMem: 0, ZombieRequestsPerGPUHour: -1, ZombieMinGPUHours: -1}.Validate()
	for _, want := range []string{"idle_sm 2", "idle_hours 0", "held_mem 0", "zombie_requests_per_gpu_hour -1", "zombie_min_gpu_hours -1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	if err := cost.NewDefaultWasteConfig().Validate(); err != nil {
		t.Error(err)
	}
}
