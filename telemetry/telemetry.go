// Package telemetry is Fleetwatch's wire contract, in code: the GPU metric
// fields (DCGM field names, their kind and classic unit), the label and
// resource-attribute keys, and the names of the OTLP log events that carry
// GPU events, inference events, delayed labels and deployment markers.
// docs/TELEMETRY.md is its prose. Producers (the agent, instrumented
// services) and consumers (the collector's exporter, the analyzer) all use
// these names; nothing else defines them.
//
// Layer: ground (docs/ARCHITECTURE.md, "Layers"): the wire contract every
// stage speaks; it imports nothing of ours.
package telemetry

import (
	"strconv"
	"strings"
)

// Kind is how a metric behaves over time.
type Kind uint8

// Metric kinds.
const (
	// Gauge is a value at a point in time (OTLP Gauge).
	Gauge Kind = iota + 1
	// Counter is a cumulative, monotonic total (OTLP Sum, cumulative, monotonic).
	Counter
)

func (k Kind) String() string {
	switch k {
	case Gauge:
		return "gauge"
	case Counter:
		return "counter"
	}
	return "unknown"
}

// Field is one GPU metric, named after its DCGM field.
type Field struct {
	Name string
	Kind Kind
	// Unit is the classic DCGM unit every producer converts to: C, W, mJ,
	// MHz, %, MiB, ratio (0-1), B/s, count, bitmask, xid, bool, s.
	Unit string
	Help string
	// PerLink fields carry a "link" label (NVLink link index).
	PerLink bool
}

