package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// GenParams bound what Generate draws from its seed; zero fields take the
// defaults (NewGenParams). Nothing here names a fleet, a fault or a
// magnitude: those come from the seed.
type GenParams struct {
	// Start is the simulated start (default 2026-11-23T00:00:00Z).
	Start time.Time
	// Duration of the run (default 30m) and the sample interval (5s).
	Duration, Interval time.Duration
	// Quiet is the fault-free start, while the detector's baselines and
	// slopes settle as they would on a fleet watched for a while (4m).
	Quiet time.Duration
	// MaxFaults per scenario (default 5); Healthy draws none.
	MaxFaults int
	Healthy   bool
}

// NewGenParams returns the defaults.
func NewGenParams() GenParams {
	return GenParams{Start: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), Duration: 30 * time.Minute, Interval: 5 * time.Second,
		Quiet: 4 * time.Minute, MaxFaults: 5}
}

func (p *GenParams) setDefaults() {
	d := NewGenParams()
	if p.Start.IsZero() {
		p.Start = d.Start
	}
	if p.Duration == 0 {
		p.Duration = d.Duration
	}
	if p.Interval == 0 {
		p.Interval = d.Interval
	}
	if p.Quiet == 0 {
		p.Quiet = d.Quiet
	}
	if p.MaxFaults == 0 {
		p.MaxFaults = d.MaxFaults
	}
}

// Generate draws a scenario from seed: the fleet's shape (one datacenter,
// 1-2 rows of 2-4 racks of 2-4 nodes of 4 or 8 GPUs), a second GPU model
// on some racks, training jobs on whole nodes of one model (some without
// step-time telemetry), co-tenant workloads on other nodes and on some
// training nodes, telemetry noise (dropped scrapes, late batches, counter
// resets, nodes without utilization or job labels), and up to MaxFaults
// faults of every hardware type: thermal faults at GPU, node and rack
// level, stragglers (some only 10% slow), NVLink degradations, ECC ramps
// and GPUs falling off the bus; some intermittent, some nested inside
// another fault's node or rack at the same time. The same seed and
// parameters give the same scenario.
func Generate(seed uint64, p GenParams) (*Scenario, error) {
	p.setDefaults()
	g := &generator{rng: rand.New(rand.NewPCG(seed, 0x67656e6572617465)), p: p}
	sc := &Scenario{Name: fmt.Sprintf("generated-%d", seed), Seed: seed, Start: p.Start, Duration: p.Duration, Interval: p.Interval}
	g.fleet(sc)
	g.workloads(sc)
	g.noise(sc)
	if !p.Healthy {
		g.faults(sc)
	}
	sc.setDefaults()
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("generated scenario %d: %w", seed, err)
	}
	return sc, nil
}

type generator struct {
	rng *rand.Rand
	p   GenParams
	// racks lists the racks' names in node order, nodeRack each node's
	// rack index, model each rack's GPU model.
	racks    []string
	nodeRack []int
	model    []string
	// busy marks nodes whose GPUs work (a job or a co-tenant); job the
	// job index of each node (−1 none).
	busy []bool
	job  []int
}

// uniform draws from [lo, hi), rounded to 0.01.
func (g *generator) uniform(lo, hi float64) float64 {
	return math.Round(100*(lo+g.rng.Float64()*(hi-lo))) / 100
}

func (g *generator) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return (lo + time.Duration(g.rng.Int64N(int64(hi-lo)+1))).Truncate(time.Second)
}

func (g *generator) fleet(sc *Scenario) {
	f := &sc.Fleet
	f.Datacenters, f.RowsPerDC, f.RacksPerRow, f.NodesPerRack = 1, 1+g.rng.IntN(2), 2+g.rng.IntN(3), 2+g.rng.IntN(3)
	f.GPUsPerNode, f.NVLinks, f.GPUModel = 8, 4, ModelH100
	if g.rng.IntN(4) == 0 {
		f.GPUsPerNode = 4
	}
	nracks := f.RowsPerDC * f.RacksPerRow
	g.model = make([]string, nracks)
	for r := range nracks {
		g.racks = append(g.racks, fmt.Sprintf("rack-%02d", r))
		g.model[r] = ModelH100
	}
	if g.rng.IntN(4) != 0 { // most fleets mix two models, a rack each
		f.ModelByRack = map[string]string{}
		for _, r := range g.rng.Perm(nracks)[:1+g.rng.IntN(nracks-1)] {
			f.ModelByRack[g.racks[r]] = ModelA100
			g.model[r] = ModelA100
		}
	}
	for n := range f.Nodes() {
		g.nodeRack = append(g.nodeRack, n/f.NodesPerRack)
	}
}

