// Package nvmlsrc reads GPU telemetry through NVML (github.com/NVIDIA/go-nvml):
// per GPU every interval — temperatures, power and energy, clocks,
// utilization, framebuffer, ECC (volatile and aggregate), retired pages,
// remapped rows, PCIe replays and throughput, NVLink per-link state, error
// counters and throughput, clock-event (throttle) reasons and GPM profiling
// metrics where the GPU has them — and XID and ECC events from an NVML event
// set, waiting rather than polling. It takes an nvml.Interface, so tests and
// the fleet simulator drive this very code through go-nvml's mock.
//
// A field a GPU does not support is never asked for again; Unsupported
// counts such fields per GPU, Run logs one summary line after its first
// poll and each GPU's fields are logged at debug level. Without the NVIDIA
// driver, Open returns ErrNoDriver and the agent keeps its
// other sources running.
package nvmlsrc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// ErrNoDriver means NVML could not be loaded or initialized: no NVIDIA driver.
var ErrNoDriver = errors.New("NVIDIA driver not available")

// Config tunes the source.
type Config struct {
	// Interval between polls (default 1s).
	Interval time.Duration `yaml:"interval"`
	// Events turns on the NVML event set for XID and ECC events (default true).
	Events bool `yaml:"events"`
	// Name labels this source in the agent's own metrics (default "nvml").
	Name string `yaml:"-"`
}

// NewDefaultConfig returns the defaults.
func NewDefaultConfig() Config { return Config{Interval: time.Second, Events: true, Name: "nvml"} }

// Validate reports every problem at once.
func (c Config) Validate() error {
	if c.Interval < 10*time.Millisecond {
		return fmt.Errorf("nvml.interval %v is below 10ms", c.Interval)
	}
	return nil
}

// Workloads maps a GPU UUID to the workload using it (Kubernetes pod, job);
// the simulator and Kubernetes integration provide it.
type Workloads interface {
	Workload(uuid string) record.Workload
}

// SharedWorkloads is Workloads that knows every holder of a GPU shared by
// time-slicing or MPS (the kubelet's pod-resources, a GPU's processes).
// A batch then carries the GPU once per holder: the first holder's entry
// has every sample, each further holder's entry (after the node's GPUs)
// repeats only the usage samples cost reads (HeldFields), so that cost
// splits the GPU among its holders (docs/ARCHITECTURE.md, "Cost").
type SharedWorkloads interface {
	Workloads
	// Holders are the GPU's holders, Workload's first; at most one when
	// the GPU is not shared.
	Holders(uuid string) []record.Workload
}

// HeldFields are the fields repeated for a shared GPU's further holders:
// the GPU's usage as analytics/cost.Store reads it.
var HeldFields = []string{telemetry.SMActive, telemetry.GPUUtil, telemetry.FBUsed, telemetry.FBFree}

// Source polls NVML.
type Source struct {
	lib       nvml.Interface
	cfg       Config
	res       *record.Resource
	workloads Workloads
	log       *slog.Logger

	mu      sync.Mutex
	gpus    []*gpu
	driver  string
	events  nvml.EventSet
	unsupp  map[unsuppKey]bool
	errs    map[string]uint64
	opened  bool
	evQueue []record.Event
}

type unsuppKey struct {
	gpu   int
	field string
}

// gpu is one physical GPU and what the source learned about it.
type gpu struct {
	dev       nvml.Device
	id        record.GPU
	links     []int
	gpm       bool
	gpmPrev   nvml.GpmSample
	gpmGet    *nvml.GpmMetricsGetType // reused: the struct is ~370 KB
	gpmWants  []gpmWant
	mig       []migDevice
	lastXID   int64 // the last XID the event set reported (DCGM_FI_DEV_XID_ERRORS)
	lastClock uint64
	lastRemap [2]bool
	lost      bool
}

type migDevice struct {
	dev nvml.Device
	id  record.GPU
}

// New returns a source reading lib. res is the node's resource (host name,
// topology); workloads may be nil.
func New(lib nvml.Interface, cfg Config, res *record.Resource, workloads Workloads, log *slog.Logger) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = "nvml"
	}
	if log == nil {
		log = slog.Default()
	}
	return &Source{lib: lib, cfg: cfg, res: res, workloads: workloads, log: log.With("source", cfg.Name),
		unsupp: map[unsuppKey]bool{}, errs: map[string]uint64{}}, nil
}