// DCGM field names used by Fleetwatch.
const (
	GPUTemp            = "DCGM_FI_DEV_GPU_TEMP"
	MemoryTemp         = "DCGM_FI_DEV_MEMORY_TEMP"
	PowerUsage         = "DCGM_FI_DEV_POWER_USAGE"
	TotalEnergy        = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
	SMClock            = "DCGM_FI_DEV_SM_CLOCK"
	MemClock           = "DCGM_FI_DEV_MEM_CLOCK"
	GPUUtil            = "DCGM_FI_DEV_GPU_UTIL"
	MemCopyUtil        = "DCGM_FI_DEV_MEM_COPY_UTIL"
	FBUsed             = "DCGM_FI_DEV_FB_USED"
	FBFree             = "DCGM_FI_DEV_FB_FREE"
	FBReserved         = "DCGM_FI_DEV_FB_RESERVED"
	EncUtil            = "DCGM_FI_DEV_ENC_UTIL"
	DecUtil            = "DCGM_FI_DEV_DEC_UTIL"
	GREngineActive     = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
	NVLinkBandwidth    = "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL"
	ECCSBEVolatile     = "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"
	ECCDBEVolatile     = "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"
	ECCSBEAggregate    = "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL"
	ECCDBEAggregate    = "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL"
	RetiredSBE         = "DCGM_FI_DEV_RETIRED_SBE"
	RetiredDBE         = "DCGM_FI_DEV_RETIRED_DBE"
	RetiredPending     = "DCGM_FI_DEV_RETIRED_PENDING"
	RemappedCorr       = "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS"
	RemappedUncorr     = "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"
	RowRemapPending    = "DCGM_FI_DEV_ROW_REMAP_PENDING"
	RowRemapFailure    = "DCGM_FI_DEV_ROW_REMAP_FAILURE"
	PCIeReplay         = "DCGM_FI_DEV_PCIE_REPLAY_COUNTER"
	PCIeTxBytes        = "DCGM_FI_PROF_PCIE_TX_BYTES"
	PCIeRxBytes        = "DCGM_FI_PROF_PCIE_RX_BYTES"
	NVLinkState        = "DCGM_FI_DEV_NVLINK_LINK_STATUS"
	NVLinkCRCFlit      = "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT"
	NVLinkCRCData      = "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT"
	NVLinkReplay       = "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT"
	NVLinkRecovery     = "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT"
	NVLinkCRCFlitTotal = "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL"
	NVLinkCRCDataTotal = "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL"
	NVLinkReplayTotal  = "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL"
	NVLinkRecovTotal   = "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL"
	NVLinkTxBytes      = "DCGM_FI_PROF_NVLINK_TX_BYTES"
	NVLinkRxBytes      = "DCGM_FI_PROF_NVLINK_RX_BYTES"
	// NVLinkLinkTxBytes and NVLinkLinkRxBytes are DCGM's per-link
	// DCGM_FI_PROF_NVLINK_L<n>_TX_BYTES / _RX_BYTES as one family with a link
	// label, named apart from the totals so that sum() over a family never
	// adds a total to its own links.
	NVLinkLinkTxBytes = "DCGM_FI_PROF_NVLINK_LINK_TX_BYTES"
	NVLinkLinkRxBytes = "DCGM_FI_PROF_NVLINK_LINK_RX_BYTES"
	ClockEventReasons = "DCGM_FI_DEV_CLOCKS_EVENT_REASONS"
	SMActive          = "DCGM_FI_PROF_SM_ACTIVE"
	TensorActive      = "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"
	DRAMActive        = "DCGM_FI_PROF_DRAM_ACTIVE"
	XIDErrors         = "DCGM_FI_DEV_XID_ERRORS"
	VGPULicenseStatus = "DCGM_FI_DEV_VGPU_LICENSE_STATUS"

	// Training jobs report these per rank (not DCGM fields; OTel metrics from
	// the job, with labels hpc_job and rank, and UUID/Hostname where known).
	TrainStepSeconds = "fleetwatch_train_step_seconds"
	TrainThroughput  = "fleetwatch_train_samples_per_second"
	// TrainSteps counts the steps a rank completed: progress, whose
	// absence is a stalled or hung rank (the step-time gauge keeps its last
	// value while a rank hangs).
	TrainSteps = "fleetwatch_train_steps_total"
	// TrainCheckpointSeconds is the write time of a rank's last completed
	// checkpoint; TrainCheckpoints counts the completed checkpoints (each
	// rise is a new TrainCheckpointSeconds value), TrainCheckpointFailures
	// the failed checkpoint writes.
	TrainCheckpointSeconds  = "fleetwatch_train_checkpoint_seconds"
	TrainCheckpoints        = "fleetwatch_train_checkpoints_total"
	TrainCheckpointFailures = "fleetwatch_train_checkpoint_failures_total"

	// ModelQueueDepth is the requests waiting in a model server's queue
	// (not yet being served), an OTel gauge from the server with the label
	// model (and UUID where the server runs on one GPU): a scaling signal
	// (issue 20, analytics/scaling).
	ModelQueueDepth = "fleetwatch_model_queue_depth"

	// Serving efficiency (issue 19, unit economics), OTel metrics from a
	// model server with the label model (and model_version where a server
	// runs one version): ModelTokens counts the tokens it generated;
	// ModelBatchSize is the mean requests per batch it executed over the
	// export interval and ModelMaxBatchSize its configured largest batch
	// (their ratio is batch efficiency); ModelCacheHits and
	// ModelCacheLookups count its response or KV-cache lookups and hits.
	ModelTokens       = "fleetwatch_model_tokens_total"
	ModelBatchSize    = "fleetwatch_model_batch_size"
	ModelMaxBatchSize = "fleetwatch_model_max_batch_size"
	ModelCacheHits    = "fleetwatch_model_cache_hits_total"
	ModelCacheLookups = "fleetwatch_model_cache_lookups_total"
)

