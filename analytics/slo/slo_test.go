package slo_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/slo"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

// counts builds Counts from the bad share per window (1000 events each).
func counts(share map[time.Duration]float64) slo.Counts {
	c := slo.Counts{}
	for w, s := range share {
		c[w] = struct{ Total, Bad float64 }{1000, 1000 * s}
	}
	return c
}

func TestAssess(t *testing.T) {
	cfg := slo.NewDefaultConfig()
	h, m := time.Hour, time.Minute
	// Objective 99.9%: budget 0.1%; 14.4× burns 1.44% bad.
	cases := []struct {
		name  string
		share map[time.Duration]float64
		want  int
	}{
		{"fast burn pages", map[time.Duration]float64{5 * m: 0.02, 30 * m: 0.02, h: 0.015, 6 * h: 0.003, 72 * h: 0.0005}, 0},
		{"fast burn already over: short window clear", map[time.Duration]float64{5 * m: 0.0001, 30 * m: 0.01, h: 0.015, 6 * h: 0.003, 72 * h: 0.0005}, -1},
		{"slow burn pages", map[time.Duration]float64{5 * m: 0.007, 30 * m: 0.007, h: 0.007, 6 * h: 0.0065, 72 * h: 0.001}, 1},
		{"budget burning at 1× opens a ticket", map[time.Duration]float64{5 * m: 0.001, 30 * m: 0.0012, h: 0.0012, 6 * h: 0.0011, 72 * h: 0.00105}, 2},
		{"healthy", map[time.Duration]float64{5 * m: 0.0002, 30 * m: 0.0002, h: 0.0002, 6 * h: 0.0002, 72 * h: 0.0002}, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := cfg.Assess(0.999, counts(tc.share)).Rule; got != tc.want {
				t.Errorf("rule %d, want %d", got, tc.want)
			}
		})
	}
}

func TestDetectorOnInferenceEvents(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	cat, err := catalog.Parse([]byte(`models:
  - model: {name: ranker, domain: recsys}
    slos: [{name: latency, objective: 0.99, latency_ms: 50}, {name: availability, objective: 0.999}]
  - model: {name: fraud, domain: risk}
    slos: [{name: availability, objective: 0.999}]
`))
	if err != nil {
		t.Fatal(err)
	}
	end := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	var b storage.InferenceEventBlock
	// Two hours of traffic, one event every 10 s per model; in the last
	// hour ranker is slow on every fourth request, fraud is healthy.
	for ts := end.Add(-2 * time.Hour); ts.Before(end); ts = ts.Add(10 * time.Second) {
		i := int(ts.Sub(end.Add(-2*time.Hour)) / (10 * time.Second))
		lat := 20.0
		if ts.After(end.Add(-time.Hour)) && i%4 == 0 {
			lat = 300
		}
		b.Append(&fleet.InferenceEvent{Time: ts, Model: "ranker", ModelVersion: "v1", LatencyMs: lat, Status: "ok"})
		b.Append(&fleet.InferenceEvent{Time: ts, Model: "fraud", ModelVersion: "v1", LatencyMs: 5, Status: "ok"})
	}
	w, err := db.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, b.Block()); err != nil {
		t.Fatal(err)
	}
	d, err := slo.NewDetector(slo.NewDefaultConfig(), db, cat)
	if err != nil {
		t.Fatal(err)
	}
	dets, err := d.Evaluate(ctx, fleet.Window{Start: end.Add(-time.Minute), End: end})
	if err != nil {
		t.Fatal(err)
	}
	if len(dets) != 1 || dets[0].Key != "slo/ranker/latency" || dets[0].Severity != "critical" || dets[0].Class != "latency" {
		t.Fatalf("detections %+v: want one critical latency page for ranker", dets)
	}
	// 25% slow against a 1% budget: 25× over 1 h and 5 min.
	if dets[0].Value < 20 || dets[0].Value > 30 {
		t.Errorf("short-window burn rate %v, want about 25", dets[0].Value)
	}
}
