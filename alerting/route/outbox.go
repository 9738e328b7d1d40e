package route

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting/incident"
)

// Entry states: pending until delivered (sent), refused for good (dropped,
// a 4xx other than 429), given up after max_attempts (failed), not
// delivered within expire_after (expired), or suppressed by a silence.
const (
	StatePending  = "pending"
	StateSent     = "sent"
	StateDropped  = "dropped"
	StateFailed   = "failed"
	StateExpired  = "expired"
	StateSilenced = "silenced"
)

// Entry is one notification to one receiver in the outbox. It is recorded
// before its first attempt and gets a new Version after each.
type Entry struct {
	// ID is IdempotencyKey@Receiver.
	ID string
	// IdempotencyKey names the notification (incident key, transition,
	// action): the same on every retry, to every receiver.
	IdempotencyKey string
	Receiver       string
	Type           string
	Notification
	Created, Updated time.Time
	// Version is 1 when recorded, then one more per attempt.
	Version  uint64
	State    string
	Attempts int
	// NextAt is when the next attempt is due; Expires when the entry
	// expires if still pending.
	NextAt, Expires time.Time
	Err             string

	// stored is set once the outbox holds the entry: nothing is sent
	// before.
	stored bool
}

// Outbox keeps the entries (alerting/store implements it on ClickHouse).
type Outbox interface {
	// Put writes the entries' current states; the highest Version of an ID
	// is its state.
	Put(ctx context.Context, es []Entry) error
	// Pending returns the current state of every entry created at or after
	// since that is still pending, oldest first.
	Pending(ctx context.Context, since time.Time) ([]Entry, error)
}

// IdempotencyKey names a notification: its incident's key, the incident's
// transition number and the action. Retries and a restart's resumption
// send the same key.
func IdempotencyKey(n *Notification) string {
	return fmt.Sprintf("%s#%d/%s", n.Incident.Key, n.Incident.Transitions, n.Action)
}

// Enqueue records ns in the outbox, one entry per receiver each routes to
// (routed on the labels the incident opened with), unless this router
// already holds the entry. Entries of silenced incidents are recorded as
// silenced and never sent. When the outbox cannot be written the entries
// wait in memory and Dispatch writes them before their first attempt.
func (r *Router) Enqueue(ctx context.Context, ns []Notification) error {
	now := r.now()
	var fresh []*Entry
	var silenced []Attempt
	r.mu.Lock()
	for id, at := range r.known {
		if now.Sub(at) > r.maxExpire {
			delete(r.known, id)
		}
	}
	for i := range ns {
		n := &ns[i]
		if n.Action == incident.ActionRefresh {
			continue // see Refresh
		}
		idem := IdempotencyKey(n)
		for _, name := range r.cfg.route(n.Incident.RouteLabels()) {
			rv := r.recvs[name]
			id := idem + "@" + name
			if !handles(rv.cfg.Type, n.Action) {
				continue
			}
			if _, dup := r.known[id]; dup {
				continue
			}
			r.known[id] = now
			e := &Entry{ID: id, IdempotencyKey: idem, Receiver: name, Type: rv.cfg.Type, Notification: *n, Created: now, Updated: now,
				Version: 1, State: StatePending, NextAt: now, Expires: now.Add(rv.cfg.ExpireAfter)}
			if n.Incident.Silenced {
				e.State = StateSilenced
				silenced = append(silenced, Attempt{At: now, IncidentKey: n.Incident.Key, Receiver: name, Type: rv.cfg.Type,
					Action: n.Action, Attempt: 1, Outcome: OutcomeSilenced, Severity: n.Incident.Severity})
			}
			fresh = append(fresh, e)
		}
	}
	r.mu.Unlock()
	err := r.put(ctx, fresh)
	r.mu.Lock()
	for _, e := range fresh {
		if e.State == StatePending {
			r.queue = append(r.queue, e)
		}
	}
	r.mu.Unlock()
	for i := range silenced {
		r.count(&silenced[i])
	}
	return errors.Join(err, r.record(ctx, silenced))
}

