package health

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// thermal is the temperature rule's three tiers. Each compares an entity
// with its siblings one level down the topology, at equal load
// (temperature at load, SigTempLoad):
//
//   - a GPU with the median of its node's GPUs of its model (its
//     node-mates share its chassis air; with fewer than MinPeers of them,
//     its peer group instead);
//   - a node's median with the median of the other nodes of its rack
//     (same model);
//   - a rack's median with the median of the other racks of its
//     datacenter (same model); a rack with no other rack of its model
//     there is compared with the datacenter's other racks of any model,
//     less the offset between them it has shown while not flagged (its
//     own history: two models run at different temperatures).
//
// Leaving the entity out of its reference keeps a small group (two nodes
// in a rack) comparable, and the spread an excess is judged by is pooled
// over every entity of the model at that tier (1.4826·MAD of their
// excesses; with fewer than MinPeers, the tier below's), so a fault of the
// level above — which moves every sibling alike — neither hides an entity
// nor inflates the spread, and a fault at one level is raised at that
// level only: a hot rack is one rack, not its GPUs.
type thermal struct {
	// GPU is each slot's excess over its node-mates (NaN: not compared
	// that way); Node and Rack each entity's excess over its siblings,
	// NodeRef and RackRef the reference it was measured from, NodeSibs and
	// RackSibs how many siblings made it.
	GPU                []float64
	Node, Rack         []float64
	NodeRef, RackRef   []float64
	NodeSibs, RackSibs []int32
	// Cross marks racks compared across models, CrossRaw their excess
	// over the datacenter's other racks before their offset; NodeFired
	// and RackFired the entities whose tier fired.
	Cross                []bool
	CrossRaw             []float64
	NodeFired, RackFired []bool
	// RackVal is each rack's temperature: the median of its nodes' that
	// are not hot against its other nodes.
	RackVal []float64
	// SigmaGPU, SigmaNode and SigmaRack are per model.
	SigmaGPU, SigmaNode, SigmaRack []float64

	// offset is, per rack (by name), its learned excess over the other
	// racks of its datacenter, for the cross-model comparison.
	offset map[string]float64
	// gpuOff and nodeOff are each GPU's (by slot) and node's (by name)
	// usual excess over its siblings; GPURaw and NodeRaw this window's.
	gpuOff          []float64
	nodeOff         map[string]float64
	GPURaw, NodeRaw []float64
	nodeRack        []int32 // each node's rack
	calm            []float64
	rackNodes       Grouping
	rackVal         Stats
	rackAll         Stats
	crossRef        []float64
	crossSibs       []int32
	crossG          Grouping
	models          Grouping
	within          []float64
	hotRack, hotDC  []bool
	stats           Stats
	pairs           []valueAt
}

type valueAt struct {
	v float64
	i int32
}

// leaveOneOut sets ref[e] to the median of the values of e's siblings
// (entities of the same parent, NaNs skipped) and sibs[e] to their number;
// ref is NaN for an entity without siblings.
func leaveOneOut(vals []float64, parent []int32, parents int, ref []float64, sibs []int32, g *Grouping, pairs *[]valueAt) {
	g.Build(parent, parents)
	for e := range ref {
		ref[e], sibs[e] = math.NaN(), 0
	}
	for p := range g.Groups() {
		buf := (*pairs)[:0]
		for _, e := range g.Order[g.Start[p]:g.Start[p+1]] {
			if v := vals[e]; !math.IsNaN(v) {
				buf = append(buf, valueAt{v, e})
			}
		}
		*pairs = buf
		k := len(buf)
		if k < 2 {
			continue
		}
		slices.SortFunc(buf, func(a, b valueAt) int { return cmp.Compare(a.v, b.v) })
		at := func(j, skip int) float64 { // the j-th of the others, in order
			if j >= skip {
				j++
			}
			return buf[j].v
		}
		for i, x := range buf {
			m := k - 1
			if m%2 == 1 {
				ref[x.i] = at(m/2, i)
			} else {
				ref[x.i] = (at(m/2-1, i) + at(m/2, i)) / 2
			}
			sibs[x.i] = int32(m)
		}
	}
}

