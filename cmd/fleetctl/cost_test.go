package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/cost"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/storage/heldrows"
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
	rep, total := runCostJSON(t, costArgs("--format", "json", "--by", "model", "--shared", "equal")...)
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

// TestCostFromClickHouse: a day stored in ClickHouse (GPU-A held by
// ranker-0 of team search for 3 hours, then an hour unallocated; GPU-B
// held by Slurm job train-7 for 2 hours; $2 per GPU-hour) costs, by team
// with shared cost split by GPU-hours: search 3 GPU-hours, $6 direct +
// $2 × 3/5 shared = $7.20; the unlabelled job 2 GPU-hours, $4 + $0.80 =
// $4.80; $12 provisioned.
func TestCostFromClickHouse(t *testing.T) {
	c := chtest.NewDB(t)
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -2)
	h := heldrows.Hours(day, 4)
	var rows heldrows.Rows
	a := heldrows.Device{UUID: "GPU-A", Cluster: "c1", GPUModel: "H100"}
	rows.GPU(a, heldrows.Holder{Namespace: "search", Pod: "ranker-0", Team: "search", Model: "ranker"}, h[:3], 0.5, 1, 1)
	rows.GPU(a, heldrows.Holder{}, h[3:], 0, 0, 1)
	rows.GPU(heldrows.Device{UUID: "GPU-B", Cluster: "c1", GPUModel: "H100"}, heldrows.Holder{Job: "train-7"}, h[:2], 0.9, 1, 1)
	if err := rows.Write(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	args := costOnClickHouse(t, c, day)
	rep, _ := runCostJSON(t, append(args, "--format", "json")...)
	want := []cost.Row{{Key: "(none)", GPUHours: 2, Direct: 4, Shared: 0.8, Total: 4.8}, {Key: "search", GPUHours: 3, Direct: 6, Shared: 1.2, Total: 7.2}}
	if len(rep.Rows) != len(want) || math.Abs(rep.ProvisionedCost-12) > 1e-9 || math.Abs(rep.UnallocatedGPUHours-1) > 1e-9 {
		t.Fatalf("report %+v, want rows %+v, $12 provisioned, 1 GPU-hour unallocated", rep, want)
	}
	for i, w := range want {
		r := rep.Rows[i]
		if r.Key != w.Key || math.Abs(r.GPUHours-w.GPUHours)+math.Abs(r.Direct-w.Direct)+math.Abs(r.Shared-w.Shared)+math.Abs(r.Total-w.Total) > 1e-9 {
			t.Errorf("row %d = %+v, want %+v", i, r, w)
		}
	}
	// --roll-up: the day's 24 hours, then none again
	roll := []string{"cost", "--clickhouse", "--roll-up", "--dsn", dsnOf(c), "--from", day.Format(time.DateOnly), "--to", day.AddDate(0, 0, 1).Format(time.DateOnly)}
	for _, want := range []string{"rolled up 24 hours (0 already)", "rolled up 0 hours (24 already)"} {
		if code, out, errOut := fleetctl(t, roll...); code != 0 || !strings.Contains(out, want) {
			t.Errorf("--roll-up: exit %d, %q %s; want %q", code, out, errOut, want)
		}
	}
	var held float64
	if err := c.QueryScalar(context.Background(), "SELECT sum(gpu_hours) FROM "+c.Config().Database+".gpu_held_1h WHERE kind = 'held'", &held); err != nil || math.Abs(held-5) > 1e-9 {
		t.Errorf("rolled-up held GPU-hours %v (%v), want 5", held, err)
	}
	if code, _, errOut := fleetctl(t, "cost", "--roll-up", "--from", "2026-01-01", "--to", "2026-01-02"); code != 2 || !strings.Contains(errOut, "--roll-up needs --clickhouse") {
		t.Errorf("--roll-up without --clickhouse: exit %d, %q", code, errOut)
	}
	for _, c := range []struct {
		extra []string
		want  string
	}{
		{[]string{"--gpus", "x.csv"}, "drop --gpus"},
		{[]string{"--purchase", "lease"}, `purchase "lease"`},
	} {
		if code, _, errOut := fleetctl(t, append(args, c.extra...)...); code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", c.extra, code, errOut, c.want)
		}
	}
}

