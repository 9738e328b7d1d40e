package scaling

import (
	"math"
	"testing"
	"time"
)

// Every case is computed by hand in its comment.
func TestRecommend(t *testing.T) {
	base := Policy{PerReplicaConcurrency: 4, Step: 1, MinReplicas: 1, MaxReplicas: 100}
	with := func(f func(*Policy)) Policy { p := base; f(&p); return p }
	for _, tc := range []struct {
		name     string
		s        Signals
		p        Policy
		rate, l  float64
		replicas int
		clamp    Clamp
	}{
		// 200 req/s × 0.05 s = 10 in flight; 10 / 4 = 2.5 → 3.
		{"little", Signals{RequestRate: 200, MeanLatency: 0.05}, base, 200, 10, 3, ClampNone},
		// 240 × 0.05 = 12; 12 / 4 = 3 exactly → 3, not 4.
		{"exact multiple", Signals{RequestRate: 240, MeanLatency: 0.05}, base, 240, 12, 3, ClampNone},
		// 10 in flight needs 2.5; in steps of 2 → 4; of 4 → 4.
		{"step 2", Signals{RequestRate: 200, MeanLatency: 0.05}, with(func(p *Policy) { p.Step = 2 }), 200, 10, 4, ClampNone},
		{"step 4", Signals{RequestRate: 200, MeanLatency: 0.05}, with(func(p *Policy) { p.Step = 4 }), 200, 10, 4, ClampNone},
		// 1000 × 0.05 = 50; 12.5 → steps of 4 → 16.
		{"step 4 large", Signals{RequestRate: 1000, MeanLatency: 0.05}, with(func(p *Policy) { p.Step = 4 }), 1000, 50, 16, ClampNone},
		// 10 × 0.05 = 0.5 → 1 replica, raised to min 3.
		{"clamp min", Signals{RequestRate: 10, MeanLatency: 0.05}, with(func(p *Policy) { p.MinReplicas = 3 }), 10, 0.5, 3, ClampMin},
		// 10000 × 0.1 = 1000; 250 replicas, max 100.
		{"clamp max", Signals{RequestRate: 10000, MeanLatency: 0.1}, base, 10000, 1000, 100, ClampMax},
		// Step rounding happens before the clamp: 2.5 → 4 in steps of 4, max 3.
		{"step then max", Signals{RequestRate: 200, MeanLatency: 0.05}, with(func(p *Policy) { p.Step, p.MaxReplicas = 4, 3 }), 200, 10, 3, ClampMax},
		// No traffic: 0 needed, min 0 means 1.
		{"idle", Signals{}, with(func(p *Policy) { p.MinReplicas = 0 }), 0, 0, 1, ClampMin},
		// Rising 0.5 req/s per second, load time 2 min: 200 + 0.5 × 120 =
		// 260 req/s; × 0.05 = 13; 13 / 4 = 3.25 → 4 (3 without the forecast).
		{"ahead of load time", Signals{RequestRate: 200, RateSlope: 0.5, MeanLatency: 0.05},
			with(func(p *Policy) { p.LoadTime = 2 * time.Minute }), 260, 13, 4, ClampNone},
		// Falling traffic does not scale down ahead: 200 × 0.05 = 10 → 3.
		{"falling", Signals{RequestRate: 200, RateSlope: -1, MeanLatency: 0.05},
			with(func(p *Policy) { p.LoadTime = 2 * time.Minute }), 200, 10, 3, ClampNone},
		// Without a load time the slope is ignored.
		{"no load time", Signals{RequestRate: 200, RateSlope: 0.5, MeanLatency: 0.05}, base, 200, 10, 3, ClampNone},
		// No upper bound: 1000 / 4 = 250.
		{"unbounded", Signals{RequestRate: 10000, MeanLatency: 0.1}, with(func(p *Policy) { p.MaxReplicas = 0 }), 10000, 1000, 250, ClampNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Recommend(tc.s, tc.p)
			if math.Abs(r.ForecastRate-tc.rate) > 1e-9 || math.Abs(r.Concurrency-tc.l) > 1e-9 || r.Replicas != tc.replicas || r.Clamped != tc.clamp {
				t.Errorf("Recommend = %+v, want rate %v, L %v, %d replicas, clamp %q", r, tc.rate, tc.l, tc.replicas, tc.clamp)
			}
		})
	}
}
