package store

import (
	"cmp"
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
	return fmt.Sprintf(`SELECT id, max(version) AS v, argMax(state, version) AS st, min(created_at) AS created, max(updated_at) AS updated,
    any(idempotency_key) AS idem, toString(any(receiver)) AS recv, toString(any(receiver_type)) AS recv_type, toString(any(action)) AS act,
    argMax(attempts, version) AS attempts, argMax(next_at, version) AS next, max(expires_at) AS expires, argMax(error, version) AS err,
    anyIf(incident, version = 1) AS inc
FROM %s WHERE created_at >= %s
GROUP BY id HAVING st = 'pending' AND inc != ''
ORDER BY created, id`, chsql.Ident(database, "notification_outbox"), chsql.Time(since))
}

// Pending implements route.Outbox.
func (s *Store) Pending(ctx context.Context, since time.Time) ([]route.Entry, error) {
	var out []route.Entry
	var decodeErr error
	var res chsql.Result
	id, version, state, created, updated := res.Str("id"), res.Int("v"), res.Str("st"), res.Time("created"), res.Time("updated")
	idem, recv, recvType, action, attempts := res.Str("idem"), res.Str("recv"), res.Str("recv_type"), res.Str("act"), res.Int("attempts")
	next, expires, errText, inc := res.Time("next"), res.Time("expires"), res.Str("err"), res.Str("inc")
	at := func(c *chsql.TimeCol, r int) time.Time { return time.Unix(c.Seconds(r), 0).UTC() }
	err := res.ForRows(ctx, s.c, PendingSQL(s.c.Config().Database, since), func(r int) {
		e := route.Entry{ID: id.At(r), Version: uint64(version.At(r)), State: state.At(r), Created: at(created, r), Updated: at(updated, r),
			IdempotencyKey: idem.At(r), Receiver: recv.At(r), Type: recvType.At(r), Notification: route.Notification{Action: incident.Action(action.At(r))},
			Attempts: int(attempts.At(r)), NextAt: at(next, r), Expires: at(expires, r), Err: errText.At(r)}
		if err := json.Unmarshal([]byte(inc.At(r)), &e.Incident); err != nil {
			decodeErr = cmp.Or(decodeErr, fmt.Errorf("decode the incident of outbox entry %s: %w", e.ID, err))
			return
		}
		out = append(out, e)
	})
	if err != nil {
		return nil, fmt.Errorf("read the notification outbox: %w", err)
	}
	if decodeErr != nil {
		return nil, decodeErr
	}
	return out, nil
}

// Transitions implements alerting.Store: the highest incident transition
// the outbox holds a notification of, for each of keys that has one.
func (s *Store) Transitions(ctx context.Context, keys []string) (map[string]int, error) {
	out := map[string]int{}
	if len(keys) == 0 {
		return out, nil
	}
	q := fmt.Sprintf("SELECT incident_key, max(transition) AS t FROM %s WHERE incident_key IN %s GROUP BY incident_key",
		s.table("notification_outbox"), chsql.In(keys))
	var res chsql.Result
	k, t := res.Str("incident_key"), res.Int("t")
	if err := res.ForRows(ctx, s.c, q, func(r int) { out[k.At(r)] = int(t.At(r)) }); err != nil {
		return nil, fmt.Errorf("read the notification outbox: %w", err)
	}
	return out, nil
}
