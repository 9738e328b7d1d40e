package chexporter

import (
	"sync"
	"time"
)

// seriesState remembers, per series, the recent points of a cumulative
// counter (to turn totals into increases) and when the series' gpu_series row
// was last written. It also maps the hash of a data point's raw identity
// (resource, metric name, attributes as sent) to its series, so that a known
// series costs one hash and one map lookup instead of parsing, sorting and
// hashing its labels again.
type seriesState struct {
	refresh time.Duration

	mu      sync.Mutex
	entries map[uint64]*seriesEntry // by series id
	raw     map[uint64]*seriesEntry // by raw identity hash
	swept   time.Time
}

// replayWindow is how many recent points per series keep their increase, so
// that a replayed point (a retried or re-delivered batch) is stored with the
// same delta as the first time.
const replayWindow = 4

type pastPoint struct {
	ts    int64
	delta float64
}

type seriesEntry struct {
	id        uint64
	truncated int // labels cut to max_label_length (counted per stored point)

	start   int64 // start time (ns) of the cumulative counter
	last    float64
	lastTS  int64
	hasLast bool
	recent  [replayWindow]pastPoint
	next    int // next slot of recent

	written  time.Time // when the gpu_series row was last written
	lastSeen time.Time
}

func newSeriesState(refresh time.Duration) *seriesState {
	return &seriesState{refresh: refresh, entries: map[uint64]*seriesEntry{}, raw: map[uint64]*seriesEntry{}}
}

func (s *seriesState) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// entry returns series id's state, creating it, marks it seen at now, and
// says whether its gpu_series row needs writing. raw, when not zero, becomes
// a shortcut to the entry.
func (s *seriesState) entry(id, raw uint64, now time.Time) (*seriesEntry, bool) {
	e, ok := s.entries[id]
	if !ok {
		e = &seriesEntry{id: id}
		s.entries[id] = e
	}
	if raw != 0 {
		s.raw[raw] = e
	}
	e.lastSeen = now
	due := e.written.IsZero() || now.Sub(e.written) >= s.refresh
	if due {
		e.written = now
	}
	return e, due
}

// cached returns the entry a raw identity hash was seen with, unless its
// gpu_series row is due for a refresh (the caller then takes the full path).
func (s *seriesState) cached(raw uint64, now time.Time) *seriesEntry {
	e := s.raw[raw]
	if e == nil || now.Sub(e.written) >= s.refresh {
		return nil
	}
	e.lastSeen = now
	return e
}

// delta is a cumulative counter's increase since the series' previous point
// at time ts (ns).
//
// A reset — a new start time, or a value below the last — counts the whole
// new value as increase. The first point a collector sees of a series counts
// none: what the counter held before is not known to have happened in this
// interval (GPU counters run since boot).
//
// A point at or before the latest one seen is a replay or a late arrival: a
// replay of one of the last replayWindow points gets the delta it got first;
// an older point gets 0, because the increase up to the latest point was
// already counted there. (Replays of whole failed writes are resolved before
// this, from the exporter's replay table.)
func (e *seriesEntry) delta(value float64, start, ts int64) float64 {
	if e.hasLast && ts <= e.lastTS {
		for _, p := range e.recent {
			if p.ts == ts {
				return p.delta
			}
		}
		return 0
	}
	var d float64
	switch {
	case !e.hasLast:
	case start != 0 && e.start != 0 && start != e.start:
		d = value // restarted
	case value < e.last:
		d = value // reset without a new start time
	default:
		d = value - e.last
	}
	e.last, e.hasLast, e.start, e.lastTS = value, true, start, ts
	e.recent[e.next] = pastPoint{ts: ts, delta: d}
	e.next = (e.next + 1) % replayWindow
	return d
}

// seen says whether ts is at or before the series' latest counter point.
func (e *seriesEntry) seen(ts int64) bool { return e.hasLast && ts <= e.lastTS }

// replayKey identifies one counter point.
type replayKey struct {
	series uint64
	ts     int64
}

type replayed struct {
	delta float64
	at    time.Time
}

// replayTable keeps the increases computed for counter points whose write
// failed. exporterhelper retries the same request later, and by then the
// series' state has moved past those points; the retry takes the increases
// from here, so that a retried write stores exactly the rows of the first
// attempt and ReplacingMergeTree folds any part of it that did land.
type replayTable map[replayKey]replayed

// take returns and forgets the increase kept for a point.
func (r replayTable) take(k replayKey) (float64, bool) {
	v, ok := r[k]
	if ok {
		delete(r, k)
	}
	return v.delta, ok
}

// keep remembers the increases of a failed write.
func (r replayTable) keep(points []countedPoint, now time.Time) {
	for _, p := range points {
		r[p.key] = replayed{delta: p.delta, at: now}
	}
}

// sweep forgets increases kept for longer than a day (their request was
// dropped as permanently failed, or the queue was lost).
func (r replayTable) sweep(now time.Time) {
	for k, v := range r {
		if now.Sub(v.at) > 24*time.Hour {
			delete(r, k)
		}
	}
}

// countedPoint is a counter point's increase, as computed in one push.
type countedPoint struct {
	key   replayKey
	delta float64
}

// sweep forgets series not seen for a day, at most once an hour, and says
// whether it ran.
func (s *seriesState) sweep(now time.Time) bool {
	if now.Sub(s.swept) < time.Hour {
		return false
	}
	s.swept = now
	for id, e := range s.entries {
		if now.Sub(e.lastSeen) > 24*time.Hour {
			delete(s.entries, id)
		}
	}
	for raw, e := range s.raw {
		if now.Sub(e.lastSeen) > 24*time.Hour {
			delete(s.raw, raw)
		}
	}
	return true
}
