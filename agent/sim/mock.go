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
func (fl *Fleet) NVML(n *Node) nvml.Interface {
	devs := make([]*mock.Device, len(n.GPUs))
	for i, g := range n.GPUs {
		devs[i] = fl.device(g)
	}
	lib := &mock.Interface{
		InitFunc:     func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc: func() nvml.Return { return nvml.SUCCESS },
		DeviceGetCountFunc: func() (int, nvml.Return) {
			return len(devs), nvml.SUCCESS
		},
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			if i < 0 || i >= len(devs) {
				return nil, nvml.ERROR_INVALID_ARGUMENT
			}
			return devs[i], nvml.SUCCESS
		},
		EventSetCreateFunc: func() (nvml.EventSet, nvml.Return) {
			return &mock.EventSet{
				FreeFunc: func() nvml.Return { return nvml.SUCCESS },
				WaitFunc: func(uint32) (nvml.EventData, nvml.Return) {
					// Simulated time does not pass while waiting: report what is queued.
					if len(n.events) == 0 {
						return nvml.EventData{}, nvml.ERROR_TIMEOUT
					}
					e := n.events[0]
					n.events = n.events[1:]
					return nvml.EventData{Device: devs[e.gpu.Index], EventType: e.kind, EventData: e.data}, nvml.SUCCESS
				},
			}, nvml.SUCCESS
		},
		GpmSampleAllocFunc: func() (nvml.GpmSample, nvml.Return) {
			s := &gpmSample{}
			s.GpmSample = mock.GpmSample{FreeFunc: func() nvml.Return { return nvml.SUCCESS }}
			return s, nvml.SUCCESS
		},
		GpmMetricsGetFunc: func(m *nvml.GpmMetricsGetType) nvml.Return {
			cur, ok := m.Sample2.(*gpmSample)
			if !ok || cur.g == nil {
				return nvml.ERROR_INVALID_ARGUMENT
			}
			for i := uint32(0); i < m.NumMetrics; i++ {
				m.Metrics[i].Value, m.Metrics[i].NvmlReturn = cur.metric(nvml.GpmMetricId(m.Metrics[i].MetricId))
			}
			return nvml.SUCCESS
		},
	}
	return lib
}

// gpmSample snapshots a GPU's profiling counters.
type gpmSample struct {
	mock.GpmSample
	g                       *GPU
	sm, tensor, dram        float64
	tx, rx                  []float64
	txTotal, rxTotal, links int
}

func (s *gpmSample) metric(id nvml.GpmMetricId) (float64, uint32) {
	const mib = 1 << 20
	switch {
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

// device builds the mock for one simulated GPU.
func (fl *Fleet) device(g *GPU) *mock.Device {
	model := fl.sc.Fleet.GPUModel
	// up wraps a reader so that it fails once the GPU is lost.
	lost := func() bool { return g.lost }
	d := &mock.Device{}
	d.GetUUIDFunc = func() (string, nvml.Return) { return g.UUID, nvml.SUCCESS }
	d.GetNameFunc = func() (string, nvml.Return) { return model, nvml.SUCCESS }
	d.GetMinorNumberFunc = func() (int, nvml.Return) { return g.Index, nvml.SUCCESS }
	d.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) {
		var p nvml.PciInfo
		copy(p.BusId[:], g.PCI)
		return p, nvml.SUCCESS
	}
	d.GetMigModeFunc = func() (int, int, nvml.Return) { return 0, 0, nvml.SUCCESS }
	d.GpmQueryDeviceSupportFunc = func() (nvml.GpmSupport, nvml.Return) {
		return nvml.GpmSupport{IsSupportedDevice: 1}, nvml.SUCCESS
	}
	d.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
	d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) {
		if lost() {
			return 0, nvml.ERROR_GPU_IS_LOST
		}
		return uint32(math.Round(g.tempC)), nvml.SUCCESS
	}
	d.GetFieldValuesFunc = func(fv []nvml.FieldValue) nvml.Return {
		for i := range fv {
			if fv[i].FieldId == nvml.FI_DEV_MEMORY_TEMP {
				fv[i].ValueType = uint32(nvml.VALUE_TYPE_UNSIGNED_INT)
				binary.LittleEndian.PutUint32(fv[i].Value[:], uint32(math.Round(g.tempC+6)))
				fv[i].NvmlReturn = uint32(nvml.SUCCESS)
			} else {
				fv[i].NvmlReturn = uint32(nvml.ERROR_NOT_SUPPORTED)
			}
		}
		return nvml.SUCCESS
	}
	d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return uint32(g.powerW * 1000), nvml.SUCCESS }
	d.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return uint64(g.energyMJ), nvml.SUCCESS }
	d.GetClockInfoFunc = func(t nvml.ClockType) (uint32, nvml.Return) {
		if t == nvml.CLOCK_MEM {
			return uint32(memClock), nvml.SUCCESS
		}
		return uint32(g.smClock), nvml.SUCCESS
	}
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		return nvml.Utilization{Gpu: uint32(math.Round(g.load * 100)), Memory: uint32(math.Round(g.load * 38))}, nvml.SUCCESS
	}
	d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		used := 450.0
		if g.job != nil {
			used = 71000
		}
		const mib = 1 << 20
		return nvml.Memory{Total: uint64(fbTotalMiB * mib), Used: uint64(used * mib), Free: uint64((fbTotalMiB - used) * mib)}, nvml.SUCCESS
	}
	d.GetTotalEccErrorsFunc = func(t nvml.MemoryErrorType, c nvml.EccCounterType) (uint64, nvml.Return) {
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
	d.GetRetiredPagesFunc = func(nvml.PageRetirementCause) ([]uint64, nvml.Return) { return nil, nvml.ERROR_NOT_SUPPORTED }
	d.GetRetiredPagesPendingStatusFunc = func() (nvml.EnableState, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) {
		return g.remapCorr, g.remapUnc, g.remapPend, g.remapFail, nvml.SUCCESS
	}
	d.GetPcieReplayCounterFunc = func() (int, nvml.Return) { return g.pcieRepl, nvml.SUCCESS }
	d.GetPcieThroughputFunc = func(c nvml.PcieUtilCounter) (uint32, nvml.Return) {
		kbps := 2e6 * g.load // ~2 GB/s under load, in KB/s
		if c == nvml.PCIE_UTIL_RX_BYTES {
			kbps *= 0.6
		}
		return uint32(kbps), nvml.SUCCESS
	}
	d.GetNvLinkStateFunc = func(l int) (nvml.EnableState, nvml.Return) {
		if l < 0 || l >= len(g.linkUp) {
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
		return b2s(g.linkUp[l]), nvml.SUCCESS
	}
	d.GetNvLinkErrorCounterFunc = func(l int, c nvml.NvLinkErrorCounter) (uint64, nvml.Return) {
		if l < 0 || l >= len(g.linkErr) || int(c) > 3 {
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
		return g.linkErr[l][c], nvml.SUCCESS
	}
	d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return g.reasons, nvml.SUCCESS }
	d.GpmSampleGetFunc = func(s nvml.GpmSample) nvml.Return {
		gs, ok := s.(*gpmSample)
		if !ok {
			return nvml.ERROR_INVALID_ARGUMENT
		}
		if lost() {
			return nvml.ERROR_GPU_IS_LOST
		}
		gs.g, gs.sm, gs.tensor, gs.dram = g, g.smActive, g.tensor, g.dram
		gs.tx = append(gs.tx[:0], g.linkTx...)
		gs.rx = append(gs.rx[:0], g.linkRx...)
		return nvml.SUCCESS
	}
	return d
}
