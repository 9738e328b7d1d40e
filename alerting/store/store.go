// Package store keeps alerting's state in ClickHouse: incidents (one row
// per state change, the highest version current), the detections attached
// to them as evidence, every notification attempt, the notification outbox
// (route.Outbox), and reads deployments and the fleet inventory the
// correlation needs. Tables: docs/SCHEMA.md, migration 8 "alerting" and 12
// "notification_outbox".
package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting/correlate"
	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/alerting/route"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
)

// Store reads and writes alerting's tables through one client.
type Store struct {
	c *storage.Client
	w *storage.Writer
}

// New returns a store on c.
func New(c *storage.Client) (*Store, error) {
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		return nil, err
	}
	return &Store{c: c, w: w}, nil
}

func (s *Store) table(name string) string { return chsql.Ident(s.c.Config().Database, name) }

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// Save writes the incidents' states and their evidence.
func (s *Store) Save(ctx context.Context, incs []incident.Incident) error {
	n := len(incs)
	var (
		key, status, level, scope, family, class, sev, team, oncall, domain, title, cause, state = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		version                                                                                  = make([]uint64, n)
		updated, opened, acked, resolved                                                         = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		evCount, flaps                                                                           = make([]uint32, n), make([]uint32, n)
		silenced                                                                                 = make([]uint8, n)
	)
	var ev evidenceCols
	for i := range incs {
		inc := &incs[i]
		js, err := json.Marshal(inc)
		if err != nil {
			return fmt.Errorf("encode incident %s: %w", inc.Key, err)
		}
		key[i], status[i], level[i], scope[i], family[i], class[i] = inc.Key, string(inc.Status), string(inc.Level), inc.Scope, inc.Family, inc.Class
		sev[i], team[i], oncall[i], domain[i], title[i], cause[i], state[i] = inc.Severity, inc.Team, inc.Oncall, inc.Domain, inc.Title, inc.Cause, string(js)
		version[i] = inc.Version
		updated[i], opened[i], acked[i], resolved[i] = unix(inc.UpdatedAt), unix(inc.OpenedAt), unix(inc.AckedAt), unix(inc.ResolvedAt)
		evCount[i], flaps[i] = uint32(len(inc.Evidence)), uint32(inc.Flaps)
		if inc.Silenced {
			silenced[i] = 1
		}
		for j := range inc.Evidence {
			ev.add(inc.Key, &inc.Evidence[j])
		}
	}
	b := storage.Block{Table: "incidents",
		Columns: []string{"key", "version", "updated_at", "opened_at", "acked_at", "resolved_at", "status", "level", "scope", "family", "class",
			"severity", "team", "oncall", "domain", "title", "cause", "evidence_count", "flaps", "silenced", "state"},
		Data: []any{key, version, updated, opened, acked, resolved, status, level, scope, family, class, sev, team, oncall, domain, title, cause,
			evCount, flaps, silenced, state}}
	if err := s.w.Write(ctx, b); err != nil {
		return fmt.Errorf("write incidents: %w", err)
	}
	if len(ev.incident) == 0 {
		return nil
	}
	if err := s.w.Write(ctx, ev.block()); err != nil {
		return fmt.Errorf("write incident_evidence: %w", err)
	}
	return nil
}

type evidenceCols struct {
	incident, detKey, detector, class, sev, etype, entity, dc, row, rack, node, cluster, gpu, model, feature, summary []string
	first, last                                                                                                       []int64
	value                                                                                                             []float64
}

func (c *evidenceCols) add(key string, e *incident.Evidence) {
	c.incident = append(c.incident, key)
	c.detKey = append(c.detKey, e.Key)
	c.first = append(c.first, unix(e.FirstSeen))
	c.last = append(c.last, unix(e.LastSeen))
	c.detector = append(c.detector, e.Detector)
	c.class = append(c.class, e.Class)
	c.sev = append(c.sev, e.Severity)
	c.etype = append(c.etype, e.EntityType)
	c.entity = append(c.entity, e.Entity)
	c.dc = append(c.dc, e.Datacenter)
	c.row = append(c.row, e.Row)
	c.rack = append(c.rack, e.Rack)
	c.node = append(c.node, e.Node)
	c.cluster = append(c.cluster, e.Cluster)
	c.gpu = append(c.gpu, e.GPUUUID)
	c.model = append(c.model, e.Model)
	c.feature = append(c.feature, e.Feature)
	c.value = append(c.value, e.Value)
	c.summary = append(c.summary, e.Summary)
}

func (c *evidenceCols) block() storage.Block {
	return storage.Block{Table: "incident_evidence",
		Columns: []string{"incident_key", "detection_key", "first_seen", "last_seen", "detector", "class", "severity", "entity_type", "entity",
			"datacenter", "row", "rack", "node", "cluster", "gpu_uuid", "model", "feature", "value", "summary"},
		Data: []any{c.incident, c.detKey, c.first, c.last, c.detector, c.class, c.sev, c.etype, c.entity,
			c.dc, c.row, c.rack, c.node, c.cluster, c.gpu, c.model, c.feature, c.value, c.summary}}
}

// LatestSQL returns the latest state JSON of every incident that is not
// resolved or was updated at or after since, newest first.
func LatestSQL(database string, since time.Time) string {
	return fmt.Sprintf(`SELECT st FROM (SELECT key, argMax(state, version) AS st, argMax(status, version) AS s, max(updated_at) AS u
FROM %s GROUP BY key) WHERE s != 'resolved' OR u >= %s ORDER BY u DESC, key`, chsql.Ident(database, "incidents"), chsql.Time(since))
}

