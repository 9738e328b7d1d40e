package health

import (
	"maps"
	"math"
	"math/bits"
	"time"

	"github.com/fleetwatch/fleetwatch/lib/kernels"
)

// Rules, the bits of Ticker.Fired and Ticker.Flagged.
const (
	RuleThroughput   = iota // throughput (or, without a job, SM activity) < ThroughputRatio × peer median
	RuleNVLink              // NVLink bandwidth < NVLinkRatio × peer median
	RuleStepTime            // step time ≥ StepTimeRatio × job median
	RuleTemperature         // temperature ≥ peer median + TempExcess at equal load
	RuleECC                 // correctable ECC count improbable under own/fleet rate
	RuleNVLinkErrors        // NVLink CRC/replay count improbable under own/fleet rate
	RulePCIeReplays         // PCIe replay count improbable under own/fleet rate
	NumRules
)

// RuleNames are the rules' names in detections.
var RuleNames = [NumRules]string{"throughput_low", "nvlink_bandwidth_low", "step_time_high", "temperature_high",
	"ecc_correctable_rising", "nvlink_errors_rising", "pcie_replays_rising"}

// Reasons a rule could not run for a GPU in a window (SkipReasons names
// them): counted per GPU and window, and logged once per rule and reason.
const (
	SkipNoSignal    = iota // the GPU does not report the rule's signal
	SkipNoLoad             // nothing shows whether the GPU and its peers are under load
	SkipTooFewPeers        // fewer than MinPeers comparable peers at every level
	SkipIdle               // the GPU or its peer group is idle (activity means nothing then)
	SkipUnsteady           // the GPU's load stepped since the last window (its temperature lags)
	SkipNoSlope            // its model's temperature-over-load slope is not known yet and its load is not the model's usual
	NumSkips
)

// SkipReasons are the reasons' names in the counter and the log.
var SkipReasons = [NumSkips]string{"no_signal", "no_load_signal", "too_few_peers", "idle", "load_changed", "no_load_slope"}

// hardware are the prediction rules whose degradation escalates to an
// error after EscalateAfter.
const hardware = 1<<RuleTemperature | 1<<RuleECC | 1<<RuleNVLinkErrors | 1<<RulePCIeReplays

// Tiers of the temperature comparison (Ticker.TempTier bits; thermal.go).
const (
	TierGPU  = 1 << iota // the GPU against its node-mates (else its peers)
	TierNode             // its node's median against its rack's other nodes
	TierRack             // its rack's median against its datacenter's other racks
)

// rateRules pairs the error-rate rules with their signals.
var rateRules = [...]struct{ rule, sig int }{
	{RuleECC, SigECCCorrectable}, {RuleNVLinkErrors, SigNVLinkErrors}, {RulePCIeReplays, SigPCIeReplays},
}

// Ticker evaluates frames, one per window, keeping each slot's rule history
// and error-rate baselines. It allocates only when the fleet or a group
// grows.
type Ticker struct {
	cfg *Config
	// Peer and Fleet are the last frame's statistics per signal (for the
	// signals compared that way).
	Peer, Fleet [NumSignals]Stats
	// Fired is, per slot, the rules that fired in the last frame; Flagged
	// those that also persisted (k of the last n windows).
	Fired, Flagged []uint8
	// Escalated is, per slot, the flagged hardware rules that have stayed
	// flagged for EscalateAfter.
	Escalated []uint8
	// PValue is, per slot and rate rule, the last frame's tail probability.
	PValue [len(rateRules)][]float64
	// TempTier is, per slot, the tiers whose temperature comparison fired.
	TempTier []uint8
	// Skipped counts, per rule and reason, the GPUs of the last frame a
	// rule could not run for.
	Skipped [NumRules][NumSkips]uint64
	// Nodes are the nodes' temperatures, th the tiers' comparisons.
	Nodes tier
	th    thermal

	hist     [NumRules][]uint8
	since    [NumRules][]int64         // start (Unix s) of the rule's flagged episode; 0 for none
	last     [NumRules][]int64         // end (Unix s) of the episode's last flagged window
	baseline [len(rateRules)][]float64 // own rate per second; NaN until seen
	// recent are, per rate rule, each slot's counts of the keep
	// (PersistN−1) windows before the last, oldest first (NaN: none).
	recent  [len(rateRules)][]float64
	keep    int
	peerG   Grouping
	fleetG  Grouping
	mateBuf []float64
	scratch []float64
}

