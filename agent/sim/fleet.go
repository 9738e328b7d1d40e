package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Physical constants of the simulated GPU (H100 SXM-like; a model's power
// and thermal resistance are its physics, models.go).
const (
	tauSeconds  = 20.0 // thermal time constant
	smClockMax  = 1980.0
	smClockIdle = 1410.0
	memClock    = 2619.0
	fbTotalMiB  = 81559.0
	// fbReservedMiB is held by the driver and firmware (NVML's Memory_v2.Reserved).
	fbReservedMiB = 531
	// driverVersion is what the simulated NVML reports.
	driverVersion = "550.90.07"
	linkBytesPS   = 25e9 // per NVLink link at full load, each direction
	throttleC     = 87.0
)

// Node is one simulated host.
type Node struct {
	Name     string
	Index    int
	Resource record.Resource
	GPUs     []*GPU
	events   []pendingEvent
}

type pendingEvent struct {
	gpu  *GPU
	kind uint64
	data uint64
}

// GPU is one simulated GPU's state.
type GPU struct {
	node  *Node
	model string
	phys  physics
	Index int
	UUID  string
	PCI   string
	job   *jobState
	rank  int

	offsetC   float64 // fixed per-GPU temperature offset
	tempC     float64
	powerW    float64
	energyMJ  float64
	smClock   float64
	load      float64
	reasons   uint64
	sbeVol    uint64
	dbeVol    uint64
	sbeAgg    uint64
	dbeAgg    uint64
	retSBE    int
	retDBE    int
	remapCorr int
	remapUnc  int
	remapPend bool
	remapFail bool
	pcieRepl  int
	linkUp    []bool
	linkErr   [][4]uint64 // replay, recovery, crc flit, crc data (NVML's counter order)
	linkTx    []float64
	linkRx    []float64
	smActive  float64
	tensor    float64
	dram      float64
	lost      bool
	stepSec   float64
	tput      float64
	eccAccum  float64
	nvErrAcc  float64
}

type jobState struct {
	spec  JobSpec
	ranks int
	run   *jobRun // progress and checkpoints (jobs.go)
}

// Fleet is the simulated hardware and its faults.
type Fleet struct {
	sc     *Scenario
	rng    *rand.Rand
	Nodes  []*Node
	byName map[string]*Node
	byUUID map[string]*GPU
	jobs   []*jobState
	now    time.Time
	last   time.Time
	faults []*activeFault
	// tenants are the co-tenants by node (cotenant.go).
	tenants map[*Node]*coTenant
}

type activeFault struct {
	spec       FaultSpec
	start, end time.Time
	fired      bool // one-shot actions done (XID at the end of an ECC ramp, lost GPU)
}

// NewFleet lays out sc's fleet.
func NewFleet(sc *Scenario) *Fleet {
	fl := &Fleet{sc: sc, rng: rand.New(rand.NewPCG(sc.Seed, sc.Seed^0x9e3779b97f4a7c15)), byName: map[string]*Node{}, byUUID: map[string]*GPU{}, now: sc.Start, last: sc.Start}
	f := sc.Fleet
	idx := 0
	for dc := 0; dc < f.Datacenters; dc++ {
		for row := 0; row < f.RowsPerDC; row++ {
			for rack := 0; rack < f.RacksPerRow; rack++ {
				rackNo := (dc*f.RowsPerDC+row)*f.RacksPerRow + rack
				for n := 0; n < f.NodesPerRack; n++ {
					name := fmt.Sprintf("node-%03d", idx)
					node := &Node{Name: name, Index: idx, Resource: record.Resource{
						Datacenter: fmt.Sprintf("dc-%d", dc), Row: fmt.Sprintf("row-%d-%d", dc, row),
						Rack: fmt.Sprintf("rack-%02d", rackNo), Cluster: f.Cluster, Host: name,
					}}
					for g := 0; g < f.GPUsPerNode; g++ {
						gpu := fl.newGPU(node, g)
						node.GPUs = append(node.GPUs, gpu)
						fl.byUUID[gpu.UUID] = gpu
					}
					fl.Nodes = append(fl.Nodes, node)
					fl.byName[name] = node
					idx++
				}
			}
		}
	}
	for _, js := range sc.Jobs {
		j := &jobState{spec: js}
		for n := js.FirstNode; n < js.FirstNode+js.Nodes; n++ {
			for _, g := range fl.Nodes[n].GPUs {
				g.job, g.rank = j, j.ranks
				j.ranks++
			}
		}
		fl.jobs = append(fl.jobs, j)
	}
	fl.startJobs()
	for _, fs := range sc.Faults {
		end := sc.Start.Add(fs.End)
		if fs.End == 0 {
			end = time.Time{}
		}
		fl.faults = append(fl.faults, &activeFault{spec: fs, start: sc.Start.Add(fs.Start), end: end})
	}
	fl.placeCoTenants()
	for _, n := range fl.Nodes {
		for _, g := range n.GPUs {
			g.tempC = fl.steadyTemp(g, fl.inlet(g), fl.baseLoad(g)*g.phys.tdpW)
		}
	}
	return fl
}

func (fl *Fleet) newGPU(node *Node, i int) *GPU {
	links := fl.sc.Fleet.NVLinks
	model := fl.sc.Fleet.modelOf(node.Resource.Rack)
	return &GPU{
		node: node, Index: i, model: model, phys: physicsOf(model),
		UUID:     fmt.Sprintf("GPU-%08x-%04x-4%03x-8%03x-%012x", node.Index*64+i, fl.sc.Seed&0xffff, i, node.Index&0xfff, uint64(node.Index)<<8|uint64(i)),
		PCI:      fmt.Sprintf("00000000:%02X:00.0", 0x18+i*0x10),
		offsetC:  fl.rng.NormFloat64() * 1.2,
		smClock:  smClockIdle,
		linkUp:   fill(links, true),
		linkErr:  make([][4]uint64, links),
		linkTx:   make([]float64, links),
		linkRx:   make([]float64, links),
		energyMJ: 1e9 + fl.rng.Float64()*1e9,
	}
}

func fill[T any](n int, v T) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// Node returns the node with the given host name.
func (fl *Fleet) Node(name string) *Node { return fl.byName[name] }

// Now is the simulated time of the last Advance.
func (fl *Fleet) Now() time.Time { return fl.now }

// strength is how strongly fault f acts at t: 0 before its start and after
// its end, rising linearly to 1 over its ramp.
func (f *activeFault) strength(t time.Time) float64 {
	if t.Before(f.start) || (!f.end.IsZero() && !t.Before(f.end)) {
		return 0
	}
	on := t.Sub(f.start)
	if f.spec.Every > 0 { // intermittent: on for For at the start of each Every
		if on %= f.spec.Every; on >= f.spec.For {
			return 0
		}
	}
	if f.spec.Ramp <= 0 {
		return 1
	}
	return math.Min(1, float64(on)/float64(f.spec.Ramp))
}

func (f *activeFault) hitsGPU(g *GPU) bool {
	t := f.spec.Target
	return t.Node == g.node.Name && t.GPU != nil && *t.GPU == g.Index
}

// inlet is the air or coolant temperature a GPU sees, with thermal faults.
func (fl *Fleet) inlet(g *GPU) float64 {
	c := fl.sc.Fleet.InletC + float64(g.node.Index%5)*0.3
	if l, ct := fl.coTenantLoad(g.node); ct != nil {
		c += l * ct.HeatC // a neighbour's heat in the chassis
	}
	for _, f := range fl.faults {
		s := f.strength(fl.now)
		if s == 0 {
			continue
		}
		t := f.spec.Target
		switch f.spec.Type {
		case FaultFacilityTemp:
			if t.Datacenter == g.node.Resource.Datacenter {
				c += s * f.spec.Magnitude
			}
		case FaultRackCDU:
			if t.Rack == g.node.Resource.Rack {
				c += s * f.spec.Magnitude
			}
		case FaultNodeCooling:
			if t.Node == g.node.Name {
				c += s * f.spec.Magnitude
			}
		}
	}
	return c
}

func (fl *Fleet) baseLoad(g *GPU) float64 {
	if g.job != nil {
		return 0.93
	}
	if l, ct := fl.coTenantLoad(g.node); ct != nil {
		return max(l, fl.sc.Fleet.IdleLoad)
	}
	return fl.sc.Fleet.IdleLoad
}

func (fl *Fleet) steadyTemp(g *GPU, inlet, power float64) float64 {
	t := inlet + g.phys.thermalCW*power + g.offsetC
	for _, f := range fl.faults {
		if f.spec.Type == FaultGPUFan && f.hitsGPU(g) {
			t += f.strength(fl.now) * f.spec.Magnitude
		}
	}
	return t
}

// faultOn returns the strength of the strongest fault of type typ on g.
func (fl *Fleet) faultOn(g *GPU, typ string) (float64, *activeFault) {
	var best float64
	var which *activeFault
	for _, f := range fl.faults {
		if f.spec.Type == typ && f.hitsGPU(g) {
			if s := f.strength(fl.now); s > best {
				best, which = s, f
			}
		}
	}
	return best, which
}

// Advance moves the simulation to t, updating every GPU.
func (fl *Fleet) Advance(t time.Time) {
	dt := t.Sub(fl.last).Seconds()
	if dt <= 0 {
		dt = fl.sc.Interval.Seconds()
	}
	fl.now, fl.last = t, t
	for _, n := range fl.Nodes {
		for _, g := range n.GPUs {
			fl.step(g, dt)
		}
	}
	fl.advanceJobs(dt)
}

func (fl *Fleet) step(g *GPU, dt float64) {
	rng := fl.rng
	if g.lost {
		return
	}
	if s, f := fl.faultOn(g, FaultXID79); s > 0 {
		g.lost = true
		f.fired = true
		g.node.events = append(g.node.events, pendingEvent{gpu: g, kind: xidEvent, data: 79})
		return
	}
	tp := 1.0 // achieved throughput relative to healthy
	if s, f := fl.faultOn(g, FaultStraggler); s > 0 {
		tp = 1 - s*(1-f.spec.Magnitude)
	}
	if l, ct := fl.coTenantLoad(g.node); ct != nil && g.job != nil {
		tp *= 1 - l*ct.Slowdown // the neighbour contends for the host
	}
	g.load = clamp(fl.baseLoad(g)+rng.NormFloat64()*0.015, 0, 1)
	g.powerW = g.phys.idleW + (g.phys.tdpW-g.phys.idleW)*g.load*(0.4+0.6*tp) + rng.NormFloat64()*4
	inlet := fl.inlet(g)
	target := fl.steadyTemp(g, inlet, g.powerW)
	g.tempC += (target - g.tempC) * (1 - math.Exp(-dt/tauSeconds))
	g.tempC += rng.NormFloat64() * 0.25
	g.reasons = 0
	clock := smClockIdle + (smClockMax-smClockIdle)*math.Min(1, g.load*2)
	if g.load < 0.1 {
		g.reasons |= 0x1 // idle
	}
	if g.tempC > throttleC {
		over := math.Min(1, (g.tempC-throttleC)/8)
		clock *= 1 - 0.35*over
		g.powerW *= 1 - 0.25*over
		g.reasons |= 0x20
		if g.tempC > throttleC+5 {
			g.reasons |= 0x40
		}
	}
	clock *= 0.7 + 0.3*tp // a straggler clocks lower, with no reason reported
	g.smClock = clock + rng.NormFloat64()*6
	g.energyMJ += g.powerW * dt * 1000
	work := g.load * tp
	g.smActive = clamp(0.9*work+rng.NormFloat64()*0.01, 0, 1)
	g.tensor = clamp(0.62*work+rng.NormFloat64()*0.01, 0, 1)
	g.dram = clamp(0.48*work+rng.NormFloat64()*0.01, 0, 1)

	// NVLink: bandwidth follows the work; degradation cuts it and raises errors.
	linkFrac, linkErrRate := 1.0, 1e-5
	if s, f := fl.faultOn(g, FaultNVLink); s > 0 {
		linkFrac = 1 - s*(1-f.spec.Magnitude)
		linkErrRate = 0.5 + 40*s*s // CRC flits per second per link, rising
	}
	for l := range g.linkUp {
		bw := linkBytesPS * work * linkFrac * (1 + rng.NormFloat64()*0.02)
		g.linkTx[l], g.linkRx[l] = math.Max(0, bw), math.Max(0, bw*0.98)
		g.nvErrAcc += linkErrRate * dt
	}
	for g.nvErrAcc >= 1 {
		l := rng.IntN(len(g.linkErr) + 1)
		if l < len(g.linkErr) {
			g.linkErr[l][2]++ // CRC flit
			if rng.Float64() < 0.3 {
				g.linkErr[l][3]++ // CRC data
			}
			if rng.Float64() < 0.5 {
				g.linkErr[l][0]++ // replay
			}
			if rng.Float64() < 0.02 {
				g.linkErr[l][1]++ // recovery
			}
		}
		g.nvErrAcc--
	}
	if rng.Float64() < 2e-5*dt {
		g.pcieRepl++
	}

	// ECC: a rare background, or a ramp that ends in a double-bit error (XID 48).
	rate := 2e-6
	if s, f := fl.faultOn(g, FaultECCRamp); s > 0 || (f != nil && !f.fired) {
		elapsed := fl.now.Sub(f.start).Seconds()
		span := 600.0
		if !f.end.IsZero() {
			span = math.Max(f.end.Sub(f.start).Seconds(), 1)
		}
		rate = f.spec.Magnitude * math.Exp(4*math.Min(elapsed/span, 1)) // by default ~0.05/s rising to ~2.7/s
		if !f.end.IsZero() && !fl.now.Before(f.end.Add(-fl.sc.Interval)) && !f.fired {
			f.fired = true
			g.dbeVol++
			g.dbeAgg++
			g.retDBE++
			g.remapUnc++
			g.remapPend = true
			g.node.events = append(g.node.events, pendingEvent{gpu: g, kind: dbeEvent}, pendingEvent{gpu: g, kind: xidEvent, data: 48})
		}
	}
	g.eccAccum += rate * dt
	for g.eccAccum >= 1 {
		g.sbeVol++
		g.sbeAgg++
		if g.sbeVol%40 == 0 {
			g.remapCorr++
		}
		g.eccAccum--
	}

	if g.job != nil {
		fl.stepRank(g, tp, rng)
	}
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

// TrainingBatch reports the step time and throughput of every rank on n,
// and its progress: steps and checkpoints (jobs.go).
func (fl *Fleet) TrainingBatch(n *Node, t time.Time) *record.Batch {
	b := &record.Batch{Source: "train", Resource: &n.Resource, Time: t}
	stepIdx := int16(telemetry.Index(telemetry.TrainStepSeconds))
	tputIdx := int16(telemetry.Index(telemetry.TrainThroughput))
	for _, g := range n.GPUs {
		if g.job == nil || g.lost {
			continue
		}
		gi := int32(len(b.GPUs))
		b.GPUs = append(b.GPUs, g.identity(g.model))
		extra := []record.Label{{Key: telemetry.LabelRank, Value: fmt.Sprint(g.rank)}}
		b.Samples = append(b.Samples,
			record.Sample{Field: stepIdx, GPU: gi, Link: -1, Value: g.stepSec, Extra: extra},
			record.Sample{Field: tputIdx, GPU: gi, Link: -1, Value: g.tput, Extra: extra})
		b.Samples = fl.jobSamples(b.Samples, g, gi, extra)
	}
	return b
}

func (g *GPU) identity(model string) record.GPU {
	id := record.GPU{Index: fmt.Sprint(g.Index), UUID: g.UUID, PCIBusID: g.PCI, Device: fmt.Sprintf("nvidia%d", g.Index), ModelName: model}
	if g.job != nil {
		worker := g.rank / 8
		id.Workload = record.Workload{Job: g.job.spec.Name, Namespace: "training", Pod: fmt.Sprintf("%s-worker-%d", g.job.spec.Name, worker),
			PodUID: fmt.Sprintf("%08x-0000-4000-8000-%012x", g.node.Index, worker), Container: "trainer"}
	}
	return id
}

// Workload implements nvmlsrc.Workloads for the fleet's jobs.
func (fl *Fleet) Workload(uuid string) record.Workload {
	if g := fl.byUUID[uuid]; g != nil && g.job != nil {
		return g.identity("").Workload
	}
	return record.Workload{}
}