// Fields is the catalog, in a stable order.
var Fields = []Field{
	{GPUTemp, Gauge, "C", "GPU temperature (in C).", false},
	{MemoryTemp, Gauge, "C", "Memory temperature (in C).", false},
	{PowerUsage, Gauge, "W", "Power draw (in W).", false},
	{TotalEnergy, Counter, "mJ", "Total energy consumption since boot (in mJ).", false},
	{SMClock, Gauge, "MHz", "SM clock frequency (in MHz).", false},
	{MemClock, Gauge, "MHz", "Memory clock frequency (in MHz).", false},
	{GPUUtil, Gauge, "%", "GPU utilization (in %).", false},
	{MemCopyUtil, Gauge, "%", "Memory utilization (in %).", false},
	{FBUsed, Gauge, "MiB", "Framebuffer memory used (in MiB).", false},
	{FBFree, Gauge, "MiB", "Framebuffer memory free (in MiB).", false},
	{FBReserved, Gauge, "MiB", "Framebuffer memory reserved (in MiB).", false},
	{EncUtil, Gauge, "%", "Encoder utilization (in %).", false},
	{DecUtil, Gauge, "%", "Decoder utilization (in %).", false},
	{ECCSBEVolatile, Counter, "count", "Total number of single-bit volatile ECC errors.", false},
	{ECCDBEVolatile, Counter, "count", "Total number of double-bit volatile ECC errors.", false},
	{ECCSBEAggregate, Counter, "count", "Total number of single-bit persistent ECC errors.", false},
	{ECCDBEAggregate, Counter, "count", "Total number of double-bit persistent ECC errors.", false},
	{RetiredSBE, Counter, "count", "Total number of retired pages due to single-bit errors.", false},
	{RetiredDBE, Counter, "count", "Total number of retired pages due to double-bit errors.", false},
	{RetiredPending, Gauge, "bool", "Whether pages are pending retirement (1) or not (0).", false},
	{RemappedCorr, Counter, "count", "Number of remapped rows for correctable errors.", false},
	{RemappedUncorr, Counter, "count", "Number of remapped rows for uncorrectable errors.", false},
	{RowRemapPending, Gauge, "bool", "Whether a row remapping is pending (1) or not (0).", false},
	{RowRemapFailure, Gauge, "bool", "Whether remapping of rows has failed (1) or not (0).", false},
	{PCIeReplay, Counter, "count", "Total number of PCIe retries.", false},
	{PCIeTxBytes, Gauge, "B/s", "PCIe transmit rate, headers and payload (in bytes per second).", false},
	{PCIeRxBytes, Gauge, "B/s", "PCIe receive rate, headers and payload (in bytes per second).", false},
	{NVLinkState, Gauge, "bool", "NVLink link state: 1 up, 0 down (per link).", true},
	{NVLinkCRCFlit, Counter, "count", "NVLink flow-control CRC errors (per link).", true},
	{NVLinkCRCData, Counter, "count", "NVLink data CRC errors (per link).", true},
	{NVLinkReplay, Counter, "count", "NVLink retries (per link).", true},
	{NVLinkRecovery, Counter, "count", "NVLink recovery errors (per link).", true},
	{NVLinkCRCFlitTotal, Counter, "count", "Total number of NVLink flow-control CRC errors.", false},
	{NVLinkCRCDataTotal, Counter, "count", "Total number of NVLink data CRC errors.", false},
	{NVLinkReplayTotal, Counter, "count", "Total number of NVLink retries.", false},
	{NVLinkRecovTotal, Counter, "count", "Total number of NVLink recovery errors.", false},
	{NVLinkTxBytes, Gauge, "B/s", "NVLink transmit rate over all links (in bytes per second).", false},
	{NVLinkRxBytes, Gauge, "B/s", "NVLink receive rate over all links (in bytes per second).", false},
	{NVLinkLinkTxBytes, Gauge, "B/s", "NVLink transmit rate (in bytes per second, per link).", true},
	{NVLinkLinkRxBytes, Gauge, "B/s", "NVLink receive rate (in bytes per second, per link).", true},
	{ClockEventReasons, Gauge, "bitmask", "Current clock event (throttle) reasons, NVML bit mask.", false},
	{NVLinkBandwidth, Gauge, "MB/s", "NVLink throughput, transmit plus receive, across all links (in MB/s).", false},
	{GREngineActive, Gauge, "ratio", "Ratio of time the graphics engine is active.", false},
	{SMActive, Gauge, "ratio", "Ratio of cycles an SM has at least one warp assigned.", false},
	{TensorActive, Gauge, "ratio", "Ratio of cycles the tensor pipe is active.", false},
	{DRAMActive, Gauge, "ratio", "Ratio of cycles the device memory interface is active.", false},
	{XIDErrors, Gauge, "xid", "Value of the last XID error encountered.", false},
	{VGPULicenseStatus, Gauge, "bool", "vGPU license status: 1 licensed, 0 unlicensed or no vGPU.", false},
	{TrainStepSeconds, Gauge, "s", "Training step time of one rank (in seconds).", false},
	{TrainThroughput, Gauge, "samples/s", "Training throughput of one rank (in samples per second).", false},
	{TrainSteps, Counter, "count", "Training steps one rank completed.", false},
	{TrainCheckpointSeconds, Gauge, "s", "Write time of one rank's last completed checkpoint (in seconds).", false},
	{TrainCheckpoints, Counter, "count", "Checkpoints one rank completed.", false},
	{TrainCheckpointFailures, Counter, "count", "Checkpoint writes of one rank that failed.", false},
	{ModelQueueDepth, Gauge, "requests", "Requests waiting in one model server's queue.", false},
	{ModelTokens, Counter, "tokens", "Tokens one model server generated.", false},
	{ModelBatchSize, Gauge, "requests", "Mean requests per batch one model server executed over the export interval.", false},
	{ModelMaxBatchSize, Gauge, "requests", "Largest batch one model server is configured to execute.", false},
	{ModelCacheHits, Counter, "count", "Cache lookups of one model server that hit.", false},
	{ModelCacheLookups, Counter, "count", "Cache lookups of one model server.", false},
}