// sigmas sets out to 1.4826·MAD of vals per model group, over the values
// within ±margin only: the normal spread, which neither an entity hot by
// the margin nor the sibling whose reference it is (−margin in a rack of
// two) belongs to (NaN for a model with fewer than minN such values).
func (th *thermal) sigmas(vals []float64, model []int32, models, minN int, margin float64, out []float64, scratch *[]float64) {
	th.within = resize(th.within, len(vals))
	for i, v := range vals {
		th.within[i] = v
		if math.Abs(v) >= margin {
			th.within[i] = math.NaN()
		}
	}
	th.models.Build(model, models)
	GroupStats(th.within, &th.models, &th.stats, scratch)
	for m := range out {
		out[m] = math.NaN()
		if int(th.stats.N[m]) >= minN {
			out[m] = th.stats.Sigma[m]
		}
	}
}

// tiers computes every tier's excesses and spreads for f.
func (t *Ticker) tiers(f *Frame) {
	th, c := &t.th, t.cfg
	nodes, racks, models := len(f.NodeNames), len(f.RackNames), len(f.FleetNames)
	th.GPU = resize(th.GPU, f.Slots())
	th.Node, th.NodeRef, th.NodeSibs = resize(th.Node, nodes), resize(th.NodeRef, nodes), resize(th.NodeSibs, nodes)
	th.Rack, th.RackRef, th.RackSibs = resize(th.Rack, racks), resize(th.RackRef, racks), resize(th.RackSibs, racks)
	th.Cross, th.nodeRack, th.calm = resize(th.Cross, racks), resize(th.nodeRack, nodes), resize(th.calm, nodes)
	th.SigmaGPU, th.SigmaNode, th.SigmaRack = resize(th.SigmaGPU, models), resize(th.SigmaNode, models), resize(th.SigmaRack, models)
	th.NodeFired, th.RackFired = resize(th.NodeFired, nodes), resize(th.RackFired, racks)
	temp, nodeMed := f.Vals[SigTempLoad], t.Nodes.Own.Median

	// GPUs against their node-mates, nodes against their rack's others.
	th.GPURaw, th.NodeRaw = resize(th.GPURaw, f.Slots()), resize(th.NodeRaw, nodes)
	for len(th.gpuOff) < f.Slots() {
		th.gpuOff = append(th.gpuOff, math.NaN())
	}
	if th.nodeOff == nil {
		th.nodeOff = map[string]float64{}
	}
	for s := range th.GPU {
		th.GPU[s], th.GPURaw[s] = math.NaN(), math.NaN()
		if n := f.Node[s]; n >= 0 && int(t.Nodes.Own.N[n]) >= c.MinPeers {
			th.GPURaw[s] = temp[s] - nodeMed[n]
			th.GPU[s] = th.GPURaw[s] - nanTo(th.gpuOff[s], 0)
		}
	}
	leaveOneOut(nodeMed, f.NodeParent, f.NodeParents, th.NodeRef, th.NodeSibs, &th.models, &th.pairs)
	for n := range th.Node {
		th.NodeRaw[n] = nodeMed[n] - th.NodeRef[n]
		if off, ok := th.nodeOff[f.NodeNames[n]]; ok {
			th.NodeRef[n] += off
		}
		th.Node[n] = nodeMed[n] - th.NodeRef[n]
	}
	th.sigmas(th.GPU, f.Fleet, models, c.MinPeers, c.TempExcess, th.SigmaGPU, &t.scratch)
	th.sigmas(th.Node, f.NodeModel, models, c.MinPeers, c.TempExcess, th.SigmaNode, &t.scratch)
	for m := range models { // too few nodes: the spread of the GPUs
		if math.IsNaN(th.SigmaNode[m]) {
			th.SigmaNode[m] = th.SigmaGPU[m]
		}
	}
	for n := range th.Node {
		th.NodeFired[n], th.nodeRack[n] = false, -1
	}
	for s := range th.GPU {
		if n := f.Node[s]; n >= 0 {
			th.nodeRack[n] = f.Rack[s]
			if !th.NodeFired[n] {
				th.NodeFired[n] = hot(t.TierScore(f, s, TierNode), c)
			}
		}
	}

	// A rack is the median of its nodes that are not hot against the
	// others (a hot node is its own cause, not the rack's), against the
	// other racks of its datacenter.
	for n := range th.Node {
		th.calm[n] = nodeMed[n]
		if th.NodeFired[n] {
			th.calm[n] = math.NaN()
		}
	}
	th.rackNodes.Build(th.nodeRack, racks)
	GroupStats(th.calm, &th.rackNodes, &th.rackVal, &t.scratch)
	GroupStats(nodeMed, &th.rackNodes, &th.rackAll, &t.scratch)
	th.RackVal = resize(th.RackVal, racks)
	for k := range th.RackVal {
		th.RackVal[k] = th.rackVal.Median[k]
		if math.IsNaN(th.RackVal[k]) { // every node hot
			th.RackVal[k] = th.rackAll.Median[k]
		}
	}
	leaveOneOut(th.RackVal, f.RackParent, f.RackParents, th.RackRef, th.RackSibs, &th.models, &th.pairs)
	alone := false
	for k := range th.Rack {
		th.Cross[k] = th.RackSibs[k] == 0
		alone = alone || th.Cross[k]
	}
	if alone {
		t.crossModel(f, th.RackVal)
	}
	for k := range th.Rack {
		th.Rack[k] = th.RackVal[k] - th.RackRef[k]
	}
	th.sigmas(th.Rack, f.RackModel, models, c.MinPeers, c.TempExcess, th.SigmaRack, &t.scratch)
	for m := range models { // too few racks: the spread of the nodes
		if math.IsNaN(th.SigmaRack[m]) {
			th.SigmaRack[m] = th.SigmaNode[m]
		}
	}
	for k := range th.Rack {
		th.RackFired[k] = false
	}
	for s := range th.GPU {
		if k := f.Rack[s]; k >= 0 && !th.RackFired[k] {
			th.RackFired[k] = hot(t.TierScore(f, s, TierRack), c)
		}
	}
}

