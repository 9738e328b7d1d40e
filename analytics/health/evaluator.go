package health

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Detection classes.
const (
	ClassHardFault   = "gpu_hard_fault"
	ClassAppError    = "gpu_application_error"
	ClassGrayFailure = "gpu_gray_failure"
	ClassStraggler   = "gpu_straggler"
	// ClassPredicted: a GPU whose error rates (correctable ECC, NVLink
	// CRC and replays, PCIe replays) say it is likely to fail.
	ClassPredicted = "gpu_failure_predicted"
	// ClassThermal: a GPU (or every GPU of a node or rack) hotter than its
	// peers at equal load. Its name is the correlation family's
	// (alerting's "thermal", a spanning family: a rack's CDU heats some
	// GPUs of many nodes), so routing on family=thermal matches it.
	ClassThermal = "thermal"
	// ClassTelemetryGap: a whole node stopped reporting. That is first a
	// question about the node's agent and the telemetry pipeline behind
	// it, not a GPU fault; alerting gathers such gaps into one pipeline
	// incident for the telemetry pipeline's owner.
	ClassTelemetryGap = "telemetry_gap"
)

// Evaluator turns windows into detections. It keeps the GPUs' slots, rule
// history and baselines between windows; Evaluate calls must come in window
// order (the same window again is fine: it is evaluated from the state
// before its first evaluation and gives the same detections).
type Evaluator struct {
	cfg    Config
	slots  slotTable
	frame  Frame
	ticker *Ticker
	last   fleet.Window
	before snapshot
	log    *slog.Logger

	mu      sync.Mutex
	skipped map[SkipKey]uint64
}

// SkipKey is a rule and the reason it could not run.
type SkipKey struct{ Rule, Reason string }

// SetLogger sets where the evaluator logs (default slog.Default()).
func (e *Evaluator) SetLogger(l *slog.Logger) { e.log = l }

// Skipped returns, per rule and reason, how many times (GPU × window)
// a rule could not run: the fleetwatch_analyzer_health_rules_skipped_total
// counter.
func (e *Evaluator) Skipped() map[SkipKey]uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.skipped)
}

// countSkips adds the last tick's skips to the totals and logs each rule
// and reason the first time it is seen.
func (e *Evaluator) countSkips() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.skipped == nil {
		e.skipped = map[SkipKey]uint64{}
	}
	for r := range e.ticker.Skipped {
		for why, n := range e.ticker.Skipped[r] {
			if n == 0 {
				continue
			}
			k := SkipKey{RuleNames[r], SkipReasons[why]}
			if _, seen := e.skipped[k]; !seen {
				e.log.Warn("fleet health rule cannot run for some GPUs (logged once per rule and reason; counted in fleetwatch_analyzer_health_rules_skipped_total)",
					"detector", e.cfg.Name, "rule", k.Rule, "reason", k.Reason, "gpus", n)
			}
			e.skipped[k] += n
		}
	}
}

// NewEvaluator validates cfg and returns an evaluator with no history.
func NewEvaluator(cfg Config) (*Evaluator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Evaluator{cfg: cfg, log: slog.Default()}
	e.ticker = NewTicker(&e.cfg)
	return e, nil
}