var byName = func() map[string]int {
	m := make(map[string]int, len(Fields))
	for i, f := range Fields {
		m[f.Name] = i
	}
	return m
}()

// Lookup returns the catalog entry for a field name.
func Lookup(name string) (Field, bool) {
	i, ok := byName[name]
	if !ok {
		return Field{}, false
	}
	return Fields[i], true
}

// Index returns the position of name in Fields, or -1.
func Index(name string) int {
	if i, ok := byName[name]; ok {
		return i
	}
	return -1
}

// Alias is another name for a catalog field, with the factor that converts its
// unit to the catalog's classic unit.
type Alias struct {
	Name   string
	Factor float64
}

// Aliases maps DCGM's other spellings to the catalog: names deprecated in
// DCGM 3.x and the base-unit names of DCGM 4.6/4.7 (hertz, joules, bytes,
// ratios), which dcgm-exporter releases built on it expose. Values are
// multiplied by Factor.
var Aliases = map[string]Alias{
	"DCGM_FI_DEV_CLOCK_THROTTLE_REASONS":        {ClockEventReasons, 1},
	"DCGM_FI_DEV_GPU_TEMP_CELSIUS":              {GPUTemp, 1},
	"DCGM_FI_DEV_MEMORY_TEMP_CELSIUS":           {MemoryTemp, 1},
	"DCGM_FI_DEV_BOARD_POWER_WATTS":             {PowerUsage, 1},
	"DCGM_FI_DEV_GPU_ENERGY_JOULES_TOTAL":       {TotalEnergy, 1000},
	"DCGM_FI_DEV_SM_CLOCK_HERTZ":                {SMClock, 1e-6},
	"DCGM_FI_DEV_MEMORY_CLOCK_HERTZ":            {MemClock, 1e-6},
	"DCGM_FI_DEV_GPU_UTIL_RATIO":                {GPUUtil, 100},
	"DCGM_FI_DEV_MEMORY_UTIL_RATIO":             {MemCopyUtil, 100},
	"DCGM_FI_DEV_ENC_UTIL_RATIO":                {EncUtil, 100},
	"DCGM_FI_DEV_DEC_UTIL_RATIO":                {DecUtil, 100},
	"DCGM_FI_DEV_FB_USED_BYTES":                 {FBUsed, 1.0 / (1 << 20)},
	"DCGM_FI_DEV_FB_FREE_BYTES":                 {FBFree, 1.0 / (1 << 20)},
	"DCGM_FI_DEV_FB_RESERVED_BYTES":             {FBReserved, 1.0 / (1 << 20)},
	"DCGM_FI_DEV_ROW_REMAP_CORRECTABLE_TOTAL":   {RemappedCorr, 1},
	"DCGM_FI_DEV_ROW_REMAP_UNCORRECTABLE_TOTAL": {RemappedUncorr, 1},
	"DCGM_FI_DEV_ROW_REMAP_FAILED":              {RowRemapFailure, 1},
	"DCGM_FI_DEV_PAGE_RETIRED_SBE_TOTAL":        {RetiredSBE, 1},
	"DCGM_FI_DEV_PAGE_RETIRED_DBE_TOTAL":        {RetiredDBE, 1},
	"DCGM_FI_DEV_PAGE_RETIRED_PENDING":          {RetiredPending, 1},
	"DCGM_FI_DEV_PCIE_REPLAY_TOTAL":             {PCIeReplay, 1},
	"DCGM_FI_DEV_PCIE_TX_THROUGHPUT":            {PCIeTxBytes, 1024}, // KB/s via NVML
	"DCGM_FI_DEV_PCIE_RX_THROUGHPUT":            {PCIeRxBytes, 1024},
	"DCGM_FI_DEV_NVLINK_THROUGHPUT_TOTAL":       {NVLinkBandwidth, 1},
	"DCGM_FI_DEV_NVLINK_GET_STATE":              {NVLinkState, 1},
	"DCGM_FI_DEV_XID_ERROR":                     {XIDErrors, 1},
	"DCGM_FI_PROF_GR_ENGINE_UTIL_RATIO":         {GREngineActive, 1},
	"DCGM_FI_PROF_TENSOR_UTIL_RATIO":            {TensorActive, 1},
}