// crossModel sets the reference of racks with no rack of their model in
// their datacenter: the median of the datacenter's other racks plus the
// offset the rack has shown against them (its baseline, learned while not
// flagged; NaN until it has one).
func (t *Ticker) crossModel(f *Frame, rackMed []float64) {
	th := &t.th
	n := len(th.Rack)
	th.crossRef, th.crossSibs, th.CrossRaw = resize(th.crossRef, n), resize(th.crossSibs, n), resize(th.CrossRaw, n)
	leaveOneOut(rackMed, f.RackDC, f.RackDCs, th.crossRef, th.crossSibs, &th.crossG, &th.pairs)
	if th.offset == nil {
		th.offset = map[string]float64{}
	}
	for k := range th.Rack {
		th.CrossRaw[k] = math.NaN()
		if !th.Cross[k] {
			continue
		}
		th.RackSibs[k] = th.crossSibs[k]
		th.RackRef[k] = math.NaN()
		th.CrossRaw[k] = rackMed[k] - th.crossRef[k]
		if b, ok := th.offset[f.RackNames[k]]; ok {
			th.RackRef[k] = th.crossRef[k] + b
		}
	}
}

// learnOffsets moves each GPU's, node's and cross-compared rack's usual
// excess over its siblings towards this window's, unless it fired (a
// fault is not the new normal). A GPU's or node's is held within half the
// margin (TempExcess/2): a GPU that runs warm in its slot is normal, one
// that runs hot is not, even if it always has.
func (t *Ticker) learnOffsets(f *Frame) {
	th, w := &t.th, t.cfg.BaselineWeight
	bound := t.cfg.TempExcess / 2
	learn := func(old float64, known bool, raw float64) float64 {
		if !known {
			return raw
		}
		return old + w*(raw-old)
	}
	for s := range th.GPURaw {
		if raw := th.GPURaw[s]; !math.IsNaN(raw) && t.TempTier[s]&TierGPU == 0 {
			old := th.gpuOff[s]
			th.gpuOff[s] = max(-bound, min(bound, learn(old, !math.IsNaN(old), raw)))
		}
	}
	// Not while a sibling (whose temperature is the reference) or
	// anything in the datacenter (whose racks' make the cross-model
	// reference) is hot.
	th.hotRack = resize(th.hotRack, f.NodeParents)
	th.hotDC = resize(th.hotDC, f.RackDCs)
	clear(th.hotRack)
	clear(th.hotDC)
	for n, hot := range th.NodeFired {
		if hot {
			th.hotRack[f.NodeParent[n]] = true
			if k := th.nodeRack[n]; k >= 0 {
				th.hotDC[f.RackDC[k]] = true
			}
		}
	}
	for k, hot := range th.RackFired {
		if hot {
			th.hotDC[f.RackDC[k]] = true
		}
	}
	for n, raw := range th.NodeRaw {
		if !math.IsNaN(raw) && !th.hotRack[f.NodeParent[n]] {
			old, ok := th.nodeOff[f.NodeNames[n]]
			th.nodeOff[f.NodeNames[n]] = max(-bound, min(bound, learn(old, ok, raw)))
		}
	}
	for k := range th.Rack {
		if !th.Cross[k] || th.hotDC[f.RackDC[k]] || math.IsNaN(th.CrossRaw[k]) {
			continue
		}
		old, ok := th.offset[f.RackNames[k]]
		th.offset[f.RackNames[k]] = learn(old, ok, th.CrossRaw[k])
	}
}

