package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCanaryPlanGolden: fleetctl canary plan reproduces design document
// 003's worked example (10,000 samples at 1M requests/h: 1 h at 1%, 12 min
// at 5%) and sizes a CTR test from equation 6 with the judge's sequential
// test beside it.
func TestCanaryPlanGolden(t *testing.T) {
	out := golden(t, "canary_plan_document", "canary", "plan", "--rate", "1000000", "--samples", "10000", "--stages", "1,5")
	if !strings.Contains(out, "1h") || !strings.Contains(out, "12m") {
		t.Errorf("document's stage durations missing:\n%s", out)
	}
	golden(t, "canary_plan_ctr", "canary", "plan", "--rps", "5000", "--baseline-rate", "0.05", "--effect", "0.1", "--relative")
	golden(t, "canary_plan_errors", "canary", "plan", "--rate", "1000000", "--stages", "1,150")
	golden(t, "canary_plan_bad_config", "canary", "plan", "--rate", "1000000", "--alpha", "2")
	golden(t, "canary_plan_no_traffic", "canary", "plan", "--samples", "10")
	golden(t, "canary_no_subcommand", "canary", "status")
}

func TestCanaryPlanJSON(t *testing.T) {
	code, out, errOut := fleetctl(t, "canary", "plan", "--rate", "1000000", "--baseline-rate", "0.05", "--effect", "0.005", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got struct {
		Samples float64
		Stages  []struct {
			Share              float64
			Duration           int64 `json:"duration_ns"`
			SequentialDuration int64 `json:"sequential_duration_ns"`
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if got.Samples != 29826 || len(got.Stages) != 4 || got.Stages[1].Share != 0.05 || !(got.Stages[1].SequentialDuration > got.Stages[1].Duration) {
		t.Errorf("plan %+v", got)
	}
}
