package schema

import (
	"slices"
	"strings"
	"testing"
)

// Every table is written by exactly one of the ingest and analyzer roles;
// the reader writes nothing; the ingest role never reads what the analyzer
// decided (incidents, detections, notifications).
func TestRolesAreLeastPrivilege(t *testing.T) {
	roles := map[string]Role{}
	for _, r := range Roles() {
		roles[r.Name] = r
	}
	for _, tb := range Tables() {
		ingest := slices.Contains(roles[RoleIngest].Insert, tb.Name)
		analyzer := slices.Contains(roles[RoleAnalyzer].Insert, tb.Name)
		if ingest == analyzer {
			t.Errorf("%s: written by ingest %v, by the analyzer %v; want exactly one", tb.Name, ingest, analyzer)
		}
		if !slices.Contains(roles[RoleReader].Select, tb.Name) || !slices.Contains(roles[RoleAnalyzer].Select, tb.Name) {
			t.Errorf("%s: the reader and the analyzer must read it", tb.Name)
		}
	}
	if len(roles[RoleReader].Insert) != 0 {
		t.Errorf("the reader writes %v", roles[RoleReader].Insert)
	}
	for _, private := range []string{"incidents", "incident_evidence", "detections", "notifications", "notification_outbox"} {
		if slices.Contains(roles[RoleIngest].Select, private) {
			t.Errorf("the ingest role reads %s", private)
		}
	}
	for _, r := range Roles() {
		for _, n := range append(append([]string(nil), r.Insert...), r.Select...) {
			if !slices.Contains(readable(), n) {
				t.Errorf("%s names %q, which no migration creates", r.Name, n)
			}
		}
	}
}

func TestGrantStatements(t *testing.T) {
	single := GrantStatements(Target{Database: "fw"})
	for _, want := range []string{
		"CREATE ROLE IF NOT EXISTS fleetwatch_reader",
		"GRANT INSERT ON fw.gpu_samples TO fleetwatch_ingest",
		"GRANT SELECT ON fw.oncall_open_incidents TO fleetwatch_reader",
		"GRANT INSERT ON fw.incidents TO fleetwatch_analyzer",
	} {
		if !slices.Contains(single, want) {
			t.Errorf("missing %q", want)
		}
	}
	for _, s := range single {
		if strings.Contains(s, "ALL") || strings.Contains(s, "*") || strings.Contains(s, "ALTER") || strings.Contains(s, "DROP") {
			t.Errorf("too broad: %s", s)
		}
		if strings.Contains(s, "fleetwatch_ingest") && strings.Contains(s, "incidents") {
			t.Errorf("ingest and incidents: %s", s)
		}
	}
	cluster := GrantStatements(Target{Database: "fw", Cluster: "fleet"})
	if !slices.Contains(cluster, "GRANT ON CLUSTER fleet INSERT ON fw.gpu_samples_local TO fleetwatch_ingest") {
		t.Errorf("cluster mode does not grant the per-server tables:\n%s", strings.Join(cluster, "\n"))
	}
}

func TestUsersXMLRefusesPlainPasswords(t *testing.T) {
	_, err := UsersXML(Target{Database: "fw"}, map[string]string{RoleReader: "grafana"}, map[string]string{RoleReader: "hunter2"}, nil)
	if err == nil || !strings.Contains(err.Error(), "64 hex") {
		t.Fatalf("got %v", err)
	}
	if _, err := UsersXML(Target{Database: "fw"}, map[string]string{RoleReader: "bad name"}, nil, nil); err == nil {
		t.Fatal("a bad user name was accepted")
	}
}