// Canonical resolves a metric name to its catalog field, the factor to apply,
// and, for DCGM's per-link names ending in _L<n>, the link index (else -1).
func Canonical(name string) (f Field, factor float64, link int, ok bool) {
	if f, ok := Lookup(name); ok {
		return f, 1, -1, true
	}
	if a, ok := Aliases[name]; ok {
		f, _ := Lookup(a.Name)
		return f, a.Factor, -1, true
	}
	// DCGM_FI_PROF_NVLINK_L3_TX_BYTES -> the per-link throughput family + link 3.
	if rest, ok := strings.CutPrefix(name, "DCGM_FI_PROF_NVLINK_L"); ok {
		digits, dir, _ := strings.Cut(rest, "_")
		if n, err := strconv.Atoi(digits); err == nil && n >= 0 && len(digits) <= 2 {
			switch dir {
			case "TX_BYTES":
				f, _ := Lookup(NVLinkLinkTxBytes)
				return f, 1, n, true
			case "RX_BYTES":
				f, _ := Lookup(NVLinkLinkRxBytes)
				return f, 1, n, true
			}
		}
	}
	// Per-link spellings: DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_L3 -> family + link 3.
	if i := lastIndexL(name); i > 0 {
		n := 0
		for _, c := range name[i+2:] {
			n = n*10 + int(c-'0')
		}
		if f, ok := Lookup(name[:i]); ok && f.PerLink {
			return f, 1, n, true
		}
	}
	return Field{}, 0, -1, false
}

// lastIndexL finds a trailing "_L<digits>" and returns the index of its "_".
func lastIndexL(name string) int {
	j := len(name)
	for j > 0 && name[j-1] >= '0' && name[j-1] <= '9' {
		j--
	}
	if j == len(name) || j < 2 || name[j-1] != 'L' || name[j-2] != '_' || len(name)-j > 2 {
		return -1
	}
	return j - 2
}

