package health

import (
	"math"
	"slices"
	"time"

	"github.com/fleetwatch/fleetwatch/lib/kernels"
)

// Frame is one window in columns: Vals[signal][slot], NaN where a GPU did
// not report the signal. Slots are the detector's stable GPU numbering; a
// slot whose GPU did not report at all has Peer and Fleet −1.
type Frame struct {
	Vals [NumSignals][]float64
	// Peer is each slot's peer group: its job's GPUs, or without a job
	// the GPUs of its model on its node (else its rack, else its model);
	// Fleet its model group; −1 for none. A fault changes neither: load
	// is a covariate, not a group.
	Peer, Fleet []int32
	// Node and Rack are each slot's node and rack (per model; −1 when the
	// GPU has no node or rack label). NodeParent is, per node, the group
	// of nodes it is compared with (its rack); RackParent, per rack, the
	// racks of its datacenter. A node is compared with the nodes of its
	// rack, a rack with the racks of its datacenter: a fault of the level
	// above moves every peer alike and inflates no spread.
	Node, Rack             []int32
	NodeParent, RackParent []int32
	// NodeModel and RackModel are each node's and rack's model group
	// (Fleet's numbering); RackDC each rack's datacenter, whatever its
	// model (RackDCs of them): a rack without a rack of its model to
	// compare with is compared with the other racks of its datacenter.
	NodeModel, RackModel, RackDC []int32
	RackDCs                      int
	// Idle marks GPUs without a job whose load is under IdleLoad: their
	// activity and bandwidth are left out (NaN) of every comparison.
	Idle []bool
	// Unsteady marks GPUs whose load covariate (power, else load) moved
	// by more than a tenth of its model's peak since the last window: their
	// temperature lags the step, so it is not compared at equal load (NaN
	// temperature at load) in this window.
	Unsteady []bool
	// NoSlope marks GPUs whose temperature is not compared because their
	// model's slope is not known yet and their load is not its median.
	NoSlope []bool
	// PeerNames, FleetNames, NodeNames and RackNames name the groups;
	// NodeParents and RackParents count the parent groups.
	PeerNames, FleetNames, NodeNames, RackNames []string
	NodeParents, RackParents                    int
	// Seconds is the window's length, End its end.
	Seconds float64
	End     time.Time
}

// Resize sets the number of slots, filling every value with NaN and every
// group with −1.
func (f *Frame) Resize(slots int) {
	for s := range f.Vals {
		f.Vals[s] = resize(f.Vals[s], slots)
		for i := range f.Vals[s] {
			f.Vals[s][i] = math.NaN()
		}
	}
	f.Peer, f.Fleet, f.Node, f.Rack = resize(f.Peer, slots), resize(f.Fleet, slots), resize(f.Node, slots), resize(f.Rack, slots)
	f.Idle, f.Unsteady, f.NoSlope = resize(f.Idle, slots), resize(f.Unsteady, slots), resize(f.NoSlope, slots)
	for i := range f.Peer {
		f.Peer[i], f.Fleet[i], f.Node[i], f.Rack[i] = -1, -1, -1, -1
		f.Idle[i], f.Unsteady[i], f.NoSlope[i] = false, false, false
	}
	f.PeerNames, f.FleetNames, f.NodeNames, f.RackNames = f.PeerNames[:0], f.FleetNames[:0], f.NodeNames[:0], f.RackNames[:0]
	f.NodeParent, f.RackParent = f.NodeParent[:0], f.RackParent[:0]
	f.NodeModel, f.RackModel, f.RackDC = f.NodeModel[:0], f.RackModel[:0], f.RackDC[:0]
	f.NodeParents, f.RackParents, f.RackDCs = 0, 0, 0
}

// Slots is the number of slots.
func (f *Frame) Slots() int { return len(f.Peer) }

// activity are the signals that only mean something on a GPU at work:
// an idle GPU without a job is left out of their comparison.
var activity = [...]int{SigSMActive, SigTensorActive, SigDRAMActive, SigNVLinkBandwidth, SigPCIeBandwidth, SigLoad}

