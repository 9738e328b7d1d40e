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
	"slices"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/analytics/health"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Windower folds agent batches, in time order, into one health.Input per
// window: per GPU and metric the mean, maximum and counter increase of the
// samples without a link label, the GPU events, and the GPUs whose
// heartbeat metric stopped.
type Windower struct {
	interval  time.Duration
	heartbeat string
	lostAfter time.Duration

	cur      fleet.Window
	acc      map[[2]string]*agg
	order    [][2]string
	events   []health.Event
	prev     map[seriesKey]float64
	lastBeat map[string]time.Time
	gpus     map[string]health.GPU
}

type agg struct {
	gpu             health.GPU
	sum, max, delta float64
	n               int
}

type seriesKey struct {
	uuid, metric, rank string
}

// NewWindower returns a windower for the detector's configuration.
func NewWindower(cfg health.Config) *Windower {
	return &Windower{interval: cfg.Interval, heartbeat: cfg.Heartbeat, lostAfter: cfg.LostAfter,
		acc: map[[2]string]*agg{}, prev: map[seriesKey]float64{}, lastBeat: map[string]time.Time{}, gpus: map[string]health.GPU{}}
}

// Add folds b in and returns the windows it completed (b is in a later
// window than the batches before it).
func (w *Windower) Add(b *record.Batch) []*health.Input {
	var done []*health.Input
	win := fleet.Align(b.Time, w.interval)
	for !w.cur.IsZero() && !win.Start.Before(w.cur.End) {
		done = append(done, w.Flush())
	}
	if w.cur.IsZero() {
		w.cur = win
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
			w.lastBeat[g.UUID] = b.Time
			w.gpus[g.UUID] = g
		}
		delta := 0.0
		if f.Kind == telemetry.Counter {
			k := seriesKey{g.UUID, f.Name, rank}
			if p, ok := w.prev[k]; ok {
				delta = s.Value - p
				if delta < 0 { // reset
					delta = s.Value
				}
			}
			w.prev[k] = s.Value
		}
		key := [2]string{g.UUID, f.Name}
		a := w.acc[key]
		if a == nil {
			a = &agg{gpu: g, max: s.Value}
			w.acc[key] = a
			w.order = append(w.order, key)
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
			w.events = append(w.events, health.Event{Time: e.Time.UTC().Truncate(time.Second), Kind: e.Kind, Code: e.Code,
				Count: max(e.Count, 1), Message: e.Message, GPU: ident(e.GPU)})
		}
	}
	return done
}

// Flush returns the current window's input and moves to the next window.
func (w *Windower) Flush() *health.Input {
	in := &health.Input{Window: w.cur}
	for _, k := range w.order {
		a := w.acc[k]
		in.Rows = append(in.Rows, health.Row{GPU: a.gpu, Metric: k[1], Mean: a.sum / float64(a.n), Max: a.max, Delta: a.delta, Samples: a.n})
	}
	for uuid, t := range w.lastBeat {
		if t.Before(w.cur.Start) && !t.Before(w.cur.Start.Add(-w.lostAfter)) {
			in.Missing = append(in.Missing, w.gpus[uuid])
		}
	}
	in.Events = w.events
	clear(w.acc)
	w.order, w.events = w.order[:0], nil
	w.cur = fleet.Window{Start: w.cur.End, End: w.cur.End.Add(w.interval)}
	return in
}