// Name is the source's name.
func (s *Source) Name() string { return s.cfg.Name }

// Errors returns the count of NVML errors by "field: error" since Open.
func (s *Source) Errors() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.errs)
}

// GPUs returns the identities of the GPUs found by Open.
func (s *Source) GPUs() []record.GPU {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]record.GPU, len(s.gpus))
	for i, g := range s.gpus {
		out[i] = g.id
	}
	return out
}

// Open initializes NVML and discovers the GPUs, their NVLink links, MIG
// instances and GPM support, and registers for XID and ECC events.
func (s *Source) Open() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ret := s.lib.Init(); ret != nvml.SUCCESS {
		return fmt.Errorf("%w: nvmlInit: %v", ErrNoDriver, ret)
	}
	s.opened = true
	if v, ret := s.lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		s.driver = v
	} else {
		s.countErr("SystemGetDriverVersion", ret)
	}
	n, ret := s.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("nvmlDeviceGetCount: %v", ret)
	}
	for i := 0; i < n; i++ {
		dev, ret := s.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			s.countErr("DeviceGetHandleByIndex", ret)
			continue
		}
		s.gpus = append(s.gpus, s.discover(i, dev))
	}
	if s.cfg.Events {
		s.registerEvents()
	}
	return nil
}

func (s *Source) discover(i int, dev nvml.Device) *gpu {
	g := &gpu{dev: dev, id: record.GPU{Index: strconv.Itoa(i), Device: "nvidia" + strconv.Itoa(i), DriverVersion: s.driver}}
	if uuid, ret := dev.GetUUID(); ret == nvml.SUCCESS {
		g.id.UUID = uuid
	}
	if name, ret := dev.GetName(); ret == nvml.SUCCESS {
		g.id.ModelName = name
	}
	if pci, ret := dev.GetPciInfo(); ret == nvml.SUCCESS {
		g.id.PCIBusID = cString(pci.BusId[:])
	}
	if minor, ret := dev.GetMinorNumber(); ret == nvml.SUCCESS {
		g.id.Device = "nvidia" + strconv.Itoa(minor)
	}
	for l := 0; l < nvml.NVLINK_MAX_LINKS; l++ {
		if _, ret := dev.GetNvLinkState(l); ret == nvml.SUCCESS {
			g.links = append(g.links, l)
		} else if ret == nvml.ERROR_NOT_SUPPORTED || ret == nvml.ERROR_INVALID_ARGUMENT {
			if l == 0 {
				s.logUnsupported(i, "nvlink", ret)
			}
			break
		}
	}
	if sup, ret := dev.GpmQueryDeviceSupport(); ret == nvml.SUCCESS && sup.IsSupportedDevice != 0 {
		g.gpm = true
	} else {
		s.logUnsupported(i, "gpm", ret)
	}
	if cur, _, ret := dev.GetMigMode(); ret == nvml.SUCCESS && cur == nvml.DEVICE_MIG_ENABLE {
		max, _ := dev.GetMaxMigDeviceCount()
		for m := 0; m < max; m++ {
			md, ret := dev.GetMigDeviceHandleByIndex(m)
			if ret != nvml.SUCCESS {
				continue
			}
			id := g.id
			id.MIGInstance, id.MIGProfile = "", ""
			if gi, ret := md.GetGpuInstanceId(); ret == nvml.SUCCESS {
				id.MIGInstance = strconv.Itoa(gi)
			}
			if name, ret := md.GetName(); ret == nvml.SUCCESS {
				if _, prof, ok := strings.Cut(name, " MIG "); ok {
					id.MIGProfile = prof
				}
			}
			g.mig = append(g.mig, migDevice{dev: md, id: id})
		}
	}
	return g
}

func cString(b []uint8) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func (s *Source) registerEvents() {
	set, ret := s.lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		s.log.Warn("NVML events unavailable; XID and ECC events will not be reported", "err", ret)
		return
	}
	mask := uint64(nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError | nvml.EventTypeSingleBitEccError)
	registered := 0
	for i, g := range s.gpus {
		ret := g.dev.RegisterEvents(mask, set)
		if ret == nvml.ERROR_NOT_SUPPORTED {
			// Consumer GPUs lack ECC events; XIDs alone may still be supported.
			ret = g.dev.RegisterEvents(uint64(nvml.EventTypeXidCriticalError), set)
		}
		if ret != nvml.SUCCESS {
			s.logUnsupported(i, "events", ret)
			continue
		}
		registered++
	}
	if registered == 0 {
		set.Free()
		return
	}
	s.events = set
}

