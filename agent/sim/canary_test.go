package sim_test

import (
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
)

// A canary splits the model's requests by its share and serves with its
// own latency and errors; a rollout controller's promotion moves all
// traffic to it and its rollback back to the baseline, each recorded as a
// deployment change.
func TestCanaryIsPromotedOrRolledBack(t *testing.T) {
	sc, r := newRunner(t, `
name: canaries
seed: 3
start: 2026-12-06T10:00:00Z
interval: 1s
fleet: {racks_per_row: 1, nodes_per_rack: 1, gpus_per_node: 1}
models:
  - {name: good, version: v1, rps: 200, latency_ms: 20}
  - {name: bad, version: v1, rps: 200, latency_ms: 20}
deployments:
  - {model: bad, version: v2, change: canary, share: 0.5, at: 2s, latency_ms: 60, error_rate: 0.2}
  - {model: good, version: v2, change: canary, share: 0.25, at: 1s}
`, quiet)
	type tally struct{ n, errs int }
	per := map[string]*tally{}
	var changes []string
	step := func(from, to int) {
		for s := from; s < to; s++ {
			for _, b := range r.Step(sc.Start.Add(time.Duration(s) * time.Second)) {
				for _, d := range b.Deployments {
					changes = append(changes, d.Model+" "+d.Change+" "+d.PreviousVersion+"→"+d.ModelVersion)
				}
				for _, in := range b.Inferences {
					k := in.Model + " " + in.ModelVersion
					if per[k] == nil {
						per[k] = &tally{}
					}
					per[k].n++
					if in.Status == "error" {
						per[k].errs++
					}
				}
			}
		}
	}
	step(1, 12)
	total := per["good v1"].n + per["good v2"].n
	if share := float64(per["good v2"].n) / float64(total); share < 0.2 || share > 0.3 {
		t.Errorf("good v2 served %.2f of good's requests, want ~0.25", share)
	}
	if rate := float64(per["bad v2"].errs) / float64(per["bad v2"].n); rate < 0.15 || per["bad v1"].errs != 0 {
		t.Errorf("bad v2 error rate %.2f (want ~0.2), v1 errors %d (want 0)", rate, per["bad v1"].errs)
	}
	r.Serving.Promote("good", "v2")
	r.Serving.Rollback("bad", "v2")
	r.Serving.Rollback("bad", "v9") // not running: ignored
	per = map[string]*tally{}
	step(12, 15)
	if per["good v1"] != nil || per["bad v2"] != nil || per["good v2"].n == 0 || per["bad v1"].n == 0 {
		t.Errorf("after the decisions: %v", per)
	}
	want := "good canary v1→v2,bad canary v1→v2,good promote v1→v2,bad rollback v2→v1"
	if got := strings.Join(changes, ","); got != want {
		t.Errorf("deployment changes %s, want %s", got, want)
	}
}

func TestCanaryValidation(t *testing.T) {
	_, err := sim.Parse([]byte(`
fleet: {racks_per_row: 1, nodes_per_rack: 1, gpus_per_node: 1}
models: [{name: m}]
deployments:
  - {model: m, version: v2, change: canary, share: 1.5}
  - {model: m, version: v3, change: blue-green}
`))
	for _, want := range []string{"share 1.5 must be in (0, 1)", `change "blue-green", want deploy or canary`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