// tier is the entities (nodes or racks) of one level with their GPUs'
// median of a signal.
type tier struct {
	members Grouping
	// Own is each entity's median over its GPUs.
	Own Stats
}

// build computes the entities' medians of vals.
func (tr *tier) build(vals []float64, entity []int32, entities int, scratch *[]float64) {
	tr.members.Build(entity, entities)
	GroupStats(vals, &tr.members, &tr.Own, scratch)
}

// NewTicker returns a ticker for cfg (validated by the caller).
func NewTicker(cfg *Config) *Ticker { return &Ticker{cfg: cfg} }

// grow extends the per-slot state to n slots.
func (t *Ticker) grow(n int) {
	for len(t.hist[0]) < n {
		for r := range t.hist {
			t.hist[r] = append(t.hist[r], 0)
			t.since[r] = append(t.since[r], 0)
			t.last[r] = append(t.last[r], 0)
		}
		for i := range t.baseline {
			t.baseline[i] = append(t.baseline[i], math.NaN())
		}
		t.keep = t.cfg.PersistN - 1
		for i := range t.recent {
			for range t.keep {
				t.recent[i] = append(t.recent[i], math.NaN())
			}
		}
	}
	t.Fired, t.Flagged, t.Escalated, t.TempTier = resize(t.Fired, n), resize(t.Flagged, n), resize(t.Escalated, n), resize(t.TempTier, n)
	for i := range t.PValue {
		t.PValue[i] = resize(t.PValue[i], n)
	}
}

// Tick evaluates one frame: group statistics, rules, persistence.
func (t *Ticker) Tick(f *Frame) {
	n := f.Slots()
	t.grow(n)
	t.peerG.Build(f.Peer, len(f.PeerNames))
	t.fleetG.Build(f.Fleet, len(f.FleetNames))
	for s := range Signals {
		switch Signals[s].Cmp {
		case CmpPeers:
			GroupStats(f.Vals[s], &t.peerG, &t.Peer[s], &t.scratch)
		case CmpFleet:
			GroupStats(f.Vals[s], &t.fleetG, &t.Fleet[s], &t.scratch)
		}
	}
	t.Nodes.build(f.Vals[SigTempLoad], f.Node, len(f.NodeNames), &t.scratch)
	t.tiers(f)
	t.Skipped = [NumRules][NumSkips]uint64{}
	end := f.End.Unix()
	escalate := int64(t.cfg.EscalateAfter / time.Second)
	mask := uint8(1)<<t.cfg.PersistN - 1
	var need [NumRules]int
	for r := range need {
		need[r] = t.cfg.PersistK
	}
	need[RuleTemperature] = t.cfg.TempPersistK
	for _, rr := range rateRules {
		// A rate rule tests the count of the last PersistN windows too:
		// that is its persistence, not a second one on top.
		need[rr.rule] = 1
	}
	for slot := 0; slot < n; slot++ {
		var fired uint8
		if f.Peer[slot] >= 0 {
			fired = t.peerRules(f, slot) | t.rateRules(f, slot)
		}
		t.Fired[slot] = fired
		var flagged, escalated uint8
		for r := 0; r < NumRules; r++ {
			h := (t.hist[r][slot]<<1 | fired>>r&1) & mask
			t.hist[r][slot] = h
			if t.since[r][slot] != 0 && end-t.last[r][slot] > escalate {
				// Quiet for longer than escalate_after: the episode is
				// over. A shorter gap does not end it: a degradation that
				// keeps coming back escalates like one that stays.
				t.since[r][slot] = 0
			}
			if fired>>r&1 == 1 && bits.OnesCount8(h) >= need[r] {
				flagged |= 1 << r
				if t.since[r][slot] == 0 {
					t.since[r][slot] = end - int64(f.Seconds)
				}
				t.last[r][slot] = end
				if end-t.since[r][slot] >= escalate {
					escalated |= 1 << r
				}
			}
		}
		t.Flagged[slot], t.Escalated[slot] = flagged, escalated&hardware
	}
	t.learnOffsets(f)
}