// logUnsupported marks a field of a GPU to be skipped and logs it once, at
// debug level: a fleet of one model lacks the same fields on every GPU, and
// Unsupported and LogUnsupported summarise them.
func (s *Source) logUnsupported(i int, field string, ret nvml.Return) {
	k := unsuppKey{i, field}
	if s.unsupp[k] {
		return
	}
	s.unsupp[k] = true
	s.log.Debug("GPU does not support a field; skipping it from now on", "gpu", i, "field", field, "nvml", ret.Error())
}

// Unsupported returns, per field, how many GPUs do not support it.
func (s *Source) Unsupported() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k := range s.unsupp {
		out[k.field]++
	}
	return out
}

// LogUnsupported logs one line naming each field some GPUs do not support,
// with how many (nothing when every field is supported).
func LogUnsupported(log *slog.Logger, gpus map[string]int) {
	if len(gpus) == 0 {
		return
	}
	fields := slices.Sorted(maps.Keys(gpus))
	attrs := make([]any, 0, len(fields))
	for _, f := range fields {
		attrs = append(attrs, slog.Int(f, gpus[f]))
	}
	log.Info("some GPUs do not support these fields (number of GPUs); they are not read from now on", attrs...)
}

func (s *Source) countErr(what string, ret nvml.Return) {
	s.errs[what+": "+ret.Error()]++
}

// Close shuts NVML down.
func (s *Source) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.events != nil {
		s.events.Free()
		s.events = nil
	}
	for _, g := range s.gpus {
		if g.gpmPrev != nil {
			g.gpmPrev.Free()
			g.gpmPrev = nil
		}
	}
	if s.opened {
		s.lib.Shutdown()
		s.opened = false
	}
}

// Run polls every interval and forwards events as they arrive, until ctx
// ends. It returns ErrNoDriver (wrapped) when NVML is unavailable.
func (s *Source) Run(ctx context.Context, sink record.Sink) error {
	if err := s.Open(); err != nil {
		return err
	}
	defer s.Close()
	s.log.Info("NVML source ready", "gpus", len(s.GPUs()), "driver", s.driver)
	var wg sync.WaitGroup
	if s.events != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				evs := s.WaitEvents(time.Now(), 500*time.Millisecond)
				if len(evs) > 0 {
					b, _ := s.batch(time.Now())
					b.Events = evs
					sink.Put(b)
				}
			}
		}()
	}
	next := time.Now().Truncate(s.cfg.Interval).Add(s.cfg.Interval)
	summarised := false
	t := time.NewTimer(time.Until(next))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
			sink.Put(s.Collect(next))
			if !summarised {
				LogUnsupported(s.log, s.Unsupported())
				summarised = true
			}
			next = next.Add(s.cfg.Interval)
			if d := time.Until(next); d < 0 {
				next = time.Now().Truncate(s.cfg.Interval).Add(s.cfg.Interval) // fell behind: skip ahead
			}
			t.Reset(time.Until(next))
		}
	}
}

// batch starts a batch with the node's GPUs and their holders; a shared
// GPU's further holders come after the node's GPUs, and shared[k] is the
// node GPU of b.GPUs[len(s.gpus)+k].
func (s *Source) batch(now time.Time) (b *record.Batch, shared []int) {
	b = &record.Batch{Source: s.cfg.Name, Resource: s.res, Time: now, GPUs: make([]record.GPU, 0, len(s.gpus))}
	sw, _ := s.workloads.(SharedWorkloads)
	var extra []record.GPU
	for i, g := range s.gpus {
		id := g.id
		switch {
		case sw != nil:
			hs := sw.Holders(id.UUID)
			if len(hs) > 0 {
				id.Workload = hs[0]
			}
			for _, h := range hs[min(1, len(hs)):] {
				other := g.id
				other.Workload = h
				extra = append(extra, other)
				shared = append(shared, i)
			}
		case s.workloads != nil:
			id.Workload = s.workloads.Workload(id.UUID)
		}
		b.GPUs = append(b.GPUs, id)
	}
	b.GPUs = append(b.GPUs, extra...)
	return b, shared
}