// slotTable numbers GPUs by UUID, stably across windows, and remembers
// their latest identity, and per model its peak power and the slope of
// temperature over load.
type slotTable struct {
	index map[string]int32
	gpus  []GPU
	// peakPower is, per model, the largest median power seen: power
	// against it is a load where nothing else reports one.
	peakPower map[string]float64
	// slope is, per model and covariate, the last well-determined slope
	// of temperature over the covariate (°C per W or per %).
	slope map[string]float64
	// slopes are, per model and covariate, the last slopeMemory windows'
	// estimates of the slope (by window end: the same window again
	// replaces its own).
	slopes map[string]*slopeRing
	// lastX and prevX are each slot's load covariate in the window ending
	// at lastEnd and in the window before it.
	lastX, prevX []float64
	lastEnd      time.Time
	rank         [NumSignals][]int8
	models       Grouping
	scratch      [4][]float64
}

func (t *slotTable) slot(g *GPU) int32 {
	if t.index == nil {
		t.index = map[string]int32{}
	}
	i, ok := t.index[g.UUID]
	if !ok {
		i = int32(len(t.gpus))
		t.index[g.UUID] = i
		t.gpus = append(t.gpus, GPU{UUID: g.UUID})
	}
	return i
}

// fill builds f from in's rows: the values per slot and signal, then the
// groups, then the derived columns. A GPU's identity is refreshed from its
// rows (job and rank fields only from this window, so a GPU that left its
// job leaves its group).
func (t *slotTable) fill(f *Frame, in *Input, cfg *Config, hot []uint8) {
	slots := make([]int32, len(in.Rows))
	fresh := map[int32]bool{}
	for i := range in.Rows {
		r := &in.Rows[i]
		s := t.slot(&r.GPU)
		slots[i] = s
		if !fresh[s] {
			fresh[s] = true
			t.gpus[s] = GPU{UUID: r.GPU.UUID}
		}
		t.gpus[s].merge(&r.GPU)
	}
	n := len(t.gpus)
	f.Resize(n)
	f.Seconds = in.Window.End.Sub(in.Window.Start).Seconds()
	f.End = in.Window.End
	for s := range t.rank {
		t.rank[s] = resize(t.rank[s], n)
		for i := range t.rank[s] {
			t.rank[s][i] = math.MaxInt8
		}
	}
	for i := range in.Rows {
		r := &in.Rows[i]
		src, ok := signalOf[r.Metric]
		if !ok || r.Samples == 0 {
			continue
		}
		sig := src.sig
		var v float64
		switch Signals[sig].Agg {
		case AggMean:
			v = r.Mean
		case AggDelta:
			v = r.Delta
		case AggMax:
			v = r.Max
		}
		v *= src.scale
		col, s, rank := f.Vals[sig], slots[i], t.rank[sig]
		switch {
		case int8(src.rank) > rank[s]: // a better source of the signal reported
		case int8(src.rank) < rank[s] || math.IsNaN(col[s]):
			col[s], rank[s] = v, int8(src.rank)
		case Signals[sig].Agg == AggMax:
			col[s] = max(col[s], v)
		default:
			col[s] += v
		}
	}
	t.group(f, fresh)
	t.derive(f, cfg, hot)
}

