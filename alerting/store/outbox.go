package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/alerting/route"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
)

// Put implements route.Outbox: one notification_outbox row per entry
// state. The incident JSON goes into the entry's first state only.
func (s *Store) Put(ctx context.Context, es []route.Entry) error {
	var b storage.NotificationOutboxBlock
	for i := range es {
		e := &es[i]
		var inc string
		if e.Version == 1 {
			js, err := json.Marshal(&e.Incident)
			if err != nil {
				return fmt.Errorf("encode incident %s: %w", e.Incident.Key, err)
			}
			inc = string(js)
		}
		b.ID = append(b.ID, e.ID)
		b.Version = append(b.Version, e.Version)
		b.CreatedAt = append(b.CreatedAt, unix(e.Created))
		b.UpdatedAt = append(b.UpdatedAt, unix(e.Updated))
		b.IncidentKey = append(b.IncidentKey, e.Incident.Key)
		b.Transition = append(b.Transition, uint32(e.Incident.Transitions))
		b.IdempotencyKey = append(b.IdempotencyKey, e.IdempotencyKey)
		b.Receiver = append(b.Receiver, e.Receiver)
		b.ReceiverType = append(b.ReceiverType, e.Type)
		b.Action = append(b.Action, string(e.Action))
		b.State = append(b.State, e.State)
		b.Attempts = append(b.Attempts, uint32(e.Attempts))
		b.NextAt = append(b.NextAt, unix(e.NextAt))
		b.ExpiresAt = append(b.ExpiresAt, unix(e.Expires))
		b.Error = append(b.Error, e.Err)
		b.Incident = append(b.Incident, inc)
	}
	return s.w.Write(ctx, b.Block())
}

// PendingSQL returns the current state of every outbox entry created at
// or after since that is still pending, oldest first (also what on-call
// runs, with other states, to see undelivered notifications).
func PendingSQL(database string, since time.Time) string {
	return fmt.Sprintf(`SELECT id, max(version) AS v, argMax(state, version) AS st, min(created_at) AS created, max(updated_at),
    any(idempotency_key), any(receiver), any(receiver_type), any(action), argMax(attempts, version), argMax(next_at, version),
    max(expires_at), argMax(error, version), anyIf(incident, version = 1) AS inc
FROM %s WHERE created_at >= %s
GROUP BY id HAVING st = 'pending' AND inc != ''
ORDER BY created, id`, chsql.Ident(database, "notification_outbox"), chsql.Time(since))
}

// Pending implements route.Outbox.
func (s *Store) Pending(ctx context.Context, since time.Time) ([]route.Entry, error) {
	rows, err := s.c.Conn().Query(ctx, PendingSQL(s.c.Config().Database, since))
	if err != nil {
		return nil, fmt.Errorf("read the notification outbox: %w", err)
	}
	defer rows.Close()
	var out []route.Entry
	for rows.Next() {
		var e route.Entry
		var action, inc string
		var attempts uint32
		if err := rows.Scan(&e.ID, &e.Version, &e.State, &e.Created, &e.Updated, &e.IdempotencyKey, &e.Receiver, &e.Type, &action,
			&attempts, &e.NextAt, &e.Expires, &e.Err, &inc); err != nil {
			return nil, fmt.Errorf("read the notification outbox: %w", err)
		}
		if err := json.Unmarshal([]byte(inc), &e.Incident); err != nil {
			return nil, fmt.Errorf("decode the incident of outbox entry %s: %w", e.ID, err)
		}
		e.Action, e.Attempts = incident.Action(action), int(attempts)
		e.Created, e.Updated, e.NextAt, e.Expires = e.Created.UTC(), e.Updated.UTC(), e.NextAt.UTC(), e.Expires.UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// Transitions implements alerting.Store: the highest incident transition
// the outbox holds a notification of, for each of keys that has one.
func (s *Store) Transitions(ctx context.Context, keys []string) (map[string]int, error) {
	out := map[string]int{}
	if len(keys) == 0 {
		return out, nil
	}
	q := fmt.Sprintf("SELECT incident_key, max(transition) FROM %s WHERE incident_key IN %s GROUP BY incident_key",
		s.table("notification_outbox"), chsql.In(keys))
	rows, err := s.c.Conn().Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read the notification outbox: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var t uint32
		if err := rows.Scan(&k, &t); err != nil {
			return nil, err
		}
		out[k] = int(t)
	}
	return out, rows.Err()
}