// shareHeld repeats the usage samples of each shared GPU for its further
// holders.
func shareHeld(b *record.Batch, first int, shared []int) {
	if len(shared) == 0 {
		return
	}
	held := make([]bool, len(telemetry.Fields))
	for _, f := range HeldFields {
		if i := telemetry.Index(f); i >= 0 {
			held[i] = true
		}
	}
	n := len(b.Samples)
	for k, of := range shared {
		for _, smp := range b.Samples[:n] {
			if smp.GPU == int32(of) && smp.Field >= 0 && held[smp.Field] {
				smp.GPU = int32(first + k)
				b.Samples = append(b.Samples, smp)
			}
		}
	}
}

// WaitEvents waits up to timeout for the first NVML event, then takes every
// event already queued, and returns them (XID, single- and double-bit ECC).
func (s *Source) WaitEvents(now time.Time, timeout time.Duration) []record.Event {
	s.mu.Lock()
	set := s.events
	s.mu.Unlock()
	if set == nil {
		return nil
	}
	var out []record.Event
	wait := uint32(timeout / time.Millisecond)
	for {
		data, ret := set.Wait(wait)
		if ret == nvml.ERROR_TIMEOUT {
			return out
		}
		if ret != nvml.SUCCESS {
			s.mu.Lock()
			s.countErr("EventSetWait", ret)
			s.mu.Unlock()
			return out
		}
		wait = 0
		if ev, ok := s.toEvent(now, data); ok {
			out = append(out, ev)
			if ev.Kind == telemetry.GPUEventXID && ev.GPU >= 0 {
				s.mu.Lock()
				s.gpus[ev.GPU].lastXID = ev.Code
				s.mu.Unlock()
			}
		}
	}
}

func (s *Source) toEvent(now time.Time, d nvml.EventData) (record.Event, bool) {
	idx := s.gpuIndex(d.Device)
	ev := record.Event{Time: now, GPU: int32(idx), Count: 1}
	switch d.EventType {
	case nvml.EventTypeXidCriticalError:
		ev.Kind, ev.Code = telemetry.GPUEventXID, int64(d.EventData)
		ev.Message = XIDMessage(int(d.EventData))
	case nvml.EventTypeDoubleBitEccError:
		ev.Kind, ev.Message = telemetry.GPUEventECCDBE, "double-bit ECC error"
	case nvml.EventTypeSingleBitEccError:
		ev.Kind, ev.Message = telemetry.GPUEventECCSBE, "single-bit ECC error"
	default:
		return ev, false
	}
	return ev, true
}

func (s *Source) gpuIndex(dev nvml.Device) int {
	if dev == nil {
		return -1
	}
	uuid, _ := dev.GetUUID()
	for i, g := range s.gpus {
		if g.dev == dev || (uuid != "" && g.id.UUID == uuid) {
			return i
		}
	}
	return -1
}

// Collect reads every GPU once and returns the samples, plus events derived
// from state changes (clock-event reasons, row remapping, a lost GPU).
func (s *Source) Collect(now time.Time) *record.Batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, shared := s.batch(now)
	per := 56
	if len(s.gpus) > 0 {
		per += 7 * len(s.gpus[0].links) // state, four error counters, TX and RX per link
	}
	b.Samples = make([]record.Sample, 0, len(s.gpus)*per)
	for i, g := range s.gpus {
		if g.lost {
			continue
		}
		c := collector{s: s, g: g, idx: i, b: b}
		c.collect(now)
	}
	shareHeld(b, len(s.gpus), shared)
	return b
}

// collector gathers one GPU's samples into a batch.
type collector struct {
	s   *Source
	g   *gpu
	idx int
	b   *record.Batch
}

func (c *collector) add(field string, v float64) {
	c.addLink(field, -1, v)
}

func (c *collector) addLink(field string, link int, v float64) {
	c.b.Samples = append(c.b.Samples, record.Sample{Field: int16(telemetry.Index(field)), GPU: int32(c.idx), Link: int16(link), Value: v})
}

