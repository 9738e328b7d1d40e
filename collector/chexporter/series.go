package chexporter

import (
	"sync"
	"time"
)

// seriesState remembers, per series, when the series' gpu_series row was
// last written (the receive side; counters' last points are the drain
// loop's, in pointStates). It also maps the hash of a data point's raw identity
// (resource, metric name, attributes as sent) to its series, so that a known
// series costs one hash and one map lookup instead of parsing, sorting and
// hashing its labels again.
type seriesState struct {
	refresh time.Duration

	mu      sync.Mutex
	entries map[uint64]*seriesEntry // by series id
	raw     map[uint64]*seriesEntry // by raw identity hash
	// hints are, by resource key (rawKey of its attributes), the raw
	// identities and series of the resource's last request's gauge and sum
	// points in the order sent. A sender repeats its points in the same
	// order, so the next request's point at the same position is checked
	// against the hint first: one map lookup per resource instead of one
	// per point, in a map of every series in the fleet where each lookup
	// misses the CPU's caches (≈ 15 % of the collector's CPU before).
	hints map[uint64][]rawHint
	swept time.Time
}

// rawHint is one position of a resource's hints.
type rawHint struct {
	raw uint64
	se  *seriesEntry
}

type seriesEntry struct {
	id        uint64
	truncated int // labels cut to max_label_length (counted per stored point)

	written  time.Time // when the gpu_series row was last written
	lastSeen time.Time
}

func newSeriesState(refresh time.Duration) *seriesState {
	return &seriesState{refresh: refresh, entries: map[uint64]*seriesEntry{}, raw: map[uint64]*seriesEntry{}, hints: map[uint64][]rawHint{}}
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

// hinted returns the series of res's next point when its position in
// res's last request held the same raw identity, under cached's
// conditions; nil sends the caller to cached.
func (s *seriesState) hinted(res *resource, raw uint64, now time.Time) *seriesEntry {
	if res.ord >= len(res.hints) {
		return nil
	}
	h := res.hints[res.ord]
	if h.raw != raw || h.se == nil || now.Sub(h.se.written) >= s.refresh {
		return nil
	}
	h.se.lastSeen = now
	return h.se
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
	// Hints may name forgotten entries: start them again.
	clear(s.hints)
	return true
}
