package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// counter is a detector that fires one detection in every third window and
// remembers, as its "state", how many windows it has seen.
type counter struct {
	name     string
	interval time.Duration
	late     time.Duration
	mu       sync.Mutex
	windows  []fleet.Window
	restored []fleet.Window
	fail     func(w fleet.Window) error
}

func (c *counter) Name() string            { return c.name }
func (c *counter) Interval() time.Duration { return c.interval }

func (c *counter) Evaluate(_ context.Context, w fleet.Window) ([]fleet.Detection, error) {
	if c.fail != nil {
		if err := c.fail(w); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.windows = append(c.windows, w)
	if w.Start.Unix()/int64(c.interval/time.Second)%3 != 0 {
		return nil, nil
	}
	return []fleet.Detection{{Time: w.End, WindowStart: w.Start, Detector: c.name, Class: "test", Severity: "info",
		EntityType: "model", Entity: "m", Key: c.name + "/m", Value: 1, Summary: "every third window"}}, nil
}

func (c *counter) Restore(_ context.Context, last fleet.Window) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.restored = append(c.restored, last)
	return nil
}

// recorder is a sink that keeps every evaluation it was given.
type recorder struct {
	mu   sync.Mutex
	seen []string
	fail func(ev fleet.Evaluation) error
}

func (r *recorder) Consume(_ context.Context, ev fleet.Evaluation) error {
	if r.fail != nil {
		if err := r.fail(ev); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, fmt.Sprintf("%s %s %d", ev.Detector, ev.Window.End.Format("15:04"), len(ev.Detections)))
	return nil
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

func newEngine(t *testing.T, c *storage.Client, cfg engine.Config, clock engine.Clock, sinks ...fleet.Sink) *engine.Engine {
	t.Helper()
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	opts := []engine.Option{engine.WithClock(clock), engine.WithLogger(chtest.Logger(t)), engine.WithSink(engine.NewDetectionTable(w))}
	for _, s := range sinks {
		opts = append(opts, engine.WithSink(s))
	}
	e, err := engine.New(cfg, c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func testConfig() engine.Config {
	cfg := engine.NewDefaultConfig()
	cfg.Lateness = 2 * time.Minute
	cfg.StartAt = t0.Add(-time.Hour)
	cfg.RetryBackoff = time.Minute
	return cfg
}

func ends(ws []fleet.Window) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.End.Format("15:04")
	}
	return out
}

func count(t *testing.T, c *storage.Client, sql string) uint64 {
	t.Helper()
	var n uint64
	if err := c.QueryScalar(context.Background(), sql, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Windows are evaluated in order, once, only after their end plus the
// lateness allowance.
func TestStepEvaluatesCompleteWindowsInOrder(t *testing.T) {
	c := chtest.NewDB(t)
	clock := engine.NewManualClock(t0.Add(time.Minute))
	rec := &recorder{}
	e := newEngine(t, c, testConfig(), clock, rec)
	d := &counter{name: "counter", interval: 5 * time.Minute}
	if err := e.Add(d); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n, err := e.Step(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// From 11:00 up to the window ending 11:55: 11:55 + 2m < 12:01 but
	// 12:00 + 2m > 12:01.
	if n != 11 || ends(d.windows)[0] != "11:05" || ends(d.windows)[10] != "11:55" {
		t.Fatalf("evaluated %d: %v", n, ends(d.windows))
	}
	clock.Set(t0.Add(2*time.Minute - time.Second))
	if n, _ := e.Step(ctx); n != 0 {
		t.Fatalf("a window was evaluated before it was complete: %v", ends(d.windows))
	}
	clock.Set(t0.Add(2 * time.Minute))
	if n, _ := e.Step(ctx); n != 1 || ends(d.windows)[11] != "12:00" {
		t.Fatalf("window 12:00 at 12:02: %v", ends(d.windows))
	}
	for i := 1; i < len(d.windows); i++ {
		if d.windows[i].Start != d.windows[i-1].End {
			t.Fatalf("windows not contiguous: %v", d.windows)
		}
	}
	if got := len(rec.list()); got != 12 {
		t.Fatalf("sink saw %d evaluations", got)
	}
	// Every third window fired: 11:00–11:05 … ; 4 of these 12.
	db := c.Config().Database
	if n := count(t, c, "SELECT count() FROM "+db+".detections"); n != 4 {
		t.Fatalf("%d detections written", n)
	}
	if n := count(t, c, "SELECT count() FROM "+db+".analyzer_windows WHERE status = 'ok'"); n != 12 {
		t.Fatalf("%d windows recorded", n)
	}
	st := e.Stats()["counter"]
	if st.Evaluated != 12 || st.Detections != 4 || !st.LastWindowEnd.Equal(t0) {
		t.Fatalf("stats %+v", st)
	}
}

// A restart resumes after the last recorded window: no window is evaluated
// or delivered twice, and the detector restores its state as of the last
// window it evaluated.
func TestRestartResumesWithoutReraising(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	clock := engine.NewManualClock(t0)
	rec := &recorder{}
	first := &counter{name: "counter", interval: 5 * time.Minute}
	e1 := newEngine(t, c, testConfig(), clock, rec)
	_ = e1.Add(first)
	if _, err := e1.Step(ctx); err != nil {
		t.Fatal(err)
	}
	lastEnd := first.windows[len(first.windows)-1].End

	// The process stops; time passes; a new one starts on the same database.
	clock.Advance(20 * time.Minute)
	second := &counter{name: "counter", interval: 5 * time.Minute}
	e2 := newEngine(t, c, testConfig(), clock, rec)
	_ = e2.Add(second)
	if _, err := e2.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if len(second.restored) != 1 || !second.restored[0].End.Equal(lastEnd) {
		t.Fatalf("restored %v, want state as of %v", second.restored, lastEnd)
	}
	if second.windows[0].Start != lastEnd {
		t.Fatalf("second run started at %v, want %v", second.windows[0], lastEnd)
	}
	seen := rec.list()
	if len(slices.Compact(slices.Sorted(slices.Values(seen)))) != len(seen) {
		t.Fatalf("an evaluation was delivered twice: %v", seen)
	}
	db := c.Config().Database
	if dup := count(t, c, "SELECT count() FROM (SELECT key, ts FROM "+db+".detections GROUP BY key, ts HAVING count() > 1)"); dup != 0 {
		t.Fatalf("%d detections raised twice", dup)
	}
}

// When the process dies after a window's detections were written but before
// the window was recorded, the window comes again and its rows collapse
// into those already there.
func TestCrashMidWindowReplaysIdempotently(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	clock := engine.NewManualClock(t0)
	crash := errors.New("process killed")
	// The window 11:15–11:20 is one that fires (its start is a multiple of 15m).
	dying := &recorder{fail: func(ev fleet.Evaluation) error {
		if ev.Window.End.Equal(t0.Add(-40 * time.Minute)) {
			return crash
		}
		return nil
	}}
	first := &counter{name: "counter", interval: 5 * time.Minute}
	e1 := newEngine(t, c, testConfig(), clock, dying)
	_ = e1.Add(first)
	if _, err := e1.Step(ctx); !errors.Is(err, crash) {
		t.Fatalf("Step error %v, want the sink's", err)
	}
	if got := ends(first.windows); !slices.Equal(got, []string{"11:05", "11:10", "11:15", "11:20"}) {
		t.Fatalf("evaluated %v", got)
	}
	second := &counter{name: "counter", interval: 5 * time.Minute}
	e2 := newEngine(t, c, testConfig(), clock, &recorder{})
	_ = e2.Add(second)
	if _, err := e2.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if second.windows[0].End != t0.Add(-40*time.Minute) || !second.restored[0].End.Equal(t0.Add(-45*time.Minute)) {
		t.Fatalf("replay started at %v with state as of %v", second.windows[0], second.restored[0])
	}
	db := c.Config().Database
	if n := count(t, c, "SELECT count() FROM "+db+".detections FINAL WHERE ts = toDateTime("+fmt.Sprint(t0.Add(-40*time.Minute).Unix())+")"); n != 1 {
		t.Fatalf("window 11:20 has %d detections after the replay", n)
	}
}

// A window that keeps failing is retried after the backoff and, after
// max_attempts, skipped and recorded with its error; later windows go on.
func TestFailingWindowIsRetriedThenSkipped(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	clock := engine.NewManualClock(t0)
	cfg := testConfig()
	cfg.StartAt = t0.Add(-20 * time.Minute)
	cfg.MaxAttempts = 3
	bad := t0.Add(-10 * time.Minute)
	d := &counter{name: "flaky", interval: 5 * time.Minute, fail: func(w fleet.Window) error {
		if w.End.Equal(bad) {
			return errors.New("ClickHouse said no")
		}
		return nil
	}}
	e := newEngine(t, c, cfg, clock)
	_ = e.Add(d)
	for attempt := 1; attempt <= 3; attempt++ {
		_, err := e.Step(ctx)
		if err == nil || !strings.Contains(err.Error(), "ClickHouse said no") {
			t.Fatalf("attempt %d: error %v", attempt, err)
		}
		if attempt < 3 {
			if n, _ := e.Step(ctx); n != 0 {
				t.Fatalf("attempt %d retried before the backoff", attempt)
			}
		}
		clock.Advance(time.Minute)
	}
	if _, err := e.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ends(d.windows); !slices.Equal(got, []string{"11:45", "11:55", "12:00"}) {
		t.Fatalf("evaluated %v", got)
	}
	st := e.Stats()["flaky"]
	if st.Failures != 3 || st.Skipped["failed"] != 1 {
		t.Fatalf("stats %+v", st)
	}
	db := c.Config().Database
	if n := count(t, c, "SELECT count() FROM "+db+".analyzer_windows WHERE status = 'skipped' AND attempts = 3 AND error LIKE '%said no%'"); n != 1 {
		t.Fatalf("%d skipped windows recorded", n)
	}
}

// After downtime beyond max_catch_up the oldest windows are skipped, and
// the gap is recorded with its reason.
func TestCatchUpIsBoundedAndGapsAreRecorded(t *testing.T) {
	c := chtest.NewDB(t)
	clock := engine.NewManualClock(t0)
	cfg := testConfig()
	cfg.MaxCatchUp = 3
	d := &counter{name: "counter", interval: 5 * time.Minute}
	e := newEngine(t, c, cfg, clock)
	_ = e.Add(d)
	if _, err := e.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := ends(d.windows); !slices.Equal(got, []string{"11:45", "11:50", "11:55"}) {
		t.Fatalf("evaluated %v", got)
	}
	if st := e.Stats()["counter"]; st.Skipped["behind"] != 8 {
		t.Fatalf("stats %+v", st)
	}
	db := c.Config().Database
	var reason string
	if err := c.QueryScalar(context.Background(), "SELECT error FROM "+db+".analyzer_windows WHERE status = 'skipped'", &reason); err != nil || !strings.Contains(reason, "11 windows behind") {
		t.Fatalf("gap reason %q, %v", reason, err)
	}
}

type late struct{ counter }

func (l *late) Lateness() time.Duration { return time.Hour }

func TestLatenessOverride(t *testing.T) {
	c := chtest.NewDB(t)
	clock := engine.NewManualClock(t0)
	d := &late{counter{name: "labels", interval: 5 * time.Minute}}
	e := newEngine(t, c, testConfig(), clock)
	_ = e.Add(d)
	if n, err := e.Step(context.Background()); err != nil || n != 0 {
		t.Fatalf("evaluated %d windows an hour late: %v", n, err)
	}
	clock.Advance(10 * time.Minute)
	if n, _ := e.Step(context.Background()); n != 2 {
		t.Fatalf("evaluated %d windows", n)
	}
}

func TestAddRejectsBadDetectors(t *testing.T) {
	c := chtest.NewDB(t)
	e := newEngine(t, c, testConfig(), engine.NewManualClock(t0))
	if err := e.Add(&counter{name: "a", interval: 1500 * time.Millisecond}); err == nil {
		t.Error("fractional interval accepted")
	}
	_ = e.Add(&counter{name: "a", interval: time.Minute})
	if err := e.Add(&counter{name: "a", interval: time.Minute}); err == nil {
		t.Error("duplicate name accepted")
	}
	bad := engine.Config{Lateness: -1}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "lateness") || !strings.Contains(err.Error(), "max_attempts") {
		t.Errorf("Validate: %v", err)
	}
}

// Run evaluates detectors as the clock moves and returns when ctx ends.
func TestRunFollowsTheClock(t *testing.T) {
	c := chtest.NewDB(t)
	clock := engine.NewManualClock(t0)
	cfg := testConfig()
	cfg.StartAt = time.Time{}
	got := make(chan string, 100)
	sink := fleet.SinkFunc(func(_ context.Context, ev fleet.Evaluation) error {
		got <- ev.Detector + " " + ev.Window.End.Format("15:04:05")
		return nil
	})
	e := newEngine(t, c, cfg, clock, sink)
	_ = e.Add(&counter{name: "fast", interval: 30 * time.Second})
	_ = e.Add(&counter{name: "slow", interval: 5 * time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	want := map[string]bool{"fast 11:58:00": true, "slow 11:55:00": true}
	wait := func() {
		deadline := time.After(20 * time.Second)
		for len(want) > 0 {
			select {
			case s := <-got:
				delete(want, s)
			case <-deadline:
				t.Fatalf("still waiting for %v", want)
			case <-time.After(20 * time.Millisecond):
				clock.Advance(0) // let waiters due now fire
			}
		}
	}
	wait()
	// Both loops asleep before the clock moves: a loop that read the time
	// before the move would sleep a full interval past it.
	for deadline := time.Now().Add(20 * time.Second); clock.Waiting() < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d detector loops asleep, want 2", clock.Waiting())
		}
	}
	clock.Advance(30 * time.Second)
	want = map[string]bool{"fast 11:58:30": true}
	wait()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// late is a counter with its own lateness.
type lateCounter struct{ *counter }

func (l lateCounter) Lateness() time.Duration { return l.late }

// With an EndAt, a virtual clock that jumps from one NextDue to the next
// evaluates every window of [StartAt, EndAt) of every detector, in the
// order the wall clock would, and none after EndAt, however far the clock
// goes; then NextDue reports the run finished.
func TestVirtualClockStopsAtEnd(t *testing.T) {
	c := chtest.NewDB(t)
	cfg := testConfig()
	cfg.StartAt, cfg.EndAt = t0, t0.Add(10*time.Minute+15*time.Second)
	clock := engine.NewManualClock(cfg.StartAt)
	rec := &recorder{}
	e := newEngine(t, c, cfg, clock, rec)
	fast := &counter{name: "fast", interval: 30 * time.Second}
	slow := lateCounter{&counter{name: "slow", interval: 5 * time.Minute, late: time.Hour}}
	for _, d := range []fleet.Detector{fast, slow} {
		if err := e.Add(d); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	steps := 0
	for {
		if _, err := e.Step(ctx); err != nil {
			t.Fatal(err)
		}
		at, ok := e.NextDue()
		if !ok {
			break
		}
		if at.Before(clock.Now()) {
			t.Fatalf("next due %v is before the clock %v", at, clock.Now())
		}
		clock.Set(at)
		if steps++; steps > 100 {
			t.Fatal("the run does not end")
		}
	}
	if got := ends(fast.windows); len(got) != 20 || got[0] != "12:00" || got[19] != "12:10" {
		t.Errorf("fast windows %v, want 12:00:30 .. 12:10:00", got)
	}
	if got := ends(slow.windows); !slices.Equal(got, []string{"12:05", "12:10"}) {
		t.Errorf("slow windows %v, want 12:05 and 12:10 (an hour late, none after the end)", got)
	}
	// The slow detector's windows came after the fast one's of that time.
	seen := rec.list()
	if seen[len(seen)-1] != "slow 12:10 1" && seen[len(seen)-1] != "slow 12:10 0" {
		t.Errorf("last evaluation %q, want slow's 12:10 (an hour late)", seen[len(seen)-1])
	}
	clock.Set(t0.Add(48 * time.Hour))
	if n, err := e.Step(ctx); n != 0 || err != nil {
		t.Errorf("after the end: %d windows evaluated (%v)", n, err)
	}
	// Run returns by itself once every detector is done.
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the end")
	}
}