// ok checks an NVML return for field: success, or an unsupported field (or
// a call the driver lacks; logged once, then skipped), or an error (counted). A lost GPU ends the
// GPU's collection with a gpu_lost event.
func (c *collector) ok(field string, ret nvml.Return) bool {
	switch ret {
	case nvml.SUCCESS:
		return true
	case nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_NO_PERMISSION, nvml.ERROR_FUNCTION_NOT_FOUND:
		c.s.logUnsupported(c.idx, field, ret)
	case nvml.ERROR_GPU_IS_LOST:
		if !c.g.lost {
			c.g.lost = true
			c.b.Events = append(c.b.Events, record.Event{Time: c.b.Time, GPU: int32(c.idx), Kind: telemetry.GPUEventLost,
				Code: 79, Count: 1, Message: "GPU is lost (NVML_ERROR_GPU_IS_LOST): fallen off the bus"})
			c.s.log.Error("GPU is lost; it no longer answers NVML", "gpu", c.idx, "uuid", c.g.id.UUID)
		}
		c.s.countErr(field, ret)
	default:
		c.s.countErr(field, ret)
	}
	return false
}

// skip says whether field is known to be unsupported on this GPU.
func (c *collector) skip(field string) bool { return c.s.unsupp[unsuppKey{c.idx, field}] }

func (c *collector) collect(now time.Time) {
	d := c.g.dev
	if !c.skip(telemetry.GPUTemp) {
		if v, ret := d.GetTemperature(nvml.TEMPERATURE_GPU); c.ok(telemetry.GPUTemp, ret) {
			c.add(telemetry.GPUTemp, float64(v))
		}
	}
	if c.g.lost {
		return
	}
	if !c.skip(telemetry.MemoryTemp) {
		fv := []nvml.FieldValue{{FieldId: nvml.FI_DEV_MEMORY_TEMP}}
		if ret := d.GetFieldValues(fv); c.ok(telemetry.MemoryTemp, ret) {
			if r := nvml.Return(fv[0].NvmlReturn); c.ok(telemetry.MemoryTemp, r) {
				c.add(telemetry.MemoryTemp, fieldValue(fv[0]))
			}
		}
	}
	if !c.skip(telemetry.PowerUsage) {
		if v, ret := d.GetPowerUsage(); c.ok(telemetry.PowerUsage, ret) {
			c.add(telemetry.PowerUsage, float64(v)/1000) // mW -> W
		}
	}
	if !c.skip(telemetry.TotalEnergy) {
		if v, ret := d.GetTotalEnergyConsumption(); c.ok(telemetry.TotalEnergy, ret) {
			c.add(telemetry.TotalEnergy, float64(v)) // mJ
		}
	}
	c.clock(telemetry.SMClock, nvml.CLOCK_SM)
	c.clock(telemetry.MemClock, nvml.CLOCK_MEM)
	if !c.skip(telemetry.GPUUtil) {
		if u, ret := d.GetUtilizationRates(); c.ok(telemetry.GPUUtil, ret) {
			c.add(telemetry.GPUUtil, float64(u.Gpu))
			c.add(telemetry.MemCopyUtil, float64(u.Memory))
		}
	}
	c.codec(telemetry.EncUtil, d.GetEncoderUtilization)
	c.codec(telemetry.DecUtil, d.GetDecoderUtilization)
	c.memory()
	c.ecc(telemetry.ECCSBEVolatile, nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.VOLATILE_ECC)
	c.ecc(telemetry.ECCDBEVolatile, nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC)
	c.ecc(telemetry.ECCSBEAggregate, nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.AGGREGATE_ECC)
	c.ecc(telemetry.ECCDBEAggregate, nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.AGGREGATE_ECC)
	c.retiredPages()
	c.remappedRows()
	if !c.skip(telemetry.PCIeReplay) {
		if v, ret := d.GetPcieReplayCounter(); c.ok(telemetry.PCIeReplay, ret) {
			c.add(telemetry.PCIeReplay, float64(v))
		}
	}
	c.pcie(telemetry.PCIeTxBytes, nvml.PCIE_UTIL_TX_BYTES)
	c.pcie(telemetry.PCIeRxBytes, nvml.PCIE_UTIL_RX_BYTES)
	c.nvlink()
	c.clockEvents()
	c.gpm()
	c.vgpuLicense()
	// dcgm-exporter's last-XID gauge; 0 until the event set reports one.
	c.add(telemetry.XIDErrors, float64(c.g.lastXID))
	for _, m := range c.g.mig {
		c.migMemory(m)
	}
}

