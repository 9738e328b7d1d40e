package promexp

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

func TestExpositionAndStaleness(t *testing.T) {
	e := New(time.Minute)
	clock := time.Unix(1000, 0)
	e.now = func() time.Time { return clock }
	b := &record.Batch{Resource: &record.Resource{Host: "n1"}, GPUs: []record.GPU{{Index: "0", UUID: "GPU-1", PCIBusID: "p", Device: "nvidia0", ModelName: "H100", Workload: record.Workload{Pod: "p1"}}},
		Samples: []record.Sample{
			{Field: int16(telemetry.Index(telemetry.GPUTemp)), GPU: 0, Link: -1, Value: 50},
			{Field: int16(telemetry.Index(telemetry.ECCSBEVolatile)), GPU: 0, Link: -1, Value: 3},
			{Field: int16(telemetry.Index(telemetry.NVLinkCRCFlit)), GPU: 0, Link: 2, Value: 7},
		}}
	e.Observe(b)
	b.Samples[0].Value = 52 // a newer value replaces the old one
	e.Observe(b)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e)
	want := `# HELP DCGM_FI_DEV_GPU_TEMP GPU temperature (in C).
# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{Hostname="n1",UUID="GPU-1",device="nvidia0",gpu="0",modelName="H100",pci_bus_id="p",pod="p1"} 52
# HELP DCGM_FI_DEV_ECC_SBE_VOL_TOTAL Total number of single-bit volatile ECC errors.
# TYPE DCGM_FI_DEV_ECC_SBE_VOL_TOTAL counter
DCGM_FI_DEV_ECC_SBE_VOL_TOTAL{Hostname="n1",UUID="GPU-1",device="nvidia0",gpu="0",modelName="H100",pci_bus_id="p",pod="p1"} 3
# HELP DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT NVLink flow-control CRC errors (per link).
# TYPE DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT counter
DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT{Hostname="n1",UUID="GPU-1",device="nvidia0",gpu="0",link="2",modelName="H100",pci_bus_id="p",pod="p1"} 7
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if e.Series() != 3 {
		t.Fatalf("%d series", e.Series())
	}
	clock = clock.Add(2 * time.Minute)
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Fatalf("stale series still exposed: %d, %v", n, err)
	}
	if e.Series() != 0 {
		t.Fatal("stale series kept")
	}
}

// The last-XID gauge carries err_code and err_msg as dcgm-exporter does;
// they follow the value, so a GPU keeps one series. The GPU's driver
// version, pod UID and job are labels too, the job as hpc_job.
func TestLastXIDAndIdentityLabels(t *testing.T) {
	e := New(time.Minute)
	g := record.GPU{Index: "0", UUID: "GPU-1", PCIBusID: "p", Device: "nvidia0", ModelName: "H100", DriverVersion: "550.90.07",
		Workload: record.Workload{Pod: "p1", PodUID: "u-1", Job: "llm"}}
	b := &record.Batch{Resource: &record.Resource{Host: "n1"}, GPUs: []record.GPU{g},
		Samples: []record.Sample{{Field: int16(telemetry.Index(telemetry.XIDErrors)), GPU: 0, Link: -1, Value: 0}}}
	e.Observe(b)
	b.Samples[0].Value = 48
	e.Observe(b)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e)
	want := `# HELP DCGM_FI_DEV_XID_ERRORS Value of the last XID error encountered.
# TYPE DCGM_FI_DEV_XID_ERRORS gauge
DCGM_FI_DEV_XID_ERRORS{DCGM_FI_DRIVER_VERSION="550.90.07",Hostname="n1",UUID="GPU-1",device="nvidia0",err_code="48",err_msg="double-bit ECC error",gpu="0",hpc_job="llm",modelName="H100",pci_bus_id="p",pod="p1",pod_uid="u-1"} 48
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
