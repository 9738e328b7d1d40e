package engine

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
)

// DetectionTable is the sink that writes every detection to the shared
// detections table, with the evaluation that raised it (its source: the
// engine detector's name, a share's under analyzers sharing the fleet).
// Rows are identified by (class, key, ts), so a window written again after
// a crash collapses into the rows already there.
type DetectionTable struct {
	w *storage.Writer
	b storage.DetectionBlock
	// mu guards b: Run evaluates detectors concurrently.
	mu sync.Mutex
}

// NewDetectionTable returns a sink writing through w.
func NewDetectionTable(w *storage.Writer) *DetectionTable { return &DetectionTable{w: w} }

// Consume implements Sink.
func (s *DetectionTable) Consume(ctx context.Context, ev fleet.Evaluation) error {
	if len(ev.Detections) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
	for i := range ev.Detections {
		s.b.Append(&ev.Detections[i], ev.Detector)
	}
	return s.w.Write(ctx, s.b.Block())
}

// Stats is a snapshot of the engine's counters, per detector.
type Stats map[string]DetectorStats

// DetectorStats counts one detector's windows.
type DetectorStats struct {
	Evaluated  uint64
	Detections uint64
	// Failures counts failed attempts (each retried or, at last, skipped).
	Failures uint64
	// Skipped counts windows not evaluated, by reason: behind (downtime
	// beyond max_catch_up) or failed (max_attempts reached).
	Skipped       map[string]uint64
	LastWindowEnd time.Time
	LastDuration  time.Duration
}

type statsSet struct {
	mu sync.Mutex
	m  map[string]*DetectorStats
}

func (s *statsSet) add(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*DetectorStats{}
	}
	if s.m[name] == nil { // a detector added again keeps its counts
		s.m[name] = &DetectorStats{Skipped: map[string]uint64{}}
	}
}

func (s *statsSet) ok(name string, w fleet.Window, dets int, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.m[name]
	st.Evaluated++
	st.Detections += uint64(dets)
	st.LastWindowEnd, st.LastDuration = w.End, d
}

func (s *statsSet) fail(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[name].Failures++
}

func (s *statsSet) skip(name, reason string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[name].Skipped[reason] += uint64(n)
}

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats {
	e.stats.mu.Lock()
	defer e.stats.mu.Unlock()
	out := Stats{}
	for name, sp := range e.stats.m {
		st := *sp
		st.Skipped = maps.Clone(st.Skipped)
		out[name] = st
	}
	return out
}
