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
	var b storage.IncidentBlock
	var ev storage.IncidentEvidenceBlock
	for i := range incs {
		inc := &incs[i]
		js, err := json.Marshal(inc)
		if err != nil {
			return fmt.Errorf("encode incident %s: %w", inc.Key, err)
		}
		appendIncident(&b, inc, string(js))
		for j := range inc.Evidence {
			appendEvidence(&ev, inc.Key, &inc.Evidence[j])
		}
	}
	if err := s.w.Write(ctx, b.Block()); err != nil {
		return fmt.Errorf("write incidents: %w", err)
	}
	if ev.Len() == 0 {
		return nil
	}
	if err := s.w.Write(ctx, ev.Block()); err != nil {
		return fmt.Errorf("write incident_evidence: %w", err)
	}
	return nil
}

func appendIncident(b *storage.IncidentBlock, inc *incident.Incident, state string) {
	var silenced uint8
	if inc.Silenced {
		silenced = 1
	}
	b.Key = append(b.Key, inc.Key)
	b.Version = append(b.Version, inc.Version)
	b.UpdatedAt = append(b.UpdatedAt, unix(inc.UpdatedAt))
	b.OpenedAt = append(b.OpenedAt, unix(inc.OpenedAt))
	b.AckedAt = append(b.AckedAt, unix(inc.AckedAt))
	b.ResolvedAt = append(b.ResolvedAt, unix(inc.ResolvedAt))
	b.Status = append(b.Status, string(inc.Status))
	b.Level = append(b.Level, string(inc.Level))
	b.Scope = append(b.Scope, inc.Scope)
	b.Family = append(b.Family, inc.Family)
	b.Class = append(b.Class, inc.Class)
	b.Severity = append(b.Severity, inc.Severity)
	b.Team = append(b.Team, inc.Team)
	b.Oncall = append(b.Oncall, inc.Oncall)
	b.Domain = append(b.Domain, inc.Domain)
	b.Title = append(b.Title, inc.Title)
	b.Cause = append(b.Cause, inc.Cause)
	b.EvidenceCount = append(b.EvidenceCount, uint32(len(inc.Evidence)))
	b.Flaps = append(b.Flaps, uint32(inc.Flaps))
	b.Silenced = append(b.Silenced, silenced)
	b.State = append(b.State, state)
}

func appendEvidence(b *storage.IncidentEvidenceBlock, key string, e *incident.Evidence) {
	b.IncidentKey = append(b.IncidentKey, key)
	b.DetectionKey = append(b.DetectionKey, e.Key)
	b.FirstSeen = append(b.FirstSeen, unix(e.FirstSeen))
	b.LastSeen = append(b.LastSeen, unix(e.LastSeen))
	b.Detector = append(b.Detector, e.Detector)
	b.Class = append(b.Class, e.Class)
	b.Severity = append(b.Severity, e.Severity)
	b.EntityType = append(b.EntityType, e.EntityType)
	b.Entity = append(b.Entity, e.Entity)
	b.Datacenter = append(b.Datacenter, e.Datacenter)
	b.Row = append(b.Row, e.Row)
	b.Rack = append(b.Rack, e.Rack)
	b.Node = append(b.Node, e.Node)
	b.Cluster = append(b.Cluster, e.Cluster)
	b.GPUUUID = append(b.GPUUUID, e.GPUUUID)
	b.Model = append(b.Model, e.Model)
	b.Feature = append(b.Feature, e.Feature)
	b.Value = append(b.Value, e.Value)
	b.Summary = append(b.Summary, e.Summary)
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
	var b storage.NotificationBlock
	for _, a := range as {
		b.Ts = append(b.Ts, a.At.Unix())
		b.IncidentKey = append(b.IncidentKey, a.IncidentKey)
		b.Receiver = append(b.Receiver, a.Receiver)
		b.ReceiverType = append(b.ReceiverType, a.Type)
		b.Action = append(b.Action, string(a.Action))
		b.Attempt = append(b.Attempt, uint32(a.Attempt))
		b.Outcome = append(b.Outcome, a.Outcome)
		b.HTTPStatus = append(b.HTTPStatus, uint16(a.HTTPStatus))
		b.Error = append(b.Error, a.Err)
		b.DurationMs = append(b.DurationMs, float64(a.Duration)/1e6)
		b.Severity = append(b.Severity, a.Severity)
	}
	return s.w.Write(ctx, b.Block())
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
