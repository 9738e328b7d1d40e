// Package engine runs the analyzer's detectors on their schedules over
// ClickHouse: every detector evaluates complete, clock-aligned windows in
// order, hands what fired to the sinks (the detections table first, then
// in-process subscribers such as alerting), and records each window in the
// analyzer_windows ledger. A restart resumes after the last recorded window,
// so nothing completed is evaluated or raised twice, and stateful detectors
// restore their baselines as of that window.
//
// A window [Start, End) is complete once the clock passes End plus the
// lateness allowance, so late-arriving data is waited for, not missed. The
// clock is injected: tests evaluate days of windows in milliseconds with a
// ManualClock and Step.
//
// The contracts (fleet.Window, fleet.Detector, fleet.Sink) are the ground
// layer's, in package fleet, so that detectors and sinks in other stages
// (alerting) implement them without importing the engine.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
)

// Config tunes the engine.
type Config struct {
	// Lateness is how long after a window's end its data is considered
	// complete (default 2m).
	Lateness time.Duration `yaml:"lateness"`
	// MaxCatchUp is how many missed windows per detector are evaluated after
	// downtime; older ones are skipped and recorded as skipped (default 288).
	MaxCatchUp int `yaml:"max_catch_up"`
	// MaxAttempts is how often a failing window is tried before it is
	// skipped and recorded with its error (default 5).
	MaxAttempts int `yaml:"max_attempts"`
	// RetryBackoff is the wait between attempts (default 15s).
	RetryBackoff time.Duration `yaml:"retry_backoff"`
	// StartAt is where a detector with no ledger starts; zero means at the
	// latest complete window.
	StartAt time.Time `yaml:"start_at"`
	// EndAt, when set, ends the run: no window ending after it is evaluated,
	// however far the clock goes (backtests replay [StartAt, EndAt) with a
	// virtual clock). Zero means no end.
	EndAt time.Time `yaml:"-"`
	// ShutdownGrace is how long Run lets evaluations in flight finish
	// after its context ends (default 30s); they are canceled after that,
	// and their windows come again after a restart.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
}

// NewDefaultConfig returns the defaults.
func NewDefaultConfig() Config {
	return Config{Lateness: 2 * time.Minute, MaxCatchUp: 288, MaxAttempts: 5, RetryBackoff: 15 * time.Second, ShutdownGrace: 30 * time.Second}
}

// CheckSchedule reports the problems of a detector's name, interval and
// lateness override, for detectors' Validate methods.
func CheckSchedule(name string, interval, lateness time.Duration) []error {
	var errs []error
	if name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if interval < time.Second || interval%time.Second != 0 {
		errs = append(errs, fmt.Errorf("interval: %v, want whole seconds >= 1s", interval))
	}
	if lateness < 0 {
		errs = append(errs, fmt.Errorf("lateness: %v is negative", lateness))
	}
	return errs
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Lateness < 0 {
		errs = append(errs, fmt.Errorf("lateness: %v is negative", c.Lateness))
	}
	if c.MaxCatchUp < 1 {
		errs = append(errs, fmt.Errorf("max_catch_up: %d, want at least 1", c.MaxCatchUp))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max_attempts: %d, want at least 1", c.MaxAttempts))
	}
	if c.RetryBackoff <= 0 {
		errs = append(errs, fmt.Errorf("retry_backoff: %v must be positive", c.RetryBackoff))
	}
	if c.ShutdownGrace < 0 {
		errs = append(errs, fmt.Errorf("shutdown_grace: %v is negative", c.ShutdownGrace))
	}
	if !c.EndAt.IsZero() && !c.StartAt.IsZero() && !c.EndAt.After(c.StartAt) {
		errs = append(errs, fmt.Errorf("end %v is not after start_at %v", c.EndAt, c.StartAt))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid engine config: %w", err)
	}
	return nil
}

// Engine schedules detectors. Build it with New, Add detectors, then call
// Run (or Step, for tests and one-shot runs; not both at once). With
// WithDynamic, detectors are added and removed while Run runs (analyzers
// sharing the fleet take and hand over shares of the work).
type Engine struct {
	cfg     Config
	ledger  *ledger
	clock   Clock
	log     *slog.Logger
	sinks   []fleet.Sink
	dynamic bool
	stats   statsSet

	// mu guards dets and run.
	mu   sync.Mutex
	dets []*entry
	run  *running // while Run runs
}

// running is what Run shares with the detectors' loops it started.
type running struct {
	stop, work context.Context
	wg         sync.WaitGroup
}

