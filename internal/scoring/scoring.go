// Package scoring scores what the analyzer raised against the simulator's
// ground truth (agent/sim.Truth, the JSON-lines file `fleetctl simulate
// --truth` writes): per fault type, precision, recall, F1 and detection
// delay of the detections (Score), and per injected fault, the pages it
// caused and whether they came at the fault's level (Pages). The health
// scoring tests (internal/testsupport/score) and `fleetctl backtest
// --truth` use it.
package scoring

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/analytics/health"
	"github.com/fleetwatch/fleetwatch/analytics/jobs"
	"github.com/fleetwatch/fleetwatch/fleet"
)

// Claims maps a detection to the fault type it claims, by its Feature (the
// rule's signal or the hard fault's kind): an unmatched detection is a
// false positive of that type. Several fault types raise several kinds of
// detection (a straggler is also slower on NVLink); a detection that
// matches a fault counts for the fault's type, whatever it claims.
var Claims = map[string]string{
	"throughput": sim.FaultStraggler, "sm_active": sim.FaultStraggler, "step_time": sim.FaultStraggler,
	"nvlink_bandwidth": sim.FaultNVLink, "nvlink_errors": sim.FaultNVLink, health.KindNVLink: sim.FaultNVLink,
	"temperature":     sim.FaultGPUFan,
	"ecc_correctable": sim.FaultECCRamp, health.KindUncorrectableECC: sim.FaultECCRamp, health.KindContainedECC: sim.FaultECCRamp,
	health.KindRowRemapPending: sim.FaultECCRamp, health.KindRowRemapFailure: sim.FaultECCRamp,
	health.KindFellOffBus: sim.FaultXID79, health.KindNotReporting: sim.FaultXID79,
	jobs.RuleRegression: sim.FaultJobRegression, jobs.RuleStall: sim.FaultRankHang,
	jobs.RuleCheckpointSlow: sim.FaultCheckpointSlow, jobs.RuleCheckpointFailed: sim.FaultCheckpointFailure,
}

// lasting are fault types whose effect outlives the fault's end: a GPU
// that fell off the bus stays gone, remapped rows stay remapped.
var lasting = map[string]bool{sim.FaultXID79: true, sim.FaultECCRamp: true}

// Options tune the matching.
type Options struct {
	// Interval is the detector's window length.
	Interval time.Duration
	// Grace is how long after a fault's end its detections still count
	// (temperatures and persistence take a window or two to settle).
	Grace time.Duration
	// RunEnd is the end of the scored run (for faults without an end and
	// lasting effects).
	RunEnd time.Time
	// Row names the table row a fault is scored in (default its type).
	Row func(*sim.Truth) string
	// Within, when positive, is the number of windows a fault should be
	// first detected in: Report.Late lists those detected later.
	Within int
}

func (o *Options) row(t *sim.Truth) string {
	if o.Row != nil {
		return o.Row(t)
	}
	return t.Type
}

// TypeScore is the score of one fault type.
type TypeScore struct {
	Type string
	// Faults injected and detected; Alarms raised that claim the type or
	// matched one of its faults, and how many of them matched a fault.
	Faults, Detected, Alarms, TrueAlarms int
	Precision, Recall, F1                float64
	// MeanDelay and MaxDelay run from a fault's start to the end of the
	// first window that raised a matching detection; MaxWindows is
	// MaxDelay in windows, rounded up.
	MeanDelay, MaxDelay time.Duration
	MaxWindows          int
}

// Report is a scored run.
type Report struct {
	Types []TypeScore
	// Total sums every type; FalseAlarms lists the alarms that matched no
	// fault (by key and first window).
	Total       TypeScore
	FalseAlarms []string
	// Missed lists the faults no detection matched; Late those first
	// detected after Options.Within windows.
	Missed, Late []string
}

// alarm is a run of detections with the same key in consecutive windows:
// what a person would see as one alert.
type alarm struct {
	first   fleet.Detection
	matched *sim.Truth
}