// Score is a slot's standing in its group for one signal.
type Score struct {
	Value, Median, Ratio, Z float64
	Peers                   int
}

// Score returns slot's score on signal sig against its peers (or fleet).
func (t *Ticker) Score(f *Frame, slot, sig int) Score {
	st, g := &t.Peer[sig], f.Peer[slot]
	if Signals[sig].Cmp == CmpFleet {
		st, g = &t.Fleet[sig], f.Fleet[slot]
	}
	v := f.Vals[sig][slot]
	if g < 0 || int(g) >= len(st.N) || math.IsNaN(v) {
		return Score{Value: v, Median: math.NaN(), Ratio: math.NaN(), Z: math.NaN()}
	}
	med, sd := st.Median[g], st.Sigma[g]
	sd = max(sd, 1e-6*math.Abs(med), 1e-12)
	return Score{Value: v, Median: med, Ratio: v / med, Z: (v - med) / sd, Peers: int(st.N[g])}
}

func (t *Ticker) peerRules(f *Frame, slot int) uint8 {
	c := t.cfg
	var fired uint8
	enough := func(s Score) bool { return s.Peers >= c.MinPeers && !math.IsNaN(s.Value) }
	skip := func(rule, reason int) { t.Skipped[rule][reason]++ }
	// underLoad says whether slot's activity can be compared: the GPU is
	// not idle, and its group's median load (whatever signal shows it) is
	// at least MinLoad; else it counts why not.
	g := f.Peer[slot]
	ld := &t.Peer[SigLoad]
	underLoad := func(rule int) bool {
		switch {
		case f.Idle[slot]:
			skip(rule, SkipIdle)
		case math.IsNaN(f.Vals[SigLoad][slot]):
			skip(rule, SkipNoLoad)
		case int(ld.N[g]) < c.MinPeers:
			skip(rule, SkipTooFewPeers)
		case ld.Median[g] < c.MinLoad:
			skip(rule, SkipIdle)
		default:
			return true
		}
		return false
	}
	// compare runs a peer rule on score s once the GPU is under load.
	compare := func(rule, sig int, s Score, ratio float64) {
		switch {
		case math.IsNaN(s.Value):
			if f.Idle[slot] {
				skip(rule, SkipIdle)
			} else {
				skip(rule, SkipNoSignal)
			}
		case !underLoad(rule):
		case s.Peers < c.MinPeers:
			skip(rule, SkipTooFewPeers)
		case t.slower(f, slot, sig, s, ratio, false):
			fired |= 1 << rule
		}
	}
	if tp := t.Score(f, slot, SigThroughput); enough(tp) {
		if t.slower(f, slot, SigThroughput, tp, c.ThroughputRatio, false) {
			fired |= 1 << RuleThroughput
		}
	} else {
		act, sig := t.activity(f, slot)
		compare(RuleThroughput, sig, act, c.ThroughputRatio)
	}
	compare(RuleNVLink, SigNVLinkBandwidth, t.Score(f, slot, SigNVLinkBandwidth), c.NVLinkRatio)
	switch st := t.Score(f, slot, SigStepTime); {
	case math.IsNaN(st.Value):
		skip(RuleStepTime, SkipNoSignal)
	case st.Peers < c.MinPeers:
		skip(RuleStepTime, SkipTooFewPeers)
	case t.slower(f, slot, SigStepTime, st, c.StepTimeRatio, true):
		fired |= 1 << RuleStepTime
	}
	fired |= t.tempRule(f, slot)
	return fired
}

// activity is slot's evidence of throughput where its job reports none,
// and the signal it comes from: SM activity per busy time where the GPU
// and at least MinPeers of its peers report utilization, else SM
// activity, else tensor activity.
func (t *Ticker) activity(f *Frame, slot int) (Score, int) {
	if s := t.Score(f, slot, SigSMPerBusy); s.Peers >= t.cfg.MinPeers && !math.IsNaN(s.Value) {
		return s, SigSMPerBusy
	}
	if s := t.Score(f, slot, SigSMActive); !math.IsNaN(s.Value) {
		return s, SigSMActive
	}
	if s := t.Score(f, slot, SigTensorActive); !math.IsNaN(s.Value) {
		return s, SigTensorActive
	}
	return t.Score(f, slot, SigSMActive), SigSMActive
}