func (c *collector) clock(field string, t nvml.ClockType) {
	if c.skip(field) {
		return
	}
	if v, ret := c.g.dev.GetClockInfo(t); c.ok(field, ret) {
		c.add(field, float64(v))
	}
}

// codec reads an encoder or decoder utilization (in %).
func (c *collector) codec(field string, read func() (uint32, uint32, nvml.Return)) {
	if c.skip(field) {
		return
	}
	if v, _, ret := read(); c.ok(field, ret) {
		c.add(field, float64(v))
	}
}

// memory reads the framebuffer: used, free and reserved (by the driver and
// firmware) from nvmlDeviceGetMemoryInfo_v2, as DCGM does; where v2 is not
// supported, used and free from the original call (used then includes the
// reserved memory).
func (c *collector) memory() {
	const mib = 1 << 20
	d := c.g.dev
	if !c.skip(telemetry.FBReserved) {
		if m, ret := d.GetMemoryInfo_v2(); c.ok(telemetry.FBReserved, ret) {
			c.add(telemetry.FBUsed, float64(m.Used)/mib)
			c.add(telemetry.FBFree, float64(m.Free)/mib)
			c.add(telemetry.FBReserved, float64(m.Reserved)/mib)
			return
		}
		if c.g.lost {
			return
		}
	}
	if c.skip(telemetry.FBUsed) {
		return
	}
	if m, ret := d.GetMemoryInfo(); c.ok(telemetry.FBUsed, ret) {
		c.add(telemetry.FBUsed, float64(m.Used)/mib)
		c.add(telemetry.FBFree, float64(m.Free)/mib)
	}
}

// vgpuLicense reports whether the GPU holds a vGPU license (0 where it has
// no vGPU, as dcgm-exporter shows on bare metal).
func (c *collector) vgpuLicense() {
	if c.skip(telemetry.VGPULicenseStatus) {
		return
	}
	f, ret := c.g.dev.GetGridLicensableFeatures()
	if !c.ok(telemetry.VGPULicenseStatus, ret) {
		return
	}
	licensed := false
	for i := range min(int(f.LicensableFeaturesCount), len(f.GridLicensableFeatures)) {
		ft := &f.GridLicensableFeatures[i]
		licensed = licensed || ft.FeatureCode == uint32(nvml.GRID_LICENSE_FEATURE_CODE_VGPU) && ft.FeatureState != 0
	}
	c.add(telemetry.VGPULicenseStatus, boolf(licensed))
}

func (c *collector) ecc(field string, t nvml.MemoryErrorType, ct nvml.EccCounterType) {
	if c.skip(field) {
		return
	}
	if v, ret := c.g.dev.GetTotalEccErrors(t, ct); c.ok(field, ret) {
		c.add(field, float64(v))
	}
}

func (c *collector) pcie(field string, t nvml.PcieUtilCounter) {
	if c.skip(field) {
		return
	}
	if v, ret := c.g.dev.GetPcieThroughput(t); c.ok(field, ret) {
		c.add(field, float64(v)*1024) // KB/s -> B/s
	}
}

func (c *collector) retiredPages() {
	d := c.g.dev
	if !c.skip(telemetry.RetiredSBE) {
		if pages, ret := d.GetRetiredPages(nvml.PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS); c.ok(telemetry.RetiredSBE, ret) {
			c.add(telemetry.RetiredSBE, float64(len(pages)))
		}
	}
	if !c.skip(telemetry.RetiredDBE) {
		if pages, ret := d.GetRetiredPages(nvml.PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR); c.ok(telemetry.RetiredDBE, ret) {
			c.add(telemetry.RetiredDBE, float64(len(pages)))
		}
	}
	if !c.skip(telemetry.RetiredPending) {
		if st, ret := d.GetRetiredPagesPendingStatus(); c.ok(telemetry.RetiredPending, ret) {
			c.add(telemetry.RetiredPending, boolf(st == nvml.FEATURE_ENABLED))
		}
	}
}

