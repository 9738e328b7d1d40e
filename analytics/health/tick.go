package health

import (
	"math"
	"math/bits"
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
	// PValue is, per slot and rate rule, the last frame's tail probability.
	PValue [len(rateRules)][]float64

	hist     [NumRules][]uint8
	baseline [len(rateRules)][]float64 // own rate per second; NaN until seen
	peerG    Grouping
	fleetG   Grouping
	scratch  []float64
}

// NewTicker returns a ticker for cfg (validated by the caller).
func NewTicker(cfg *Config) *Ticker { return &Ticker{cfg: cfg} }

// grow extends the per-slot state to n slots.
func (t *Ticker) grow(n int) {
	for len(t.hist[0]) < n {
		for r := range t.hist {
			t.hist[r] = append(t.hist[r], 0)
		}
		for i := range t.baseline {
			t.baseline[i] = append(t.baseline[i], math.NaN())
		}
	}
	t.Fired, t.Flagged = resize(t.Fired, n), resize(t.Flagged, n)
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
	mask := uint8(1)<<t.cfg.PersistN - 1
	var need [NumRules]int
	for r := range need {
		need[r] = t.cfg.PersistK
	}
	need[RuleTemperature] = t.cfg.TempPersistK
	for slot := 0; slot < n; slot++ {
		var fired uint8
		if f.Peer[slot] >= 0 {
			fired = t.peerRules(f, slot) | t.rateRules(f, slot)
		}
		t.Fired[slot] = fired
		var flagged uint8
		for r := 0; r < NumRules; r++ {
			h := (t.hist[r][slot]<<1 | fired>>r&1) & mask
			t.hist[r][slot] = h
			if fired>>r&1 == 1 && bits.OnesCount8(h) >= need[r] {
				flagged |= 1 << r
			}
		}
		t.Flagged[slot] = flagged
	}
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
	g := f.Peer[slot]
	loaded := t.Peer[SigUtilization].Median[g] >= c.MinLoad
	if tp := t.Score(f, slot, SigThroughput); enough(tp) {
		if tp.Ratio < c.ThroughputRatio && tp.Z <= -c.MinZ {
			fired |= 1 << RuleThroughput
		}
	} else if sm := t.Score(f, slot, SigSMActive); loaded && enough(sm) && sm.Ratio < c.ThroughputRatio && sm.Z <= -c.MinZ {
		fired |= 1 << RuleThroughput
	}
	if nv := t.Score(f, slot, SigNVLinkBandwidth); loaded && enough(nv) && nv.Median > 0 && nv.Ratio < c.NVLinkRatio && nv.Z <= -c.MinZ {
		fired |= 1 << RuleNVLink
	}
	if st := t.Score(f, slot, SigStepTime); enough(st) && st.Ratio >= c.StepTimeRatio && st.Z >= c.MinZ {
		fired |= 1 << RuleStepTime
	}
	if tc := t.Score(f, slot, SigTemperature); enough(tc) && tc.Value-tc.Median >= c.TempExcess && tc.Z >= c.MinZ {
		fired |= 1 << RuleTemperature
	}
	return fired
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
		p := PoissonTail(count, lambda)
		t.PValue[i][slot] = p
		rate := count / f.Seconds
		switch {
		case p < c.RateAlpha:
			fired |= 1 << rr.rule
		case math.IsNaN(t.baseline[i][slot]):
			t.baseline[i][slot] = rate
		default:
			t.baseline[i][slot] += c.BaselineWeight * (rate - t.baseline[i][slot])
		}
	}
	return fired
}

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
	baseline [len(rateRules)][]float64
}

func (t *Ticker) save(s *snapshot) {
	for r := range t.hist {
		s.hist[r] = append(s.hist[r][:0], t.hist[r]...)
	}
	for i := range t.baseline {
		s.baseline[i] = append(s.baseline[i][:0], t.baseline[i]...)
	}
}

func (t *Ticker) restore(s *snapshot) {
	for r := range t.hist {
		t.hist[r] = append(t.hist[r][:0], s.hist[r]...)
	}
	for i := range t.baseline {
		t.baseline[i] = append(t.baseline[i][:0], s.baseline[i]...)
	}
}