// Evaluate analyzes one window.
func (e *Evaluator) Evaluate(in *Input) []fleet.Detection {
	again := in.Window == e.last
	if again {
		e.ticker.restore(&e.before)
	} else {
		e.ticker.save(&e.before)
		e.last = in.Window
	}
	e.slots.fill(&e.frame, in, &e.cfg, e.ticker.TempTier)
	e.ticker.Tick(&e.frame)
	if !again {
		e.countSkips()
	}
	out := e.hardFaults(in)
	for slot, flagged := range e.ticker.Flagged {
		if flagged != 0 {
			out = append(out, e.softFaults(in.Window, slot, flagged)...)
		}
	}
	out = append(out, e.hotEntities(in.Window)...)
	slices.SortFunc(out, func(a, b fleet.Detection) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// finding is one hard fault of one GPU in the window, with its evidence.
type finding struct {
	gpu      GPU
	policy   XIDPolicy
	value    float64
	evidence []string
}

// hardFaults raises one detection per GPU and fault kind from the window's
// events, its uncorrectable-ECC and row-remap-failure values, and the GPUs
// that stopped reporting.
func (e *Evaluator) hardFaults(in *Input) []fleet.Detection {
	found := map[[2]string]*finding{}
	add := func(g *GPU, p XIDPolicy, value float64, ev string) {
		k := [2]string{g.UUID, p.Kind}
		f := found[k]
		if f == nil {
			f = &finding{gpu: *g, policy: p, value: value}
			if s, ok := e.slots.index[g.UUID]; ok {
				f.gpu.merge(&e.slots.gpus[s])
			}
			found[k] = f
		}
		f.evidence = append(f.evidence, ev)
	}
	for i := range in.Events {
		ev := &in.Events[i]
		if p, ok := eventPolicy(ev); ok {
			meaning := ev.Message
			if ev.Kind == telemetry.GPUEventXID {
				meaning = telemetry.XID(int(ev.Code)).Meaning
			}
			add(&ev.GPU, p, float64(ev.Code), fmt.Sprintf("%s %d ×%d at %s: %s", ev.Kind, ev.Code, ev.Count,
				ev.Time.UTC().Format("15:04:05"), meaning))
		}
	}
	f := &e.frame
	for slot := range f.Peer {
		g := &e.slots.gpus[slot]
		if n := f.Vals[SigECCUncorrectable][slot]; n > 0 {
			if _, seen := found[[2]string{g.UUID, KindUncorrectableECC}]; !seen {
				add(g, xidPolicies[48], n, fmt.Sprintf("%s rose by %g", telemetry.ECCDBEVolatile, n))
			}
		}
		if f.Vals[SigRowRemapFailure][slot] >= 1 {
			add(g, xidPolicies[64], 1, telemetry.RowRemapFailure+" = 1")
		}
	}
	// A GPU that stopped reporting: alone on its node it is the GPU (fell
	// off the bus, driver hang); with its whole node silent it is the node
	// or the agent.
	reporting := map[string]bool{}
	for slot, g := range f.Peer {
		if g >= 0 {
			reporting[e.slots.gpus[slot].Node] = true
		}
	}
	for i := range in.Missing {
		g := &in.Missing[i]
		if _, lost := found[[2]string{g.UUID, KindFellOffBus}]; lost {
			continue
		}
		p := XIDPolicy{KindNotReporting, SevCritical, telemetry.ActionReboot,
			"GPU stopped reporting while its node reports: it likely fell off the bus or hung; drain the node and reboot it"}
		if !reporting[g.Node] {
			p = XIDPolicy{KindNotReporting, SevWarning, telemetry.ActionInvestigate,
				"the whole node stopped reporting: check the node, its agent and the network before the GPUs"}
		}
		add(g, p, 0, fmt.Sprintf("no %s sample in the window; reported within %v before it", e.cfg.Heartbeat, e.cfg.LostAfter))
	}
	out := make([]fleet.Detection, 0, len(found))
	for _, f := range found {
		class := ClassHardFault
		switch {
		case !IsHardware(f.policy.Kind):
			class = ClassAppError
		case f.policy.Kind == KindNotReporting && !reporting[f.gpu.Node]:
			class = ClassTelemetryGap
		}
		ev, _ := json.Marshal(map[string]any{"kind": f.policy.Kind, "steps": f.policy.Steps, "events": f.evidence})
		d := e.detection(in.Window, &f.gpu, class, f.policy.Kind, f.policy.Severity)
		d.Value, d.Action, d.Evidence = f.value, f.policy.Action, string(ev)
		d.Summary = fmt.Sprintf("GPU %s on %s: %s — %s", f.gpu.UUID, f.gpu.Node, strings.ReplaceAll(f.policy.Kind, "_", " "), f.policy.Steps)
		out = append(out, d)
	}
	return out
}

func (e *Evaluator) detection(w fleet.Window, g *GPU, class, kind, severity string) fleet.Detection {
	return fleet.Detection{
		Time: w.End, WindowStart: w.Start, Detector: e.cfg.Name, Class: class, Severity: severity,
		EntityType: "gpu", Entity: g.UUID, Key: "health/" + g.UUID + "/" + kind, Topology: g.Topology,
		GPUUUID: g.UUID, GPUModel: g.Model, Job: g.Job, Feature: kind, PValue: math.NaN(),
	}
}

// signalEvidence is one signal's standing in a detection's evidence.
type signalEvidence struct {
	Signal string  `json:"signal"`
	Value  float64 `json:"value"`
	Median float64 `json:"peer_median"`
	Ratio  float64 `json:"ratio"`
	Z      float64 `json:"z"`
}

// softFaults raises the detections of the rules that persisted on slot:
// one gray failure (throughput and NVLink together), one straggler, and
// one prediction per error rate or temperature.
func (e *Evaluator) softFaults(w fleet.Window, slot int, flagged uint8) []fleet.Detection {
	f, t, g := &e.frame, e.ticker, &e.slots.gpus[slot]
	var out []fleet.Detection
	deviating := e.deviating(slot)
	windows := fmt.Sprintf("%d+ of the last %d windows", e.cfg.PersistK, e.cfg.PersistN)
	group := f.PeerNames[f.Peer[slot]]
	mk := func(class, kind string, rules uint8, primary int, threshold float64, lead string, action string) {
		s := t.Score(f, slot, primary)
		var names []string
		for r := 0; r < NumRules; r++ {
			if rules>>r&1 == 1 {
				names = append(names, RuleNames[r])
			}
		}
		ev, _ := json.Marshal(map[string]any{"rules": names, "peer_group": group, "peers": s.Peers, "persistence": windows,
			"signals": deviating})
		d := e.detection(w, g, class, kind, SevWarning)
		d.Feature = Signals[primary].Name
		d.Value, d.Threshold, d.Action, d.Evidence = finite(s.Ratio), threshold, action, string(ev)
		d.Summary = fmt.Sprintf("GPU %s on %s %s (%s, %d peers, %s)%s", g.UUID, g.Node, lead, group, s.Peers, windows, describe(deviating, primary))
		out = append(out, d)
	}
	gray := flagged & (1<<RuleThroughput | 1<<RuleNVLink)
	if flagged&(1<<RuleNVLinkErrors) != 0 {
		// Lost bandwidth with link errors is the failing link's evidence
		// (its failure prediction below says so), not a second problem.
		gray &^= 1 << RuleNVLink
	}
	if gray != 0 {
		primary, thr := SigThroughput, e.cfg.ThroughputRatio
		if math.IsNaN(f.Vals[SigThroughput][slot]) {
			_, primary = t.activity(f, slot)
		}
		if gray&(1<<RuleThroughput) == 0 {
			primary, thr = SigNVLinkBandwidth, e.cfg.NVLinkRatio
		}
		s := t.Score(f, slot, primary)
		mk(ClassGrayFailure, "gray_failure", gray, primary, thr,
			fmt.Sprintf("runs at %.0f%% of its peers' median %s", 100*s.Ratio, Signals[primary].Name), telemetry.ActionDrain)
		// Persistent and slowing its job or links now: worth a page.
		out[len(out)-1].Severity = SevError
	}
	if flagged&(1<<RuleStepTime) != 0 {
		s := t.Score(f, slot, SigStepTime)
		d := len(out)
		mk(ClassStraggler, "straggler", 1<<RuleStepTime, SigStepTime, e.cfg.StepTimeRatio,
			fmt.Sprintf("is a straggler: rank %s of job %s steps in %.3gs, %.0f%% slower than the job median %.3gs",
				g.Rank, g.Job, s.Value, 100*(s.Ratio-1), s.Median), telemetry.ActionDrain)
		out[d].EntityType, out[d].Entity = "rank", g.Job+"/"+g.Rank
		out[d].Severity = SevError // a synchronous job runs at its slowest rank's pace
	}
	if flagged&(1<<RuleTemperature) != 0 && t.TempTier[slot]&TierGPU != 0 {
		out = append(out, e.thermal(w, slot, TierGPU))
	}
	windows = fmt.Sprintf("this window's count or the last %d windows'", e.cfg.PersistN)
	for i, rr := range rateRules {
		if flagged&(1<<rr.rule) == 0 {
			continue
		}
		count := f.Vals[rr.sig][slot]
		action, why := telemetry.ActionDrain, "drain and reset the GPU to remap rows; RMA if the rate keeps rising"
		if rr.rule != RuleECC {
			why = "drain; reseat or replace the link or riser, RMA if it keeps rising"
		}
		mk(ClassPredicted, RuleNames[rr.rule], 1<<rr.rule, rr.sig, e.cfg.RateAlpha,
			fmt.Sprintf("is likely to fail: %g %s in the window (p = %.2g against its own history and the fleet); %s",
				count, Signals[rr.sig].Name, t.PValue[i][slot], why), action)
		d := &out[len(out)-1]
		d.Value, d.PValue = count/f.Seconds, t.PValue[i][slot]
		rma := "drain the GPU, reset it to remap rows, and RMA it: its error rate has stayed improbable"
		if rr.rule != RuleECC {
			rma = "drain the GPU and reseat or replace the link or riser (RMA): its error rate has stayed improbable"
		}
		if rr.rule == RuleNVLinkErrors && (flagged|t.Fired[slot])&(1<<RuleNVLink) != 0 {
			// Errors and lost bandwidth together: the link is failing now.
			d.Severity, d.Action = SevError, telemetry.ActionDrain
			d.Summary += "; with NVLink bandwidth below its peers: drain and replace the link"
		}
		e.escalate(d, slot, rr.rule, rma)
	}
	return out
}

// escalate makes d an error with a drain action when its hardware rule has
// stayed flagged for EscalateAfter: a degradation that persists is a GPU
// to take out of service (drain, then reset or RMA), not a warning.
func (e *Evaluator) escalate(d *fleet.Detection, slot, rule int, steps string) {
	if e.ticker.Escalated[slot]&(1<<rule) == 0 {
		return
	}
	d.Severity, d.Action = SevError, telemetry.ActionDrain
	d.Summary += fmt.Sprintf("; persisted %v or longer: %s", e.cfg.EscalateAfter, steps)
}

// deviating lists slot's peer-compared signals that stand out: |z| ≥
// NameZ and at least NameRatio away from the median.
func (e *Evaluator) deviating(slot int) []signalEvidence {
	var out []signalEvidence
	for sig := range Signals {
		if Signals[sig].Cmp != CmpPeers || Signals[sig].Derived() {
			continue
		}
		s := e.ticker.Score(&e.frame, slot, sig)
		if s.Peers >= e.cfg.MinPeers && math.Abs(s.Z) >= e.cfg.NameZ && math.Abs(s.Ratio-1) >= e.cfg.NameRatio {
			out = append(out, signalEvidence{Signals[sig].Name, finite(s.Value), finite(s.Median), round(s.Ratio), round(s.Z)})
		}
	}
	return out
}

// describe names the deviating signals other than the primary one.
func describe(dev []signalEvidence, primary int) string {
	var parts []string
	for _, d := range dev {
		if d.Signal != Signals[primary].Name {
			parts = append(parts, fmt.Sprintf("%s %+.0f%%", d.Signal, 100*(d.Ratio-1)))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "; also " + strings.Join(parts, ", ")
}

func round(x float64) float64 { return finite(math.Round(x*1000) / 1000) }

func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}
