package sim

import (
	"encoding/binary"
	"math"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

// Event kinds the simulated event set reports.
const (
	xidEvent = nvml.EventTypeXidCriticalError
	dbeEvent = nvml.EventTypeDoubleBitEccError
)

// NVML returns an nvml.Interface for node n, built on go-nvml's mock: the
// agent's NVML source reads the simulated GPUs through it exactly as it reads
// real ones. Calls to a lost GPU return ERROR_GPU_IS_LOST.
//
// The simulator implements the calls the agent makes as methods of types that
// embed the mock (whose other methods panic when called, as an unset mock
// function does) rather than through the mock's function fields: the mock's
// methods record every call in slices nobody trims, which grew a long
// simulation's memory by about 2 KiB per GPU and step.
func (fl *Fleet) NVML(n *Node) nvml.Interface {
	lib := &library{node: n}
	for _, g := range n.GPUs {
		lib.devs = append(lib.devs, &device{g: g, model: g.model})
	}
	return lib
}

// library is one simulated node's NVML.
type library struct {
	mock.Interface
	node *Node
	devs []*device
}

func (l *library) Init() nvml.Return     { return nvml.SUCCESS }
func (l *library) Shutdown() nvml.Return { return nvml.SUCCESS }

func (l *library) SystemGetDriverVersion() (string, nvml.Return) { return driverVersion, nvml.SUCCESS }

func (l *library) DeviceGetCount() (int, nvml.Return) { return len(l.devs), nvml.SUCCESS }

func (l *library) DeviceGetHandleByIndex(i int) (nvml.Device, nvml.Return) {
	if i < 0 || i >= len(l.devs) {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	return l.devs[i], nvml.SUCCESS
}

func (l *library) EventSetCreate() (nvml.EventSet, nvml.Return) {
	return &eventSet{lib: l}, nvml.SUCCESS
}

func (l *library) GpmSampleAlloc() (nvml.GpmSample, nvml.Return) { return &gpmSample{}, nvml.SUCCESS }

func (l *library) GpmMetricsGet(m *nvml.GpmMetricsGetType) nvml.Return {
	cur, ok := m.Sample2.(*gpmSample)
	if !ok || cur.g == nil {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	for i := uint32(0); i < m.NumMetrics; i++ {
		m.Metrics[i].Value, m.Metrics[i].NvmlReturn = cur.metric(nvml.GpmMetricId(m.Metrics[i].MetricId))
	}
	return nvml.SUCCESS
}

// eventSet reports the node's queued XID and ECC events.
type eventSet struct {
	mock.EventSet
	lib *library
}

func (e *eventSet) Free() nvml.Return { return nvml.SUCCESS }

// Wait reports what is queued: simulated time does not pass while waiting.
func (e *eventSet) Wait(uint32) (nvml.EventData, nvml.Return) {
	n := e.lib.node
	if len(n.events) == 0 {
		return nvml.EventData{}, nvml.ERROR_TIMEOUT
	}
	ev := n.events[0]
	n.events = n.events[1:]
	return nvml.EventData{Device: e.lib.devs[ev.gpu.Index], EventType: ev.kind, EventData: ev.data}, nvml.SUCCESS
}

// gpmSample snapshots a GPU's profiling counters.
type gpmSample struct {
	mock.GpmSample
	g                       *GPU
	gr, sm, tensor, dram    float64
	tx, rx                  []float64
	txTotal, rxTotal, links int
}

func (s *gpmSample) metric(id nvml.GpmMetricId) (float64, uint32) {
	const mib = 1 << 20
	switch {
	case id == nvml.GPM_METRIC_GRAPHICS_UTIL:
		return s.gr * 100, uint32(nvml.SUCCESS)
	case id == nvml.GPM_METRIC_SM_UTIL:
		return s.sm * 100, uint32(nvml.SUCCESS)
	case id == nvml.GPM_METRIC_ANY_TENSOR_UTIL:
		return s.tensor * 100, uint32(nvml.SUCCESS)
	case id == nvml.GPM_METRIC_DRAM_BW_UTIL:
		return s.dram * 100, uint32(nvml.SUCCESS)
	case id == nvml.GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC:
		return sum(s.tx) / mib, uint32(nvml.SUCCESS)
	case id == nvml.GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC:
		return sum(s.rx) / mib, uint32(nvml.SUCCESS)
	case id >= nvml.GPM_METRIC_NVLINK_L0_RX_PER_SEC && int(id-nvml.GPM_METRIC_NVLINK_L0_RX_PER_SEC) < 2*len(s.tx):
		off := int(id - nvml.GPM_METRIC_NVLINK_L0_RX_PER_SEC)
		if off%2 == 0 {
			return s.rx[off/2] / mib, uint32(nvml.SUCCESS)
		}
		return s.tx[off/2] / mib, uint32(nvml.SUCCESS)
	}
	return math.NaN(), uint32(nvml.ERROR_NOT_SUPPORTED)
}

func sum(xs []float64) float64 {
	var t float64
	for _, x := range xs {
		t += x
	}
	return t
}

func b2s(b bool) nvml.EnableState {
	if b {
		return nvml.FEATURE_ENABLED
	}
	return nvml.FEATURE_DISABLED
}

func (s *gpmSample) Free() nvml.Return { return nvml.SUCCESS }

// device is one simulated GPU.
type device struct {
	mock.Device
	g     *GPU
	model string
}

func (d *device) GetUUID() (string, nvml.Return)     { return d.g.UUID, nvml.SUCCESS }
func (d *device) GetName() (string, nvml.Return)     { return d.model, nvml.SUCCESS }
func (d *device) GetMinorNumber() (int, nvml.Return) { return d.g.Index, nvml.SUCCESS }

func (d *device) GetPciInfo() (nvml.PciInfo, nvml.Return) {
	var p nvml.PciInfo
	copy(p.BusId[:], d.g.PCI)
	return p, nvml.SUCCESS
}

func (d *device) GetMigMode() (int, int, nvml.Return) { return 0, 0, nvml.SUCCESS }

func (d *device) GpmQueryDeviceSupport() (nvml.GpmSupport, nvml.Return) {
	return nvml.GpmSupport{IsSupportedDevice: 1}, nvml.SUCCESS
}

func (d *device) RegisterEvents(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }

func (d *device) GetTemperature(nvml.TemperatureSensors) (uint32, nvml.Return) {
	if d.g.lost {
		return 0, nvml.ERROR_GPU_IS_LOST
	}
	return uint32(math.Round(d.g.tempC)), nvml.SUCCESS
}

func (d *device) GetFieldValues(fv []nvml.FieldValue) nvml.Return {
	for i := range fv {
		if fv[i].FieldId == nvml.FI_DEV_MEMORY_TEMP {
			fv[i].ValueType = uint32(nvml.VALUE_TYPE_UNSIGNED_INT)
			binary.LittleEndian.PutUint32(fv[i].Value[:], uint32(math.Round(d.g.tempC+6)))
			fv[i].NvmlReturn = uint32(nvml.SUCCESS)
		} else {
			fv[i].NvmlReturn = uint32(nvml.ERROR_NOT_SUPPORTED)
		}
	}
	return nvml.SUCCESS
}

func (d *device) GetPowerUsage() (uint32, nvml.Return) {
	return uint32(d.g.powerW * 1000), nvml.SUCCESS
}

func (d *device) GetTotalEnergyConsumption() (uint64, nvml.Return) {
	return uint64(d.g.energyMJ), nvml.SUCCESS
}

func (d *device) GetClockInfo(t nvml.ClockType) (uint32, nvml.Return) {
	if t == nvml.CLOCK_MEM {
		return uint32(memClock), nvml.SUCCESS
	}
	return uint32(d.g.smClock), nvml.SUCCESS
}

func (d *device) GetUtilizationRates() (nvml.Utilization, nvml.Return) {
	return nvml.Utilization{Gpu: uint32(math.Round(d.g.load * 100)), Memory: uint32(math.Round(d.g.load * 38))}, nvml.SUCCESS
}

// memory is the framebuffer in bytes: used by processes, free, and reserved
// by the driver and firmware.
func (d *device) memory() (used, free, reserved uint64) {
	const mib = 1 << 20
	u := 450.0
	if d.g.job != nil {
		u = 71000
	}
	return uint64(u * mib), uint64((fbTotalMiB - fbReservedMiB - u) * mib), fbReservedMiB * mib
}

func (d *device) GetMemoryInfo_v2() (nvml.Memory_v2, nvml.Return) {
	used, free, reserved := d.memory()
	return nvml.Memory_v2{Version: nvml.STRUCT_VERSION(nvml.Memory_v2{}, 2), Total: used + free + reserved, Reserved: reserved, Free: free, Used: used}, nvml.SUCCESS
}

// GetMemoryInfo is the original call, which counts reserved memory as used.
func (d *device) GetMemoryInfo() (nvml.Memory, nvml.Return) {
	used, free, reserved := d.memory()
	return nvml.Memory{Total: used + free + reserved, Used: used + reserved, Free: free}, nvml.SUCCESS
}

// The video encoders and decoders are idle: the fleet trains and serves models.
func (d *device) GetEncoderUtilization() (uint32, uint32, nvml.Return) {
	return 0, 167000, nvml.SUCCESS
}
func (d *device) GetDecoderUtilization() (uint32, uint32, nvml.Return) {
	return 0, 167000, nvml.SUCCESS
}

// GetGridLicensableFeatures: bare metal, no vGPU.
func (d *device) GetGridLicensableFeatures() (nvml.GridLicensableFeatures, nvml.Return) {
	return nvml.GridLicensableFeatures{}, nvml.SUCCESS
}

func (d *device) GetTotalEccErrors(t nvml.MemoryErrorType, c nvml.EccCounterType) (uint64, nvml.Return) {
	g := d.g
	switch {
	case t == nvml.MEMORY_ERROR_TYPE_CORRECTED && c == nvml.VOLATILE_ECC:
		return g.sbeVol, nvml.SUCCESS
	case t == nvml.MEMORY_ERROR_TYPE_UNCORRECTED && c == nvml.VOLATILE_ECC:
		return g.dbeVol, nvml.SUCCESS
	case t == nvml.MEMORY_ERROR_TYPE_CORRECTED:
		return g.sbeAgg, nvml.SUCCESS
	default:
		return g.dbeAgg, nvml.SUCCESS
	}
}

// Hopper GPUs remap rows instead of retiring pages.
func (d *device) GetRetiredPages(nvml.PageRetirementCause) ([]uint64, nvml.Return) {
	return nil, nvml.ERROR_NOT_SUPPORTED
}

func (d *device) GetRetiredPagesPendingStatus() (nvml.EnableState, nvml.Return) {
	return 0, nvml.ERROR_NOT_SUPPORTED
}

func (d *device) GetRemappedRows() (int, int, bool, bool, nvml.Return) {
	g := d.g
	return g.remapCorr, g.remapUnc, g.remapPend, g.remapFail, nvml.SUCCESS
}

func (d *device) GetPcieReplayCounter() (int, nvml.Return) { return d.g.pcieRepl, nvml.SUCCESS }

func (d *device) GetPcieThroughput(c nvml.PcieUtilCounter) (uint32, nvml.Return) {
	kbps := 2e6 * d.g.load // ~2 GB/s under load, in KB/s
	if c == nvml.PCIE_UTIL_RX_BYTES {
		kbps *= 0.6
	}
	return uint32(kbps), nvml.SUCCESS
}

func (d *device) GetNvLinkState(l int) (nvml.EnableState, nvml.Return) {
	if l < 0 || l >= len(d.g.linkUp) {
		return 0, nvml.ERROR_INVALID_ARGUMENT
	}
	return b2s(d.g.linkUp[l]), nvml.SUCCESS
}

func (d *device) GetNvLinkErrorCounter(l int, c nvml.NvLinkErrorCounter) (uint64, nvml.Return) {
	if l < 0 || l >= len(d.g.linkErr) || int(c) > 3 {
		return 0, nvml.ERROR_INVALID_ARGUMENT
	}
	return d.g.linkErr[l][c], nvml.SUCCESS
}

func (d *device) GetCurrentClocksEventReasons() (uint64, nvml.Return) {
	return d.g.reasons, nvml.SUCCESS
}

func (d *device) GpmSampleGet(s nvml.GpmSample) nvml.Return {
	gs, ok := s.(*gpmSample)
	if !ok {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	g := d.g
	if g.lost {
		return nvml.ERROR_GPU_IS_LOST
	}
	// The graphics engine is busy a little longer than some SM has a warp.
	gs.g, gs.gr, gs.sm, gs.tensor, gs.dram = g, math.Min(1, g.smActive*1.06), g.smActive, g.tensor, g.dram
	gs.tx = append(gs.tx[:0], g.linkTx...)
	gs.rx = append(gs.rx[:0], g.linkRx...)
	return nvml.SUCCESS
}
