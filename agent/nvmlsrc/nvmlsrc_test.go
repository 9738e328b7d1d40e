package nvmlsrc_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"

	"github.com/fleetwatch/fleetwatch/agent/nvmlsrc"
	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// simNode returns the mock NVML of a one-node simulated fleet.
func simNode(t *testing.T, yaml string) (*sim.Fleet, nvml.Interface) {
	t.Helper()
	sc, err := sim.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	fl := sim.NewFleet(sc)
	fl.Advance(sc.Start.Add(sc.Interval))
	return fl, fl.NVML(fl.Nodes[0])
}

// patched is a simulated GPU with some NVML calls replaced, as a test needs.
type patched struct {
	nvml.Device
	powerUsage   func() (uint32, nvml.Return)
	clockInfo    func(nvml.ClockType) (uint32, nvml.Return)
	clockReasons func() (uint64, nvml.Return)
	memoryV2     func() (nvml.Memory_v2, nvml.Return)
	migs         []nvml.Device
}

func (p *patched) GetPowerUsage() (uint32, nvml.Return) {
	if p.powerUsage != nil {
		return p.powerUsage()
	}
	return p.Device.GetPowerUsage()
}

func (p *patched) GetClockInfo(c nvml.ClockType) (uint32, nvml.Return) {
	if p.clockInfo != nil {
		return p.clockInfo(c)
	}
	return p.Device.GetClockInfo(c)
}

func (p *patched) GetCurrentClocksEventReasons() (uint64, nvml.Return) {
	if p.clockReasons != nil {
		return p.clockReasons()
	}
	return p.Device.GetCurrentClocksEventReasons()
}

func (p *patched) GetMemoryInfo_v2() (nvml.Memory_v2, nvml.Return) {
	if p.memoryV2 != nil {
		return p.memoryV2()
	}
	return p.Device.GetMemoryInfo_v2()
}

func (p *patched) GetMigMode() (int, int, nvml.Return) {
	if p.migs != nil {
		return nvml.DEVICE_MIG_ENABLE, nvml.DEVICE_MIG_ENABLE, nvml.SUCCESS
	}
	return p.Device.GetMigMode()
}

func (p *patched) GetMaxMigDeviceCount() (int, nvml.Return) { return 7, nvml.SUCCESS }

func (p *patched) GetMigDeviceHandleByIndex(i int) (nvml.Device, nvml.Return) {
	if i < len(p.migs) {
		return p.migs[i], nvml.SUCCESS
	}
	return nil, nvml.ERROR_NOT_FOUND
}

// patchedLib serves a patched GPU 0.
type patchedLib struct {
	nvml.Interface
	dev *patched
}

func (l patchedLib) DeviceGetHandleByIndex(i int) (nvml.Device, nvml.Return) {
	if i == 0 {
		return l.dev, nvml.SUCCESS
	}
	return l.Interface.DeviceGetHandleByIndex(i)
}

// patch wraps GPU 0 of lib so that a test can replace its calls.
func patch(lib nvml.Interface) (nvml.Interface, *patched) {
	dev, _ := lib.DeviceGetHandleByIndex(0)
	p := &patched{Device: dev}
	return patchedLib{Interface: lib, dev: p}, p
}