// put writes es to the outbox and marks them stored.
func (r *Router) put(ctx context.Context, es []*Entry) error {
	if len(es) == 0 {
		return nil
	}
	if r.outbox != nil {
		rows := make([]Entry, len(es))
		for i, e := range es {
			rows[i] = *e
		}
		if err := r.outbox.Put(ctx, rows); err != nil {
			r.mu.Lock()
			r.stats.OutboxErrors++
			r.mu.Unlock()
			return fmt.Errorf("record notifications in the outbox: %w", err)
		}
	}
	r.mu.Lock()
	for _, e := range es {
		e.stored = true
	}
	r.mu.Unlock()
	return nil
}

// Dispatch makes one delivery pass over the outbox: it records entries
// not yet recorded, expires those past expire_after and makes one attempt
// of each entry that is due, oldest first. An entry waits while an earlier
// one of the same incident to the same receiver is pending, so a resolve
// never overtakes its trigger, and a receiver that fails an attempt gets
// no more in this pass, so one that hangs costs at most its timeout per
// pass. Every attempt is recorded, and the entry's new state written,
// before the next. It returns the deliveries that ended undelivered.
func (r *Router) Dispatch(ctx context.Context) error {
	r.pass.Lock()
	defer r.pass.Unlock()
	r.mu.Lock()
	queue := slices.Clone(r.queue)
	r.mu.Unlock()
	var undelivered, unstored []*Entry
	for _, e := range queue {
		if !e.stored {
			unstored = append(unstored, e)
		}
	}
	var problems []error
	if err := r.put(ctx, unstored); err != nil {
		problems = append(problems, err)
	}
	held := map[string]bool{} // receiver and incident with an earlier pending entry
	down := map[string]bool{} // receivers that failed in this pass
	for _, e := range queue {
		if ctx.Err() != nil {
			break
		}
		hk := e.Receiver + "\x00" + e.Incident.Key
		if held[hk] {
			continue
		}
		held[hk] = true
		now := r.now()
		switch {
		case !e.stored:
			continue
		case !now.Before(e.Expires):
			e.State, e.Err = StateExpired, fmt.Sprintf("not delivered within expire_after (%d attempts; last: %s)", e.Attempts, e.Err)
			r.mu.Lock()
			r.stats.Expired[e.Receiver]++
			r.mu.Unlock()
		case now.Before(e.NextAt) || down[e.Receiver]:
			continue
		default:
			if err := r.deliver(ctx, e); err != nil {
				if ctx.Err() != nil {
					continue // shutting down: the entry stays as the outbox has it
				}
				down[e.Receiver] = true
			}
		}
		e.Version++
		e.Updated = r.now()
		if err := r.put(ctx, []*Entry{e}); err != nil {
			problems = append(problems, err)
		}
		if e.State != StatePending {
			held[hk] = false
			r.finish(e)
			if e.State != StateSent {
				undelivered = append(undelivered, e)
			}
		}
	}
	for _, e := range undelivered {
		problems = append(problems, fmt.Errorf("%s to %s for %s: %s: %s", e.Action, e.Receiver, e.Incident.Key, e.State, e.Err))
	}
	return errors.Join(problems...)
}

// deliver makes one attempt of e, records it and moves e on: sent,
// dropped, failed, or pending with its next attempt scheduled. It returns
// the attempt's error, if it failed.
func (r *Router) deliver(ctx context.Context, e *Entry) error {
	rv := r.recvs[e.Receiver]
	a, retryAfter := r.attempt(ctx, rv, &e.Notification, e.IdempotencyKey, e.Attempts+1)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	e.Attempts++
	e.Err = a.Err
	switch {
	case a.Outcome == OutcomeSent:
		e.State = StateSent
	case a.Outcome == OutcomeDropped:
		e.State = StateDropped
	case rv.cfg.MaxAttempts > 0 && e.Attempts >= rv.cfg.MaxAttempts:
		a.Outcome, e.State = OutcomeFailed, StateFailed
	default:
		e.NextAt = r.now().Add(backoff(&rv.cfg, e.Attempts, retryAfter))
	}
	if err := r.record(ctx, []Attempt{a}); err != nil {
		r.log.Warn("alerting: recording a notification attempt failed", "incident", e.Incident.Key, "receiver", e.Receiver, "err", err)
	}
	if a.Outcome == OutcomeSent {
		return nil
	}
	return errors.New(a.Err)
}

