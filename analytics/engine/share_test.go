package engine_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// A share of a detector's work moves from one engine to another (analyzers
// sharing the fleet): each resumes after the last window recorded for the
// share — the first after the whole detector's last window, from before
// the fleet was shared — so the windows are contiguous, none twice.
func TestShareResumesWhereItsLastEvaluatorStopped(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	clock := engine.NewManualClock(t0)
	whole := &counter{name: "counter", interval: 5 * time.Minute}
	e0 := newEngine(t, c, testConfig(), clock)
	_ = e0.Add(whole)
	if _, err := e0.Step(ctx); err != nil {
		t.Fatal(err)
	}
	var all []fleet.Window
	all = append(all, whole.windows...)
	for i, eng := range []string{"a", "b", "a"} {
		clock.Advance(20 * time.Minute)
		d := &counter{name: "counter", interval: 5 * time.Minute}
		e := newEngine(t, c, testConfig(), clock)
		if err := e.Add(engine.Share(d, "u0")); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Step(ctx); err != nil {
			t.Fatal(err)
		}
		if len(d.windows) != 4 {
			t.Fatalf("turn %d (engine %s): %d windows %v, want the 4 since the last turn", i, eng, len(d.windows), ends(d.windows))
		}
		if got, want := d.restored[0].End, all[len(all)-1].End; !got.Equal(want) {
			t.Errorf("turn %d: state restored as of %v, want %v", i, got, want)
		}
		all = append(all, d.windows...)
		if st := e.Stats()["counter@u0"]; st.Evaluated != 4 {
			t.Errorf("turn %d: stats %+v under the share's name", i, st)
		}
	}
	for i := 1; i < len(all); i++ {
		if all[i].Start != all[i-1].End {
			t.Fatalf("windows not contiguous across engines: %v", ends(all))
		}
	}

	// A second share lags one window behind u0; back to one analyzer, the
	// whole detector resumes after the earlier of the shares' last windows,
	// so that no share misses one.
	lag := &counter{name: "counter", interval: 5 * time.Minute}
	e := newEngine(t, c, testConfig(), clock)
	_ = e.Add(engine.Share(lag, "u1"))
	clock.Advance(-5 * time.Minute)
	if _, err := e.Step(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(5 * time.Minute)
	back := &counter{name: "counter", interval: 5 * time.Minute}
	e = newEngine(t, c, testConfig(), clock)
	_ = e.Add(back)
	if _, err := e.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := ends(back.windows), []string{ends(all)[len(all)-1]}; !slices.Equal(got, want) {
		t.Errorf("whole detector after shares at %s and %s evaluated %v, want %v",
			ends(all)[len(all)-1], ends(lag.windows)[len(lag.windows)-1], got, want)
	}
}

// stepped waits until f holds, letting the clock's due waiters fire.
func stepped(t *testing.T, clock *engine.ManualClock, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		clock.Advance(0)
		time.Sleep(10 * time.Millisecond)
	}
}

// With WithDynamic, detectors join and leave a running engine: Remove
// stops one after its window in flight, Add starts one at once, and a
// share added again resumes after its last window with its counters kept.
func TestDynamicEngineAddsAndRemovesWhileRunning(t *testing.T) {
	c := chtest.NewDB(t)
	clock := engine.NewManualClock(t0)
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.StartAt = t0.Add(-30 * time.Minute)
	e, err := engine.New(cfg, c, engine.WithClock(clock), engine.WithLogger(chtest.Logger(t)),
		engine.WithSink(engine.NewDetectionTable(w)), engine.WithDynamic())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	first := &counter{name: "counter", interval: 5 * time.Minute}
	if err := e.Add(engine.Share(first, "u1")); err != nil {
		t.Fatal(err)
	}
	n := func(d *counter) int {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.windows)
	}
	stepped(t, clock, func() bool { return e.Stats()["counter@u1"].Evaluated == 5 }) // 11:35 … 11:55
	if err := e.Remove(context.Background(), "counter@u1"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * time.Minute)
	time.Sleep(50 * time.Millisecond)
	if got := n(first); got != 5 {
		t.Fatalf("a removed detector evaluated %d windows", got)
	}
	if slices.Contains(e.Detectors(), "counter@u1") {
		t.Fatal("removed detector still listed")
	}
	second := &counter{name: "counter", interval: 5 * time.Minute}
	if err := e.Add(engine.Share(second, "u1")); err != nil {
		t.Fatal(err)
	}
	// 12:00 and 12:05; the counters go on from the first time's five.
	stepped(t, clock, func() bool { return e.Stats()["counter@u1"].Evaluated == 7 })
	if got := ends(second.windows); got[0] != "12:00" || got[1] != "12:05" {
		t.Fatalf("re-added share evaluated %v, want 12:00 and 12:05", got)
	}
	if err := e.Remove(context.Background(), "nope"); err == nil {
		t.Error("removing an unknown detector succeeded")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// primer records what a feed primed it with, then every evaluation.
type primer struct {
	recorder
	mu     sync.Mutex
	primed []string
}

func (p *primer) Prime(_ context.Context, evs []fleet.Evaluation) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ev := range evs {
		p.primed = append(p.primed, ev.Detector+" "+ev.Window.End.Format("15:04")+" "+string(rune('0'+len(ev.Detections))))
	}
	return nil
}