// group places every reporting GPU in its peer, model, node and rack
// groups.
func (t *slotTable) group(f *Frame, fresh map[int32]bool) {
	peers, fleets, nodes, racks := map[string]int32{}, map[string]int32{}, map[string]int32{}, map[string]int32{}
	nodeParents, rackParents, dcs := map[string]int32{}, map[string]int32{}, map[string]int32{}
	id := func(m map[string]int32, names *[]string, key string) int32 {
		i, ok := m[key]
		if !ok {
			i = int32(len(m))
			m[key] = i
			if names != nil {
				*names = append(*names, key)
			}
		}
		return i
	}
	for s := range int32(len(t.gpus)) {
		if !fresh[s] {
			continue
		}
		g := &t.gpus[s]
		model := "model=" + g.Model
		f.Fleet[s] = id(fleets, &f.FleetNames, model)
		rackPath := g.Datacenter + "/" + g.Row + "/" + g.Rack
		if g.Node != "" {
			f.Node[s] = id(nodes, &f.NodeNames, model+"/node="+rackPath+"/"+g.Node)
			if int(f.Node[s]) == len(f.NodeParent) {
				f.NodeParent = append(f.NodeParent, id(nodeParents, nil, model+"/rack="+rackPath))
				f.NodeModel = append(f.NodeModel, f.Fleet[s])
			}
		}
		if g.Rack != "" {
			f.Rack[s] = id(racks, &f.RackNames, model+"/rack="+rackPath)
			if int(f.Rack[s]) == len(f.RackParent) {
				f.RackParent = append(f.RackParent, id(rackParents, nil, model+"/dc="+g.Datacenter))
				f.RackModel = append(f.RackModel, f.Fleet[s])
				f.RackDC = append(f.RackDC, id(dcs, nil, g.Datacenter))
			}
		}
		var key string
		switch {
		case g.Job != "":
			key = "job=" + g.Job
		case g.Node != "":
			key = model + "/node=" + rackPath + "/" + g.Node
		case g.Rack != "":
			key = model + "/rack=" + rackPath
		default:
			key = model
		}
		f.Peer[s] = id(peers, &f.PeerNames, key)
	}
	f.NodeParents, f.RackParents, f.RackDCs = len(nodeParents), len(rackParents), len(dcs)
}

// derive computes the load and the temperature at load, and leaves idle
// GPUs without a job out of the activity columns.
func (t *slotTable) derive(f *Frame, cfg *Config, hot []uint8) {
	if t.peakPower == nil {
		t.peakPower, t.slope = map[string]float64{}, map[string]float64{}
	}
	t.models.Build(f.Fleet, len(f.FleetNames))
	power, load := f.Vals[SigPower], f.Vals[SigLoad]
	peak := make([]float64, len(f.FleetNames))
	for g, name := range f.FleetNames {
		if m := t.median(g, power, nil, 0); m > t.peakPower[name] {
			t.peakPower[name] = m
		}
		peak[g] = t.peakPower[name]
	}
	for s := range f.Peer {
		if f.Fleet[s] < 0 {
			continue
		}
		l := math.NaN()
		for _, v := range [...]float64{f.Vals[SigUtilization][s], 100 * f.Vals[SigSMActive][s], 100 * f.Vals[SigTensorActive][s]} {
			if !math.IsNaN(v) {
				l = max(v, nanTo(l, v))
			}
		}
		if p := peak[f.Fleet[s]]; math.IsNaN(l) && p > 0 && !math.IsNaN(power[s]) {
			l = min(100, 100*power[s]/p)
		}
		load[s] = l
	}
	t.tempAtLoad(f, cfg, hot)
	for s := range f.Peer {
		if f.Fleet[s] >= 0 && t.gpus[s].Job == "" && load[s] < cfg.IdleLoad {
			f.Idle[s] = true
			for _, sig := range activity {
				f.Vals[sig][s] = math.NaN()
			}
		}
	}
	// SM activity per busy time: load is a covariate of activity, not a
	// bucket. A GPU kept busier than its peers in a window is more active
	// by as much; divided by its utilization (the share of time a kernel
	// ran, which a slowed GPU still spends), what is left is how much it
	// does while it works. Only where the GPU reports both.
	sm, util, per := f.Vals[SigSMActive], f.Vals[SigUtilization], f.Vals[SigSMPerBusy]
	for s := range f.Peer {
		if u := util[s]; u >= cfg.IdleLoad && u > 0 && !math.IsNaN(sm[s]) {
			per[s] = 100 * sm[s] / u
		}
	}
}

