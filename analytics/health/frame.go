package health

import (
	"math"
	"strconv"
)

// Frame is one window in columns: Vals[signal][slot], NaN where a GPU did
// not report the signal. Slots are the detector's stable GPU numbering; a
// slot whose GPU did not report at all has Peer and Fleet −1.
type Frame struct {
	Vals [NumSignals][]float64
	// Peer is each slot's peer group (job, or model and load bucket);
	// Fleet its model group; −1 for none.
	Peer, Fleet []int32
	// PeerNames and FleetNames name the groups.
	PeerNames, FleetNames []string
	// Seconds is the window's length.
	Seconds float64
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
	f.Peer, f.Fleet = resize(f.Peer, slots), resize(f.Fleet, slots)
	for i := range f.Peer {
		f.Peer[i], f.Fleet[i] = -1, -1
	}
	f.PeerNames, f.FleetNames = f.PeerNames[:0], f.FleetNames[:0]
}

// Slots is the number of slots.
func (f *Frame) Slots() int { return len(f.Peer) }

// slotTable numbers GPUs by UUID, stably across windows, and remembers
// their latest identity.
type slotTable struct {
	index map[string]int32
	gpus  []GPU
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
// groups. A GPU's identity is refreshed from its rows (job and rank fields
// only from this window, so a GPU that left its job leaves its group).
func (t *slotTable) fill(f *Frame, in *Input, cfg *Config) {
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
	f.Resize(len(t.gpus))
	f.Seconds = in.Window.End.Sub(in.Window.Start).Seconds()
	for i := range in.Rows {
		r := &in.Rows[i]
		sig, ok := signalOf[r.Metric]
		if !ok || r.Samples == 0 {
			continue
		}
		var v float64
		switch Signals[sig].Agg {
		case AggMean:
			v = r.Mean
		case AggDelta:
			v = r.Delta
		case AggMax:
			v = r.Max
		}
		col, s := f.Vals[sig], slots[i]
		switch {
		case math.IsNaN(col[s]):
			col[s] = v
		case Signals[sig].Agg == AggMax:
			col[s] = max(col[s], v)
		default:
			col[s] += v
		}
	}
	peers, fleets := map[string]int32{}, map[string]int32{}
	group := func(m map[string]int32, names *[]string, key string) int32 {
		id, ok := m[key]
		if !ok {
			id = int32(len(*names))
			m[key] = id
			*names = append(*names, key)
		}
		return id
	}
	for s := range int32(len(t.gpus)) {
		if !fresh[s] {
			continue
		}
		g := &t.gpus[s]
		f.Fleet[s] = group(fleets, &f.FleetNames, "model="+g.Model)
		key := "job=" + g.Job
		if g.Job == "" {
			key = "model=" + g.Model + "/load=?"
			if u := f.Vals[SigUtilization][s]; !math.IsNaN(u) {
				b := int(math.Min(u, 99.999) / cfg.LoadBucket)
				key = "model=" + g.Model + "/load=" + strconv.Itoa(int(float64(b)*cfg.LoadBucket)) + "%"
			}
		}
		f.Peer[s] = group(peers, &f.PeerNames, key)
	}
}
