package costsim_test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/fleetwatch/fleetwatch/analytics/cost"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/costsim"
)

// seeds is how many worlds each scoring test runs: 100, or
// $FLEETWATCH_COST_SEEDS.
var seeds = func() int {
	if n, err := strconv.Atoi(os.Getenv("FLEETWATCH_COST_SEEDS")); err == nil && n > 0 {
		return n
	}
	return 100
}()

type score struct {
	injected, detected, classified int
	falseModel, falseTeam          int
	teamFlags, teamAgree           int
	wasteExact                     int
	confusion                      map[cost.Cause]map[cost.Cause]int
	jobs, jobsRight                int // injected on training jobs, found and classified right
}

func (s score) String() string {
	return fmt.Sprintf("injected %d (%d on jobs), detected %d, classified %d (%d of the jobs'), false model or job flags %d, team flags %d (agreeing %d, outside fault days %d), waste lists exact %d",
		s.injected, s.jobs, s.detected, s.classified, s.jobsRight, s.falseModel, s.teamFlags, s.teamAgree, s.falseTeam, s.wasteExact)
}

// run generates a world, builds the series through cost.Attribute, runs the
// detector on models and teams, and the waste lists on the last day.
func run(t *testing.T, cfg costsim.Config, s *score) {
	t.Helper()
	w, err := costsim.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	models, err := w.Series()
	if err != nil {
		t.Fatal(err)
	}
	det := cost.NewDefaultAnomalyConfig()
	type key struct {
		scope string
		day   int
	}
	dayOf := func(a cost.Anomaly) int { return int(a.Date.Sub(cfg.Start).Hours() / 24) }
	truth := map[key]cost.Cause{}
	kind := map[key]cost.ScopeKind{}
	teamOK := map[key]cost.Cause{}
	for _, tr := range w.Truth {
		truth[key{tr.Scope.Name, tr.Day}] = tr.Cause
		kind[key{tr.Scope.Name, tr.Day}] = tr.Scope.Kind
		teamOK[key{w.ModelOf(tr.Scope.Name).Team, tr.Day}] = tr.Cause
	}
	s.injected += len(w.Truth)
	found := map[key]cost.Cause{}
	for _, ser := range models {
		for _, a := range det.Detect(ser, w.Book, nil) {
			k := key{a.Scope.Name, dayOf(a)}
			if _, ok := truth[k]; !ok {
				s.falseModel++
				t.Logf("seed %d: false flag %s day %d: %s (%s) Z %.1f Δ %.0f%%", cfg.Seed, a.Scope, k.day, a.Cause, a.Evidence, a.Z, a.DeltaPct)
				continue
			}
			found[k] = a.Cause
		}
	}
	for k, want := range truth {
		got, ok := found[k]
		if kind[k] == cost.ScopeJob {
			s.jobs++
			if ok && got == want {
				s.jobsRight++
			}
		}
		if s.confusion == nil {
			s.confusion = map[cost.Cause]map[cost.Cause]int{}
		}
		if s.confusion[want] == nil {
			s.confusion[want] = map[cost.Cause]int{}
		}
		if !ok {
			s.confusion[want]["missed"]++
			t.Logf("seed %d: missed %s day %d (%s)", cfg.Seed, k.scope, k.day, want)
			continue
		}
		s.confusion[want][got]++
		s.detected++
		if got == want {
			s.classified++
		} else {
			t.Logf("seed %d: %s day %d: classified %s, injected %s", cfg.Seed, k.scope, k.day, got, want)
		}
	}
	for _, ser := range w.TeamSeries(models) {
		for _, a := range det.Detect(ser, w.Book, nil) {
			k := key{a.Scope.Name, dayOf(a)}
			s.teamFlags++
			want, ok := teamOK[k]
			if !ok {
				s.falseTeam++
				t.Logf("seed %d: team flag outside fault days %s day %d: %s", cfg.Seed, a.Scope, k.day, a.Evidence)
			} else if want == a.Cause {
				s.teamAgree++
			}
		}
	}
	last := w.Days[len(w.Days)-1]
	rep, err := cost.Waste(w.Book, cost.NewDefaultWasteConfig(), cost.WasteInput{GPUs: last.GPUs, Allocations: last.Allocations, Usage: w.Usage, Requests: last.Requests},
		last.Date, last.Date.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	var zombies []string
	for _, z := range rep.Zombies {
		zombies = append(zombies, z.Model)
	}
	exact := true
	for _, c := range []struct {
		name      string
		got, want []string
	}{{"idle", rep.GPUs(cost.Idle), w.WantIdle}, {"idle-held", rep.GPUs(cost.IdleHeld), w.WantIdleHeld},
		{"unallocated", rep.GPUs(cost.Unallocated), w.WantUnall}, {"zombies", zombies, w.WantZombies}} {
		if !slices.Equal(c.got, c.want) {
			exact = false
			t.Errorf("seed %d: %s %v, want %v", cfg.Seed, c.name, c.got, c.want)
		}
	}
	if exact {
		s.wasteExact++
	}
}

// TestScoreInjectedFaults: across many worlds, every injected cost anomaly
// (one of each class per world on models, a configuration change and a
// leak on training jobs, the price change on every model and job of its
// pool) is found on its day and classified correctly, nothing else is
// flagged on models, team flags happen only on fault days, and the waste
// lists are exact.
func TestScoreInjectedFaults(t *testing.T) {
	var s score
	for seed := range uint64(seeds) {
		run(t, costsim.NewDefaultConfig(seed+1), &s)
	}
	t.Logf("%d worlds with faults: %v", seeds, s)
	t.Logf("confusion (injected → found): %v", s.confusion)
	// Recall is held at 99.5 %, not 100: the documents' rule needs |Δ%| >
	// 50 day over day, and a step that lands on a Saturday (the weekend
	// dip) after a noisy-high Friday can come out at 50 % or less. The
	// default 100 seeds find all 959; over 1,000 seeds 1 of 3,900 price
	// changes and 8 of 1,726 leaks were missed that way (docs/BENCHMARKS.md,
	// "Cost"). Everything found is classified right; nothing else is flagged.
	if float64(s.detected) < 0.995*float64(s.injected) || s.classified != s.detected || s.falseModel != 0 || s.falseTeam != 0 || s.wasteExact != seeds {
		t.Errorf("score: %v", s)
	}
	for _, c := range cost.Causes {
		if s.confusion[c][c] == 0 {
			t.Errorf("no %s fault was scored", c)
		}
	}
}

// TestScoreFaultFree: 60 days of a fault-free fleet flag nothing, on any
// model, job or team, and the waste lists are still exact.
func TestScoreFaultFree(t *testing.T) {
	var s score
	for seed := range uint64(seeds) {
		cfg := costsim.NewDefaultConfig(seed + 1)
		cfg.Faults = false
		run(t, cfg, &s)
	}
	t.Logf("%d fault-free worlds: %v", seeds, s)
	if s.falseModel != 0 || s.teamFlags != 0 || s.wasteExact != seeds || s.injected != 0 {
		t.Errorf("score: %v", s)
	}
}