// slower says whether slot is slower than ratio of its peers on sig (s
// its peer score; up for step time, which grows when slow). When that is
// not conclusive but it is at least half as far off as ratio, it is
// compared again with the GPUs of its peer group on its own node, which
// share its host and whatever interferes with it: a neighbour slowing
// some nodes of a job moves the job's median and spread, not the node's.
func (t *Ticker) slower(f *Frame, slot, sig int, s Score, ratio float64, up bool) bool {
	test, half := below, 1-(1-ratio)/2
	if up {
		test, half = above, 1+(ratio-1)/2
	}
	if test(s, ratio, t.cfg.MinZ) {
		return true
	}
	if math.IsNaN(s.Ratio) || (!up && s.Ratio > half) || (up && s.Ratio < half) {
		return false
	}
	m := t.mates(f, slot, sig)
	return m.Peers >= t.cfg.MinPeers && test(m, ratio, t.cfg.MinZ)
}

// mates is slot's score on sig against the GPUs of its node in its peer
// group (itself included, as in Score).
func (t *Ticker) mates(f *Frame, slot, sig int) Score {
	n, v := f.Node[slot], f.Vals[sig][slot]
	if n < 0 || math.IsNaN(v) {
		return Score{Value: v, Median: math.NaN(), Ratio: math.NaN(), Z: math.NaN()}
	}
	g := &t.Nodes.members
	buf := t.mateBuf[:0]
	for _, r := range g.Order[g.Start[n]:g.Start[n+1]] {
		if x := f.Vals[sig][r]; f.Peer[r] == f.Peer[slot] && !math.IsNaN(x) {
			buf = append(buf, x)
		}
	}
	t.mateBuf = buf
	k := len(buf)
	med := kernels.Median(buf)
	for i := range buf {
		buf[i] = math.Abs(buf[i] - med)
	}
	sd := max(madScale*kernels.Median(buf), 1e-6*math.Abs(med), 1e-12)
	return Score{Value: v, Median: med, Ratio: v / med, Z: (v - med) / sd, Peers: k}
}

// below says whether s is MinZ σ under its median and its ratio under
// ratio plus two standard errors (σ/median, the peers' spread: a 95%
// band): a window's ratio that noise cannot tell from the threshold is at
// it, so a GPU slowed to the threshold is raised in nearly every window,
// not in half of them, and one slowed by half as much is not.
func below(s Score, ratio, minZ float64) bool {
	if !(s.Median > 0) || !(s.Z <= -minZ) {
		return false
	}
	return s.Ratio < ratio+2*(s.Median-s.Value)/(-s.Z)/s.Median
}

// above is below's mirror for signals that grow when slow (step time).
func above(s Score, ratio, minZ float64) bool {
	if !(s.Median > 0) || !(s.Z >= minZ) {
		return false
	}
	return s.Ratio >= ratio-2*(s.Value-s.Median)/s.Z/s.Median
}

// tempRule fires when any tier (thermal.go) finds slot's GPU, node or
// rack TempExcess or more above its reference and MinZ σ.
func (t *Ticker) tempRule(f *Frame, slot int) uint8 {
	c := t.cfg
	t.TempTier[slot] = 0
	if math.IsNaN(f.Vals[SigTempLoad][slot]) {
		why := SkipNoSignal
		switch {
		case f.Unsteady[slot]:
			why = SkipUnsteady
		case f.NoSlope[slot]:
			why = SkipNoSlope
		}
		t.Skipped[RuleTemperature][why]++
		return 0
	}
	compared := false
	for _, bit := range [...]int{TierGPU, TierNode, TierRack} {
		s := t.TierScore(f, slot, bit)
		if math.IsNaN(s.Z) || s.Peers < 1 {
			continue
		}
		compared = true
		if hot(s, c) {
			t.TempTier[slot] |= uint8(bit)
		}
	}
	switch {
	case !compared:
		t.Skipped[RuleTemperature][SkipTooFewPeers]++
	case t.TempTier[slot] != 0:
		return 1 << RuleTemperature
	}
	return 0
}

