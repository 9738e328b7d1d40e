package demo

import (
	"context"
	"fmt"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"sort"
	"strings"

	"github.com/fleetwatch/fleetwatch/agent/sim"
)

// incidentRow is an incident's current state from the incidents table.
type incidentRow struct {
	Key, Status, Level, Scope, Class, Severity, Team, Title string
	Evidence                                                uint32
}

// incidentWatch prints incidents as their status changes.
type incidentWatch struct {
	d    *Demo
	seen map[string]string // key → last status printed
}

func newIncidentWatch(d *Demo) *incidentWatch {
	return &incidentWatch{d: d, seen: map[string]string{}}
}

func (w *incidentWatch) open() int {
	n := 0
	for _, s := range w.seen {
		if s == "open" || s == "acknowledged" {
			n++
		}
	}
	return n
}

// incidents reads every incident's latest state.
func (d *Demo) incidents(ctx context.Context) ([]incidentRow, error) {
	q := fmt.Sprintf(`SELECT key, toString(argMax(status, version)) AS status, toString(argMax(level, version)) AS level,
		argMax(scope, version) AS scope, toString(argMax(class, version)) AS class, toString(argMax(severity, version)) AS severity,
		toString(argMax(team, version)) AS team, argMax(title, version) AS title, argMax(evidence_count, version) AS evidence
		FROM %s GROUP BY key ORDER BY min(opened_at), key`, chsql.Ident(d.client.Config().Database, "incidents"))
	var out []incidentRow
	var res chsql.Result
	key, status, level, scope, class := res.Str("key"), res.Str("status"), res.Str("level"), res.Str("scope"), res.Str("class")
	severity, team, title, evidence := res.Str("severity"), res.Str("team"), res.Str("title"), res.Int("evidence")
	err := res.ForRows(ctx, d.client, q, func(r int) {
		out = append(out, incidentRow{Key: key.At(r), Status: status.At(r), Level: level.At(r), Scope: scope.At(r), Class: class.At(r),
			Severity: severity.At(r), Team: team.At(r), Title: title.At(r), Evidence: uint32(evidence.At(r))})
	})
	if err != nil {
		return nil, fmt.Errorf("read incidents: %w", err)
	}
	return out, nil
}

func (w *incidentWatch) poll(ctx context.Context) {
	rows, err := w.d.incidents(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.d.log.Warn("incident poll", "err", err)
		}
		return
	}
	for _, r := range rows {
		if w.seen[r.Key] == r.Status {
			continue
		}
		w.seen[r.Key] = r.Status
		w.d.say("  INCIDENT %-12s %-8s %-8s %s\n           owner %s; %d detection(s) as evidence; key %s",
			strings.ToUpper(r.Status), r.Severity, r.Level, r.Title, orNone(r.Team), r.Evidence, r.Key)
	}
}

func orNone(s string) string {
	if s == "" {
		return "unassigned"
	}
	return s
}

// wantLevel is the incident level a fault should be reported at.
func wantLevel(t sim.Truth) string {
	if t.Level == "pipeline" {
		return "upstream"
	}
	return t.Level
}

// names is what an incident's scope must mention to be about t.
func names(t sim.Truth) []string {
	switch t.Level {
	case "gpu":
		return []string{t.GPU}
	case "node":
		return []string{t.Node}
	case "rack":
		return []string{t.Rack}
	case "row":
		return []string{t.Row}
	case "datacenter":
		return []string{t.Datacenter}
	case "pipeline":
		return []string{t.Pipeline}
	case "model":
		return []string{t.Model}
	}
	return nil
}

// about reports whether incident r explains fault t: the same level and a
// scope that names t's target (any of its identifiers).
func about(r incidentRow, t sim.Truth) bool {
	if r.Level != wantLevel(t) {
		return false
	}
	for _, n := range names(t) {
		if n != "" && strings.Contains(r.Scope+" "+r.Key+" "+r.Title, n) {
			return true
		}
	}
	return false
}

// score matches incidents to the ground truth: for each fault the incidents
// about it, and the incidents about no fault.
func score(truth []sim.Truth, rows []incidentRow) (matched map[string][]incidentRow, extra []incidentRow) {
	matched = map[string][]incidentRow{}
	for _, r := range rows {
		hit := false
		for _, t := range truth {
			if about(r, t) {
				matched[t.Fault] = append(matched[t.Fault], r)
				hit = true
			}
		}
		if !hit {
			extra = append(extra, r)
		}
	}
	for _, rs := range matched {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Key < rs[j].Key })
	}
	return matched, extra
}