// backoff is the wait before attempt n+1: jittered exponential from
// InitialBackoff, at least Retry-After, at most MaxBackoff.
func backoff(rc *ReceiverConfig, n int, retryAfter time.Duration) time.Duration {
	b := rc.InitialBackoff << min(n-1, 30)
	if b <= 0 || b > rc.MaxBackoff {
		b = rc.MaxBackoff
	}
	wait := time.Duration(float64(b) * (0.5 + rand.Float64()/2))
	return min(max(wait, retryAfter), rc.MaxBackoff)
}

// finish takes a delivered or abandoned entry off the queue.
func (r *Router) finish(e *Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queue = slices.DeleteFunc(r.queue, func(q *Entry) bool { return q == e })
	if e.Type == TypeAlertmanager && e.State == StateSent {
		if k := e.Receiver + "\x00" + e.Incident.Key; e.Action == incident.ActionResolve {
			delete(r.lastSent, k)
		} else {
			r.lastSent[k] = r.now()
		}
	}
}

// Resume loads the outbox's pending entries (left by a stopped or killed
// analyzer), ahead of anything recorded after them, and returns how many.
// An entry for a receiver no longer configured expires.
func (r *Router) Resume(ctx context.Context) (int, error) {
	if r.outbox == nil {
		return 0, nil
	}
	es, err := r.outbox.Pending(ctx, r.now().Add(-r.maxExpire))
	if err != nil {
		return 0, fmt.Errorf("resume the outbox: %w", err)
	}
	var resumed, gone []*Entry
	r.mu.Lock()
	for i := range es {
		e := &es[i]
		if _, dup := r.known[e.ID]; dup {
			continue
		}
		e.stored = true
		r.known[e.ID] = e.Created
		if rv := r.recvs[e.Receiver]; rv == nil || rv.cfg.Type != e.Type {
			e.State, e.Err, e.Version, e.Updated = StateExpired, "receiver no longer configured", e.Version+1, r.now()
			gone = append(gone, e)
			continue
		}
		resumed = append(resumed, e)
	}
	r.queue = append(resumed, r.queue...)
	r.mu.Unlock()
	if err := r.put(ctx, gone); err != nil {
		return len(resumed), err
	}
	if len(resumed) > 0 {
		r.log.Info("alerting: resumed pending notifications from the outbox", "count", len(resumed))
	}
	return len(resumed), nil
}

// Run delivers the outbox until ctx ends: each time Notify records
// something and each time a retry falls due. While it runs, Notify only
// records and wakes it.
func (r *Router) Run(ctx context.Context) error {
	r.running.Store(true)
	defer r.running.Store(false)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-t.C:
		}
		if err := r.Dispatch(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("alerting: notifications not delivered (see notification_outbox)", "err", err)
		}
		t.Reset(r.untilDue())
	}
}

// signal wakes Run without blocking.
func (r *Router) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// untilDue is how long Run may sleep: until the earliest entry falls due
// or expires, a few seconds while some are not recorded yet, at most a
// minute.
func (r *Router) untilDue() time.Duration {
	now := r.now()
	wait := time.Minute
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.queue {
		if !e.stored {
			wait = min(wait, 5*time.Second)
			continue
		}
		wait = min(wait, e.NextAt.Sub(now), e.Expires.Sub(now))
	}
	return max(wait, 10*time.Millisecond)
}
