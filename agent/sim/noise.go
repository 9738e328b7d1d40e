package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// NoiseSpec is what real telemetry suffers between the GPU and the store,
// applied to the batches the runner returns. None of it is a fault: a
// detector must neither page for it nor miss a fault because of it.
type NoiseSpec struct {
	// DropScrapes is the probability that one node's collection of one
	// step is lost (a failed scrape); its GPU events survive (the agent
	// buffers them).
	DropScrapes float64 `yaml:"drop_scrapes"`
	// Late is the probability that a node's batch arrives late, by a
	// uniform delay of up to LateBy (past the analyzer's lateness, its
	// points miss their window).
	Late   float64       `yaml:"late"`
	LateBy time.Duration `yaml:"late_by"`
	// CounterResets is the expected number of counter resets per node and
	// hour (a driver reload, a GPU reset): every counter of the node's
	// GPUs starts again from zero.
	CounterResets float64 `yaml:"counter_resets_per_hour"`
	// NoUtilization is the share of nodes whose agent does not report
	// DCGM_FI_DEV_GPU_UTIL, NoJobLabels the share whose GPU metrics carry
	// no job labels (no pod-resources mapping).
	NoUtilization float64 `yaml:"no_utilization"`
	NoJobLabels   float64 `yaml:"no_job_labels"`
	// Uninstrumented names jobs that report no step time or throughput.
	Uninstrumented []string `yaml:"uninstrumented"`
}

func (n *NoiseSpec) validate() []error {
	var errs []error
	for _, p := range []float64{n.DropScrapes, n.Late, n.NoUtilization, n.NoJobLabels} {
		if p < 0 || p > 1 {
			errs = append(errs, errors.New("noise: drop_scrapes, late, no_utilization and no_job_labels are shares in [0, 1]"))
			break
		}
	}
	if n.CounterResets < 0 || n.LateBy < 0 || (n.Late > 0 && n.LateBy == 0) {
		errs = append(errs, fmt.Errorf("noise: counter_resets_per_hour %v and late_by %v must not be negative; late needs late_by", n.CounterResets, n.LateBy))
	}
	return errs
}

// NoiseStats counts what the noise did to a run.
type NoiseStats struct {
	DroppedScrapes, LateBatches, CounterResets int
	// NoUtilizationNodes and NoJobLabelNodes count the nodes without
	// utilization or job labels.
	NoUtilizationNodes, NoJobLabelNodes int
}

// noise applies a NoiseSpec to a run's batches.
type noise struct {
	spec         NoiseSpec
	rng          *rand.Rand
	noUtil, noJL map[string]bool // by host
	uninstr      map[string]bool
	base         map[counterKey]float64 // each counter's raw value at its last reset
	held         []heldBatch
	stats        NoiseStats
}

type counterKey struct {
	uuid  string
	field int16
	link  int16
}

type heldBatch struct {
	until time.Time
	b     *record.Batch
}

func newNoise(sc *Scenario, nodes []*Node) *noise {
	ns := &noise{spec: sc.Noise, rng: rand.New(rand.NewPCG(sc.Seed, 0x6e6f697365)), noUtil: map[string]bool{}, noJL: map[string]bool{},
		uninstr: map[string]bool{}, base: map[counterKey]float64{}}
	for _, n := range nodes {
		if ns.rng.Float64() < sc.Noise.NoUtilization {
			ns.noUtil[n.Name] = true
		}
		if ns.rng.Float64() < sc.Noise.NoJobLabels {
			ns.noJL[n.Name] = true
		}
	}
	ns.stats.NoUtilizationNodes, ns.stats.NoJobLabelNodes = len(ns.noUtil), len(ns.noJL)
	for _, j := range sc.Noise.Uninstrumented {
		ns.uninstr[j] = true
	}
	return ns
}

// apply garbles the batches of step t (dt after the last) and returns
// what arrives at t: them, less what was lost or delayed, and the delayed
// batches due by t.
func (ns *noise) apply(t time.Time, dt time.Duration, in []*record.Batch) []*record.Batch {
	sp := &ns.spec
	out := in[:0]
	for _, b := range in {
		if b.Source == "train" {
			if len(b.GPUs) > 0 && ns.uninstr[b.GPUs[0].Job] {
				continue
			}
		} else if b.Resource != nil && len(b.GPUs) > 0 {
			host := b.Resource.Host
			if ns.rng.Float64() < sp.DropScrapes {
				ns.stats.DroppedScrapes++
				if len(b.Events) == 0 {
					continue
				}
				b.Samples = nil
			}
			if ns.noJL[host] {
				for i := range b.GPUs {
					b.GPUs[i].Workload = record.Workload{}
				}
			}
			reset := ns.rng.Float64() < sp.CounterResets*dt.Hours()
			if reset {
				ns.stats.CounterResets++
			}
			ns.garble(b, ns.noUtil[host], reset)
		}
		if sp.Late > 0 && ns.rng.Float64() < sp.Late {
			ns.stats.LateBatches++
			ns.held = append(ns.held, heldBatch{until: t.Add(time.Duration(ns.rng.Float64() * float64(sp.LateBy))), b: b})
			continue
		}
		out = append(out, b)
	}
	due := 0
	for _, h := range ns.held {
		if !h.until.After(t) {
			out = append(out, h.b)
			continue
		}
		ns.held[due] = h
		due++
	}
	ns.held = slices.Delete(ns.held, due, len(ns.held))
	return out
}

// garble drops utilization samples (noUtil) and restarts counters from
// zero (reset).
func (ns *noise) garble(b *record.Batch, noUtil, reset bool) {
	util := int16(telemetry.Index(telemetry.GPUUtil))
	kept := b.Samples[:0]
	for _, s := range b.Samples {
		if noUtil && s.Field == util {
			continue
		}
		if s.GPU >= 0 && s.MetricKind() == telemetry.Counter {
			k := counterKey{b.GPUs[s.GPU].UUID, s.Field, s.Link}
			if reset {
				ns.base[k] = s.Value
			}
			s.Value -= ns.base[k]
		}
		kept = append(kept, s)
	}
	b.Samples = kept
}

// quiet reports whether the spec changes nothing.
func (ns *noise) quiet() bool {
	sp := &ns.spec
	return sp.DropScrapes == 0 && sp.Late == 0 && sp.CounterResets == 0 && len(ns.noUtil) == 0 && len(ns.noJL) == 0 && len(ns.uninstr) == 0
}