// workloads lays training jobs over runs of nodes of one model, and
// co-tenants over some of the rest and over some training nodes.
func (g *generator) workloads(sc *Scenario) {
	nodes := sc.Fleet.Nodes()
	g.busy, g.job = make([]bool, nodes), make([]int, nodes)
	for n := range g.job {
		g.job[n] = -1
	}
	for n := 0; n < nodes; {
		// The run of nodes of n's model from n on.
		end := n
		for end < nodes && g.model[g.nodeRack[end]] == g.model[g.nodeRack[n]] {
			end++
		}
		switch x := g.rng.Float64(); {
		case x < 0.55:
			size := 1 + g.rng.IntN(min(4, end-n))
			j := JobSpec{Name: fmt.Sprintf("job-%d", len(sc.Jobs)), FirstNode: n, Nodes: size,
				StepSeconds: g.uniform(0.5, 1.5), BatchPerRank: 16 << g.rng.IntN(2)}
			for k := n; k < n+size; k++ {
				g.busy[k], g.job[k] = true, len(sc.Jobs)
				if g.rng.Float64() < 0.15 { // a neighbour contends for the host
					sc.CoTenants = append(sc.CoTenants, g.coTenant(k, g.uniform(0.01, 0.04)))
				}
			}
			sc.Jobs = append(sc.Jobs, j)
			n += size
		case x < 0.8:
			sc.CoTenants = append(sc.CoTenants, g.coTenant(n, 0))
			g.busy[n] = true
			n++
		default:
			n++ // idle
		}
	}
}

func (g *generator) coTenant(node int, slowdown float64) CoTenantSpec {
	ct := CoTenantSpec{Node: fmt.Sprintf("node-%03d", node), Load: g.uniform(0.3, 0.9), Swing: g.uniform(0, 0.1),
		Period: g.between(4*time.Minute, 15*time.Minute), HeatC: g.uniform(0, 3), Slowdown: slowdown}
	if g.rng.IntN(2) == 0 { // it comes or goes during the run
		ct.Start = g.between(0, g.p.Duration*2/3)
		if g.rng.IntN(3) == 0 {
			ct.End = g.between(ct.Start+time.Minute, g.p.Duration)
		}
	}
	return ct
}

func (g *generator) noise(sc *Scenario) {
	share := func() float64 { // none, some or all nodes
		switch g.rng.IntN(3) {
		case 0:
			return 0
		case 1:
			return g.uniform(0.2, 0.8)
		}
		return 1
	}
	sc.Noise = NoiseSpec{DropScrapes: g.uniform(0, 0.05), Late: g.uniform(0, 0.05), LateBy: g.between(10*time.Second, 3*time.Minute),
		CounterResets: g.uniform(0, 0.5), NoUtilization: share(), NoJobLabels: share()}
	for _, j := range sc.Jobs {
		if g.rng.Float64() < 0.3 {
			sc.Noise.Uninstrumented = append(sc.Noise.Uninstrumented, j.Name)
		}
	}
}

// Fault levels, for nesting and the one-per-parent rule.
const (
	levelGPU = iota
	levelNode
	levelRack
)

var faultLevel = map[string]int{FaultGPUFan: levelGPU, FaultECCRamp: levelGPU, FaultNVLink: levelGPU, FaultStraggler: levelGPU,
	FaultXID79: levelGPU, FaultNodeCooling: levelNode, FaultRackCDU: levelRack}

// faultWeights are the draw's odds per type.
var faultWeights = []struct {
	typ string
	w   float64
}{{FaultGPUFan, 2}, {FaultNodeCooling, 1.5}, {FaultRackCDU, 1.2}, {FaultStraggler, 2.5}, {FaultNVLink, 1.5}, {FaultECCRamp, 1},
	{FaultXID79, 0.8}}

// placed is a drawn fault with the place it occupies.
type placed struct {
	spec             FaultSpec
	level, rack      int
	node, gpu        int
	start, end       time.Duration
	nestable, hasJob bool
}

func (g *generator) pickType() string {
	var sum float64
	for _, w := range faultWeights {
		sum += w.w
	}
	x := g.rng.Float64() * sum
	for _, w := range faultWeights {
		if x -= w.w; x < 0 {
			return w.typ
		}
	}
	return faultWeights[len(faultWeights)-1].typ
}

