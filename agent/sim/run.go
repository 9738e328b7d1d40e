package sim

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/nvmlsrc"
	"github.com/fleetwatch/fleetwatch/agent/record"
)

// Runner drives a scenario: each step advances the fleet, reads every node
// through the agent's NVML source over the mock, and adds training metrics
// and serving traffic.
type Runner struct {
	Scenario *Scenario
	Fleet    *Fleet
	Serving  *Serving
	sources  []*nvmlsrc.Source
	noise    *noise
	last     time.Time
	log      *slog.Logger
	// summarised is set once the fields the GPUs lack have been logged.
	summarised bool
}

// New builds the fleet and opens one NVML source per simulated node.
func New(sc *Scenario, log *slog.Logger) (*Runner, error) {
	if log == nil {
		log = slog.Default()
	}
	fl := NewFleet(sc)
	r := &Runner{Scenario: sc, Fleet: fl, Serving: NewServing(sc, fl), noise: newNoise(sc, fl.Nodes), last: sc.Start, log: log}
	cfg := nvmlsrc.NewDefaultConfig()
	cfg.Interval = sc.Interval
	for _, n := range fl.Nodes {
		src, err := nvmlsrc.New(fl.NVML(n), cfg, &n.Resource, fl, log.With("node", n.Name))
		if err != nil {
			return nil, err
		}
		if err := src.Open(); err != nil {
			return nil, fmt.Errorf("simulated node %s: %w", n.Name, err)
		}
		r.sources = append(r.sources, src)
	}
	return r, nil
}

// Close releases the NVML sources.
func (r *Runner) Close() {
	for _, s := range r.sources {
		s.Close()
	}
}

// Step simulates up to t and returns the batches the agent would collect.
func (r *Runner) Step(t time.Time) []*record.Batch {
	dt := t.Sub(r.last)
	if dt <= 0 {
		dt = r.Scenario.Interval
	}
	r.last = t
	r.Fleet.Advance(t)
	out := make([]*record.Batch, 0, 2*len(r.sources)+len(r.Scenario.Models))
	for i, src := range r.sources {
		b := src.Collect(t)
		b.Events = append(b.Events, src.WaitEvents(t, 0)...)
		out = append(out, b)
		if len(r.Scenario.Jobs) > 0 {
			if tb := r.Fleet.TrainingBatch(r.Fleet.Nodes[i], t); len(tb.Samples) > 0 {
				out = append(out, tb)
			}
		}
	}
	if !r.summarised {
		r.summarised = true
		nvmlsrc.LogUnsupported(r.log, r.Unsupported())
	}
	if !r.noise.quiet() {
		out = r.noise.apply(t, dt, out)
	}
	return append(out, r.Serving.Batch(t, dt)...)
}

// Noise says what the scenario's noise did to the telemetry so far.
func (r *Runner) Noise() NoiseStats { return r.noise.stats }

// Unsupported returns, per field, how many simulated GPUs do not support it.
func (r *Runner) Unsupported() map[string]int {
	out := map[string]int{}
	for _, s := range r.sources {
		for f, n := range s.Unsupported() {
			out[f] += n
		}
	}
	return out
}

// Run steps through the scenario, handing every batch to sink. With
// realtime it keeps pace with the wall clock (the demo); otherwise it runs as
// fast as it can (tests, scoring, benchmarks). A zero duration runs until ctx
// ends.
func (r *Runner) Run(ctx context.Context, sink record.Sink, realtime bool) error {
	sc := r.Scenario
	wallStart := time.Now()
	for t := sc.Start.Add(sc.Interval); sc.Duration == 0 || !t.After(sc.Start.Add(sc.Duration)); t = t.Add(sc.Interval) {
		if realtime {
			wait := time.Until(wallStart.Add(t.Sub(sc.Start)))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		} else if ctx.Err() != nil {
			return nil
		}
		for _, b := range r.Step(t) {
			sink.Put(b)
		}
	}
	return nil
}

// Source adapts a Runner to the agent's Source interface.
type Source struct {
	Runner   *Runner
	Realtime bool
}

// Name is "sim".
func (s Source) Name() string { return "sim" }

// Unsupported returns, per field, how many simulated GPUs do not support it.
func (s Source) Unsupported() map[string]int { return s.Runner.Unsupported() }

// Run runs the scenario into sink.
func (s Source) Run(ctx context.Context, sink record.Sink) error {
	return s.Runner.Run(ctx, sink, s.Realtime)
}
