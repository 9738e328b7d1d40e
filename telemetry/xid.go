package telemetry

import "strconv"

// XID classes: whether an XID points at the hardware, the driver or the
// application that was running.
const (
	XIDHardware    = "hardware"
	XIDApplication = "application"
	XIDDriver      = "driver"
	XIDUnknown     = "unknown"
)

// Recommended actions, from least to most disruptive.
const (
	ActionInvestigate = "investigate"
	ActionRestartApp  = "restart_app"
	ActionResetGPU    = "reset_gpu"
	ActionDrain       = "drain"
	ActionReboot      = "reboot"
	ActionRMA         = "rma"
)

// XIDInfo is what an XID means, after NVIDIA's XID catalog.
type XIDInfo struct {
	Code    int
	Meaning string
	Class   string
	// Action is the first thing on-call should do.
	Action string
	// Critical XIDs make the GPU unusable until acted upon.
	Critical bool
}

var xids = map[int]XIDInfo{
	13:  {13, "graphics engine exception", XIDApplication, ActionRestartApp, false},
	31:  {31, "GPU memory page fault", XIDApplication, ActionRestartApp, false},
	32:  {32, "invalid or corrupted push buffer stream", XIDDriver, ActionInvestigate, false},
	38:  {38, "driver firmware error", XIDDriver, ActionResetGPU, false},
	43:  {43, "GPU stopped processing", XIDApplication, ActionRestartApp, false},
	45:  {45, "preemptive cleanup after previous errors", XIDApplication, ActionRestartApp, false},
	48:  {48, "double-bit ECC error", XIDHardware, ActionResetGPU, true},
	61:  {61, "internal micro-controller breakpoint or warning", XIDDriver, ActionResetGPU, false},
	62:  {62, "internal micro-controller halt", XIDHardware, ActionResetGPU, true},
	63:  {63, "ECC page retirement or row remapping recorded", XIDHardware, ActionResetGPU, false},
	64:  {64, "ECC page retirement or row remapping failed", XIDHardware, ActionRMA, true},
	68:  {68, "video processor exception", XIDApplication, ActionRestartApp, false},
	69:  {69, "graphics engine class error", XIDApplication, ActionRestartApp, false},
	74:  {74, "NVLink error", XIDHardware, ActionResetGPU, true},
	79:  {79, "GPU has fallen off the bus", XIDHardware, ActionDrain, true},
	92:  {92, "high single-bit ECC error rate", XIDHardware, ActionInvestigate, false},
	94:  {94, "contained ECC error (only the affected application is hit)", XIDHardware, ActionRestartApp, false},
	95:  {95, "uncontained ECC error", XIDHardware, ActionResetGPU, true},
	119: {119, "GSP RPC timeout", XIDDriver, ActionResetGPU, true},
	120: {120, "GSP error", XIDDriver, ActionResetGPU, true},
	140: {140, "unrecovered ECC error", XIDHardware, ActionResetGPU, true},
}

// XID describes code; unknown codes are XIDUnknown with ActionInvestigate.
func XID(code int) XIDInfo {
	if x, ok := xids[code]; ok {
		return x
	}
	return XIDInfo{Code: code, Meaning: "XID " + strconv.Itoa(code) + " (not in Fleetwatch's table; see NVIDIA's XID catalog)", Class: XIDUnknown, Action: ActionInvestigate}
}
