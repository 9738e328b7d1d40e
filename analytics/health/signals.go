package health

import "github.com/fleetwatch/fleetwatch/telemetry"

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
	SigUtilization // % of time busy: the load the peer groups are bucketed by
	SigFBUsed
	SigECCCorrectable   // correctable (single-bit) ECC errors in the window
	SigECCUncorrectable // uncorrectable (double-bit) ECC errors in the window
	SigNVLinkErrors     // NVLink CRC flit + CRC data + replay errors in the window
	SigPCIeReplays      // PCIe replays in the window
	SigRowRemapFailure  // 1 when row remapping has failed
	SigRowRemapPending  // 1 when a row remap waits for a GPU reset
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
}

// Signals is the catalog, indexed by the Sig constants.
var Signals = [NumSignals]SignalSpec{
	SigThroughput:        {"throughput", []string{telemetry.TrainThroughput}, AggMean, CmpPeers, "samples/s"},
	SigStepTime:          {"step_time", []string{telemetry.TrainStepSeconds}, AggMean, CmpPeers, "s"},
	SigSMActive:          {"sm_active", []string{telemetry.SMActive}, AggMean, CmpPeers, ""},
	SigTensorActive:      {"tensor_active", []string{telemetry.TensorActive}, AggMean, CmpPeers, ""},
	SigDRAMActive:        {"dram_active", []string{telemetry.DRAMActive}, AggMean, CmpPeers, ""},
	SigNVLinkBandwidth:   {"nvlink_bandwidth", []string{telemetry.NVLinkTxBytes, telemetry.NVLinkRxBytes}, AggMean, CmpPeers, "B/s"},
	SigPCIeBandwidth:     {"pcie_bandwidth", []string{telemetry.PCIeTxBytes, telemetry.PCIeRxBytes}, AggMean, CmpPeers, "B/s"},
	SigSMClock:           {"sm_clock", []string{telemetry.SMClock}, AggMean, CmpPeers, "MHz"},
	SigMemClock:          {"mem_clock", []string{telemetry.MemClock}, AggMean, CmpPeers, "MHz"},
	SigPower:             {"power", []string{telemetry.PowerUsage}, AggMean, CmpPeers, "W"},
	SigTemperature:       {"temperature", []string{telemetry.GPUTemp}, AggMean, CmpPeers, "°C"},
	SigMemoryTemperature: {"memory_temperature", []string{telemetry.MemoryTemp}, AggMean, CmpPeers, "°C"},
	SigUtilization:       {"utilization", []string{telemetry.GPUUtil}, AggMean, CmpPeers, "%"},
	SigFBUsed:            {"fb_used", []string{telemetry.FBUsed}, AggMean, CmpPeers, "MiB"},
	SigECCCorrectable:    {"ecc_correctable", []string{telemetry.ECCSBEVolatile}, AggDelta, CmpFleet, "errors"},
	SigECCUncorrectable:  {"ecc_uncorrectable", []string{telemetry.ECCDBEVolatile}, AggDelta, CmpNone, "errors"},
	SigNVLinkErrors: {"nvlink_errors", []string{telemetry.NVLinkCRCFlitTotal, telemetry.NVLinkCRCDataTotal, telemetry.NVLinkReplayTotal},
		AggDelta, CmpFleet, "errors"},
	SigPCIeReplays:     {"pcie_replays", []string{telemetry.PCIeReplay}, AggDelta, CmpFleet, "replays"},
	SigRowRemapFailure: {"row_remap_failure", []string{telemetry.RowRemapFailure}, AggMax, CmpNone, ""},
	SigRowRemapPending: {"row_remap_pending", []string{telemetry.RowRemapPending}, AggMax, CmpNone, ""},
}

// signalOf maps a metric name to its signal.
var signalOf = func() map[string]int {
	m := map[string]int{}
	for i, s := range Signals {
		for _, name := range s.Metrics {
			m[name] = i
		}
	}
	return m
}()

// Metrics lists every metric the signals read, in catalog order.
func Metrics() []string {
	var out []string
	for _, s := range Signals {
		out = append(out, s.Metrics...)
	}
	return out
}