// hot says whether a temperature score is TempExcess and MinZ σ above its
// reference.
func hot(s Score, c *Config) bool { return s.Value-s.Median >= c.TempExcess && s.Z >= c.MinZ }

// TierScore is slot's temperature standing at a tier: its GPU's, node's
// or rack's temperature at load (Value) against the tier's reference
// (Median), z against the model's spread at that tier, and how many
// siblings made the reference (Peers). A GPU whose node has fewer than
// MinPeers GPUs of its model is scored against its peer group.
func (t *Ticker) TierScore(f *Frame, slot, bit int) Score {
	th, model := &t.th, f.Fleet[slot]
	nan := Score{Value: math.NaN(), Median: math.NaN(), Ratio: math.NaN(), Z: math.NaN()}
	var v, ref, sigma float64
	var peers int32
	switch bit {
	case TierGPU:
		if math.IsNaN(th.GPU[slot]) {
			if s := t.Score(f, slot, SigTempLoad); s.Peers >= t.cfg.MinPeers {
				return s
			}
			return nan
		}
		n := f.Node[slot]
		v, sigma, peers = f.Vals[SigTempLoad][slot], th.SigmaGPU[model], t.Nodes.Own.N[n]-1
		ref = v - th.GPU[slot]
	case TierNode:
		n := f.Node[slot]
		if n < 0 {
			return nan
		}
		v, ref, sigma, peers = t.Nodes.Own.Median[n], th.NodeRef[n], th.SigmaNode[model], th.NodeSibs[n]
	default:
		k := f.Rack[slot]
		if k < 0 {
			return nan
		}
		v, ref, sigma, peers = th.RackVal[k], th.RackRef[k], th.SigmaRack[model], th.RackSibs[k]
	}
	if math.IsNaN(v) || math.IsNaN(ref) || math.IsNaN(sigma) {
		return nan
	}
	sigma = max(sigma, 1e-6*math.Abs(ref), 1e-12)
	return Score{Value: v, Median: ref, Ratio: v / ref, Z: (v - ref) / sigma, Peers: int(peers)}
}

// rateRules tests each error count against a Poisson whose rate is the
// largest of the GPU's own baseline, the fleet median and the floor; quiet
// windows refine the baseline.
func (t *Ticker) rateRules(f *Frame, slot int) uint8 {
	c := t.cfg
	floors := [len(rateRules)]float64{c.ECCFloor, c.NVLinkFloor, c.PCIeFloor}
	var fired uint8
	for i, rr := range rateRules {
		t.PValue[i][slot] = math.NaN()
		count := f.Vals[rr.sig][slot]
		if math.IsNaN(count) || count < 0 {
			t.Skipped[rr.rule][SkipNoSignal]++
			continue
		}
		lambda := floors[i] * f.Seconds
		if b := t.baseline[i][slot]; !math.IsNaN(b) {
			lambda = max(lambda, b*f.Seconds)
		}
		if g := f.Fleet[slot]; g >= 0 {
			if m := t.Fleet[rr.sig].Median[g]; !math.IsNaN(m) {
				lambda = max(lambda, m)
			}
		}
		// The window's count, and the count of the last PersistN windows
		// against as many windows' rate (a slow ramp, a few errors a
		// window, is improbable over several before it is in one); the
		// smaller tail, doubled for the two tests.
		sum, windows := count, 1.0
		prev := t.recent[i][slot*t.keep : (slot+1)*t.keep]
		for _, n := range prev {
			if !math.IsNaN(n) {
				sum, windows = sum+n, windows+1
			}
		}
		copy(prev, prev[1:])
		if len(prev) > 0 {
			prev[len(prev)-1] = count
		}
		// A count at or under its mean is not improbable (tail ≥ ~0.26):
		// its tail is left at 1, and the longer test is left out when it
		// counts nothing more than the window.
		p := 1.0
		if count > lambda {
			p = PoissonTail(count, lambda)
		}
		if sum > count && sum > windows*lambda {
			p = min(p, PoissonTail(sum, windows*lambda))
		}
		p = min(1, 2*p)
		t.PValue[i][slot] = p
		rate := count / f.Seconds
		switch {
		case p < c.RateAlpha:
			fired |= 1 << rr.rule
		case p < quietP: // unusual, not yet improbable: not the GPU's normal either
		case math.IsNaN(t.baseline[i][slot]):
			t.baseline[i][slot] = rate
		default:
			t.baseline[i][slot] += c.BaselineWeight * (rate - t.baseline[i][slot])
		}
	}
	return fired
}

