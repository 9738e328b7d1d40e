// Package store keeps alerting's state in ClickHouse: incidents (one row
// per state change, the highest version current), the detections attached
// to them as evidence, every notification attempt, the notification outbox
// (route.Outbox), and reads deployments and the fleet inventory the
// correlation needs. Tables: docs/SCHEMA.md, migration 8 "alerting" and 12
// "notification_outbox".
package store

import (
	"cmp"
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
	var out []incident.Incident
	var decodeErr error
	var res chsql.Result
	st := res.Str("st")
	err := res.ForRows(ctx, s.c, LatestSQL(s.c.Config().Database, since), func(r int) {
		var inc incident.Incident
		if err := json.Unmarshal([]byte(st.At(r)), &inc); err != nil {
			decodeErr = cmp.Or(decodeErr, fmt.Errorf("decode incident: %w", err))
			return
		}
		out = append(out, inc)
	})
	if err != nil {
		return nil, fmt.Errorf("read incidents: %w", err)
	}
	if decodeErr != nil {
		return nil, decodeErr
	}
	return out, nil
}

// Acked implements alerting.Store.
func (s *Store) Acked(ctx context.Context, keys []string) (map[string]string, error) {
	q := fmt.Sprintf(`SELECT key, st FROM (SELECT key, argMax(status, version) AS s, argMax(state, version) AS st FROM %s
WHERE key IN %s GROUP BY key) WHERE s = 'acknowledged'`, s.table("incidents"), chsql.In(keys))
	out := map[string]string{}
	var res chsql.Result
	k, st := res.Str("key"), res.Str("st")
	err := res.ForRows(ctx, s.c, q, func(r int) {
		var inc incident.Incident
		_ = json.Unmarshal([]byte(st.At(r)), &inc)
		out[k.At(r)] = inc.AckedBy
	})
	if err != nil {
		return nil, fmt.Errorf("read acknowledgements: %w", err)
	}
	return out, nil
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
	q := fmt.Sprintf(`SELECT ts, toString(model) AS model, toString(model_version) AS version, toString(previous_version) AS previous,
toString(change) AS change, actor FROM %s
WHERE model IN %s AND ts >= %s AND ts <= %s ORDER BY ts DESC, model LIMIT 20`,
		s.table("model_deployments"), chsql.In(models), chsql.Time(since), chsql.Time(until))
	var out []incident.Suspect
	var res chsql.Result
	ts, model, version, previous, change, actor := res.Time("ts"), res.Str("model"), res.Str("version"), res.Str("previous"), res.Str("change"), res.Str("actor")
	err := res.ForRows(ctx, s.c, q, func(r int) {
		out = append(out, incident.Suspect{Time: time.Unix(ts.Seconds(r), 0).UTC(), Model: model.At(r), Version: version.At(r),
			Previous: previous.At(r), Change: change.At(r), Actor: actor.At(r)})
	})
	if err != nil {
		return nil, fmt.Errorf("read deployments: %w", err)
	}
	return out, nil
}

// Inventory reads the fleet's GPUs from gpu_series seen since since.
func (s *Store) Inventory(ctx context.Context, since time.Time) (*correlate.Inventory, error) {
	q := fmt.Sprintf(`SELECT DISTINCT toString(datacenter) AS dc, toString(row) AS r, toString(rack) AS rk, toString(node) AS n, toString(uuid) AS u
FROM %s WHERE last_seen >= %s`,
		s.table("gpu_series"), chsql.Time(since))
	inv := correlate.NewInventory()
	var res chsql.Result
	dc, row, rack, node, uuid := res.Str("dc"), res.Str("r"), res.Str("rk"), res.Str("n"), res.Str("u")
	err := res.ForRows(ctx, s.c, q, func(r int) {
		inv.Add(fleet.Topology{Datacenter: dc.At(r), Row: row.At(r), Rack: rack.At(r), Node: node.At(r)}, uuid.At(r))
	})
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	return inv, nil
}
