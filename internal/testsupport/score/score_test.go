package score

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/analytics/health"
	"github.com/fleetwatch/fleetwatch/fleet"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// standardSet is the scenario files scored, each run with these seeds.
var (
	standardSet = []string{"gray.yaml", "hard.yaml", "thermal.yaml"}
	seeds       = []uint64{1, 2, 3}
)

func load(t *testing.T, name string, seed uint64) *sim.Scenario {
	t.Helper()
	sc, err := sim.Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if seed != 0 {
		sc.Seed = seed
	}
	return sc
}

// runSet runs every scenario of the standard set with every seed and
// scores them together.
func runSet(t *testing.T, cfg health.Config) Report {
	t.Helper()
	var truths []sim.Truth
	var dets []fleet.Detection
	var end time.Time
	for i, name := range standardSet {
		for j, seed := range seeds {
			sc := load(t, name, seed)
			// Each run gets its own day, so that runs never overlap in time.
			sc.Start = sc.Start.Add(time.Duration(i*len(seeds)+j) * 24 * time.Hour)
			tr, d, err := Run(sc, cfg, quiet)
			if err != nil {
				t.Fatal(err)
			}
			truths, dets = append(truths, tr...), append(dets, d...)
			end = sc.Start.Add(sc.Duration)
		}
	}
	// Lasting faults run to the end of their own run: per-run RunEnd is
	// approximated by scoring runs a day apart, so any later day's end works
	// for matching (a GPU's detections never cross into another run's day).
	return Score(truths, dets, Options{Interval: cfg.Interval, Grace: 2 * cfg.Interval, RunEnd: end})
}

func TestStandardScenarioSet(t *testing.T) {
	cfg := health.NewDefaultConfig()
	rep := runSet(t, cfg)
	t.Logf("standard set, %d runs:\n%s", len(standardSet)*len(seeds), rep.Markdown())
	for _, fa := range rep.FalseAlarms {
		t.Logf("false alarm: %s", fa)
	}
	for _, m := range rep.Missed {
		t.Logf("missed: %s", m)
	}
	if rep.Total.Precision < 0.95 || rep.Total.Recall < 0.95 {
		t.Errorf("precision %.3f, recall %.3f; want both ≥ 0.95", rep.Total.Precision, rep.Total.Recall)
	}
	for _, s := range rep.Types {
		if s.Faults > 0 && (s.Detected == 0 || s.MaxWindows > 3) {
			t.Errorf("%s: %d of %d detected, slowest after %v (%d windows); want every type within 3 windows",
				s.Type, s.Detected, s.Faults, s.MaxDelay, s.MaxWindows)
		}
	}
}

// Two hours of a healthy fleet raise nothing at all.
func TestFaultFreeRunIsSilent(t *testing.T) {
	cfg := health.NewDefaultConfig()
	sc := load(t, "healthy.yaml", 0)
	_, dets, err := Run(sc, cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range dets {
		if i < 10 {
			t.Errorf("fault-free run raised %s at %v: %s", d.Key, d.WindowStart.Format(time.TimeOnly), d.Summary)
		}
	}
	if len(dets) > 0 {
		t.Errorf("%d detections on a fault-free run of %v", len(dets), sc.Duration)
	}
}
