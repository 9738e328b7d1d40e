package otlprecv

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// line is one warning as a test reads it.
type line struct {
	signal string
	total  int64
	counts map[string]int64
}

func lines(t *testing.T, logs *observer.ObservedLogs, unit string) []line {
	t.Helper()
	var out []line
	for _, e := range logs.TakeAll() {
		if e.Level != zapcore.WarnLevel {
			t.Errorf("logged at %v: %s", e.Level, e.Message)
		}
		f := e.ContextMap()
		l := line{signal: f["signal"].(string), total: f[unit].(int64), counts: map[string]int64{}}
		for r, n := range f["by_reason"].(map[string]int64) {
			l.counts[r] = n
		}
		out = append(out, l)
	}
	return out
}

func TestThrottleWritesOneLinePerSignalAndInterval(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	th := newThrottle(zap.New(core), "rejected", "items", 10*time.Second)
	now := time.Unix(1e9, 0)
	th.now = func() time.Time { return now }
	step := func(d time.Duration) { now = now.Add(d) }

	expect := func(what string, want ...line) {
		t.Helper()
		got := lines(t, logs, "items")
		if len(got) != len(want) {
			t.Fatalf("%s: %d lines %v, want %v", what, len(got), got, want)
		}
		for i := range want {
			if got[i].signal != want[i].signal || got[i].total != want[i].total || len(got[i].counts) != len(want[i].counts) {
				t.Fatalf("%s: line %d = %v, want %v", what, i, got[i], want[i])
			}
			for r, n := range want[i].counts {
				if got[i].counts[r] != n {
					t.Fatalf("%s: line %d = %v, want %v", what, i, got[i], want[i])
				}
			}
		}
	}

	th.add("metrics", map[string]int64{"non_finite": 2})
	expect("the first rejection", line{"metrics", 2, map[string]int64{"non_finite": 2}})
	for range 100 {
		step(50 * time.Millisecond)
		th.add("metrics", map[string]int64{"non_finite": 1, "filtered": 2})
	}
	th.add("logs", map[string]int64{"missing_model": 1})
	expect("100 more within the interval, and another signal", line{"logs", 1, map[string]int64{"missing_model": 1}})
	th.flush(false)
	expect("a flush within the interval")
	step(5 * time.Second)
	th.flush(false)
	expect("a flush once the interval has passed", line{"metrics", 300, map[string]int64{"non_finite": 100, "filtered": 200}})
	th.flush(false)
	expect("nothing new")
	step(time.Second)
	th.add("metrics", map[string]int64{"filtered": 1})
	expect("one more, 1s after the last line")
	th.flush(true)
	expect("the final flush", line{"metrics", 1, map[string]int64{"filtered": 1}})
}

// Many requests with rejections: one line when the first comes, the totals
// of the rest when the receiver stops; never a line per request.
func TestRejectionsAreLoggedThrottled(t *testing.T) {
	h := start(t, func(c *Config) { c.RejectionLogInterval = time.Hour })
	conn := h.dial(t)
	for range 20 {
		if _, _, err := testSignals[0].grpc(t.Context(), conn, mixed...); err != nil {
			t.Fatal(err)
		}
	}
	got := lines(t, h.logs, "items")
	if len(got) != 1 || got[0].total != 3 || got[0].signal != signalMetrics {
		t.Fatalf("after 20 requests: %v, want one line of 3 metrics items", got)
	}
	h.stop(t)
	got = lines(t, h.logs, "items")
	if len(got) != 1 || got[0].total != 57 || got[0].counts["non_finite"] != 38 || got[0].counts["timestamp_out_of_range"] != 19 {
		t.Fatalf("at shutdown: %v, want one line of 57 items (38 non_finite, 19 timestamp_out_of_range)", got)
	}
}
