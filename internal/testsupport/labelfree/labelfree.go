// Package labelfree generates fleet-health windows of a fleet seen from
// outside the project (issue 16): racks × nodes × GPUs with topology
// labels only (no job, GPU model or utilization), reporting temperature,
// SM activity, power, DCGM's NVLink total bandwidth, NVLink CRC and
// correctable-ECC counters, with faults injected on chosen GPUs, nodes and
// racks. Tests of analytics/health and alerting feed its windows to the
// evaluator.
package labelfree

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/health"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Fleet is the generated fleet and its faults; set the fields, then call
// Window for each window in order.
type Fleet struct {
	Racks, Nodes, GPUs int // racks, nodes per rack, GPUs per node
	Interval           time.Duration
	Start              time.Time
	// NoLoad leaves SM activity and power out (only temperature, NVLink
	// bandwidth and the counters are reported).
	NoLoad bool
	// Faults from window From on (inclusive) until To (exclusive; 0: for
	// ever), on one GPU (GPU ≥ 0), a node (GPU < 0) or a rack (Node < 0).
	Faults []Fault

	rng    *rand.Rand
	offset []float64 // per GPU: temperature offset (°C), activity share
	share  []float64
}

// Fault kinds.
const (
	Straggler = iota // SM activity × Magnitude (e.g. 0.75), power with it
	Hot              // temperature + Magnitude °C (fan, node cooling, rack CDU)
	NVLink           // NVLink bandwidth × Magnitude; CRC errors 20/s rising
	ECCRamp          // correctable ECC errors, Magnitude per second and rising
)

// Fault is one injected fault.
type Fault struct {
	Kind            int
	Rack, Node, GPU int
	From, To        int
	Magnitude       float64
}

// New returns a fleet with the given shape and seed.
func New(racks, nodes, gpus int, seed uint64) *Fleet {
	f := &Fleet{Racks: racks, Nodes: nodes, GPUs: gpus, Interval: 30 * time.Second,
		Start: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b9))}
	n := racks * nodes * gpus
	for i := 0; i < n; i++ {
		f.offset = append(f.offset, 1.2*f.rng.NormFloat64()) // as agent/sim's GPUs
		f.share = append(f.share, 0.93+0.01*f.rng.NormFloat64())
	}
	return f
}

// GPU returns the identity of GPU g of node n of rack r.
func (f *Fleet) GPU(r, n, g int) health.GPU {
	node := fmt.Sprintf("rack-%02d-node-%02d", r, n)
	return health.GPU{UUID: fmt.Sprintf("GPU-%s-%d", node, g), Index: fmt.Sprint(g),
		Topology: fleet.Topology{Datacenter: "dc-x", Row: "row-1", Rack: fmt.Sprintf("rack-%02d", r), Node: node}}
}

func (fl *Fault) hits(k, r, n, g int) bool {
	if k < fl.From || (fl.To > 0 && k >= fl.To) || r != fl.Rack {
		return false
	}
	return fl.Node < 0 || (n == fl.Node && (fl.GPU < 0 || g == fl.GPU))
}

// Window returns window k's input.
func (f *Fleet) Window(k int) *health.Input {
	start := f.Start.Add(time.Duration(k) * f.Interval)
	in := &health.Input{Window: fleet.Window{Start: start, End: start.Add(f.Interval)}}
	secs := f.Interval.Seconds()
	i := 0
	for r := 0; r < f.Racks; r++ {
		for n := 0; n < f.Nodes; n++ {
			for g := 0; g < f.GPUs; g++ {
				sm, heat, bw, crc, ecc := f.share[i]+0.005*f.rng.NormFloat64(), 0.0, 1.0, 0.0, 0.0
				for _, fl := range f.Faults {
					if !fl.hits(k, r, n, g) {
						continue
					}
					switch fl.Kind {
					case Straggler:
						sm *= fl.Magnitude
					case Hot:
						heat += fl.Magnitude
					case NVLink:
						bw *= fl.Magnitude
						crc += 20 * secs * float64(1+k-fl.From)
					case ECCRamp:
						ecc += fl.Magnitude * secs * float64(1+k-fl.From)
					}
				}
				power := 120 + 500*sm + 4*f.rng.NormFloat64()
				temp := 28 + 0.3*float64(n%5) + 0.055*power + f.offset[i] + heat + 0.1*f.rng.NormFloat64()
				id := f.GPU(r, n, g)
				row := func(metric string, mean, delta float64) {
					in.Rows = append(in.Rows, health.Row{GPU: id, Metric: metric, Mean: mean, Max: mean, Delta: delta, Samples: 6})
				}
				row(telemetry.GPUTemp, temp, 0)
				if !f.NoLoad {
					row(telemetry.SMActive, sm, 0)
					row(telemetry.PowerUsage, power, 0)
				}
				row(telemetry.NVLinkBandwidth, bw*(150000+1500*f.rng.NormFloat64())*sm/0.93, 0) // MB/s
				row(telemetry.NVLinkCRCFlitTotal, 0, math.Round(crc))
				row(telemetry.ECCSBEVolatile, 0, math.Round(ecc))
				i++
			}
		}
	}
	return in
}
