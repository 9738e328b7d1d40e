package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// The hand-computed day of analytics/cost's TestAttributeHandComputed
// (testdata/cost): 4 GPUs, a price change at noon, a time-sliced GPU, a
// system pod and unallocated hours; $174 provisioned.
func costArgs(extra ...string) []string {
	return append([]string{"cost", "--prices", "testdata/cost/prices.yaml", "--gpus", "testdata/cost/gpus.csv",
		"--allocations", "testdata/cost/allocations.csv", "--from", "2026-11-01", "--to", "2026-11-02T00:00:00Z"}, extra...)
}

func TestCostHandComputed(t *testing.T) {
	for _, c := range []struct {
		name  string
		extra []string
		want  []string
	}{
		{"table by team", nil, []string{"A      27.00   75.00   24.00   99.00", "B      27.00   51.00   24.00   75.00", "total      54.00  126.00   48.00  174.00",
			"provisioned 90.00 GPU-hours, 174.00; unallocated 12.00 GPU-hours, 24.00; system pods 24.00 GPU-hours, 24.00"}},
		{"csv by team, query volume", []string{"--format", "csv", "--shared", "query_volume", "--volume", "testdata/cost/volume.csv"},
			[]string{"team,gpu_hours,direct,shared,total\nA,27,75,36,111\nB,27,51,12,63\n"}},
		{"csv by cost centre and model, separate", []string{"--format", "csv", "--by", "cost_center,model", "--shared", "separate"},
			[]string{"cost_center/model,gpu_hours,direct,shared,total\n(shared),0,0,48,48\nCC-1/m1,27,75,0,75\nCC-2/m2,24,42,0,42\nCC-2/m3,3,9,0,9\n"}},
	} {
		code, out, errOut := fleetctl(t, costArgs(c.extra...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.name, code, errOut)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", c.name, w, out)
			}
		}
	}
	code, out, errOut := fleetctl(t, costArgs("--format", "json", "--by", "model", "--shared", "equal")...)
	if code != 0 {
		t.Fatalf("json: exit %d: %s", code, errOut)
	}
	var rep costReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, r := range rep.Rows {
		total += r.Total
	}
	if len(rep.Rows) != 3 || rep.Rows[2].Key != "m3" || rep.Rows[2].Total != 25 || total != 174 || rep.ProvisionedCost != 174 || rep.Currency != "USD" {
		t.Errorf("json %+v", rep)
	}
}

func TestCostUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"cost"}, 2, "--prices is required"},
		{costArgs("--by", "squad"), 2, `group_by "squad" is not one of`},
		{costArgs("--shared", "query_volume"), 2, "--shared query_volume needs --volume"},
		{costArgs("--to", "2026-10-01"), 2, "is not after --from"},
		{costArgs("--format", "xml"), 2, `--format "xml"`},
		{costArgs("--from", "yesterday"), 2, `"yesterday" is neither RFC 3339 nor YYYY-MM-DD`},
		{costArgs("--gpus", "testdata/cost/allocations.csv"), 1, `no column "id"`},
		{costArgs("--prices", "testdata/cost/missing.yaml"), 1, "no such file"},
	} {
		code, _, errOut := fleetctl(t, c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, %q; want %d and %q", c.args[1:], code, errOut, c.code, c.want)
		}
	}
}