// tempAtLoad computes the temperature at load: T − slope·x, x the
// model's power where most of its GPUs report it, else the load. The
// slope is estimated per model from the window when its GPUs' x spreads
// (second smallest to second largest at least 25% of the latter): the
// median of the
// slopes between pairs of its GPUs whose x differ by half that spread or
// more (Theil–Sen: hot GPUs, nodes or racks, up to about a quarter of
// the model, do not move it), never negative, and of the last slopeMemory
// windows' estimates the median (a physical constant: a fault that heats a
// third of a model's busy GPUs bends one window's fit, not the slope);
// else the last estimate. Until a model has one, only its GPUs near its
// median x are compared (Frame.NoSlope).
func (t *slotTable) tempAtLoad(f *Frame, cfg *Config, hot []uint8) {
	power, load := f.Vals[SigPower], f.Vals[SigLoad]
	temp, out := f.Vals[SigTemperature], f.Vals[SigTempLoad]
	before := t.lastX // the last window's covariates
	if f.End.Equal(t.lastEnd) {
		before = t.prevX // this window again: the one before it
	}
	defer t.keepX(f, power, load)
	for g, name := range f.FleetNames {
		rows := t.models.Order[t.models.Start[g]:t.models.Start[g+1]]
		x, kind := power, "/power"
		if withPower, withTemp := count(rows, power, temp), count(rows, nil, temp); 2*withPower < withTemp {
			x, kind = load, "/load"
		}
		key := name + kind
		med := t.median(g, x, nil, 0)
		if b, ok := t.theilSen(rows, x, temp, hot, cfg.MinPeers); ok {
			t.slope[key] = t.remember(key, f.End, max(0, b))
		}
		b, known := t.slope[key]
		for _, s := range rows {
			out[s] = temp[s] - b*nanTo(x[s], med)
			step := 0.1 * t.peakPower[name]
			if math.IsNaN(power[s]) {
				step = 10 // % load
			}
			switch {
			case int(s) < len(before) && math.Abs(nanTo(power[s], load[s])-before[s]) > step:
				out[s], f.Unsteady[s] = math.NaN(), true
			case !known && math.Abs(x[s]-med) > step:
				// No slope yet: only GPUs at the model's usual load compare.
				out[s], f.NoSlope[s] = math.NaN(), true
			}
		}
	}
}

// median is the median of vals over model group g's rows; with by, only
// rows whose by value is at most −split (split < 0) or above split
// (split > 0), NaNs skipped.
func (t *slotTable) median(g int, vals, by []float64, split float64) float64 {
	buf := t.scratch[0][:0]
	for _, r := range t.models.Order[t.models.Start[g]:t.models.Start[g+1]] {
		v := vals[r]
		if math.IsNaN(v) {
			continue
		}
		if by != nil {
			b := by[r]
			if math.IsNaN(b) || (split < 0 && b > -split) || (split > 0 && b <= split) {
				continue
			}
		}
		buf = append(buf, v)
	}
	t.scratch[0] = buf
	return kernels.Median(buf)
}