// Load implements alerting.Store.
func (s *Store) Load(ctx context.Context, since time.Time) ([]incident.Incident, error) {
	rows, err := s.c.Conn().Query(ctx, LatestSQL(s.c.Config().Database, since))
	if err != nil {
		return nil, fmt.Errorf("read incidents: %w", err)
	}
	defer rows.Close()
	var out []incident.Incident
	for rows.Next() {
		var js string
		if err := rows.Scan(&js); err != nil {
			return nil, fmt.Errorf("read incidents: %w", err)
		}
		var inc incident.Incident
		if err := json.Unmarshal([]byte(js), &inc); err != nil {
			return nil, fmt.Errorf("decode incident: %w", err)
		}
		out = append(out, inc)
	}
	return out, rows.Err()
}

// Acked implements alerting.Store.
func (s *Store) Acked(ctx context.Context, keys []string) (map[string]string, error) {
	q := fmt.Sprintf(`SELECT key, st FROM (SELECT key, argMax(status, version) AS s, argMax(state, version) AS st FROM %s
WHERE key IN %s GROUP BY key) WHERE s = 'acknowledged'`, s.table("incidents"), chsql.In(keys))
	rows, err := s.c.Conn().Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read acknowledgements: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, js string
		if err := rows.Scan(&k, &js); err != nil {
			return nil, err
		}
		var inc incident.Incident
		_ = json.Unmarshal([]byte(js), &inc)
		out[k] = inc.AckedBy
	}
	return out, rows.Err()
}

// Acknowledge writes an acknowledged state of an open incident (fleetctl
// incidents --ack); the analyzer reads it back and notifies receivers.
func (s *Store) Acknowledge(ctx context.Context, key, by string, now time.Time) error {
	incs, err := s.Load(ctx, now)
	if err != nil {
		return err
	}
	for i := range incs {
		inc := &incs[i]
		if inc.Key != key {
			continue
		}
		if inc.Status != incident.StatusOpen {
			return fmt.Errorf("incident %s is %s, not open", key, inc.Status)
		}
		inc.Status, inc.AckedAt, inc.AckedBy, inc.UpdatedAt = incident.StatusAcknowledged, now, by, now
		inc.Version = max(inc.Version+1, uint64(now.UnixNano()))
		return s.Save(ctx, incs[i:i+1])
	}
	return fmt.Errorf("no open incident with key %s", key)
}

// Record implements route.Recorder: one notifications row per attempt.
func (s *Store) Record(ctx context.Context, as []route.Attempt) error {
	n := len(as)
	ts, key, recv, typ, action, outcome, errs, sev := make([]int64, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	attempt, status, dur := make([]uint32, n), make([]uint16, n), make([]float64, n)
	for i, a := range as {
		ts[i], key[i], recv[i], typ[i], action[i] = a.At.Unix(), a.IncidentKey, a.Receiver, a.Type, string(a.Action)
		outcome[i], errs[i], sev[i], attempt[i], status[i] = a.Outcome, a.Err, a.Severity, uint32(a.Attempt), uint16(a.HTTPStatus)
		dur[i] = float64(a.Duration) / 1e6
	}
	return s.w.Write(ctx, storage.Block{Table: "notifications",
		Columns: []string{"ts", "incident_key", "receiver", "receiver_type", "action", "attempt", "outcome", "http_status", "error", "duration_ms", "severity"},
		Data:    []any{ts, key, recv, typ, action, attempt, outcome, status, errs, dur, sev}})
}

// Recent implements alerting.Deployments from model_deployments.
func (s *Store) Recent(ctx context.Context, models []string, since, until time.Time) ([]incident.Suspect, error) {
	q := fmt.Sprintf(`SELECT ts, toString(model), toString(model_version), toString(previous_version), toString(change), actor FROM %s
WHERE model IN %s AND ts >= %s AND ts <= %s ORDER BY ts DESC, model LIMIT 20`,
		s.table("model_deployments"), chsql.In(models), chsql.Time(since), chsql.Time(until))
	rows, err := s.c.Conn().Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read deployments: %w", err)
	}
	defer rows.Close()
	var out []incident.Suspect
	for rows.Next() {
		var sp incident.Suspect
		if err := rows.Scan(&sp.Time, &sp.Model, &sp.Version, &sp.Previous, &sp.Change, &sp.Actor); err != nil {
			return nil, err
		}
		sp.Time = sp.Time.UTC()
		out = append(out, sp)
	}
	return out, rows.Err()
}

// Inventory reads the fleet's GPUs from gpu_series seen since since.
func (s *Store) Inventory(ctx context.Context, since time.Time) (*correlate.Inventory, error) {
	q := fmt.Sprintf(`SELECT DISTINCT toString(datacenter), toString(row), toString(rack), toString(node), toString(uuid) FROM %s WHERE last_seen >= %s`,
		s.table("gpu_series"), chsql.Time(since))
	rows, err := s.c.Conn().Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	defer rows.Close()
	inv := correlate.NewInventory()
	for rows.Next() {
		var t fleet.Topology
		var uuid string
		if err := rows.Scan(&t.Datacenter, &t.Row, &t.Rack, &t.Node, &uuid); err != nil {
			return nil, err
		}
		inv.Add(t, uuid)
	}
	return inv, rows.Err()
}