// quietP: a window whose error counts have a tail probability below it
// does not teach a GPU's baseline rate: a ramp must not become its normal
// while it builds up (with 1e-3 instead, 17 of 28 simulated ECC ramps
// were absorbed long enough to be raised after 3 windows or more). The
// cost: a GPU whose errors come steadily at about 100× the floor or more
// is never quiet enough to learn that rate, and stays raised — at that
// rate, rightly.
const quietP = 0.01

// PoissonTail is P(X ≥ k) for X ~ Poisson(lambda), summed from k upwards so
// that tiny tails keep their precision; k is rounded down.
func PoissonTail(k, lambda float64) float64 {
	k = math.Floor(k)
	switch {
	case k <= 0:
		return 1
	case lambda <= 0:
		return 0
	case lambda >= k:
		return regTail(k, lambda)
	}
	lg, _ := math.Lgamma(k + 1)
	term := math.Exp(k*math.Log(lambda) - lambda - lg)
	sum := term
	for i := k + 1; term > sum*1e-17; i++ {
		term *= lambda / i
		sum += term
	}
	return min(sum, 1)
}

// regTail is P(X ≥ k) = 1 − P(X ≤ k−1) for lambda ≥ k, where the tail is
// about one half or more and summing the head is accurate; beyond lambda ≈
// 745, where e^−λ underflows, it returns 1.
func regTail(k, lambda float64) float64 {
	term := math.Exp(-lambda)
	sum := term
	for i := 1.0; i < k; i++ {
		term *= lambda / i
		sum += term
	}
	return max(0, 1-sum)
}

// snapshot and restore copy the per-slot history and baselines, so that a
// window evaluated again starts from the state before its first try.
type snapshot struct {
	hist     [NumRules][]uint8
	since    [NumRules][]int64
	last     [NumRules][]int64
	baseline [len(rateRules)][]float64
	recent   [len(rateRules)][]float64
	tempTier []uint8
	offset   map[string]float64
	gpuOff   []float64
	nodeOff  map[string]float64
}

func (t *Ticker) save(s *snapshot) {
	for r := range t.hist {
		s.hist[r] = append(s.hist[r][:0], t.hist[r]...)
		s.since[r] = append(s.since[r][:0], t.since[r]...)
		s.last[r] = append(s.last[r][:0], t.last[r]...)
	}
	for i := range t.baseline {
		s.baseline[i] = append(s.baseline[i][:0], t.baseline[i]...)
		s.recent[i] = append(s.recent[i][:0], t.recent[i]...)
	}
	s.offset, s.nodeOff = maps.Clone(t.th.offset), maps.Clone(t.th.nodeOff)
	s.tempTier = append(s.tempTier[:0], t.TempTier...)
	s.gpuOff = append(s.gpuOff[:0], t.th.gpuOff...)
}

func (t *Ticker) restore(s *snapshot) {
	for r := range t.hist {
		t.hist[r] = append(t.hist[r][:0], s.hist[r]...)
		t.since[r] = append(t.since[r][:0], s.since[r]...)
		t.last[r] = append(t.last[r][:0], s.last[r]...)
	}
	for i := range t.baseline {
		t.baseline[i] = append(t.baseline[i][:0], s.baseline[i]...)
		t.recent[i] = append(t.recent[i][:0], s.recent[i]...)
	}
	t.th.offset, t.th.nodeOff = maps.Clone(s.offset), maps.Clone(s.nodeOff)
	t.TempTier = append(t.TempTier[:0], s.tempTier...)
	t.th.gpuOff = append(t.th.gpuOff[:0], s.gpuOff...)
}