type entry struct {
	mu       sync.Mutex
	d        fleet.Detector
	late     time.Duration
	next     fleet.Window
	started  bool
	attempts int
	retryAt  time.Time
	lastErr  error
	// halt ends the detector's loop between windows, abort cancels its
	// evaluation in flight, done closes when the loop returned; set while
	// Run runs it.
	halt, abort context.CancelFunc
	done        chan struct{}
}

// Option adjusts New.
type Option func(*Engine)

// WithClock sets the clock (default the system clock).
func WithClock(c Clock) Option { return func(e *Engine) { e.clock = c } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// WithSink adds a sink after those added before.
func WithSink(s fleet.Sink) Option { return func(e *Engine) { e.sinks = append(e.sinks, s) } }

// WithDynamic lets detectors come and go while Run runs (Add, Remove):
// Run then returns only when its context ends, and runs with none.
func WithDynamic() Option { return func(e *Engine) { e.dynamic = true } }

// New validates cfg and returns an engine recording its windows in client's
// analyzer_windows table.
func New(cfg Config, client *storage.Client, opts ...Option) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lg, err := newLedger(client)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, ledger: lg, clock: SystemClock{}, log: slog.Default()}
	for _, o := range opts {
		o(e)
	}
	return e, nil
}

// Add registers a detector. Its interval must be a positive whole number of
// seconds and its name unique. While Run runs (WithDynamic), the detector
// starts at once: it resumes after the last window the ledger holds for
// it (or for the detector it is a share of, whichever is later).
func (e *Engine) Add(d fleet.Detector) error {
	iv := d.Interval()
	if iv < time.Second || iv%time.Second != 0 {
		return fmt.Errorf("detector %s: interval %v must be a positive whole number of seconds", d.Name(), iv)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range e.dets {
		if x.d.Name() == d.Name() {
			return fmt.Errorf("detector %s added twice", d.Name())
		}
	}
	if e.run != nil && !e.dynamic {
		return fmt.Errorf("detector %s: added while the engine runs (WithDynamic allows it)", d.Name())
	}
	late := e.cfg.Lateness
	if lo, ok := d.(fleet.LatenessOverride); ok && lo.Lateness() > 0 {
		late = lo.Lateness()
	}
	en := &entry{d: d, late: late}
	e.dets = append(e.dets, en)
	e.stats.add(d.Name())
	if e.run != nil {
		e.startLoop(en)
	}
	return nil
}

// Remove stops and unregisters the detector named name: its loop stops
// after the window in flight, which may finish while ctx lasts and is
// canceled when ctx ends (its window comes again for whoever evaluates the
// detector next). It returns once nothing of it runs. Its counters stay.
func (e *Engine) Remove(ctx context.Context, name string) error {
	e.mu.Lock()
	i := slices.IndexFunc(e.dets, func(en *entry) bool { return en.d.Name() == name })
	if i < 0 {
		e.mu.Unlock()
		return fmt.Errorf("detector %s is not registered", name)
	}
	en := e.dets[i]
	e.dets = slices.Delete(e.dets, i, i+1)
	e.mu.Unlock()
	if en.done == nil {
		return nil
	}
	en.halt()
	select {
	case <-en.done:
	case <-ctx.Done():
		en.abort()
		<-en.done
	}
	en.abort()
	return nil
}

// entries returns the registered detectors now.
func (e *Engine) entries() []*entry {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.dets)
}

// Step evaluates, for every detector, each window that is complete now and
// not yet recorded, and returns how many it evaluated. Failed windows wait
// for the retry backoff; Step returns their errors joined.
func (e *Engine) Step(ctx context.Context) (int, error) {
	total := 0
	var errs []error
	for _, en := range e.entries() {
		n, err := e.stepDetector(ctx, ctx, en)
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// Run evaluates every detector on its schedule until ctx ends or, with an
// EndAt and without WithDynamic, until every detector has evaluated its
// windows up to it; each detector runs in its own goroutine so that a slow
// one never delays another. When ctx ends no new window starts;
// evaluations in flight get ShutdownGrace to finish. It returns nil once
// every detector has stopped.
func (e *Engine) Run(ctx context.Context) error {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	e.mu.Lock()
	if len(e.dets) == 0 && !e.dynamic {
		e.mu.Unlock()
		return errors.New("engine: no detectors")
	}
	r := &running{stop: ctx, work: work}
	e.run = r
	for _, en := range e.dets {
		e.startLoop(en)
	}
	e.mu.Unlock()
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			t := time.NewTimer(e.cfg.ShutdownGrace)
			defer t.Stop()
			select {
			case <-t.C:
				e.log.Warn("shutdown grace over; canceling evaluations in flight", "grace", e.cfg.ShutdownGrace)
				cancel()
			case <-stopped:
			}
		case <-stopped:
		}
	}()
	if e.dynamic {
		<-ctx.Done()
		e.mu.Lock()
		e.run = nil // from now on Add only registers
		e.mu.Unlock()
	}
	r.wg.Wait()
	e.mu.Lock()
	e.run = nil
	e.mu.Unlock()
	close(stopped)
	return nil
}

