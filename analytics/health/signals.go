package health

import (
	"fmt"
	"slices"

	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Signal indexes: the columns of a Frame.
const (
	SigThroughput = iota // training samples/s of the GPU's rank
	SigStepTime          // training step seconds of the GPU's rank
	SigSMActive
	SigTensorActive
	SigDRAMActive
	SigNVLinkBandwidth // NVLink TX + RX, B/s, all links
	SigPCIeBandwidth   // PCIe TX + RX, B/s
	SigSMClock
	SigMemClock
	SigPower
	SigTemperature
	SigMemoryTemperature
	SigUtilization // % of time busy
	SigFBUsed
	SigECCCorrectable   // correctable (single-bit) ECC errors in the window
	SigECCUncorrectable // uncorrectable (double-bit) ECC errors in the window
	SigNVLinkErrors     // NVLink CRC flit + CRC data + replay errors in the window
	SigPCIeReplays      // PCIe replays in the window
	SigRowRemapFailure  // 1 when row remapping has failed
	SigRowRemapPending  // 1 when a row remap waits for a GPU reset
	// Derived columns, computed from the others (no metric of their own).
	SigLoad      // % under load: the largest of utilization, 100·SM and 100·tensor activity, power against the model's peak
	SigTempLoad  // temperature less its load covariate (slope × power or load): what peers compare "at equal load"
	SigSMPerBusy // SM activity per busy time (100·SM activity ÷ utilization): what a GPU does while it works, its load divided out
	NumSignals
)

// Aggregations of a signal's samples over a window.
const (
	AggMean  = iota // mean of the samples' values
	AggDelta        // sum of the counter increases
	AggMax          // maximum value
)

// Comparisons: against what a signal is scored.
const (
	CmpPeers = iota // the GPU's peer group (job, or model at similar load)
	CmpFleet        // every GPU of the same model
	CmpNone         // not scored (hard-fault state)
)

// SignalSpec says where a signal comes from and how it is compared.
type SignalSpec struct {
	Name string
	// Metrics are summed (TX + RX, the NVLink error kinds).
	Metrics []string
	Agg     int
	Cmp     int
	Unit    string
	// Fallbacks are read, in order, for a GPU that reports none of
	// Metrics in the window: each a set of metrics summed and converted
	// from the catalog's unit to Unit.
	Fallbacks []Fallback
}

// Fallback is another source of a signal.
type Fallback struct {
	Metrics []string
	// Scale converts the metrics' catalog unit to the signal's (checked
	// against telemetry.Fields when the package loads).
	Scale float64
}

// Derived reports whether the signal is computed from others.
func (s *SignalSpec) Derived() bool { return len(s.Metrics) == 0 }

// Signals is the catalog, indexed by the Sig constants.
var Signals = [NumSignals]SignalSpec{
	SigThroughput:   {"throughput", []string{telemetry.TrainThroughput}, AggMean, CmpPeers, "samples/s", nil},
	SigStepTime:     {"step_time", []string{telemetry.TrainStepSeconds}, AggMean, CmpPeers, "s", nil},
	SigSMActive:     {"sm_active", []string{telemetry.SMActive}, AggMean, CmpPeers, "", nil},
	SigTensorActive: {"tensor_active", []string{telemetry.TensorActive}, AggMean, CmpPeers, "", nil},
	SigDRAMActive:   {"dram_active", []string{telemetry.DRAMActive}, AggMean, CmpPeers, "", nil},
	// NVLink bandwidth from every field that carries it: the TX and RX
	// totals (B/s), else DCGM's total bandwidth (TX + RX, MB/s), else the
	// per-link TX and RX rates summed over the links (B/s).
	SigNVLinkBandwidth: {"nvlink_bandwidth", []string{telemetry.NVLinkTxBytes, telemetry.NVLinkRxBytes}, AggMean, CmpPeers, "B/s",
		[]Fallback{{[]string{telemetry.NVLinkBandwidth}, 1e6}, {[]string{telemetry.NVLinkLinkTxBytes, telemetry.NVLinkLinkRxBytes}, 1}}},
	SigPCIeBandwidth:     {"pcie_bandwidth", []string{telemetry.PCIeTxBytes, telemetry.PCIeRxBytes}, AggMean, CmpPeers, "B/s", nil},
	SigSMClock:           {"sm_clock", []string{telemetry.SMClock}, AggMean, CmpPeers, "MHz", nil},
	SigMemClock:          {"mem_clock", []string{telemetry.MemClock}, AggMean, CmpPeers, "MHz", nil},
	SigPower:             {"power", []string{telemetry.PowerUsage}, AggMean, CmpPeers, "W", nil},
	SigTemperature:       {"temperature", []string{telemetry.GPUTemp}, AggMax, CmpPeers, "°C", nil},
	SigMemoryTemperature: {"memory_temperature", []string{telemetry.MemoryTemp}, AggMean, CmpPeers, "°C", nil},
	SigUtilization:       {"utilization", []string{telemetry.GPUUtil}, AggMean, CmpPeers, "%", nil},
	SigFBUsed:            {"fb_used", []string{telemetry.FBUsed}, AggMean, CmpPeers, "MiB", nil},
	SigECCCorrectable:    {"ecc_correctable", []string{telemetry.ECCSBEVolatile}, AggDelta, CmpFleet, "errors", nil},
	SigECCUncorrectable:  {"ecc_uncorrectable", []string{telemetry.ECCDBEVolatile}, AggDelta, CmpNone, "errors", nil},
	SigNVLinkErrors: {"nvlink_errors", []string{telemetry.NVLinkCRCFlitTotal, telemetry.NVLinkCRCDataTotal, telemetry.NVLinkReplayTotal},
		AggDelta, CmpFleet, "errors", nil},
	SigPCIeReplays:     {"pcie_replays", []string{telemetry.PCIeReplay}, AggDelta, CmpFleet, "replays", nil},
	SigRowRemapFailure: {"row_remap_failure", []string{telemetry.RowRemapFailure}, AggMax, CmpNone, "", nil},
	SigRowRemapPending: {"row_remap_pending", []string{telemetry.RowRemapPending}, AggMax, CmpNone, "", nil},
	SigLoad:            {Name: "load", Agg: AggMean, Cmp: CmpPeers, Unit: "%"},
	SigTempLoad:        {Name: "temperature_at_load", Agg: AggMean, Cmp: CmpPeers, Unit: "°C"},
	SigSMPerBusy:       {Name: "sm_active_per_busy", Agg: AggMean, Cmp: CmpPeers},
}

// source is where a metric goes: its signal, the source's rank (0 the
// signal's own Metrics, then its Fallbacks in order) and the scale.
type source struct {
	sig, rank int
	scale     float64
}

// unitScale converts a catalog unit to each signal unit it may feed.
var unitScale = map[[2]string]float64{{"MB/s", "B/s"}: 1e6, {"B/s", "B/s"}: 1}

// signalOf maps a metric name to its signal and source. It panics when a
// fallback's scale disagrees with the catalog's units, or a metric is not
// in the catalog.
var signalOf = func() map[string]source {
	m := map[string]source{}
	for i, s := range Signals {
		for _, name := range s.Metrics {
			m[name] = source{i, 0, 1}
		}
		for r, fb := range s.Fallbacks {
			for _, name := range fb.Metrics {
				f, ok := telemetry.Lookup(name)
				if want, known := unitScale[[2]string{f.Unit, s.Unit}]; !ok || !known || want != fb.Scale {
					panic(fmt.Sprintf("health: signal %s reads %s (unit %q) with scale %g", s.Name, name, f.Unit, fb.Scale))
				}
				m[name] = source{i, r + 1, fb.Scale}
			}
		}
	}
	return m
}()

// perLink are the metrics read from per-link series (summed over links).
var perLink = func() []string {
	var out []string
	for name := range signalOf {
		if f, ok := telemetry.Lookup(name); ok && f.PerLink {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}()

// Metrics lists every metric the signals read, in catalog order.
func Metrics() []string {
	var out []string
	for _, s := range Signals {
		out = append(out, s.Metrics...)
		for _, fb := range s.Fallbacks {
			out = append(out, fb.Metrics...)
		}
	}
	return out
}
