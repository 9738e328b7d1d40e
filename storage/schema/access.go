package schema

import (
	"fmt"
	"sort"
	"strings"
)

// Database access: each Fleetwatch process runs as a user that holds only
// the rights its statements need. The schema is created and migrated by an
// administrator (`fleetctl migrate`), never by these users.

// Role is the rights of one kind of Fleetwatch process on its database.
type Role struct {
	// Name is the ClickHouse role (current servers) or profile (18.x).
	Name string
	// Doc says who runs as the role.
	Doc string
	// Insert lists the tables the role writes; Select the tables and views
	// it reads. Neither holds DDL: no role may create, alter or drop.
	Insert, Select []string
}

// Role names.
const (
	RoleIngest   = "fleetwatch_ingest"
	RoleAnalyzer = "fleetwatch_analyzer"
	RoleReader   = "fleetwatch_reader"
)

// ingestTables are the tables the collector writes: telemetry, and the
// drift bins it computes at ingest. gpu_samples_1m is filled by the
// materialized view on gpu_samples, which inserts as the writing user.
var ingestTables = []string{"gpu_samples", "gpu_samples_1m", "gpu_series", "gpu_events", "inference_events",
	"drift_bins", "delayed_labels", "business_outcomes", "model_deployments", "spans"}

// ingestReads are what the collector reads: the last stored point of each
// counter series (increases survive restarts), the drift profiles it bins
// against, and the schema version it checks at start.
var ingestReads = []string{"gpu_samples", "drift_profiles", MigrationsTable}

// Roles returns the three roles: ingest (the collector), analyzer, and
// reader (Grafana, on-call, `fleetctl incidents` and `sql`). Every table
// is written by exactly one of ingest and analyzer; the analyzer and the
// reader read everything; the ingest role reads only what it needs and
// never the incidents.
func Roles() []Role {
	all := readable()
	var analyzerWrites []string
	ingest := map[string]bool{}
	for _, t := range ingestTables {
		ingest[t] = true
	}
	for _, t := range Tables() {
		if !ingest[t.Name] {
			analyzerWrites = append(analyzerWrites, t.Name)
		}
	}
	return []Role{
		{Name: RoleIngest, Doc: "the collector: inserts telemetry; reads counter state, drift profiles and the schema version",
			Insert: append([]string(nil), ingestTables...), Select: append([]string(nil), ingestReads...)},
		{Name: RoleAnalyzer, Doc: "the analyzer: reads everything; writes detections, drift and SPC state, incidents and notifications",
			Insert: analyzerWrites, Select: all},
		{Name: RoleReader, Doc: "Grafana, on-call engineers, fleetctl incidents/sql: reads everything, writes nothing",
			Select: all},
	}
}

// readable is every table and on-call view, and the migrations table.
func readable() []string {
	var out []string
	for _, t := range Tables() {
		out = append(out, t.Name)
	}
	for _, v := range QueryViews() {
		out = append(out, v.Name)
	}
	return append(out, MigrationsTable)
}

// GrantStatements renders the roles for a server with SQL access control
// (ClickHouse 20.5 and later): CREATE ROLE, then one GRANT per privilege
// and table, each table qualified with tg's database; in cluster mode every
// statement runs ON CLUSTER and covers the per-server tables too. Run them
// as an administrator, then grant a role to each user
// (GRANT fleetwatch_ingest TO collector).
func GrantStatements(tg Target) []string {
	var out []string
	for _, r := range Roles() {
		out = append(out, "CREATE ROLE IF NOT EXISTS "+r.Name+tg.OnCluster())
		for _, p := range []struct {
			priv   string
			tables []string
		}{{"SELECT", r.Select}, {"INSERT", r.Insert}} {
			for _, t := range tg.grantTargets(p.tables) {
				out = append(out, "GRANT"+tg.OnCluster()+" "+p.priv+" ON "+t+" TO "+r.Name)
			}
		}
	}
	return out
}

// grantTargets qualifies table names, adding the per-server tables of
// cluster mode.
func (tg Target) grantTargets(names []string) []string {
	tables := map[string]bool{}
	for _, t := range Tables() {
		tables[t.Name] = true
	}
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		names := []string{n}
		if tables[n] {
			names = append(names, tg.Physical(n))
		}
		for _, phys := range names {
			if !seen[phys] {
				seen[phys] = true
				out = append(out, tg.qualified(phys))
			}
		}
	}
	sort.Strings(out)
	return out
}

// UsersXML renders the users of ClickHouse 18.x, which has no SQL access
// control: a profile per role (the reader readonly=1; ingest and analyzer
// allow_ddl=0, so DDL is refused) and a user per role limited to tg's
// database, each with the password hash given (SHA-256, hex) and loopback
// networks unless nets are given. 18.x cannot limit a user to some tables
// of a database, nor stop a readonly=0 user from re-enabling DDL with SET:
// on such servers the roles' table lists are advice, and only the reader
// is enforced; run a current ClickHouse for the GRANTs above.
func UsersXML(tg Target, users map[string]string, passwordSHA256 map[string]string, nets []string) (string, error) {
	if len(nets) == 0 {
		nets = []string{"127.0.0.1", "::1"}
	}
	profiles := map[string]string{
		RoleIngest:   "<readonly>0</readonly><allow_ddl>0</allow_ddl>",
		RoleAnalyzer: "<readonly>0</readonly><allow_ddl>0</allow_ddl>",
		RoleReader:   "<readonly>1</readonly>",
	}
	var b strings.Builder
	b.WriteString("<yandex>\n  <profiles>\n")
	for _, r := range Roles() {
		fmt.Fprintf(&b, "    <%s>%s</%s>\n", r.Name, profiles[r.Name], r.Name)
	}
	b.WriteString("  </profiles>\n  <users>\n")
	for _, r := range Roles() {
		user, ok := users[r.Name]
		if !ok {
			continue
		}
		if !ValidIdent(user) {
			return "", fmt.Errorf("user name %q for %s: want letters, digits and _", user, r.Name)
		}
		hash := passwordSHA256[r.Name]
		if len(hash) != 64 || strings.Trim(strings.ToLower(hash), "0123456789abcdef") != "" {
			return "", fmt.Errorf("password hash for %s: want 64 hex digits (sha256sum of the password)", user)
		}
		fmt.Fprintf(&b, "    <%s>\n      <password_sha256_hex>%s</password_sha256_hex>\n      <networks>", user, strings.ToLower(hash))
		for _, n := range nets {
			fmt.Fprintf(&b, "<ip>%s</ip>", xmlText(n))
		}
		fmt.Fprintf(&b, "</networks>\n      <profile>%s</profile>\n      <quota>default</quota>\n", r.Name)
		fmt.Fprintf(&b, "      <allow_databases><database>%s</database></allow_databases>\n    </%s>\n", tg.Database, user)
	}
	b.WriteString("  </users>\n</yandex>\n")
	return b.String(), nil
}

func xmlText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