// faults draws up to MaxFaults faults. Each takes a place no other fault
// of its level holds in the same parent at the same time (two faults of
// one level under one parent at once read as the parent's: the
// correlation's rule, not a detector's miss), and a GPU at most one fault.
func (g *generator) faults(sc *Scenario) {
	f := sc.Fleet
	var done []placed
	want := 1 + g.rng.IntN(g.p.MaxFaults)
	for tries := 0; len(done) < want && tries < 50*want; tries++ {
		var pf placed
		var parent *placed
		if len(done) > 0 && g.rng.Float64() < 0.35 {
			// Concurrent, at a lower level inside an earlier fault's place.
			if c := done[g.rng.IntN(len(done))]; c.level > levelGPU && c.nestable {
				parent = &c
			}
		}
		typ := g.pickType()
		pf.level = faultLevel[typ]
		if parent != nil && pf.level >= parent.level {
			continue
		}
		// Where.
		switch {
		case parent != nil && parent.level == levelRack:
			pf.rack = parent.rack
			pf.node = pf.rack*f.NodesPerRack + g.rng.IntN(f.NodesPerRack)
		case parent != nil:
			pf.node, pf.rack = parent.node, parent.rack
		default:
			pf.node = g.rng.IntN(f.Nodes())
			pf.rack = g.nodeRack[pf.node]
		}
		pf.gpu = g.rng.IntN(f.GPUsPerNode)
		pf.hasJob = g.job[pf.node] >= 0
		if typ == FaultStraggler && !pf.hasJob {
			continue // slow means nothing on a GPU without work to be slow at
		}
		// When.
		dur := g.between(6*time.Minute, 12*time.Minute)
		if parent != nil {
			pf.start = parent.start + g.between(0, (parent.end-parent.start)/2)
		} else {
			pf.start = g.between(g.p.Quiet, g.p.Duration-dur-2*time.Minute)
		}
		pf.end = min(pf.start+dur, g.p.Duration-time.Minute)
		pf.spec = g.spec(typ, &pf, len(done))
		if pf.end-pf.start < 5*time.Minute || g.clashes(&pf, done) {
			continue
		}
		pf.nestable = pf.spec.Every == 0
		done = append(done, pf)
	}
	for _, pf := range done {
		sc.Faults = append(sc.Faults, pf.spec)
	}
}

// clashes says whether pf would share a GPU with another fault, or a
// parent with a concurrent fault of its level (for hot GPUs: a rack).
func (g *generator) clashes(pf *placed, done []placed) bool {
	for _, o := range done {
		overlap := pf.start < o.end+2*time.Minute && o.start < pf.end+2*time.Minute
		switch {
		case pf.level == levelGPU && o.level == levelGPU && pf.node == o.node && pf.gpu == o.gpu:
			return true // one fault per GPU, ever (a lost GPU stays lost)
		case !overlap || pf.level != o.level:
		case pf.level == levelRack, pf.level == levelNode && pf.rack == o.rack, pf.level == levelGPU && pf.node == o.node:
			return true
		case pf.spec.Type == FaultGPUFan && o.spec.Type == FaultGPUFan && pf.rack == o.rack:
			// Hot GPUs on two nodes of a rack at once are the rack's
			// (a CDU heats the top GPUs of every node): thermal spans.
			return true
		}
	}
	return false
}

// spec draws the fault's magnitude and whether it comes and goes.
func (g *generator) spec(typ string, pf *placed, i int) FaultSpec {
	fs := FaultSpec{Name: fmt.Sprintf("f%d-%s", i+1, typ), Type: typ, Start: pf.start, End: pf.end}
	node := fmt.Sprintf("node-%03d", pf.node)
	gpu := pf.gpu
	switch pf.level {
	case levelGPU:
		fs.Target = Target{Node: node, GPU: &gpu}
	case levelNode:
		fs.Target = Target{Node: node}
	default:
		fs.Target = Target{Rack: g.racks[pf.rack]}
	}
	switch typ {
	case FaultGPUFan:
		fs.Magnitude = g.uniform(10, 25)
	case FaultNodeCooling:
		fs.Magnitude = g.uniform(10, 22)
	case FaultRackCDU:
		fs.Magnitude = g.uniform(10, 20)
	case FaultStraggler:
		fs.Magnitude = 0.9 // 10% slow
		if g.rng.Float64() < 0.6 {
			fs.Magnitude = g.uniform(0.6, 0.85)
		}
	case FaultNVLink:
		fs.Magnitude = g.uniform(0.4, 0.8)
	}
	if slices.Contains([]string{FaultGPUFan, FaultNodeCooling, FaultStraggler, FaultNVLink}, typ) && g.rng.Float64() < 0.25 {
		// On for 2 minutes or more at a time (shorter is a blip, which
		// by design never pages), off for a minute or more, and at least
		// twice: the fault lasts two periods or more.
		fs.Every = g.between(3*time.Minute+30*time.Second, 8*time.Minute)
		fs.For = g.between(2*time.Minute, fs.Every-time.Minute)
		if fs.Start+fs.Every+fs.For > g.p.Duration-time.Minute {
			fs.Every, fs.For = 0, 0 // no room for two: a steady fault
		} else {
			fs.End = max(fs.End, fs.Start+fs.Every+fs.For)
			pf.end = fs.End
		}
	}
	return fs
}