// startLoop runs en's loop under e.run; e.mu is held.
func (e *Engine) startLoop(en *entry) {
	r := e.run
	stop, halt := context.WithCancel(r.stop)
	work, abort := context.WithCancel(r.work)
	en.halt, en.abort, en.done = halt, abort, make(chan struct{})
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(en.done)
		defer halt()
		e.loop(stop, work, en)
	}()
}

func (e *Engine) loop(stop, work context.Context, en *entry) {
	for stop.Err() == nil {
		if _, err := e.stepDetector(stop, work, en); err != nil && stop.Err() == nil {
			e.log.Warn("detector step failed", "detector", en.d.Name(), "err", err)
		}
		en.mu.Lock()
		done := e.finished(en)
		en.mu.Unlock()
		if done {
			return // every window up to EndAt is evaluated
		}
		wait := e.untilDue(en)
		select {
		case <-stop.Done():
		case <-e.clock.After(wait):
		}
	}
}

// finished reports whether en has evaluated every window up to EndAt.
func (e *Engine) finished(en *entry) bool {
	return !e.cfg.EndAt.IsZero() && en.started && en.next.End.After(e.cfg.EndAt)
}

// NextDue returns the earliest clock time at which a detector has a window
// to evaluate (or retry), for a virtual clock that jumps from one due time
// to the next instead of waiting; a detector not started yet is due now.
// ok is false when every detector has finished its windows up to EndAt
// (never without an EndAt).
func (e *Engine) NextDue() (at time.Time, ok bool) {
	for _, en := range e.entries() {
		en.mu.Lock()
		due, done := en.next.End.Add(en.late), e.finished(en)
		if !en.started {
			due = e.clock.Now()
		}
		if en.retryAt.After(due) {
			due = en.retryAt
		}
		en.mu.Unlock()
		if !done && (!ok || due.Before(at)) {
			at, ok = due, true
		}
	}
	return at, ok
}

// untilDue is how long until en has something to do.
func (e *Engine) untilDue(en *entry) time.Duration {
	en.mu.Lock()
	defer en.mu.Unlock()
	now := e.clock.Now()
	due := en.next.End.Add(en.late)
	if !en.started {
		due = now.Add(e.cfg.RetryBackoff)
	}
	if en.retryAt.After(due) {
		due = en.retryAt
	}
	return max(due.Sub(now), 10*time.Millisecond)
}

// stepDetector evaluates en's due windows; stop ends the loop between
// windows, work is the context the evaluations run in.
func (e *Engine) stepDetector(stop, ctx context.Context, en *entry) (int, error) {
	en.mu.Lock()
	defer en.mu.Unlock()
	name := en.d.Name()
	if !en.started {
		if err := e.start(ctx, en); err != nil {
			return 0, fmt.Errorf("detector %s: start: %w", name, err)
		}
	}
	n := 0
	for stop.Err() == nil {
		now := e.clock.Now()
		if now.Before(en.retryAt) {
			return n, en.lastErr
		}
		latest := fleet.Align(now.Add(-en.late), en.d.Interval())
		latest = fleet.Window{Start: latest.Start.Add(-en.d.Interval()), End: latest.Start} // last complete window
		if en.next.End.After(latest.End) || e.finished(en) {
			return n, nil
		}
		if err := e.catchUp(ctx, en, latest, now); err != nil {
			return n, err
		}
		if err := e.evaluate(ctx, en, now); err != nil {
			return n, err
		}
		n++
	}
	return n, stop.Err()
}

// start reads the ledger, restores the detector's state and sets the first
// window to evaluate.
func (e *Engine) start(ctx context.Context, en *entry) error {
	iv := en.d.Interval()
	last, lastOK, err := e.ledger.last(ctx, en.d.Name(), iv)
	if err != nil {
		return err
	}
	if r, ok := en.d.(fleet.Restorer); ok {
		if err := r.Restore(ctx, lastOK); err != nil {
			return fmt.Errorf("restore state as of %v: %w", lastOK, err)
		}
	}
	switch {
	case !last.IsZero():
		w := fleet.Align(last.End, iv)
		if w.Start.Before(last.End) {
			w = fleet.Window{Start: w.End, End: w.End.Add(iv)}
		}
		en.next = w
	case !e.cfg.StartAt.IsZero():
		en.next = fleet.Align(e.cfg.StartAt, iv)
	default:
		cur := fleet.Align(e.clock.Now().Add(-en.late), iv)
		en.next = fleet.Window{Start: cur.Start.Add(-iv), End: cur.Start}
	}
	en.started = true
	e.log.Info("detector starting", "detector", en.d.Name(), "interval", iv, "lateness", en.late,
		"resume_after", last.End, "state_as_of", lastOK.End, "next_window", en.next)
	return nil
}

