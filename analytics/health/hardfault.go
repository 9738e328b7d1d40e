package health

import "github.com/fleetwatch/fleetwatch/telemetry"

// Hard-fault kinds: what a detection says broke. One detection is raised
// per GPU, kind and window, however many events point at it.
const (
	KindUncorrectableECC = "uncorrectable_ecc"
	KindContainedECC     = "contained_ecc"
	KindRowRemapPending  = "row_remap_pending"
	KindRowRemapFailure  = "row_remap_failure"
	KindNVLink           = "nvlink_error"
	KindFellOffBus       = "fell_off_bus"
	KindNotReporting     = "not_reporting"
	KindFirmware         = "gpu_firmware"
	KindDriver           = "driver_error"
	KindApplication      = "application_error"
	KindUnknownXID       = "unknown_xid"
)

// Severities of detections.
const (
	SevInfo     = "info"
	SevWarning  = "warning"
	SevError    = "error"
	SevCritical = "critical"
)

// XIDPolicy is what the detector does with an XID: the kind of fault it
// reports, how loud, and the recommended action with the steps behind it.
type XIDPolicy struct {
	Kind, Severity string
	// Action is the first thing to do: one of telemetry.Action*.
	Action string
	// Steps say what to do, in order, after NVIDIA's XID catalog and its
	// GPU debug guidelines.
	Steps string
}

// xidPolicies is the detector's table, by XID. The meaning of each code
// comes from telemetry.XID; this table adds what a fleet operator does.
// Sources: NVIDIA "XID Errors" (docs.nvidia.com/deploy/xid-errors) and
// "GPU Debug Guidelines" (docs.nvidia.com/deploy/gpu-debug-guidelines):
// 13, 31, 43, 45 and 68 are raised by faults in the application's own work
// (illegal address, exception, preempted cleanup) and need no hardware
// action unless they recur across applications on one GPU; 48 is a
// double-bit ECC error, whose row is remapped at the next GPU reset; 63 is
// a row remap (or page retirement) recorded, pending a reset; 64 a remap
// that failed — no spare rows left — which is an RMA; 74 an NVLink error;
// 79 a GPU that fell off the bus and is unreachable until the node is
// reset; 94 a contained ECC error (only the running application was hit),
// 95 an uncontained one (every application on the GPU is affected); 119
// and 120 GSP firmware timeouts and errors.
var xidPolicies = map[int]XIDPolicy{
	13:  {KindApplication, SevInfo, telemetry.ActionRestartApp, "application fault (graphics engine exception): restart the job; check the GPU only if it recurs under other jobs"},
	31:  {KindApplication, SevInfo, telemetry.ActionRestartApp, "application fault (illegal memory access): fix or restart the job; not a hardware fault"},
	43:  {KindApplication, SevInfo, telemetry.ActionRestartApp, "application stopped the GPU channel: restart the job"},
	45:  {KindApplication, SevInfo, telemetry.ActionRestartApp, "cleanup after the application was killed or preempted: follows another error; look at the XID before it"},
	68:  {KindApplication, SevInfo, telemetry.ActionRestartApp, "video decoder exception in the application: restart the job"},
	32:  {KindDriver, SevWarning, telemetry.ActionInvestigate, "corrupted push buffer: check the driver and the PCIe link; reset the GPU if it recurs"},
	38:  {KindDriver, SevWarning, telemetry.ActionResetGPU, "driver firmware error: drain, reset the GPU; update the driver if it recurs"},
	48:  {KindUncorrectableECC, SevCritical, telemetry.ActionResetGPU, "double-bit ECC error: drain the GPU and reset it so the row is remapped; RMA if remapping fails (XID 64) or errors recur"},
	61:  {KindFirmware, SevWarning, telemetry.ActionResetGPU, "micro-controller warning: drain and reset the GPU"},
	62:  {KindFirmware, SevCritical, telemetry.ActionResetGPU, "micro-controller halted: drain and reset the GPU; reboot the node if the reset fails"},
	63:  {KindRowRemapPending, SevWarning, telemetry.ActionResetGPU, "row remap recorded: drain and reset the GPU when convenient to apply it"},
	64:  {KindRowRemapFailure, SevCritical, telemetry.ActionRMA, "row remapping failed (no spare rows): drain the GPU and RMA it"},
	74:  {KindNVLink, SevCritical, telemetry.ActionResetGPU, "NVLink error: drain, reset the GPUs on the link; reseat or replace the link (RMA) if it recurs"},
	79:  {KindFellOffBus, SevCritical, telemetry.ActionReboot, "GPU fell off the bus: drain the node and reboot (power-cycle) it; RMA if it recurs"},
	92:  {KindContainedECC, SevWarning, telemetry.ActionInvestigate, "high single-bit ECC error rate: watch for remaps; drain and reset when convenient"},
	94:  {KindContainedECC, SevWarning, telemetry.ActionRestartApp, "contained ECC error: the application was stopped; restart it, and reset the GPU when idle to remap the row"},
	95:  {KindUncorrectableECC, SevCritical, telemetry.ActionResetGPU, "uncontained ECC error: every application on the GPU is affected; drain and reset the GPU"},
	119: {KindFirmware, SevCritical, telemetry.ActionResetGPU, "GSP RPC timeout: drain, reset the GPU; reboot the node if it recurs"},
	120: {KindFirmware, SevCritical, telemetry.ActionResetGPU, "GSP error: drain, reset the GPU; reboot the node if it recurs"},
	140: {KindUncorrectableECC, SevCritical, telemetry.ActionResetGPU, "unrecovered ECC error: drain and reset the GPU; RMA if it recurs"},
}

// ClassifyXID returns the detector's policy for an XID; unknown codes are
// warnings to investigate.
func ClassifyXID(code int) XIDPolicy {
	if p, ok := xidPolicies[code]; ok {
		return p
	}
	return XIDPolicy{KindUnknownXID, SevWarning, telemetry.ActionInvestigate, "XID not in Fleetwatch's table: look it up in NVIDIA's XID catalog"}
}

// IsHardware reports whether a kind points at the GPU's hardware or
// firmware rather than at the application or the driver.
func IsHardware(kind string) bool {
	switch kind {
	case KindApplication, KindDriver, KindUnknownXID:
		return false
	}
	return true
}

// HardFaultKinds are the GPU event kinds the detector reads (Source's
// events query and the score package's in-memory windower keep the same
// set).
var HardFaultKinds = []string{telemetry.GPUEventXID, telemetry.GPUEventECCDBE, telemetry.GPUEventRowRemap, telemetry.GPUEventLost}

// eventPolicy maps a non-XID GPU event to its policy.
func eventPolicy(e *Event) (XIDPolicy, bool) {
	switch e.Kind {
	case telemetry.GPUEventXID:
		return ClassifyXID(int(e.Code)), true
	case telemetry.GPUEventECCDBE:
		return xidPolicies[48], true
	case telemetry.GPUEventLost:
		return xidPolicies[79], true
	case telemetry.GPUEventRowRemap:
		if e.Code == 64 {
			return xidPolicies[64], true
		}
		return xidPolicies[63], true
	}
	return XIDPolicy{}, false
}