func (c *collector) remappedRows() {
	if c.skip(telemetry.RemappedCorr) {
		return
	}
	corr, unc, pending, failed, ret := c.g.dev.GetRemappedRows()
	if !c.ok(telemetry.RemappedCorr, ret) {
		return
	}
	c.add(telemetry.RemappedCorr, float64(corr))
	c.add(telemetry.RemappedUncorr, float64(unc))
	c.add(telemetry.RowRemapPending, boolf(pending))
	c.add(telemetry.RowRemapFailure, boolf(failed))
	if (pending && !c.g.lastRemap[0]) || (failed && !c.g.lastRemap[1]) {
		msg, code := "row remapping pending", int64(63)
		if failed {
			msg, code = "row remapping failed", 64
		}
		c.b.Events = append(c.b.Events, record.Event{Time: c.b.Time, GPU: int32(c.idx), Kind: telemetry.GPUEventRowRemap, Code: code, Count: 1, Message: msg})
	}
	c.g.lastRemap = [2]bool{pending, failed}
}

func (c *collector) nvlink() {
	if len(c.g.links) == 0 {
		return
	}
	counters := []struct {
		field, total string
		t            nvml.NvLinkErrorCounter
	}{
		{telemetry.NVLinkCRCFlit, telemetry.NVLinkCRCFlitTotal, nvml.NVLINK_ERROR_DL_CRC_FLIT},
		{telemetry.NVLinkCRCData, telemetry.NVLinkCRCDataTotal, nvml.NVLINK_ERROR_DL_CRC_DATA},
		{telemetry.NVLinkReplay, telemetry.NVLinkReplayTotal, nvml.NVLINK_ERROR_DL_REPLAY},
		{telemetry.NVLinkRecovery, telemetry.NVLinkRecovTotal, nvml.NVLINK_ERROR_DL_RECOVERY},
	}
	for _, l := range c.g.links {
		if st, ret := c.g.dev.GetNvLinkState(l); c.ok(telemetry.NVLinkState, ret) {
			c.addLink(telemetry.NVLinkState, l, boolf(st == nvml.FEATURE_ENABLED))
		}
	}
	for _, k := range counters {
		if c.skip(k.field) {
			continue
		}
		var total float64
		n := 0
		for _, l := range c.g.links {
			v, ret := c.g.dev.GetNvLinkErrorCounter(l, k.t)
			if !c.ok(k.field, ret) {
				break
			}
			c.addLink(k.field, l, float64(v))
			total += float64(v)
			n++
		}
		if n > 0 {
			c.add(k.total, total)
		}
	}
}

func (c *collector) clockEvents() {
	if c.skip(telemetry.ClockEventReasons) {
		return
	}
	mask, ret := c.g.dev.GetCurrentClocksEventReasons()
	if !c.ok(telemetry.ClockEventReasons, ret) {
		return
	}
	c.add(telemetry.ClockEventReasons, float64(mask))
	// Report changes of the reasons that slow a busy GPU (not idle or app clocks).
	const relevant = 0x4 | 0x8 | 0x20 | 0x40 | 0x80
	if mask&relevant != c.g.lastClock&relevant {
		c.b.Events = append(c.b.Events, record.Event{Time: c.b.Time, GPU: int32(c.idx), Kind: telemetry.GPUEventClockEvent,
			Code: int64(mask), Count: 1, Message: "clock event reasons: " + strings.Join(telemetry.ClockEventNames(mask&relevant), ",")})
	}
	c.g.lastClock = mask
}

// GPM metric ids and how they map onto DCGM profiling fields.
var gpmMetrics = []struct {
	id    nvml.GpmMetricId
	field string
	scale float64
	link  int
}{
	{nvml.GPM_METRIC_GRAPHICS_UTIL, telemetry.GREngineActive, 0.01, -1},
	{nvml.GPM_METRIC_SM_UTIL, telemetry.SMActive, 0.01, -1},
	{nvml.GPM_METRIC_ANY_TENSOR_UTIL, telemetry.TensorActive, 0.01, -1},
	{nvml.GPM_METRIC_DRAM_BW_UTIL, telemetry.DRAMActive, 0.01, -1},
	{nvml.GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC, telemetry.NVLinkTxBytes, 1 << 20, -1},
	{nvml.GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC, telemetry.NVLinkRxBytes, 1 << 20, -1},
}

type gpmWant struct {
	field string
	scale float64
	link  int
}