// catchUp skips windows beyond MaxCatchUp behind latest, recording the gap.
func (e *Engine) catchUp(ctx context.Context, en *entry, latest fleet.Window, now time.Time) error {
	iv := en.d.Interval()
	behind := int(latest.End.Sub(en.next.Start) / iv)
	if behind <= e.cfg.MaxCatchUp {
		return nil
	}
	newStart := latest.End.Add(-time.Duration(e.cfg.MaxCatchUp) * iv)
	gap := fleet.Window{Start: en.next.Start, End: newStart}
	reason := fmt.Sprintf("analyzer was %d windows behind; max_catch_up is %d", behind, e.cfg.MaxCatchUp)
	if err := e.ledger.record(ctx, en.d.Name(), gap, record{status: statusSkipped, err: reason, at: now}); err != nil {
		return err
	}
	skipped := behind - e.cfg.MaxCatchUp
	e.stats.skip(en.d.Name(), "behind", skipped)
	e.log.Warn("skipping windows", "detector", en.d.Name(), "windows", skipped, "from", gap.Start, "to", gap.End, "reason", reason)
	en.next = fleet.Window{Start: newStart, End: newStart.Add(iv)}
	return nil
}

// evaluate runs one window through the detector and the sinks and records
// it; on failure it schedules a retry or, after MaxAttempts, skips it.
func (e *Engine) evaluate(ctx context.Context, en *entry, now time.Time) error {
	name, w := en.d.Name(), en.next
	t0 := time.Now()
	dets, err := en.d.Evaluate(ctx, w)
	if err == nil {
		ev := fleet.Evaluation{Detector: name, Window: w, Detections: dets}
		for _, s := range e.sinks {
			if err = s.Consume(ctx, ev); err != nil {
				err = fmt.Errorf("sink: %w", err)
				break
			}
		}
	}
	dur := time.Since(t0)
	en.attempts++
	if err == nil {
		rec := record{status: statusOK, detections: len(dets), attempts: en.attempts, duration: dur, at: e.clock.Now()}
		if en.lastErr != nil {
			rec.err = en.lastErr.Error()
		}
		if err := e.ledger.record(ctx, name, w, rec); err != nil {
			en.retryAt, en.lastErr = now.Add(e.cfg.RetryBackoff), err
			return fmt.Errorf("detector %s: record window %v: %w", name, w, err)
		}
		e.stats.ok(name, w, len(dets), dur)
		e.log.Debug("window evaluated", "detector", name, "window", w, "detections", len(dets), "duration", dur)
		en.next, en.attempts, en.lastErr, en.retryAt = fleet.Window{Start: w.End, End: w.End.Add(w.End.Sub(w.Start))}, 0, nil, time.Time{}
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	e.stats.fail(name)
	en.lastErr = fmt.Errorf("detector %s: window %v (attempt %d of %d): %w", name, w, en.attempts, e.cfg.MaxAttempts, err)
	if en.attempts < e.cfg.MaxAttempts {
		en.retryAt = now.Add(e.cfg.RetryBackoff)
		e.log.Warn("window failed; will retry", "detector", name, "window", w, "attempt", en.attempts, "retry_in", e.cfg.RetryBackoff, "err", err)
		return en.lastErr
	}
	rec := record{status: statusSkipped, attempts: en.attempts, duration: dur, err: err.Error(), at: e.clock.Now()}
	if rerr := e.ledger.record(ctx, name, w, rec); rerr != nil {
		en.retryAt = now.Add(e.cfg.RetryBackoff)
		return errors.Join(en.lastErr, rerr)
	}
	e.stats.skip(name, "failed", 1)
	e.log.Error("window skipped after repeated failures", "detector", name, "window", w, "attempts", en.attempts, "err", err)
	failed := en.lastErr
	en.next, en.attempts, en.lastErr, en.retryAt = fleet.Window{Start: w.End, End: w.End.Add(w.End.Sub(w.Start))}, 0, nil, time.Time{}
	return failed
}

// Detectors lists the registered detectors' names.
func (e *Engine) Detectors() []string {
	dets := e.entries()
	out := make([]string, len(dets))
	for i, en := range dets {
		out[i] = en.d.Name()
	}
	return slices.Clip(out)
}
