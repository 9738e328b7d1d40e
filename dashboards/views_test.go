package dashboards

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// rowsOf reads a whole on-call view as strings keyed by column name.
func rowsOf(t *testing.T, d *demo, view schema.QueryView, where string) []map[string]string {
	t.Helper()
	v := view.ColumnNames()
	cols := make([]string, len(v))
	for i, c := range v {
		cols[i] = "toString(" + c + ")"
	}
	sql := fmt.Sprintf("SELECT %s FROM %s %s", strings.Join(cols, ", "), view.Name, where)
	rows, err := d.c.Conn().Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
	defer rows.Close()
	var out []map[string]string
	for rows.Next() {
		vals := make([]string, len(v))
		ptrs := make([]any, len(v))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for i, c := range v {
			m[c] = vals[i]
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// byKey indexes rows by one column.
func byKey(rows []map[string]string, col string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, r := range rows {
		out[r[col]] = r
	}
	return out
}

// checkViews checks that every on-call view has the documented columns
// and finds the demo's faults: the lost GPU's node critical, the degraded
// NVLink, the hot rack and the straggler flagged, the healthy node ok; the drifting
// column first; the straggler once with both windows; the two models with
// injected faults in breach and the healthy one ok; only the open
// incident, with its evidence.
func checkViews(t *testing.T, d *demo) {
	for _, v := range schema.QueryViews() {
		res, err := run(d.c, "SELECT * FROM "+v.Name)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		if fmt.Sprint(res.columns) != fmt.Sprint(v.ColumnNames()) {
			t.Errorf("%s: columns %v, documented %v", v.Name, res.columns, v.ColumnNames())
		}
		for i, c := range v.Columns {
			if i < len(res.types) && res.types[i] != c.Type {
				t.Errorf("%s.%s: type %s, documented %s", v.Name, c.Name, res.types[i], c.Type)
			}
		}
	}

	nodes := byKey(rowsOf(t, d, schema.OncallNodeHealth, ""), "node")
	if len(nodes) != 4 {
		t.Fatalf("node health has %d nodes, want 4: %v", len(nodes), nodes)
	}
	cases := []struct {
		node, status string
		check        func(r map[string]string) bool
		why          string
	}{
		{"node-003", "critical", func(r map[string]string) bool { return r["xids"] != "0" }, "XID 79 on GPU 3"},
		{"node-002", "warning", func(r map[string]string) bool { return r["nvlink_errors"] != "0" && r["xids"] == "0" }, "NVLink errors on GPU 0"},
		{"node-000", "warning", func(r map[string]string) bool {
			return r["detections"] == "1" && r["xids"] == "0" && r["nvlink_errors"] == "0"
		},
			"the straggler: a detection, no hardware signal"},
		{"node-001", "ok", func(r map[string]string) bool { return r["gpus"] == "4" }, "healthy"},
	}
	for _, c := range cases {
		r := nodes[c.node]
		if (c.status != "" && r["status"] != c.status) || !c.check(r) {
			t.Errorf("oncall_node_health %s (%s): %v", c.node, c.why, r)
		}
	}

	// rack-01's cooling failure: its nodes run hotter than rack-00's.
	if hot, cool := min(num(t, nodes["node-002"]["max_temp_c"]), num(t, nodes["node-003"]["max_temp_c"])),
		max(num(t, nodes["node-000"]["max_temp_c"]), num(t, nodes["node-001"]["max_temp_c"])); hot < cool+10 {
		t.Errorf("oncall_node_health: rack-01 (%.0f °C) is not clearly hotter than rack-00 (%.0f °C)", hot, cool)
	}

	leaders := rowsOf(t, d, schema.OncallDriftLeaders, "")
	if len(leaders) != 3 || leaders[0]["model"] != "fraud" || leaders[0]["feature"] != "amount" ||
		leaders[0]["latest_band"] != "action" || leaders[0]["flagged_windows_24h"] == "0" || leaders[0]["windows_24h"] != "12" {
		t.Errorf("oncall_drift_leaders: %v", leaders)
	}
	if last := leaders[len(leaders)-1]; last["feature"] != "country" || last["latest_band"] != "stable" {
		t.Errorf("oncall_drift_leaders: the stable column should come last: %v", last)
	}

	strag := rowsOf(t, d, schema.OncallStragglers, "")
	if len(strag) != 1 || strag[0]["node"] != "node-000" || strag[0]["windows"] != "2" || strag[0]["action"] != "drain" {
		t.Errorf("oncall_stragglers_24h: %v", strag)
	}

	inc := rowsOf(t, d, schema.OncallOpenIncidents, "")
	if len(inc) != 1 || inc[0]["key"] != "thermal/rack/rack-01" || inc[0]["evidence_count"] != "2" || inc[0]["oncall"] != "platform-oncall" ||
		!strings.Contains(inc[0]["evidence"], "node node-003: node-003 hot") {
		t.Errorf("oncall_open_incidents: want only the rack incident with its two detections: %v", inc)
	}

	slo := byKey(rowsOf(t, d, schema.OncallModelSLO, ""), "model")
	want := map[string]string{"fraud": "breach", "churn": "breach", "search": "ok"}
	for m, status := range want {
		if slo[m]["status"] != status {
			t.Errorf("oncall_model_slo %s: status %q, want %q: %v", m, slo[m]["status"], status, slo[m])
		}
	}
	if f := slo["fraud"]; num(t, f["p99_ms_1h"]) <= schema.OncallLatencyFactor*num(t, f["p99_ms_baseline"]) {
		t.Errorf("fraud's latency regression does not breach: %v", f)
	}
	if c := slo["churn"]; num(t, c["error_budget_burn"]) <= 1 || c["serving_version"] != "v2" {
		t.Errorf("churn's error spike does not burn the budget, or v2 is not serving: %v", c)
	}
}

func num(t *testing.T, s string) float64 {
	t.Helper()
	var f float64
	if _, err := fmt.Sscan(s, &f); err != nil {
		t.Fatalf("%q is not a number", s)
	}
	return f
}