func open(t *testing.T, lib nvml.Interface, log *slog.Logger) *nvmlsrc.Source {
	t.Helper()
	src, err := nvmlsrc.New(lib, nvmlsrc.NewDefaultConfig(), &record.Resource{Host: "n1"}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	return src
}

func fields(b *record.Batch, gpu int32) map[string][]record.Sample {
	out := map[string][]record.Sample{}
	for _, s := range b.Samples {
		if s.GPU == gpu {
			out[s.MetricName()] = append(out[s.MetricName()], s)
		}
	}
	return out
}

func TestCollectReadsEveryField(t *testing.T) {
	fl, lib := simNode(t, "fleet: {nodes_per_rack: 1, gpus_per_node: 2, nvlinks: 4}\njobs: [{name: j, nodes: 1}]\n")
	src := open(t, lib, quiet)
	now := time.Now()
	src.Collect(now) // the first GPM sample only opens the interval
	fl.Advance(now.Add(time.Second))
	b := src.Collect(now.Add(time.Second))
	if len(b.GPUs) != 2 || b.GPUs[1].UUID != fl.Nodes[0].GPUs[1].UUID || b.GPUs[1].PCIBusID == "" || b.GPUs[1].Device != "nvidia1" {
		t.Fatalf("GPU identities: %+v", b.GPUs)
	}
	if b.GPUs[0].Job != "" {
		t.Error("workload set without a Workloads provider")
	}
	got := fields(b, 1)
	want := []string{telemetry.GPUTemp, telemetry.MemoryTemp, telemetry.PowerUsage, telemetry.TotalEnergy, telemetry.SMClock,
		telemetry.MemClock, telemetry.GPUUtil, telemetry.MemCopyUtil, telemetry.FBUsed, telemetry.FBFree,
		telemetry.ECCSBEVolatile, telemetry.ECCDBEVolatile, telemetry.ECCSBEAggregate, telemetry.ECCDBEAggregate,
		telemetry.RemappedCorr, telemetry.RemappedUncorr, telemetry.RowRemapPending, telemetry.RowRemapFailure,
		telemetry.PCIeReplay, telemetry.PCIeTxBytes, telemetry.PCIeRxBytes, telemetry.NVLinkState, telemetry.NVLinkCRCFlit,
		telemetry.NVLinkCRCData, telemetry.NVLinkReplay, telemetry.NVLinkRecovery, telemetry.NVLinkCRCFlitTotal,
		telemetry.NVLinkReplayTotal, telemetry.ClockEventReasons, telemetry.SMActive, telemetry.TensorActive,
		telemetry.DRAMActive, telemetry.NVLinkTxBytes, telemetry.NVLinkRxBytes, telemetry.NVLinkLinkTxBytes, telemetry.NVLinkLinkRxBytes,
		telemetry.EncUtil, telemetry.DecUtil, telemetry.FBReserved, telemetry.GREngineActive, telemetry.NVLinkBandwidth,
		telemetry.XIDErrors, telemetry.VGPULicenseStatus}
	for _, f := range want {
		if len(got[f]) == 0 {
			t.Errorf("no %s", f)
		}
	}
	if n := len(got[telemetry.NVLinkCRCFlit]); n != 4 {
		t.Errorf("%d per-link CRC samples, want 4 links", n)
	}
	if n := len(got[telemetry.NVLinkTxBytes]); n != 1 {
		t.Errorf("%d NVLink TX total samples, want 1", n)
	}
	if n := len(got[telemetry.NVLinkLinkTxBytes]); n != 4 {
		t.Errorf("%d per-link NVLink TX samples, want 4 links", n)
	}
	// A family is per link or a total, never both: sum() over a family must
	// not add a total to its own links.
	for _, s := range b.Samples {
		if f := telemetry.Fields[s.Field]; f.PerLink != (s.Link >= 0) {
			t.Errorf("%s: per-link field %v, sample with link %d", f.Name, f.PerLink, s.Link)
		}
	}
	if bytes := got[telemetry.NVLinkTxBytes][0].Value + got[telemetry.NVLinkRxBytes][0].Value; math.Abs(got[telemetry.NVLinkBandwidth][0].Value*1e6-bytes) > 1e-9*bytes {
		t.Errorf("%s = %v MB/s, not TX + RX", telemetry.NVLinkBandwidth, got[telemetry.NVLinkBandwidth][0].Value)
	}
	if b.GPUs[1].DriverVersion == "" {
		t.Error("no driver version")
	}
	// Units: W not mW, MiB not bytes, ratios in 0..1, B/s not KB/s.
	checks := map[string][2]float64{telemetry.PowerUsage: {70, 720}, telemetry.GPUTemp: {25, 90}, telemetry.FBUsed: {60000, 80000},
		telemetry.FBReserved: {100, 2000}, telemetry.GREngineActive: {0.5, 1},
		telemetry.SMActive: {0.5, 1}, telemetry.PCIeTxBytes: {1e8, 1e10}, telemetry.SMClock: {1000, 2000}}
	for f, r := range checks {
		if v := got[f][0].Value; v < r[0] || v > r[1] {
			t.Errorf("%s = %v, want %v..%v", f, v, r[0], r[1])
		}
	}
	// Hopper has no page retirement: logged once as unsupported, not sampled.
	if len(got[telemetry.RetiredSBE]) != 0 {
		t.Error("retired pages reported on a GPU without them")
	}
}

func TestUnsupportedFieldIsLoggedOnceAndSkipped(t *testing.T) {
	_, sim := simNode(t, "fleet: {nodes_per_rack: 1, gpus_per_node: 1}\n")
	lib, dev := patch(sim)
	var calls atomic.Int32
	dev.powerUsage = func() (uint32, nvml.Return) {
		calls.Add(1)
		return 0, nvml.ERROR_NOT_SUPPORTED
	}
	var logs bytes.Buffer
	src := open(t, lib, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	for i := 0; i < 5; i++ {
		b := src.Collect(time.Now())
		if len(fields(b, 0)[telemetry.PowerUsage]) != 0 {
			t.Fatal("unsupported field produced a sample")
		}
		if len(fields(b, 0)[telemetry.GPUTemp]) != 1 {
			t.Fatal("the other fields stopped")
		}
	}
	if c := calls.Load(); c != 1 {
		t.Errorf("GetPowerUsage called %d times, want once", c)
	}
	if n := strings.Count(logs.String(), "level=DEBUG msg=\"GPU does not support a field; skipping it from now on\" source=nvml gpu=0 field="+telemetry.PowerUsage); n != 1 {
		t.Errorf("logged %d times at debug level, want once:\n%s", n, logs.String())
	}
	if u := src.Unsupported(); u[telemetry.PowerUsage] != 1 {
		t.Errorf("Unsupported() = %v, want %s: 1", u, telemetry.PowerUsage)
	}
}

func TestTransientErrorsAreCountedNotFatal(t *testing.T) {
	_, sim := simNode(t, "fleet: {nodes_per_rack: 1, gpus_per_node: 1}\n")
	lib, dev := patch(sim)
	dev.clockInfo = func(nvml.ClockType) (uint32, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
	src := open(t, lib, quiet)
	for i := 0; i < 3; i++ {
		src.Collect(time.Now())
	}
	errs := src.Errors()
	if errs[telemetry.SMClock+": "+nvml.ERROR_UNKNOWN.Error()] != 3 {
		t.Errorf("errors %v", errs)
	}
}

func TestNoDriver(t *testing.T) {
	// The real NVML binding on a machine without the NVIDIA driver.
	src, err := nvmlsrc.New(nvml.New(), nvmlsrc.NewDefaultConfig(), nil, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	err = src.Open()
	if err == nil {
		src.Close()
		t.Skip("this machine has an NVIDIA driver; the no-driver path is covered by the mock case below")
	}
	if !errors.Is(err, nvmlsrc.ErrNoDriver) {
		t.Fatalf("error %v is not ErrNoDriver", err)
	}
	lib := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_DRIVER_NOT_LOADED }}
	src, _ = nvmlsrc.New(lib, nvmlsrc.NewDefaultConfig(), nil, nil, quiet)
	if err := src.Run(context.Background(), record.SinkFunc(func(*record.Batch) {})); !errors.Is(err, nvmlsrc.ErrNoDriver) {
		t.Fatalf("Run: %v", err)
	}
}

func TestEventsComeFromTheEventSet(t *testing.T) {
	fl, lib := simNode(t, `
start: 2026-11-23T00:00:00Z
interval: 1s
fleet: {nodes_per_rack: 1, gpus_per_node: 2}
faults: [{type: xid79, target: {node: node-000, gpu: 1}, start: 2s}]
`)
	src := open(t, lib, quiet)
	start := fl.Now()
	for i := 1; i <= 3; i++ {
		fl.Advance(start.Add(time.Duration(i) * time.Second))
	}
	evs := src.WaitEvents(time.Now(), 0)
	if len(evs) != 1 || evs[0].Kind != telemetry.GPUEventXID || evs[0].Code != 79 || evs[0].GPU != 1 ||
		!strings.Contains(evs[0].Message, "fallen off the bus") {
		t.Fatalf("events %+v", evs)
	}
	// The lost GPU: one gpu_lost event, then it is skipped.
	b := src.Collect(time.Now())
	lost := 0
	for _, e := range b.Events {
		if e.Kind == telemetry.GPUEventLost && e.GPU == 1 {
			lost++
		}
	}
	if lost != 1 || len(fields(b, 1)) != 0 || len(fields(b, 0)) == 0 {
		t.Fatalf("lost events %d, samples of the lost GPU %d, of the healthy one %d", lost, len(fields(b, 1)), len(fields(b, 0)))
	}
	if b2 := src.Collect(time.Now()); len(b2.Events) != 0 {
		t.Fatalf("gpu_lost reported twice: %+v", b2.Events)
	}
}

// DCGM_FI_DEV_XID_ERRORS is the last XID the event set reported, per GPU.
func TestLastXIDGauge(t *testing.T) {
	fl, lib := simNode(t, `
start: 2026-11-23T00:00:00Z
interval: 1s
fleet: {nodes_per_rack: 1, gpus_per_node: 2}
faults: [{type: ecc_ramp, target: {node: node-000, gpu: 1}, start: 1s, end: 3s}]
`)
	src := open(t, lib, quiet)
	xid := func(gpu int32) float64 {
		s := fields(src.Collect(time.Now()), gpu)[telemetry.XIDErrors]
		if len(s) != 1 {
			t.Fatalf("%d XID samples for GPU %d", len(s), gpu)
		}
		return s[0].Value
	}
	if v := xid(1); v != 0 {
		t.Fatalf("last XID %v before any event, want 0", v)
	}
	for i := 2; i <= 4; i++ {
		fl.Advance(fl.Now().Add(time.Second))
	}
	src.WaitEvents(time.Now(), 0)
	if v0, v1 := xid(0), xid(1); v0 != 0 || v1 != 48 {
		t.Fatalf("last XID of GPU 0 = %v, of GPU 1 = %v; want 0 and 48 (double-bit ECC)", v0, v1)
	}
}

// Where nvmlDeviceGetMemoryInfo_v2 is missing, used and free come from the
// original call and no reserved memory is reported.
func TestMemoryWithoutV2(t *testing.T) {
	_, sim := simNode(t, "fleet: {nodes_per_rack: 1, gpus_per_node: 1}\n")
	lib, dev := patch(sim)
	dev.memoryV2 = func() (nvml.Memory_v2, nvml.Return) { return nvml.Memory_v2{}, nvml.ERROR_FUNCTION_NOT_FOUND }
	src := open(t, lib, quiet)
	got := fields(src.Collect(time.Now()), 0)
	want, _ := sim.DeviceGetHandleByIndex(0)
	mem, _ := want.GetMemoryInfo()
	if len(got[telemetry.FBUsed]) != 1 || got[telemetry.FBUsed][0].Value != float64(mem.Used)/(1<<20) || len(got[telemetry.FBReserved]) != 0 {
		t.Fatalf("used %v, reserved %v; want used %v from GetMemoryInfo and no reserved", got[telemetry.FBUsed], got[telemetry.FBReserved], float64(mem.Used)/(1<<20))
	}
	if u := src.Unsupported(); u[telemetry.FBReserved] != 1 || len(src.Errors()) != 0 {
		t.Fatalf("unsupported %v, errors %v: a driver without the v2 call lacks a field, it is not an error", u, src.Errors())
	}
}

func TestClockEventChangesBecomeEvents(t *testing.T) {
	_, sim := simNode(t, "fleet: {nodes_per_rack: 1, gpus_per_node: 1}\n")
	lib, dev := patch(sim)
	masks := []uint64{0, 0, 0x20 | 0x40, 0x20 | 0x40, 0}
	i := 0
	dev.clockReasons = func() (uint64, nvml.Return) { return masks[i], nvml.SUCCESS }
	src := open(t, lib, quiet)
	var got []string
	for i = range masks {
		for _, e := range src.Collect(time.Now()).Events {
			got = append(got, e.Message)
		}
	}
	if len(got) != 2 || !strings.Contains(got[0], "sw_thermal,hw_thermal") || got[1] != "clock event reasons: " {
		t.Fatalf("events %q: want one when thermal throttling starts and one when it ends", got)
	}
}

func TestMIGInstancesAreLabelled(t *testing.T) {
	_, sim := simNode(t, "fleet: {nodes_per_rack: 1, gpus_per_node: 1}\n")
	lib, dev := patch(sim)
	mig := func(id int, profile string, used uint64) *mock.Device {
		return &mock.Device{
			GetGpuInstanceIdFunc: func() (int, nvml.Return) { return id, nvml.SUCCESS },
			GetNameFunc:          func() (string, nvml.Return) { return "NVIDIA H100 80GB HBM3 MIG " + profile, nvml.SUCCESS },
			GetMemoryInfoFunc:    func() (nvml.Memory, nvml.Return) { return nvml.Memory{Used: used << 20, Free: 1 << 30}, nvml.SUCCESS },
		}
	}
	dev.migs = []nvml.Device{mig(1, "3g.40gb", 1000), mig(2, "1g.10gb", 200)}
	src := open(t, lib, quiet)
	b := src.Collect(time.Now())
	found := map[string]float64{}
	for _, s := range b.Samples {
		g := b.GPUs[s.GPU]
		if g.MIGInstance != "" && s.MetricName() == telemetry.FBUsed {
			found[g.MIGInstance+"/"+g.MIGProfile] = s.Value
		}
	}
	if found["1/3g.40gb"] != 1000 || found["2/1g.10gb"] != 200 || len(found) != 2 {
		t.Fatalf("MIG framebuffer samples %v", found)
	}
}

func TestRunPollsOnTheInterval(t *testing.T) {
	_, lib := simNode(t, "fleet: {nodes_per_rack: 1, gpus_per_node: 2}\n")
	cfg := nvmlsrc.NewDefaultConfig()
	cfg.Interval = 20 * time.Millisecond
	src, err := nvmlsrc.New(lib, cfg, &record.Resource{Host: "n1"}, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var times []time.Time
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = src.Run(ctx, record.SinkFunc(func(b *record.Batch) {
		mu.Lock()
		defer mu.Unlock()
		if len(b.Samples) > 0 {
			times = append(times, b.Time)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(times) < 4 {
		t.Fatalf("%d polls in 200ms at 20ms", len(times))
	}
	for _, tm := range times {
		if tm.UnixNano()%int64(20*time.Millisecond) != 0 {
			t.Fatalf("poll at %v is not aligned to the interval", tm)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (nvmlsrc.Config{Interval: time.Millisecond}).Validate(); err == nil {
		t.Fatal("1ms interval accepted")
	}
}

func BenchmarkCollect8GPUs(b *testing.B) {
	sc, _ := sim.Parse([]byte("fleet: {nodes_per_rack: 1, gpus_per_node: 8}\njobs: [{name: j, nodes: 1}]\n"))
	fl := sim.NewFleet(sc)
	src, _ := nvmlsrc.New(fl.NVML(fl.Nodes[0]), nvmlsrc.NewDefaultConfig(), &record.Resource{Host: "n"}, nil, quiet)
	if err := src.Open(); err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	now := sc.Start
	samples := 0
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Second)
		samples += len(src.Collect(now).Samples)
	}
	b.ReportMetric(float64(samples)/float64(b.N), "samples/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(samples), "ns/sample")
}

// sharing says GPU 0 is time-sliced between two pods.
type sharing struct{ uuid string }

func (s sharing) Holders(uuid string) []record.Workload {
	if uuid != s.uuid {
		return nil
	}
	return []record.Workload{{Namespace: "dev", Pod: "nb-a", Team: "x"}, {Namespace: "dev", Pod: "nb-b", Team: "y"}}
}

func (s sharing) Workload(uuid string) record.Workload {
	if hs := s.Holders(uuid); len(hs) > 0 {
		return hs[0]
	}
	return record.Workload{}
}

// A GPU shared by two pods goes out once per pod: the first with every
// sample, the second with the usage cost reads (HeldFields) only.
func TestSharedGPUGoesOutOncePerHolder(t *testing.T) {
	fl, lib := simNode(t, "fleet: {nodes_per_rack: 1, gpus_per_node: 2}\njobs: [{name: j, nodes: 1}]\n")
	gpu0 := fl.Nodes[0].GPUs[0].UUID
	src, err := nvmlsrc.New(lib, nvmlsrc.NewDefaultConfig(), &record.Resource{Host: "n1"}, sharing{gpu0}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	now := time.Now()
	src.Collect(now)
	fl.Advance(now.Add(time.Second))
	b := src.Collect(now.Add(time.Second))
	if len(b.GPUs) != 3 || b.GPUs[0].Pod != "nb-a" || b.GPUs[2].Pod != "nb-b" || b.GPUs[2].UUID != gpu0 || b.GPUs[1].Pod != "" {
		t.Fatalf("GPUs %+v, want GPU 0 for nb-a, GPU 1, GPU 0 again for nb-b", b.GPUs)
	}
	first, second := fields(b, 0), fields(b, 2)
	if len(second) != len(nvmlsrc.HeldFields) {
		t.Errorf("the second holder's fields %v, want %v", second, nvmlsrc.HeldFields)
	}
	for _, f := range nvmlsrc.HeldFields {
		if len(first[f]) != 1 || len(second[f]) != 1 || first[f][0].Value != second[f][0].Value {
			t.Errorf("%s: first holder %v, second %v, want the same single value", f, first[f], second[f])
		}
	}
	if len(first) < 20 {
		t.Errorf("the first holder has only %d fields", len(first))
	}
}