// TestCostByUserAndAccount: Slurm jobs stored with their user and account
// (hpc_user, hpc_account), $2 per GPU-hour over 4 hours. GPU-A: job 101
// (alice, proj-a) hours 0–2, hour 3 unallocated; GPU-B: job 102 (bob,
// proj-a) hours 0–1, job 103 (alice, proj-b) hour 2. Provisioned 7
// GPU-hours, $14; by user with shared cost apart: alice 4 GPU-hours $8,
// bob 2 $4, shared $2; by account: proj-a 5 $10, proj-b 1 $2; by user with
// the shared $2 split by GPU-hours: alice $8 + $2·4/6, bob $4 + $2·2/6.
func TestCostByUserAndAccount(t *testing.T) {
	c := chtest.NewDB(t)
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -2)
	h := heldrows.Hours(day, 4)
	var rows heldrows.Rows
	a := heldrows.Device{UUID: "GPU-A", Cluster: "c1", GPUModel: "H100"}
	b := heldrows.Device{UUID: "GPU-B", Cluster: "c1", GPUModel: "H100"}
	rows.GPU(a, heldrows.Holder{Job: "101", User: "alice", Account: "proj-a"}, h[:3], 0.5, 1, 1)
	rows.GPU(a, heldrows.Holder{}, h[3:], 0, 0, 1)
	rows.GPU(b, heldrows.Holder{Job: "102", User: "bob", Account: "proj-a"}, h[:2], 0.9, 1, 1)
	rows.GPU(b, heldrows.Holder{Job: "103", User: "alice", Account: "proj-b"}, h[2:3], 0.9, 1, 1)
	if err := rows.Write(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	args := costOnClickHouse(t, c, day)
	for _, tc := range []struct {
		by, shared string
		want       []cost.Row
	}{
		{"user", "separate", []cost.Row{{Key: "(shared)", Shared: 2, Total: 2}, {Key: "alice", GPUHours: 4, Direct: 8, Total: 8}, {Key: "bob", GPUHours: 2, Direct: 4, Total: 4}}},
		{"account", "separate", []cost.Row{{Key: "(shared)", Shared: 2, Total: 2}, {Key: "proj-a", GPUHours: 5, Direct: 10, Total: 10}, {Key: "proj-b", GPUHours: 1, Direct: 2, Total: 2}}},
		{"user", "gpu_hours", []cost.Row{{Key: "alice", GPUHours: 4, Direct: 8, Shared: 2 * 4.0 / 6, Total: 8 + 2*4.0/6}, {Key: "bob", GPUHours: 2, Direct: 4, Shared: 2 * 2.0 / 6, Total: 4 + 2*2.0/6}}},
		{"account,user", "separate", []cost.Row{{Key: "(shared)", Shared: 2, Total: 2}, {Key: "proj-a/alice", GPUHours: 3, Direct: 6, Total: 6},
			{Key: "proj-a/bob", GPUHours: 2, Direct: 4, Total: 4}, {Key: "proj-b/alice", GPUHours: 1, Direct: 2, Total: 2}}},
	} {
		rep, total := runCostJSON(t, append(args, "--format", "json", "--by", tc.by, "--shared", tc.shared)...)
		if len(rep.Rows) != len(tc.want) || math.Abs(rep.ProvisionedCost-14) > 1e-9 || math.Abs(total-14) > 1e-9 {
			t.Fatalf("--by %s --shared %s: rows %+v (total %v) of $%v provisioned, want %+v of $14", tc.by, tc.shared, rep.Rows, total, rep.ProvisionedCost, tc.want)
		}
		for i, w := range tc.want {
			r := rep.Rows[i]
			if r.Key != w.Key || math.Abs(r.GPUHours-w.GPUHours)+math.Abs(r.Direct-w.Direct)+math.Abs(r.Shared-w.Shared)+math.Abs(r.Total-w.Total) > 1e-9 {
				t.Errorf("--by %s --shared %s: row %d = %+v, want %+v", tc.by, tc.shared, i, r, w)
			}
		}
	}
}

// costOnClickHouse is `fleetctl cost --clickhouse` on c's database for day,
// with H100s in cluster c1 at $2 per GPU-hour.
func costOnClickHouse(t *testing.T, c *storage.Client, day time.Time) []string {
	t.Helper()
	prices := filepath.Join(t.TempDir(), "prices.yaml")
	if err := os.WriteFile(prices, []byte("currency: USD\nprices:\n  - {gpu_model: H100, cluster: c1, purchase: on_demand, effective: 2020-01-01T00:00:00Z, per_gpu_hour: 2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"cost", "--clickhouse", "--dsn", dsnOf(c), "--prices", prices, "--from", day.Format(time.DateOnly), "--to", day.AddDate(0, 0, 1).Format(time.DateOnly)}
}

// dsnOf is the DSN of c's database for fleetctl's --dsn.
func dsnOf(c *storage.Client) string {
	return "clickhouse://" + c.Config().Addrs[0] + "/" + c.Config().Database
}

// runCostJSON runs fleetctl with args (a --format json cost report), fails
// the test unless it exits 0, and returns the report and its rows' total.
func runCostJSON(t *testing.T, args ...string) (costReport, float64) {
	t.Helper()
	code, out, errOut := fleetctl(t, args...)
	if code != 0 {
		t.Fatalf("fleetctl %v: exit %d: %s", args, code, errOut)
	}
	var rep costReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, r := range rep.Rows {
		total += r.Total
	}
	return rep, total
}
