// Package score runs the fleet simulator's scenarios through the
// fleet-health detector and scores what it raises against the scenario's
// ground truth: precision, recall, F1 and detection delay per fault type.
//
// Two paths feed the detector. In memory, a Windower folds the agent's
// batches into per-window inputs exactly as health.Source's SQL does, so a
// scenario set of hours runs in seconds. Through the real pipeline (the
// test TestPipelineThroughClickHouse), the same batches go through the
// agent's OTLP encoder and the collector's ClickHouse exporter into a
// private ClickHouse server, the detector reads them back with SQL, and
// its detections land in the detections table; the test checks that both
// paths raise the same detections.
package score

import (
	"maps"
	"slices"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/analytics/health"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Windower folds agent batches into one health.Input per window: per GPU
// and metric the mean, maximum and counter increase of the samples without
// a link label, the GPU events, and the GPUs whose heartbeat metric
// stopped. Batches come in the order they arrive, which may be out of time
// order (late batches): a window is complete, as the analyzer's engine
// evaluates it, once a batch Lateness past its end has arrived; a batch
// that arrives after that misses its window and is counted in Late.
type Windower struct {
	interval  time.Duration
	heartbeat string
	lostAfter time.Duration
	// Lateness is how long after a window's end its batches may still
	// arrive (0, the default: a window completes when a batch of a later
	// window arrives; the engine's default is 2 minutes).
	Lateness time.Duration
	// Late counts the batches that arrived after their window completed.
	Late int

	next fleet.Window // the oldest window not yet returned
	now  time.Time    // the latest batch time seen: the arrival clock
	open map[time.Time]*pending
	prev map[seriesKey]sample
	// lastBeat is each GPU's last heartbeat in a returned window.
	lastBeat map[string]time.Time
	gpus     map[string]health.GPU
}

// pending is one window's data so far.
type pending struct {
	acc    map[[2]string]*agg
	order  [][2]string
	events []health.Event
	beats  map[string]time.Time
}

type agg struct {
	gpu             health.GPU
	sum, max, delta float64
	n               int
}

type seriesKey struct {
	uuid, metric, rank string
}

type sample struct {
	t time.Time
	v float64
}

// NewWindower returns a windower for the detector's configuration.
func NewWindower(cfg health.Config) *Windower {
	return &Windower{interval: cfg.Interval, heartbeat: cfg.Heartbeat, lostAfter: cfg.LostAfter,
		open: map[time.Time]*pending{}, prev: map[seriesKey]sample{}, lastBeat: map[string]time.Time{}, gpus: map[string]health.GPU{}}
}

// Add folds b in and returns the windows that are complete now.
func (w *Windower) Add(b *record.Batch) []*health.Input {
	var done []*health.Input
	if b.Time.After(w.now) {
		w.now = b.Time
	}
	win := fleet.Align(b.Time, w.interval)
	if w.next.IsZero() {
		w.next = win
	}
	for !w.now.Before(w.next.End.Add(w.Lateness)) {
		done = append(done, w.Flush())
	}
	if win.Start.Before(w.next.Start) {
		w.Late++
		return done
	}
	p := w.open[win.Start]
	if p == nil {
		p = &pending{acc: map[[2]string]*agg{}, beats: map[string]time.Time{}}
		w.open[win.Start] = p
	}
	res := b.Resource
	ident := func(i int32) health.GPU {
		g := b.GPUs[i]
		return health.GPU{UUID: g.UUID, Model: g.ModelName, Index: g.Index, Job: g.Job,
			Topology: fleet.Topology{Datacenter: res.Datacenter, Row: res.Row, Rack: res.Rack, Node: res.Host, Cluster: res.Cluster}}
	}
	for i := range b.Samples {
		s := &b.Samples[i]
		if s.GPU < 0 || s.Link >= 0 || s.Field < 0 {
			continue
		}
		f := telemetry.Fields[s.Field]
		g := ident(s.GPU)
		var rank string
		for _, l := range s.Extra {
			if l.Key == telemetry.LabelRank {
				rank = l.Value
			}
		}
		g.Rank = rank
		if f.Name == w.heartbeat {
			if b.Time.After(p.beats[g.UUID]) {
				p.beats[g.UUID] = b.Time
			}
			w.gpus[g.UUID] = g
		}
		delta := 0.0
		if f.Kind == telemetry.Counter {
			// The increase since the series' previous sample in time; a
			// late sample adds nothing (the later one counted it).
			k := seriesKey{g.UUID, f.Name, rank}
			if p, ok := w.prev[k]; !ok || b.Time.After(p.t) {
				if ok {
					delta = s.Value - p.v
					if delta < 0 { // reset
						delta = s.Value
					}
				}
				w.prev[k] = sample{b.Time, s.Value}
			}
		}
		key := [2]string{g.UUID, f.Name}
		a := p.acc[key]
		if a == nil {
			a = &agg{gpu: g, max: s.Value}
			p.acc[key] = a
			p.order = append(p.order, key)
		}
		a.sum += s.Value
		a.max = max(a.max, s.Value)
		a.delta += delta
		a.n++
	}
	for i := range b.Events {
		e := &b.Events[i]
		if e.GPU < 0 {
			continue
		}
		if slices.Contains(health.HardFaultKinds, e.Kind) {
			p.events = append(p.events, health.Event{Time: e.Time.UTC().Truncate(time.Second), Kind: e.Kind, Code: e.Code,
				Count: max(e.Count, 1), Message: e.Message, GPU: ident(e.GPU)})
		}
	}
	return done
}

// Flush returns the oldest open window's input, complete or not, and
// moves on to the next window.
func (w *Windower) Flush() *health.Input {
	in := &health.Input{Window: w.next}
	p := w.open[w.next.Start]
	delete(w.open, w.next.Start)
	if p == nil {
		p = &pending{}
	}
	for _, k := range p.order {
		a := p.acc[k]
		in.Rows = append(in.Rows, health.Row{GPU: a.gpu, Metric: k[1], Mean: a.sum / float64(a.n), Max: a.max, Delta: a.delta, Samples: a.n})
	}
	for _, uuid := range slices.Sorted(maps.Keys(w.lastBeat)) {
		if _, beat := p.beats[uuid]; !beat && !w.lastBeat[uuid].Before(w.next.Start.Add(-w.lostAfter)) {
			in.Missing = append(in.Missing, w.gpus[uuid])
		}
	}
	for uuid, t := range p.beats {
		w.lastBeat[uuid] = t
	}
	in.Events = p.events
	w.next = fleet.Window{Start: w.next.End, End: w.next.End.Add(w.interval)}
	return in
}

// Rest returns the inputs of the open windows that end by end, in order,
// as if every late batch had arrived: the end of a run.
func (w *Windower) Rest(end time.Time) []*health.Input {
	var out []*health.Input
	for !w.next.IsZero() && !w.next.End.After(end) {
		out = append(out, w.Flush())
	}
	return out
}