// Data-point labels, spelled as dcgm-exporter spells them so dashboards and
// alert rules written for it keep working.
const (
	LabelGPU       = "gpu"
	LabelUUID      = "UUID"
	LabelPCIBusID  = "pci_bus_id"
	LabelDevice    = "device"
	LabelModelName = "modelName"
	LabelHostname  = "Hostname"
	// LabelHostnameNew is how newer dcgm-exporter releases spell Hostname.
	LabelHostnameNew = "hostname"
	LabelMIGID       = "GPU_I_ID"
	LabelMIGProfile  = "GPU_I_PROFILE"
	LabelNamespace   = "namespace"
	LabelPod         = "pod"
	LabelContainer   = "container"
	LabelLink        = "link"
	LabelErrCode     = "err_code"
	LabelErrMsg      = "err_msg"
	// LabelPodUID is the Kubernetes pod's UID (dcgm-exporter's pod_uid).
	LabelPodUID = "pod_uid"
	// LabelDriverVersion is the NVIDIA driver version, a label on every GPU
	// series of dcgm-exporter (a DCGM field of type label).
	LabelDriverVersion = "DCGM_FI_DRIVER_VERSION"
	// LabelJob and LabelRank identify the job using a GPU (a training or
	// serving job; dcgm-exporter's HPC job mapping uses the same label) and
	// a training rank. The job label is not "job": Prometheus sets that on
	// every scraped series (the scrape job), so a "job" from the target ends
	// up renamed exported_job.
	LabelJob  = "hpc_job"
	LabelRank = "rank"
	// LabelJobLegacy is how agents before issue 13, and training jobs that
	// follow the older contract, spell LabelJob; consumers accept both.
	LabelJobLegacy = "job"
	// LabelHPCUser and LabelHPCAccount are who runs a Slurm job on the GPU:
	// the user name (the uid when it has none) and the Slurm account.
	LabelHPCUser    = "hpc_user"
	LabelHPCAccount = "hpc_account"
)

// The workload's cost-attribution labels: copied from the labels of the
// pod holding a GPU (the agent's pod_resources.pod_labels), or set by a
// sender that knows them. analytics/cost groups GPU cost by them.
const (
	LabelTeam         = "team"
	LabelModel        = "model"
	LabelModelVersion = "model_version"
	LabelCostCenter   = "cost_center"
	LabelEnvironment  = "environment"
)

// LabelPurchase is how the GPU a holder runs on was bought (on_demand,
// reserved, spot): a pod label cost prices by when present.
const LabelPurchase = "purchase"

// WorkloadLabels are the cost-attribution labels a GPU's holder may carry.
var WorkloadLabels = []string{LabelTeam, LabelModel, LabelModelVersion, LabelCostCenter, LabelEnvironment}

// GPULabels are the labels that say which GPU (or MIG instance) a series
// belongs to and what uses it. A sender puts them either on every data
// point, as dcgm-exporter does, or once per GPU on the OTLP resource its
// data points sit under (the agent's form since issue 18), where they count
// as if every data point under the resource carried them; a data point's
// own value for the same label wins. Other resource attributes never become
// labels. The spellings the consumers also accept (LabelHostnameNew,
// LabelJobLegacy, "uuid") count as these.
var GPULabels = []string{
	LabelGPU, LabelUUID, LabelPCIBusID, LabelDevice, LabelModelName, LabelHostname,
	LabelMIGID, LabelMIGProfile, LabelDriverVersion,
	LabelNamespace, LabelPod, LabelPodUID, LabelContainer, LabelJob,
	LabelHPCUser, LabelHPCAccount,
	LabelTeam, LabelModel, LabelModelVersion, LabelCostCenter, LabelEnvironment,
}

// IsGPULabel reports whether key is one of GPULabels or another spelling of one.
func IsGPULabel(key string) bool {
	_, ok := gpuLabelKeys[key]
	return ok
}

var gpuLabelKeys = func() map[string]struct{} {
	m := make(map[string]struct{}, len(GPULabels)+3)
	for _, k := range GPULabels {
		m[k] = struct{}{}
	}
	for _, k := range []string{LabelHostnameNew, LabelJobLegacy, "uuid"} {
		m[k] = struct{}{}
	}
	return m
}()

// Resource attributes: where telemetry comes from. Topology is
// datacenter ⊃ row ⊃ rack ⊃ node ⊃ GPU; cluster is the logical compute
// cluster (Kubernetes or Slurm), orthogonal to the physical tree.
const (
	AttrDatacenter   = "fleetwatch.datacenter"
	AttrRow          = "fleetwatch.row"
	AttrRack         = "fleetwatch.rack"
	AttrCluster      = "fleetwatch.cluster"
	AttrHostName     = "host.name"
	AttrK8sNode      = "k8s.node.name"
	AttrK8sNamespace = "k8s.namespace.name"
	AttrK8sPod       = "k8s.pod.name"
	AttrK8sContainer = "k8s.container.name"
	AttrServiceName  = "service.name"
)