// Two engines evaluate two shares; a feed hands a sink every evaluated
// window of both, in window order, once, with the detections it raised —
// a window written twice still has its detections once. A second feed (the
// next alerting owner) is primed with each share's last consumed
// evaluation and goes on from there: nothing twice, nothing missed.
func TestFeedHandsEveryShareWindowOverOnce(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	clock := engine.NewManualClock(t0)
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	table := engine.NewDetectionTable(w)
	var engines []*engine.Engine
	for _, unit := range []string{"u0", "u1"} {
		cfg := testConfig()
		cfg.StartAt = t0.Add(-30 * time.Minute)
		e := newEngine(t, c, cfg, clock)
		if err := e.Add(engine.Share(&counter{name: "counter", interval: 5 * time.Minute}, unit)); err != nil {
			t.Fatal(err)
		}
		engines = append(engines, e)
	}
	step := func() {
		for _, e := range engines {
			if _, err := e.Step(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	step() // 11:35 … 11:55 for both
	// A window written again (a replay): its rows are there twice until
	// ClickHouse merges them.
	replay := fleet.Evaluation{Detector: "counter@u0", Window: fleet.Window{Start: t0.Add(-15 * time.Minute), End: t0.Add(-10 * time.Minute)},
		Detections: []fleet.Detection{{Time: t0.Add(-10 * time.Minute), WindowStart: t0.Add(-15 * time.Minute), Detector: "counter", Class: "test",
			Severity: "info", EntityType: "model", Entity: "m", Key: "counter/m", Value: 1, Summary: "every third window"}}}
	if err := table.Consume(ctx, replay); err != nil {
		t.Fatal(err)
	}

	rec := &recorder{}
	f1, err := engine.NewFeed(engine.FeedConfig{Consumer: "alerting"}, c, rec, clock, chtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := f1.Step(ctx); err != nil || n != 10 {
		t.Fatalf("first step: %d, %v", n, err)
	}
	want := []string{
		"counter@u0 11:35 1", "counter@u1 11:35 1", "counter@u0 11:40 0", "counter@u1 11:40 0",
		"counter@u0 11:45 0", "counter@u1 11:45 0", "counter@u0 11:50 1", "counter@u1 11:50 1",
		"counter@u0 11:55 0", "counter@u1 11:55 0",
	}
	if got := rec.list(); !slices.Equal(got, want) {
		t.Fatalf("feed handed over\n%v\nwant\n%v", got, want)
	}
	if n, err := f1.Step(ctx); err != nil || n != 0 {
		t.Fatalf("a step with nothing new handed over %d (%v)", n, err)
	}
	clock.Advance(10 * time.Minute)
	step() // 12:00, 12:05
	if n, err := f1.Step(ctx); err != nil || n != 4 {
		t.Fatalf("step after two more windows: %d, %v", n, err)
	}

	// The next owner: primed with each share's last evaluation, then only
	// what is new.
	clock.Advance(5 * time.Minute)
	step() // 12:10
	p := &primer{}
	f2, err := engine.NewFeed(engine.FeedConfig{Consumer: "alerting"}, c, p, clock, chtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := f2.Step(ctx); err != nil || n != 2 {
		t.Fatalf("new owner's first step: %d, %v", n, err)
	}
	if want := []string{"counter@u0 12:05 1", "counter@u1 12:05 1"}; !slices.Equal(p.primed, want) {
		t.Errorf("primed with %v, want %v", p.primed, want)
	}
	if got, want := p.list(), []string{"counter@u0 12:10 0", "counter@u1 12:10 0"}; !slices.Equal(got, want) {
		t.Errorf("new owner consumed %v, want %v", got, want)
	}
	if f1.Consumed()+f2.Consumed() != 16 {
		t.Errorf("consumed %d + %d, want 16 evaluations in all", f1.Consumed(), f2.Consumed())
	}
	// A different consumer has cursors of its own.
	other := &recorder{}
	f3, _ := engine.NewFeed(engine.FeedConfig{Consumer: "audit"}, c, other, clock, chtest.Logger(t))
	if n, err := f3.Step(ctx); err != nil || n != 16 {
		t.Errorf("another consumer: %d, %v", n, err)
	}
	if _, err := engine.NewFeed(engine.FeedConfig{Consumer: "a>b"}, c, other, clock, nil); err == nil {
		t.Error("a consumer name with '>' was accepted")
	}
}