// hotEntities raises one detection per node and rack whose temperature
// tier fired and persisted on its GPUs: the node or rack is the cause, not
// each of its GPUs.
func (e *Evaluator) hotEntities(w fleet.Window) []fleet.Detection {
	t := e.ticker
	var out []fleet.Detection
	seen := map[string]bool{}
	for slot, flagged := range t.Flagged {
		if flagged&(1<<RuleTemperature) == 0 {
			continue
		}
		for _, bit := range [...]int{TierNode, TierRack} {
			if t.TempTier[slot]&uint8(bit) == 0 {
				continue
			}
			if d := e.thermal(w, slot, bit); !seen[d.Key] {
				seen[d.Key] = true
				out = append(out, d)
			}
		}
	}
	return out
}

// thermal is the detection of slot's temperature tier bit: about the GPU,
// its node or its rack.
func (e *Evaluator) thermal(w fleet.Window, slot, bit int) fleet.Detection {
	f, t, g := &e.frame, e.ticker, &e.slots.gpus[slot]
	s := t.TierScore(f, slot, bit)
	excess := s.Value - s.Median
	d := e.detection(w, g, ClassThermal, "temperature_high", SevWarning)
	d.Feature, d.Value, d.Threshold, d.Action = Signals[SigTemperature].Name, excess, e.cfg.TempExcess, telemetry.ActionInvestigate
	rackPath := g.Datacenter + "/" + g.Row + "/" + g.Rack
	var what, than, steps, tier string
	switch bit {
	case TierGPU:
		what, than, tier = fmt.Sprintf("GPU %s on %s", g.UUID, g.Node), "its node-mates", "gpu"
		if math.IsNaN(t.th.GPU[slot]) {
			than = "its peers (" + f.PeerNames[f.Peer[slot]] + ")"
		}
		steps = "drain the GPU and check its fan, heatsink and the node's cooling; RMA the GPU if it runs hot again"
	case TierNode:
		d.EntityType, d.Entity, d.GPUUUID, d.Key = "node", g.Node, "", "health/node/"+rackPath+"/"+g.Node+"/temperature_high"
		what, than, tier = "node "+g.Node+" (its "+g.Model+" GPUs)", "the other nodes of its rack", "node"
		steps = "drain the node and check its fans, airflow and cooling"
	default:
		d.EntityType, d.Entity, d.GPUUUID, d.Key = "rack", rackPath, "", "health/rack/"+rackPath+"/temperature_high"
		d.Topology = fleet.Topology{Datacenter: g.Datacenter, Row: g.Row, Rack: g.Rack, Cluster: g.Cluster}
		what, than, tier = "rack "+rackPath+" (its "+g.Model+" GPUs)", "the other racks of its datacenter", "rack"
		if k := f.Rack[slot]; t.th.Cross[k] {
			than = "the other racks of its datacenter (other GPU models, less the offset it usually runs at)"
		}
		steps = "check the rack's coolant distribution unit and airflow; drain it if it keeps heating"
	}
	d.Summary = fmt.Sprintf("%s runs %.1f°C above %s at equal load (%.1f against %.1f°C, %d compared, %.1fσ): cooling, fan or airflow",
		what, excess, than, s.Value, s.Median, s.Peers, s.Z)
	ev := map[string]any{"tier": tier, "temperature_at_load": round(s.Value), "reference": round(s.Median), "excess": round(excess),
		"z": round(s.Z), "compared": s.Peers, "persistence": fmt.Sprintf("%d+ of the last %d windows", e.cfg.TempPersistK, e.cfg.PersistN)}
	if bit == TierGPU {
		ev["signals"] = e.deviating(slot)
	}
	js, _ := json.Marshal(ev)
	d.Evidence = string(js)
	if excess >= 2*e.cfg.TempExcess {
		// Twice the margin: a fan or cooling fault now, not a trend.
		d.Severity = SevError
	}
	e.escalate(&d, slot, RuleTemperature, steps)
	return d
}