// Score matches dets (of one or more runs) against truths.
func Score(truths []sim.Truth, dets []fleet.Detection, o Options) Report {
	dets = slices.Clone(dets)
	slices.SortFunc(dets, func(a, b fleet.Detection) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return a.WindowStart.Compare(b.WindowStart)
	})
	first := make([]time.Time, len(truths)) // first matching window end per truth
	var alarms []alarm
	for i := range dets {
		d := &dets[i]
		var hit *sim.Truth
		for j := range truths {
			if matches(&truths[j], d, o) {
				hit = &truths[j]
				if first[j].IsZero() || d.Time.Before(first[j]) {
					first[j] = d.Time
				}
			}
		}
		cont := i > 0 && dets[i-1].Key == d.Key && !d.WindowStart.After(dets[i-1].Time)
		if !cont {
			alarms = append(alarms, alarm{first: *d, matched: hit})
		} else if a := &alarms[len(alarms)-1]; a.matched == nil {
			a.matched = hit
		}
	}
	byType := map[string]*TypeScore{}
	ts := func(typ string) *TypeScore {
		if byType[typ] == nil {
			byType[typ] = &TypeScore{Type: typ}
		}
		return byType[typ]
	}
	var rep Report
	var delays = map[string][]time.Duration{}
	for j, t := range truths {
		s := ts(o.row(&t))
		s.Faults++
		if first[j].IsZero() {
			rep.Missed = append(rep.Missed, fmt.Sprintf("%s %s at %s", o.row(&t), t.Fault, where(&t)))
			continue
		}
		s.Detected++
		d := first[j].Sub(t.Start)
		delays[o.row(&t)] = append(delays[o.row(&t)], d)
		if o.Within > 0 && d > time.Duration(o.Within)*o.Interval {
			rep.Late = append(rep.Late, fmt.Sprintf("%s %s at %s after %.0f s", o.row(&t), t.Fault, where(&t), d.Seconds()))
		}
	}
	for _, a := range alarms {
		typ := Claims[a.first.Feature]
		if a.matched != nil {
			typ = o.row(a.matched)
		}
		if typ == "" {
			typ = "other"
		}
		s := ts(typ)
		s.Alarms++
		if a.matched != nil {
			s.TrueAlarms++
		} else {
			rep.FalseAlarms = append(rep.FalseAlarms, fmt.Sprintf("%s from %s", a.first.Key, a.first.WindowStart.UTC().Format(time.TimeOnly)))
		}
	}
	var all []time.Duration
	for typ, s := range byType {
		s.finish(delays[typ], o.Interval)
		all = append(all, delays[typ]...)
		rep.Types = append(rep.Types, *s)
		rep.Total.Faults += s.Faults
		rep.Total.Detected += s.Detected
		rep.Total.Alarms += s.Alarms
		rep.Total.TrueAlarms += s.TrueAlarms
	}
	rep.Total.Type = "all"
	rep.Total.finish(all, o.Interval)
	slices.SortFunc(rep.Types, func(a, b TypeScore) int { return strings.Compare(a.Type, b.Type) })
	return rep
}

func (s *TypeScore) finish(delays []time.Duration, interval time.Duration) {
	s.Precision, s.Recall = ratio(s.TrueAlarms, s.Alarms), ratio(s.Detected, s.Faults)
	if s.Precision+s.Recall > 0 {
		s.F1 = 2 * s.Precision * s.Recall / (s.Precision + s.Recall)
	}
	var sum time.Duration
	for _, d := range delays {
		sum += d
		s.MaxDelay = max(s.MaxDelay, d)
	}
	if len(delays) > 0 {
		s.MeanDelay = sum / time.Duration(len(delays))
		s.MaxWindows = int(math.Ceil(float64(s.MaxDelay) / float64(interval)))
	}
}

// ratio is a/b, and 1 for 0/0 (no alarms: none false; no faults: none missed).
func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

// thermal are the fault types temperature detections are about.
var thermal = map[string]bool{sim.FaultGPUFan: true, sim.FaultNodeCooling: true, sim.FaultRackCDU: true, sim.FaultFacilityTemp: true}

// about says whether a detection of feature can be about a fault of type
// typ: what it claims (Claims) is typ, or both are thermal, or it is
// NVLink bandwidth and the fault a straggler (a slow GPU moves less
// data); a feature Claims does not know can be about anything.
func about(feature, typ string) bool {
	claim := Claims[feature]
	return claim == "" || claim == typ || (thermal[claim] && thermal[typ]) ||
		(feature == "nvlink_bandwidth" && typ == sim.FaultStraggler)
}

// matches says whether d is about t: for a hardware fault a detection of
// its kind (about), at the same place (the GPU for a GPU fault, any GPU of
// the node, rack or datacenter for theirs, the job for a job's) in a
// window that overlaps the fault, its grace period, or — for lasting
// faults — the rest of the run.
func matches(t *sim.Truth, d *fleet.Detection, o Options) bool {
	if t.Level != "job" && !about(d.Feature, t.Type) {
		return false
	}
	switch t.Level {
	case "gpu":
		if d.GPUUUID != t.GPU {
			return false
		}
	case "node":
		if d.Node != t.Node {
			return false
		}
	case "rack":
		if d.Rack != t.Rack {
			return false
		}
	case "datacenter":
		if d.Datacenter != t.Datacenter {
			return false
		}
	case "job":
		if d.Job != t.Job {
			return false
		}
	default:
		return false
	}
	return inTime(t, d, o)
}

// inTime says whether d's window overlaps t, its grace period or — for
// lasting faults — the rest of the run.
func inTime(t *sim.Truth, d *fleet.Detection, o Options) bool {
	end := t.End
	if end.IsZero() || lasting[t.Type] {
		end = o.RunEnd
	}
	return d.Time.After(t.Start) && d.WindowStart.Before(end.Add(o.Grace))
}

func where(t *sim.Truth) string {
	if t.GPU != "" {
		return t.Node + "/" + t.GPU
	}
	return t.Level + " " + t.Node + t.Rack + t.Datacenter
}

// Markdown renders the report as a table.
func (r Report) Markdown() string {
	var b strings.Builder
	b.WriteString("| fault type | faults | detected | alarms | true alarms | precision | recall | F1 | mean delay | max delay (windows) |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range append(slices.Clone(r.Types), r.Total) {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %.3f | %.3f | %.3f | %.0f s | %.0f s (%d) |\n", s.Type, s.Faults, s.Detected,
			s.Alarms, s.TrueAlarms, s.Precision, s.Recall, s.F1, s.MeanDelay.Seconds(), s.MaxDelay.Seconds(), s.MaxWindows)
	}
	return b.String()
}