// gpm reads graphics-engine, SM, tensor and DRAM activity and NVLink
// throughput (total, per link, and both directions together as
// DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL in MB/s) from two consecutive GPM
// samples. GPM exists on Hopper and newer GPUs; on older ones these fields
// need DCGM's profiling module (use the dcgm-exporter source).
func (c *collector) gpm() {
	if !c.g.gpm || c.skip("gpm") {
		return
	}
	cur, ret := c.s.lib.GpmSampleAlloc()
	if !c.ok("gpm", ret) {
		return
	}
	if ret := c.g.dev.GpmSampleGet(cur); !c.ok("gpm", ret) {
		cur.Free()
		return
	}
	prev := c.g.gpmPrev
	c.g.gpmPrev = cur
	if prev == nil {
		return // the first sample only starts the interval
	}
	defer prev.Free()
	if c.g.gpmGet == nil {
		c.g.gpmGet = &nvml.GpmMetricsGetType{}
		add := func(id nvml.GpmMetricId, w gpmWant) {
			c.g.gpmWants = append(c.g.gpmWants, w)
			c.g.gpmGet.Metrics[len(c.g.gpmWants)-1].MetricId = uint32(id)
		}
		for _, m := range gpmMetrics {
			add(m.id, gpmWant{m.field, m.scale, m.link})
		}
		for _, l := range c.g.links {
			add(nvml.GPM_METRIC_NVLINK_L0_TX_PER_SEC+nvml.GpmMetricId(2*l), gpmWant{telemetry.NVLinkLinkTxBytes, 1 << 20, l})
			add(nvml.GPM_METRIC_NVLINK_L0_RX_PER_SEC+nvml.GpmMetricId(2*l), gpmWant{telemetry.NVLinkLinkRxBytes, 1 << 20, l})
		}
	}
	mg := c.g.gpmGet
	mg.Sample1, mg.Sample2, mg.NumMetrics = prev, cur, uint32(len(c.g.gpmWants))
	if ret := c.s.lib.GpmMetricsGet(mg); !c.ok("gpm", ret) {
		return
	}
	var nvlinkBytes float64 // transmit plus receive, all links
	nvlinkTotals := 0
	for i, w := range c.g.gpmWants {
		m := &mg.Metrics[i]
		if nvml.Return(m.NvmlReturn) != nvml.SUCCESS || math.IsNaN(m.Value) {
			continue
		}
		v := m.Value * w.scale
		c.addLink(w.field, w.link, v)
		if w.field == telemetry.NVLinkTxBytes || w.field == telemetry.NVLinkRxBytes {
			nvlinkBytes += v
			nvlinkTotals++
		}
	}
	if nvlinkTotals == 2 {
		c.add(telemetry.NVLinkBandwidth, nvlinkBytes/1e6)
	}
}

func (c *collector) migMemory(m migDevice) {
	mem, ret := m.dev.GetMemoryInfo()
	if !c.ok("mig_memory", ret) {
		return
	}
	idx := int32(len(c.b.GPUs))
	c.b.GPUs = append(c.b.GPUs, m.id)
	c.b.Samples = append(c.b.Samples,
		record.Sample{Field: int16(telemetry.Index(telemetry.FBUsed)), GPU: idx, Link: -1, Value: float64(mem.Used) / (1 << 20)},
		record.Sample{Field: int16(telemetry.Index(telemetry.FBFree)), GPU: idx, Link: -1, Value: float64(mem.Free) / (1 << 20)})
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// fieldValue decodes an NVML field value.
func fieldValue(f nvml.FieldValue) float64 {
	v := f.Value[:]
	switch nvml.ValueType(f.ValueType) {
	case nvml.VALUE_TYPE_DOUBLE:
		return math.Float64frombits(binary.LittleEndian.Uint64(v))
	case nvml.VALUE_TYPE_UNSIGNED_INT:
		return float64(binary.LittleEndian.Uint32(v))
	case nvml.VALUE_TYPE_UNSIGNED_LONG, nvml.VALUE_TYPE_UNSIGNED_LONG_LONG:
		return float64(binary.LittleEndian.Uint64(v))
	case nvml.VALUE_TYPE_SIGNED_LONG_LONG:
		return float64(int64(binary.LittleEndian.Uint64(v)))
	case nvml.VALUE_TYPE_SIGNED_INT:
		return float64(int32(binary.LittleEndian.Uint32(v)))
	case nvml.VALUE_TYPE_UNSIGNED_SHORT:
		return float64(binary.LittleEndian.Uint16(v))
	}
	return math.NaN()
}

// XIDMessage is the event message for an XID: its number and meaning.
func XIDMessage(code int) string {
	x := telemetry.XID(code)
	return fmt.Sprintf("XID %d: %s", code, x.Meaning)
}
