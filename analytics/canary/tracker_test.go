package canary

import (
	"testing"
	"time"
)

// TestAlphaShares: the restarts' shares of α sum to at most 1 however many
// there are, so the family's false-fail rate stays at most α.
func TestAlphaShares(t *testing.T) {
	sum := 0.0
	for k := range 1000000 {
		sum += alphaShare(k)
	}
	if sum > 1 || sum < 0.9999 {
		t.Errorf("shares sum to %v, want just under 1", sum)
	}
	if alphaShare(0) < 0.6 {
		t.Errorf("the test since the start gets %v of α", alphaShare(0))
	}
}

// TestTrackerFailsALateRegressionSooner: errors jump from 0.5% to 3% twelve
// minutes into a canary at 14 canary requests/s (noise-free counts); the
// Tracker fails it from a restart, sooner than the judge alone, and its
// evidence says from when the counts were tested.
func TestTrackerFailsALateRegressionSooner(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.Engagement.Enabled, cfg.LatencyP99.Enabled = false, false
	j, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewDefaultTracker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const start = 12 * time.Minute
	at := func(d time.Duration) Observation {
		c, b := 14*d.Seconds(), 264*d.Seconds()
		bad := max(0, d-start).Seconds() * 14
		return Observation{Elapsed: d,
			Canary:   Counts{Requests: uint64(c), Errors: uint64(0.005*(c-bad) + 0.03*bad)},
			Baseline: Counts{Requests: uint64(b), Errors: uint64(0.005 * b)}}
	}
	var plainAt, trackerAt time.Duration
	var tv, jv Verdict
	for d := 10 * time.Second; d <= time.Hour && (plainAt == 0 || trackerAt == 0); d += 10 * time.Second {
		o := at(d)
		tr.Evaluate(&o, &tv)
		if tv.Outcome == Fail && trackerAt == 0 {
			trackerAt = d
			if e := tv.Evidence[0]; e.Since <= 0 || e.Since > start || e.Outcome != Fail {
				t.Errorf("evidence %v: want a failed rule on counts from a restart before %v", e, start)
			}
		}
		j.Evaluate(&o, &jv)
		if jv.Outcome == Fail && plainAt == 0 {
			plainAt = d
		}
		if d <= start && tv.Outcome == Fail {
			t.Fatalf("failed at %v, before the regression", d)
		}
	}
	t.Logf("regression at %v: Tracker failed it at %v, the judge alone at %v", start, trackerAt, plainAt)
	if trackerAt == 0 || plainAt == 0 || trackerAt >= plainAt {
		t.Errorf("Tracker failed at %v, the judge alone at %v: want the Tracker first", trackerAt, plainAt)
	}
}

func TestTrackerConfig(t *testing.T) {
	if _, err := NewTracker(NewDefaultConfig(), 0, 1); err == nil {
		t.Error("epoch 0 accepted")
	}
	bad := NewDefaultConfig()
	bad.Alpha = 2
	if _, err := NewDefaultTracker(bad); err == nil {
		t.Error("alpha 2 accepted")
	}
}