// OTLP log events. The name goes in LogRecord.event_name and, for SDKs that
// cannot set it, in the attribute "event.name".
const (
	AttrEventName = "event.name"

	EventGPU        = "fleetwatch.gpu_event"
	EventInference  = "fleetwatch.inference"
	EventLabel      = "fleetwatch.label"
	EventDeployment = "fleetwatch.deployment"
	// EventOutcome is a request's business outcome (issue 20 item 1).
	EventOutcome = "fleetwatch.outcome"
)

// Attributes of the log events.
const (
	// GPU events (plus the GPU labels above as attributes).
	AttrGPUEvent = "fleetwatch.event" // xid, ecc_sbe, ecc_dbe, clock_event, row_remap, gpu_lost
	AttrCode     = "fleetwatch.code"  // XID number or clock-event bit mask
	AttrCount    = "fleetwatch.count" // occurrences folded into the record
	AttrSource   = "fleetwatch.source"

	// Inference events, labels and deployments.
	AttrModel           = "fleetwatch.model"
	AttrModelVersion    = "fleetwatch.model_version"
	AttrRequestID       = "fleetwatch.request_id"
	AttrLatencyMs       = "fleetwatch.latency_ms"
	AttrStatus          = "fleetwatch.status"
	AttrFeatures        = "fleetwatch.features" // map: name -> double (numeric) or string (categorical); empty/absent = missing
	AttrPrediction      = "fleetwatch.prediction"
	AttrPredictionClass = "fleetwatch.prediction_class"
	AttrSampleRate      = "fleetwatch.sample_rate"
	AttrGPUUUID         = "fleetwatch.gpu_uuid"
	AttrLabel           = "fleetwatch.label"
	AttrLabelValue      = "fleetwatch.label_value"
	AttrPreviousVersion = "fleetwatch.previous_version"
	AttrChange          = "fleetwatch.change"
	AttrEnvironment     = "fleetwatch.environment"
	AttrActor           = "fleetwatch.actor"

	// Business outcomes (plus AttrModel, AttrModelVersion, AttrRequestID).
	AttrOutcome      = "fleetwatch.outcome"       // what happened: click, conversion, ...; default OutcomeEngagement
	AttrSuccess      = "fleetwatch.success"       // bool: true (default) when the request engaged, false for an explicit miss
	AttrOutcomeValue = "fleetwatch.outcome_value" // optional magnitude: revenue, dwell seconds
)

// OutcomeEngagement is the outcome name of a fleetwatch.outcome event that
// names none.
const OutcomeEngagement = "engagement"

// AttrFeatureUpdatedAt says when each served feature value of an inference
// event was last updated by its pipeline: map name -> Unix seconds (double
// or int) or an RFC 3339 string. Optional; freshness is measured from it.
const AttrFeatureUpdatedAt = "fleetwatch.feature_updated_at"

// GPU event kinds (AttrGPUEvent values and gpu_events.event).
const (
	GPUEventXID        = "xid"
	GPUEventECCSBE     = "ecc_sbe"
	GPUEventECCDBE     = "ecc_dbe"
	GPUEventClockEvent = "clock_event"
	GPUEventRowRemap   = "row_remap"
	GPUEventLost       = "gpu_lost"
)

// Clock-event (throttle) reason bits, as NVML defines them.
var ClockEventBits = []struct {
	Bit  uint64
	Name string
}{
	{0x1, "gpu_idle"}, {0x2, "clocks_setting"}, {0x4, "power_cap"}, {0x8, "hw_slowdown"},
	{0x10, "sync_boost"}, {0x20, "sw_thermal"}, {0x40, "hw_thermal"}, {0x80, "hw_power_brake"},
	{0x100, "display_clocks"},
}

// ClockEventNames lists the reason names set in mask.
func ClockEventNames(mask uint64) []string {
	var out []string
	for _, b := range ClockEventBits {
		if mask&b.Bit != 0 {
			out = append(out, b.Name)
		}
	}
	return out
}
