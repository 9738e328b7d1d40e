package fleet

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// The analyzer's contracts: the window a detector evaluates, the detector
// itself and the sink that receives what it found. The engine
// (analytics/engine) schedules detectors and feeds sinks; alerting is a sink.

// Window is a clock-aligned, half-open interval [Start, End) in UTC.
type Window struct{ Start, End time.Time }

// IsZero reports whether w is the zero window.
func (w Window) IsZero() bool { return w.End.IsZero() }

func (w Window) String() string {
	return w.Start.UTC().Format(time.RFC3339) + "/" + w.End.UTC().Format(time.RFC3339)
}

// Align returns the window of length d that contains t. Windows are aligned
// to multiples of d in Unix time, so every process agrees on them.
func Align(t time.Time, d time.Duration) Window {
	s := t.Unix() - mod(t.Unix(), int64(d/time.Second))
	start := time.Unix(s, 0).UTC()
	return Window{Start: start, End: start.Add(d)}
}

func mod(a, b int64) int64 { return ((a % b) + b) % b }

// Detector is one analysis run on a schedule: the analyzer's engine
// (analytics/engine) evaluates it window by window. The drift, SPC,
// fleet-health and SLO detectors all implement it.
type Detector interface {
	// Name identifies the detector in the ledger; it must be stable across
	// restarts and unique in an engine.
	Name() string
	// Interval is the window length, a whole number of seconds: windows
	// are [k·Interval, (k+1)·Interval) in Unix time.
	Interval() time.Duration
	// Evaluate analyzes one complete window and returns the detections
	// that fired. Windows come in order, each once unless Evaluate failed
	// or the process stopped before the window was recorded; then the same
	// window comes again, and Evaluate must then write the same rows (the
	// tables de-duplicate them). Rows a detector writes itself (scores,
	// state) are written before it returns.
	Evaluate(ctx context.Context, w Window) ([]Detection, error)
}

// Restorer is implemented by detectors that keep state between windows
// (baselines, sequential statistics). Restore is called once, before the
// first Evaluate, with the last window the detector evaluated successfully
// (zero if none); the detector loads its state as of that window's end.
type Restorer interface {
	Restore(ctx context.Context, last Window) error
}

// LatenessOverride is implemented by detectors that need a different
// lateness allowance than the engine's, e.g. for labels that arrive hours
// after the prediction. Zero means the engine's allowance.
type LatenessOverride interface {
	Lateness() time.Duration
}

// Evaluation is what one detector found in one window. Detections may be
// empty: a quiet window is news too (an incident may resolve).
type Evaluation struct {
	Detector   string
	Window     Window
	Detections []Detection
}

// Sink receives each evaluation from the engine, per detector in window
// order. Sinks run in the order they were added; the window is recorded only
// after every sink returned nil, so a failing sink makes the engine retry the
// window and a sink may see an evaluation again after a crash. The Detections
// slice is the sink's to read until Consume returns; copy what you keep.
type Sink interface {
	Consume(ctx context.Context, ev Evaluation) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, ev Evaluation) error

// Consume implements Sink.
func (f SinkFunc) Consume(ctx context.Context, ev Evaluation) error { return f(ctx, ev) }

// Shares: several analyzers split a detector's work (issue 17). Each takes
// shares of it — the GPUs of some datacenters, some models — and evaluates
// each share as a detector of its own, named ShareName(detector, unit),
// with its own windows in the engine's ledger.

// ShareSep separates a detector's name from its share in the name the
// engine evaluates a share under (fleet_health@dc0of4).
const ShareSep = "@"

// ShareName is the name of one share (unit) of a detector's work.
func ShareName(detector, unit string) string { return detector + ShareSep + unit }

// BaseName returns the detector a share name belongs to: name itself for a
// detector that is not split.
func BaseName(name string) string {
	base, _, _ := strings.Cut(name, ShareSep)
	return base
}

// Shard is one of Of parts of a detector's work, chosen by hashing a key:
// the datacenters, or the models, whose name's cityHash64 (ClickHouse's
// function; storage/chsql renders it and its Go twin) modulo Of is Index.
// The zero Shard, and any with Of ≤ 1, is the whole work.
type Shard struct{ Index, Of int }

// All reports whether s is the whole work.
func (s Shard) All() bool { return s.Of <= 1 }

// String is "Index of Of" in a unit name's form ("0of4"); "" for All.
func (s Shard) String() string {
	if s.All() {
		return ""
	}
	return strconv.Itoa(s.Index) + "of" + strconv.Itoa(s.Of)
}
