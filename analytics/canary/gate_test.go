package canary

import (
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet/catalog"
)

// TestGate: the evaluation gate on a new version's first requests. The
// baseline serves 0.5% errors on 100,000 requests; the canary's latency is
// the baseline's, so only the error-rate test and the request count
// decide.
func TestGate(t *testing.T) {
	def := NewDefaultConfig()
	noErr := NewDefaultConfig()
	noErr.ErrorRate.Enabled = false
	for _, tc := range []struct {
		name     string
		cfg      Config
		canary   Counts
		baseline Counts
		want     Outcome
		reason   string
	}{
		// 300 < 500: no decision, however clean.
		{"too few", def, counts(300, 0, 0.1, 20), counts(100000, 0.005, 0.1, 20), Inconclusive, GateTooFew},
		// 600 requests at 0.5%: the always-valid interval on the
		// difference is still wider than the +1 point threshold.
		{"enough requests, not yet significant", def, counts(600, 0.005, 0.1, 20), counts(100000, 0.005, 0.1, 20), Inconclusive, GateNotYetSignif},
		// 1,000 at 0.5%: the interval, ±0.0091, lies below +1 point.
		{"significant", def, counts(1000, 0.005, 0.1, 20), counts(100000, 0.005, 0.1, 20), Pass, GateSignificant},
		// 1,000 at 10% errors fails the error rule, so the gate.
		{"failed", def, counts(1000, 0.10, 0.1, 20), counts(100000, 0.005, 0.1, 20), Fail, GateRuleFailed},
		// 400 requests three times slower fail the p99 rule (≥ 100
		// samples) before the gate's 500.
		{"failed early", def, counts(400, 0.005, 0.1, 60), counts(100000, 0.005, 0.1, 20), Fail, GateRuleFailed},
		{"error rule off", noErr, counts(500, 0.005, 0.1, 20), counts(100000, 0.005, 0.1, 20), Pass, GateNoErrorRule},
		{"no baseline", def, counts(800, 0, 0.1, 20), Counts{Latency: &Histogram{}}, Inconclusive, GateNoBaselineYet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			v := j.Judge(Observation{Elapsed: 2 * time.Minute, Canary: tc.canary, Baseline: tc.baseline})
			if v.Gate.Outcome != tc.want || v.Gate.Reason != tc.reason || v.Gate.Requests != tc.canary.Requests || v.Gate.MinRequests != 500 {
				t.Errorf("gate %+v, want %s (%s)", v.Gate, tc.want, tc.reason)
			}
			// The gate passes before the verdict may: the error rule's
			// 5-minute window has not passed at 2 minutes.
			if tc.want == Pass && v.Outcome == Pass {
				t.Errorf("verdict passed at 2 min: %+v", v)
			}
		})
	}
}

// The catalog's gate_min_requests overrides the 500.
func TestGateOverride(t *testing.T) {
	c, err := ConfigFor("ranking", "recommendation", catalogCanary(2000))
	if err != nil || c.Gate.MinRequests != 2000 {
		t.Fatalf("gate min %d, %v", c.Gate.MinRequests, err)
	}
	c.Gate.MinRequests = 0
	if c.Validate() == nil {
		t.Error("a gate of 0 requests is valid")
	}
}

func catalogCanary(minRequests int) catalog.Canary {
	return catalog.Canary{GateMinRequests: minRequests}
}

// TestDeploymentWithCatalog: a canary carries its model's last-known-good
// version, and its offline evaluation when the catalog describes that
// version.
func TestDeploymentWithCatalog(t *testing.T) {
	cat, err := catalog.Parse([]byte(`
model: {name: ranker, version: v8}
evaluation: {offline_metrics: {ndcg: 0.41}, data_version: d1, code_commit: 4f2a9c1, last_known_good: v6}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dep     Deployment
		lkg     string
		withEva bool
	}{
		{Deployment{Model: "ranker", Version: "v8", BaselineVersion: "v7"}, "v6", true},
		{Deployment{Model: "ranker", Version: "v9", BaselineVersion: "v8"}, "v6", false},
		{Deployment{Model: "other", Version: "v2", BaselineVersion: "v1"}, "", false},
	} {
		got := tc.dep.WithCatalog(cat)
		if got.LastKnownGood != tc.lkg || (got.Evaluation != nil) != tc.withEva || got.Key() != tc.dep.Key() {
			t.Errorf("%s %s: %+v", tc.dep.Model, tc.dep.Version, got)
		}
		if tc.withEva && (got.Evaluation.CodeCommit != "4f2a9c1" || got.Evaluation.OfflineMetrics["ndcg"] != 0.41) {
			t.Errorf("evaluation %+v", got.Evaluation)
		}
	}
	if got := (Deployment{Model: "ranker"}).WithCatalog(nil); got.LastKnownGood != "" {
		t.Errorf("no catalog: %+v", got)
	}
}