// theilSen estimates the slope of y over x from up to 128 of rows (an
// even stride through them): the median slope between pairs whose x differ
// by at least half the spread from the second smallest x to the second
// largest, when that spread is 25% of the latter or more and minPairs
// pairs qualify. The fit is
// done twice more without the points more than 3 σ (1.4826·MAD of the
// residuals, at least 0.5) off the line before: hot GPUs, a hot node or
// rack, bend a first fit but not the last. GPUs hot at any tier in the
// last window (hot) are left out from the start: a fault that heats half
// of a model's busy GPUs for a long while must not become its slope.
func (t *slotTable) theilSen(rows []int32, x, y []float64, hot []uint8, minPairs int) (float64, bool) {
	xs, ys := t.scratch[1][:0], t.scratch[2][:0]
	step := max(1, len(rows)/128)
	for i := 0; i < len(rows); i += step {
		if r := rows[i]; !math.IsNaN(x[r]) && !math.IsNaN(y[r]) && (int(r) >= len(hot) || hot[r] == 0) {
			xs, ys = append(xs, x[r]), append(ys, y[r])
		}
	}
	t.scratch[1], t.scratch[2] = xs, ys
	if len(xs) < 2 {
		return 0, false
	}
	sorted := append(t.scratch[3][:0], xs...)
	t.scratch[3] = sorted
	slices.Sort(sorted)
	lo, hi := sorted[1], sorted[len(sorted)-2] // two GPUs at each end at least
	spread := hi - lo
	if spread <= 0 || spread < 0.25*hi {
		return 0, false
	}
	var b float64
	for pass := range 3 {
		if pass > 0 { // drop the points far off the last line
			res := t.scratch[3][:0]
			for i := range xs {
				res = append(res, ys[i]-b*xs[i])
			}
			a := kernels.Median(slices.Clone(res))
			for i := range res {
				res[i] = math.Abs(res[i] - a)
			}
			limit := 3 * max(0.5, madScale*kernels.Median(slices.Clone(res)))
			keep := 0
			for i := range xs {
				if res[i] <= limit {
					xs[keep], ys[keep] = xs[i], ys[i]
					keep++
				}
			}
			xs, ys = xs[:keep], ys[:keep]
		}
		slopes := t.scratch[3][:0]
		for i := range xs {
			for j := i + 1; j < len(xs); j++ {
				if dx := xs[j] - xs[i]; math.Abs(dx) >= spread/2 {
					slopes = append(slopes, (ys[j]-ys[i])/dx)
				}
			}
		}
		t.scratch[3] = slopes
		if len(slopes) < minPairs {
			return 0, false
		}
		b = kernels.Median(slopes)
	}
	return b, true
}

// count counts rows where both columns (a nil one is ignored) have a value.
func count(rows []int32, a, b []float64) int {
	n := 0
	for _, r := range rows {
		if (a == nil || !math.IsNaN(a[r])) && !math.IsNaN(b[r]) {
			n++
		}
	}
	return n
}

func nanTo(v, alt float64) float64 {
	if math.IsNaN(v) {
		return alt
	}
	return v
}

// keepX remembers each slot's load covariate (power, else load) for the
// next window's steadiness test; the same window again keeps the one
// before it.
func (t *slotTable) keepX(f *Frame, power, load []float64) {
	if !f.End.Equal(t.lastEnd) {
		t.prevX, t.lastX = t.lastX, t.prevX
		t.lastEnd = f.End
	}
	t.lastX = resize(t.lastX, len(power))
	for s := range power {
		t.lastX[s] = nanTo(power[s], load[s])
	}
}

// slopeMemory is how many windows' slope estimates the slope is the median
// of (30 minutes at the default interval).
const slopeMemory = 60

type slopeRing struct {
	vals []float64
	ends []time.Time
	next int
	buf  []float64
}

// remember adds the estimate of the window ending at end to key's ring
// (replacing it when the window is evaluated again) and returns the
// ring's median.
func (t *slotTable) remember(key string, end time.Time, b float64) float64 {
	if t.slopes == nil {
		t.slopes = map[string]*slopeRing{}
	}
	r := t.slopes[key]
	if r == nil {
		r = &slopeRing{}
		t.slopes[key] = r
	}
	last := (r.next + len(r.vals) - 1) % max(len(r.vals), 1)
	switch {
	case len(r.vals) > 0 && r.ends[last].Equal(end):
		r.vals[last] = b
	case len(r.vals) < slopeMemory:
		r.vals, r.ends = append(r.vals, b), append(r.ends, end)
	default:
		r.vals[r.next], r.ends[r.next] = b, end
		r.next = (r.next + 1) % slopeMemory
	}
	r.buf = append(r.buf[:0], r.vals...)
	return kernels.Median(r.buf)
}
