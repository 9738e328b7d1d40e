package fleet

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// TestSkipsCountAndLogOnce: counts add up per rule and reason, each key is
// logged the first time only, and concurrent adds lose nothing.
func TestSkipsCountAndLogOnce(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	var s Skips
	if len(s.Counts()) != 0 {
		t.Fatalf("zero Skips counts %v", s.Counts())
	}
	a, b := SkipKey{"engagement", "no_outcomes"}, SkipKey{"accuracy", "no_labels"}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				s.Add(log, "rule cannot run", a, 1, "canary", "m v2")
				s.Add(log, "rule cannot run", b, 2)
			}
		})
	}
	wg.Wait()
	s.Add(log, "rule cannot run", a, 0) // nothing
	got := s.Counts()
	if got[a] != 800 || got[b] != 1600 || len(got) != 2 {
		t.Errorf("counts %v, want %v: 800, %v: 1600", got, a, b)
	}
	out := buf.String()
	if n := strings.Count(out, "reason=no_outcomes"); n != 1 {
		t.Errorf("no_outcomes logged %d times, want once:\n%s", n, out)
	}
	if n := strings.Count(out, "reason=no_labels"); n != 1 {
		t.Errorf("no_labels logged %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(out, "canary=\"m v2\"") {
		t.Errorf("log line lacks the caller's attributes:\n%s", out)
	}
	got[a] = 0
	if s.Counts()[a] != 800 {
		t.Error("Counts returned the live map, not a copy")
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
