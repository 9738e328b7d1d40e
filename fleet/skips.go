package fleet

import (
	"log/slog"
	"maps"
	"sync"
)

// SkipKey is a detector's rule and the reason it could not run.
type SkipKey struct{ Rule, Reason string }

// Skips counts, per rule and reason, how often a detector's rule could not
// run, and logs each rule and reason once, the first time it is counted:
// the detectors' fleetwatch_analyzer_*_rules_skipped_total counters. The
// zero value is ready; it is safe for concurrent use.
type Skips struct {
	mu sync.Mutex
	n  map[SkipKey]uint64
}

// Add counts n more skips of k; the first count of k logs msg at warning
// level on log with the rule, the reason and attrs.
func (s *Skips) Add(log *slog.Logger, msg string, k SkipKey, n uint64, attrs ...any) {
	if n == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[SkipKey]uint64{}
	}
	if _, seen := s.n[k]; !seen && log != nil {
		log.Warn(msg, append([]any{"rule", k.Rule, "reason", k.Reason}, attrs...)...)
	}
	s.n[k] += n
}

// Counts returns the totals so far, per rule and reason.
func (s *Skips) Counts() map[SkipKey]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.n)
}
