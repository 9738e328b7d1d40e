package sim

import (
	"fmt"
	"math"
	"time"
)

// CoTenantSpec is a neighbour workload on a node: another tenant's job that
// is not a fault and that the telemetry does not label (no job, no rank).
// Its GPUs are the node's GPUs without a training job; they run at Load,
// swinging by ±Swing over Period. It also interferes with the node as a
// whole: its heat raises the node's inlet by up to HeatC (shared chassis
// air), and its host-side work (CPU, PCIe, memory bandwidth) slows the
// node's training GPUs by up to Slowdown (a share of their throughput).
type CoTenantSpec struct {
	Node   string        `yaml:"node"`
	Load   float64       `yaml:"load"`
	Swing  float64       `yaml:"swing"`
	Period time.Duration `yaml:"period"`
	HeatC  float64       `yaml:"heat_c"`
	// Slowdown is at most 0.05: interference, not a straggler.
	Slowdown float64 `yaml:"slowdown"`
	// Start and End are offsets from the run's start (End 0: to the end).
	Start time.Duration `yaml:"start"`
	End   time.Duration `yaml:"end"`
}

// coTenant is a placed CoTenantSpec.
type coTenant struct {
	spec       CoTenantSpec
	start, end time.Time
	phase      float64
}

// placeCoTenants indexes the scenario's co-tenants by node.
func (fl *Fleet) placeCoTenants() {
	fl.tenants = map[*Node]*coTenant{}
	for i, ct := range fl.sc.CoTenants {
		n := fl.byName[ct.Node]
		if n == nil {
			continue
		}
		end := time.Time{}
		if ct.End > 0 {
			end = fl.sc.Start.Add(ct.End)
		}
		fl.tenants[n] = &coTenant{spec: ct, start: fl.sc.Start.Add(ct.Start), end: end, phase: float64(i) * 1.7}
	}
}

// coTenantLoad is the neighbour's load on n now (0 when it has none).
func (fl *Fleet) coTenantLoad(n *Node) (float64, *CoTenantSpec) {
	ct := fl.tenants[n]
	if ct == nil || fl.now.Before(ct.start) || (!ct.end.IsZero() && !fl.now.Before(ct.end)) {
		return 0, nil
	}
	l := ct.spec.Load
	if ct.spec.Period > 0 {
		l += ct.spec.Swing * math.Sin(2*math.Pi*fl.now.Sub(ct.start).Seconds()/ct.spec.Period.Seconds()+ct.phase)
	}
	return clamp(l, 0, 1), &ct.spec
}

// validateMix checks the co-tenants, the GPU model mix and the noise.
func (sc *Scenario) validateMix() []error {
	var errs []error
	for rack, m := range sc.Fleet.ModelByRack {
		if m == "" {
			errs = append(errs, fmt.Errorf("fleet.model_by_rack %s: empty model", rack))
		}
	}
	nodes := sc.Fleet.Nodes()
	seen := map[string]bool{}
	for _, ct := range sc.CoTenants {
		var idx int
		if _, err := fmt.Sscanf(ct.Node, "node-%d", &idx); err != nil || idx < 0 || idx >= nodes || seen[ct.Node] {
			errs = append(errs, fmt.Errorf("co-tenant on %q: needs a node of the fleet, one co-tenant per node", ct.Node))
		}
		seen[ct.Node] = true
		if ct.Load < 0 || ct.Load > 1 || ct.Swing < 0 || ct.Slowdown < 0 || ct.Slowdown > 0.05 || ct.HeatC < 0 || ct.Period < 0 {
			errs = append(errs, fmt.Errorf("co-tenant on %s: want load in [0, 1], slowdown in [0, 0.05], swing, heat_c and period not negative", ct.Node))
		}
		if ct.End != 0 && ct.End <= ct.Start {
			errs = append(errs, fmt.Errorf("co-tenant on %s: end %v is not after start %v", ct.Node, ct.End, ct.Start))
		}
	}
	return append(errs, sc.Noise.validate()...)
}
