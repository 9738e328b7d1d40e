package schema

// Column groups shared by several tables. The names follow docs/TELEMETRY.md:
// topology comes from OTLP resource attributes, GPU identity from
// dcgm-exporter's labels.

func str(name, comment string) Column {
	return Column{Name: name, Type: "String", Comment: comment}
}

func lcStr(name, comment string) Column {
	return Column{Name: name, Type: "String", LowCardinality: true, Comment: comment}
}

func topologyColumns() []Column {
	return []Column{
		lcStr("datacenter", "datacenter (resource attribute fleetwatch.datacenter)"),
		lcStr("row", "row or pod of racks (resource attribute fleetwatch.row)"),
		lcStr("rack", "rack (resource attribute fleetwatch.rack)"),
		lcStr("node", "host name (dcgm-exporter label Hostname)"),
		lcStr("cluster", "logical compute cluster, Kubernetes or Slurm (resource attribute fleetwatch.cluster)"),
	}
}

func kubernetesColumns() []Column {
	return []Column{
		lcStr("namespace", "Kubernetes namespace"),
		lcStr("pod", "Kubernetes pod"),
		lcStr("container", "Kubernetes container"),
	}
}

func gpuIdentityColumns() []Column {
	return []Column{
		lcStr("gpu", "GPU index on the node (dcgm-exporter label gpu)"),
		lcStr("uuid", "GPU UUID (label UUID)"),
		lcStr("pci_bus_id", "PCI bus id (label pci_bus_id)"),
		lcStr("device", "device name, e.g. nvidia0 (label device)"),
		lcStr("model_name", "GPU product name (label modelName)"),
		lcStr("gpu_instance", "MIG GPU instance id (label GPU_I_ID); empty for a whole GPU"),
		lcStr("gpu_profile", "MIG profile (label GPU_I_PROFILE)"),
	}
}

func labelColumns(prefix, what string) []Column {
	return []Column{
		{Name: prefix + "_keys", Type: "Array(String)", Comment: "other " + what + " names, sorted"},
		{Name: prefix + "_values", Type: "Array(String)", Comment: "other " + what + " values, aligned with " + prefix + "_keys"},
	}
}

func timeColumn(name, comment string) Column {
	return Column{Name: name, Type: "DateTime", Codec: "DoubleDelta, ZSTD(1)", Comment: comment}
}

func concat(groups ...[]Column) []Column {
	var out []Column
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// GPUSamples is the raw GPU metric table: one narrow row per sample. What a
// series is (its GPU, node, labels) lives once in gpu_series; keeping samples
// to five columns costs the server about a fifth of the CPU per inserted row
// of a wide row (measured: docs/SCHEMA.md).
//
// A row is one point: ts and ts_ns together are its time to the nanosecond,
// so points of one series within one second are all kept (migration 11; before
// it, ReplacingMergeTree folded them into one row per second). A point stored
// twice (a replay) has the same key and collapses.
var GPUSamples = gpuSamplesV1.withSortColumn(Column{Name: "ts_ns", Type: "UInt32", Codec: "T64, ZSTD(1)",
	Comment: "nanoseconds within the second of ts: the point's time is ts + ts_ns"})

// gpuSamplesV1 is gpu_samples as migration 1 created it.
var gpuSamplesV1 = Table{
	Name: "gpu_samples",
	Doc:  "Raw GPU metric samples: one row per point of a DCGM field (or other metric) series; labels live in gpu_series.",
	Columns: []Column{
		timeColumn("ts", "sample time (UTC, seconds)"),
		lcStr("metric", "DCGM field name, e.g. DCGM_FI_DEV_GPU_TEMP"),
		{Name: "series", Type: "UInt64", Comment: "series id: hash of metric and every identifying label; joins gpu_series"},
		{Name: "value", Type: "Float64", Codec: "Gorilla, ZSTD(1)", Comment: "sample value in the field's classic DCGM unit"},
		{Name: "delta", Type: "Float64", Codec: "Gorilla, ZSTD(1)", Comment: "counters: increase since the previous sample of the series, resets handled; gauges: 0"},
	},
	Engine:        ReplacingMergeTree,
	TimeColumn:    "ts",
	Partition:     PartitionDaily,
	OrderBy:       []string{"metric", "series", "ts"},
	RetentionDays: 14,
	ShardingKey:   "series",
}

// GPUSeries describes each series of gpu_samples once: its GPU, place in the
// fleet and labels. Writers add a row when a series is first seen and refresh
// it (last_seen) now and then.
var GPUSeries = Table{
	Name: "gpu_series",
	Doc:  "One row per GPU metric series: metric, GPU identity, topology, Kubernetes workload, labels.",
	Columns: concat(
		[]Column{
			{Name: "series", Type: "UInt64", Comment: "series id, as in gpu_samples"},
			lcStr("metric", "DCGM field name"),
			{Name: "counter", Type: "UInt8", Comment: "1 for a cumulative counter, 0 for a gauge"},
		},
		topologyColumns(),
		gpuIdentityColumns(),
		kubernetesColumns(),
		[]Column{lcStr("job", "training or serving job the GPU is assigned to, when known")},
		labelColumns("label", "label"),
		[]Column{
			timeColumn("first_seen", "when a writer first saw the series (UTC)"),
			timeColumn("last_seen", "when a writer last refreshed the series (UTC)"),
		},
	),
	Engine:        ReplacingMergeTree,
	EngineArgs:    "last_seen",
	TimeColumn:    "last_seen",
	Partition:     PartitionMonthly,
	OrderBy:       []string{"metric", "cluster", "node", "series"},
	RetentionDays: 400,
	ShardingKey:   "series",
}

// GPUSamples1m is the one-minute rollup of gpu_samples, fed by a materialized view.
var GPUSamples1m = Table{
	Name: "gpu_samples_1m",
	Doc:  "One-minute rollups of gpu_samples per series: count, sum, min, max, last value, counter increase.",
	Columns: []Column{
		timeColumn("minute", "start of the minute (UTC)"),
		lcStr("metric", "DCGM field name"),
		{Name: "series", Type: "UInt64", Comment: "series id; joins gpu_series"},
		{Name: "samples", Type: "AggregateFunction(count)", Comment: "countMerge(samples): samples in the minute"},
		{Name: "sum", Type: "AggregateFunction(sum, Float64)", Comment: "sumMerge(sum)"},
		{Name: "min", Type: "AggregateFunction(min, Float64)", Comment: "minMerge(min)"},
		{Name: "max", Type: "AggregateFunction(max, Float64)", Comment: "maxMerge(max)"},
		{Name: "last", Type: "AggregateFunction(argMax, Float64, DateTime)", Comment: "argMaxMerge(last): the minute's last value"},
		{Name: "delta_sum", Type: "AggregateFunction(sum, Float64)", Comment: "sumMerge(delta_sum): counter increase in the minute"},
	},
	Engine:        AggregatingMergeTree,
	TimeColumn:    "minute",
	Partition:     PartitionMonthly,
	OrderBy:       []string{"metric", "series", "minute"},
	RetentionDays: 400,
	ShardingKey:   "series",
}

// GPUSamples1mView feeds gpu_samples_1m.
var GPUSamples1mView = View{
	Name: "gpu_samples_1m_mv",
	From: "gpu_samples",
	To:   "gpu_samples_1m",
	Select: `SELECT
    toStartOfMinute(ts) AS minute, metric, series,
    countState() AS samples, sumState(value) AS sum, minState(value) AS min, maxState(value) AS max,
    argMaxState(value, ts) AS last, sumState(delta) AS delta_sum
FROM {from}
GROUP BY minute, metric, series`,
}

// GPUEvents holds discrete GPU events: XID errors, ECC errors, clock-event
// (throttle) reason changes, row remaps, a GPU that stopped reporting.
var GPUEvents = Table{
	Name: "gpu_events",
	Doc:  "Discrete GPU events: XID, ECC, throttle-reason changes, row remaps, lost GPUs.",
	Columns: concat(
		[]Column{
			timeColumn("ts", "event time (UTC, seconds)"),
			lcStr("event", "event kind: xid, ecc_sbe, ecc_dbe, clock_event, row_remap, gpu_lost, ..."),
			{Name: "code", Type: "Int64", Comment: "XID number, or the clock-event reason bit mask"},
			{Name: "count", Type: "UInt32", Default: "1", Comment: "occurrences folded into this row (same GPU, event, code, second)"},
			str("message", "human-readable detail, e.g. the XID message"),
			lcStr("source", "where it was read: nvml or dcgm"),
		},
		topologyColumns(),
		gpuIdentityColumns(),
		kubernetesColumns(),
		[]Column{lcStr("job", "job label")},
		labelColumns("label", "label"),
	),
	Engine:        ReplacingMergeTree,
	TimeColumn:    "ts",
	Partition:     PartitionMonthly,
	OrderBy:       []string{"event", "cluster", "node", "uuid", "ts", "code"},
	RetentionDays: 400,
	ShardingKey:   "cityHash64(node)",
}

// InferenceEvents holds model-server inference records (sampled at the edge).
// Migration 13 added when each served feature value was last updated
// (issue 16: freshness is the age of the value, not of the event).
var InferenceEvents = inferenceEventsV1.withColumns(featureUpdateColumns...)

// featureUpdateColumns are the columns migration 13 added to inference_events.
var featureUpdateColumns = []Column{
	{Name: "feature_update_names", Type: "Array(String)", Comment: "features whose served value reported when it was last updated (fleetwatch.feature_updated_at)"},
	{Name: "feature_update_ts", Type: "Array(Float64)", Comment: "last update time of each feature_update_names value (Unix seconds)"},
}

// inferenceEventsV1 is inference_events as migration 3 created it.
var inferenceEventsV1 = Table{
	Name: "inference_events",
	Doc:  "Inference records: one row per sampled request to a model.",
	Columns: []Column{
		timeColumn("ts", "request time (UTC, seconds)"),
		lcStr("model", "model name as in the model catalog"),
		lcStr("model_version", "model version"),
		str("request_id", "request id; delayed labels join on it"),
		{Name: "latency_ms", Type: "Float64", Comment: "end-to-end latency in milliseconds"},
		lcStr("status", "ok, or an error class (timeout, error, rejected, ...)"),
		{Name: "feature_names", Type: "Array(String)", Comment: "numeric feature names"},
		{Name: "feature_values", Type: "Array(Float64)", Comment: "numeric feature values aligned with feature_names; nan = missing"},
		{Name: "cat_feature_names", Type: "Array(String)", Comment: "categorical feature names"},
		{Name: "cat_feature_values", Type: "Array(String)", Comment: "categorical values aligned with cat_feature_names; empty = missing"},
		{Name: "prediction", Type: "Float64", Comment: "numeric output or score; nan when the model emits only a class"},
		lcStr("prediction_class", "categorical output, if any"),
		{Name: "sample_rate", Type: "Float64", Default: "1", Comment: "fraction of requests kept by edge sampling; each row stands for 1/sample_rate requests"},
		lcStr("service", "service.name of the emitter"),
		lcStr("datacenter", "datacenter"),
		lcStr("cluster", "cluster"),
		lcStr("node", "serving host"),
		lcStr("gpu_uuid", "serving GPU, when known"),
		lcStr("namespace", "Kubernetes namespace"),
		lcStr("pod", "Kubernetes pod"),
	},
	Engine:        ReplacingMergeTree,
	TimeColumn:    "ts",
	Partition:     PartitionDaily,
	OrderBy:       []string{"model", "model_version", "ts", "request_id"},
	RetentionDays: 30,
	ShardingKey:   "cityHash64(request_id)",
}

// DelayedLabels holds ground truth that arrives after the prediction.
var DelayedLabels = Table{
	Name: "delayed_labels",
	Doc:  "Ground-truth labels that arrive after the prediction, joined by request id.",
	Columns: []Column{
		timeColumn("ts", "when the label became known (UTC)"),
		lcStr("model", "model name"),
		str("request_id", "request id of the inference event"),
		lcStr("label", "true class, for classifiers"),
		{Name: "label_value", Type: "Float64", Comment: "true value, for regressors; nan otherwise"},
	},
	Engine:        ReplacingMergeTree,
	EngineArgs:    "ts",
	TimeColumn:    "ts",
	Partition:     PartitionMonthly,
	OrderBy:       []string{"model", "request_id"},
	RetentionDays: 90,
	ShardingKey:   "cityHash64(request_id)",
}

// ModelDeployments holds version-change markers.
var ModelDeployments = Table{
	Name: "model_deployments",
	Doc:  "Model version changes (deploy, canary, rollback) used as markers and incident suspects.",
	Columns: []Column{
		timeColumn("ts", "when the change took effect (UTC)"),
		lcStr("model", "model name"),
		lcStr("model_version", "version now serving"),
		lcStr("previous_version", "version it replaced"),
		lcStr("change", "deploy, canary, promote or rollback"),
		lcStr("environment", "environment, e.g. prod"),
		str("actor", "who or what made the change"),
		str("note", "free text"),
	},
	Engine:      ReplacingMergeTree,
	TimeColumn:  "ts",
	Partition:   PartitionMonthly,
	OrderBy:     []string{"model", "ts", "model_version"},
	ShardingKey: "cityHash64(model)",
}

// Spans holds OpenTelemetry trace spans.
var Spans = Table{
	Name: "spans",
	Doc:  "OpenTelemetry spans, for latency across inference stages.",
	Columns: concat(
		[]Column{
			timeColumn("ts", "span start (UTC, seconds)"),
			{Name: "start_ns", Type: "Int64", Codec: "DoubleDelta, ZSTD(1)", Comment: "span start, Unix nanoseconds"},
			{Name: "duration_ns", Type: "Int64", Comment: "span duration in nanoseconds"},
			str("trace_id", "trace id, 32 hex digits"),
			str("span_id", "span id, 16 hex digits"),
			str("parent_span_id", "parent span id; empty for a root span"),
			lcStr("service", "service.name"),
			lcStr("operation", "span name"),
			lcStr("kind", "internal, server, client, producer or consumer"),
			lcStr("status_code", "unset, ok or error"),
			str("status_message", "status description"),
			lcStr("model", "model (attribute fleetwatch.model), when the span serves one"),
			lcStr("model_version", "model version (attribute fleetwatch.model_version)"),
			str("request_id", "request id (attribute fleetwatch.request_id)"),
			lcStr("cluster", "cluster"),
			lcStr("node", "host"),
		},
		kubernetesColumns(),
		labelColumns("attr", "span attribute"),
	),
	Engine:        ReplacingMergeTree,
	TimeColumn:    "ts",
	Partition:     PartitionDaily,
	OrderBy:       []string{"service", "operation", "ts", "trace_id", "span_id"},
	RetentionDays: 7,
	ShardingKey:   "cityHash64(trace_id)",
	Indexes:       []Index{{Name: "trace_idx", Expr: "trace_id", Type: "bloom_filter(0.01)", Granularity: 4}},
}

// Detections holds every raw detection the analyzer raises: cheap, stored,
// and the input of alerting's correlation into incidents.
var Detections = detectionsV1.withColumns(detectionSourceColumns...)

// detectionSourceColumns are the columns migration 15 added to detections.
var detectionSourceColumns = []Column{
	lcStr("source", "the analyzer's evaluation that raised it: the engine detector, or its share (fleet_health@dc0of4) when analyzers share the fleet; ts is the window's end"),
}

// detectionsV1 is detections as migration 5 created it.
var detectionsV1 = Table{
	Name: "detections",
	Doc:  "Raw detections from every detector, one row per firing entity per evaluation window.",
	Columns: concat(
		[]Column{
			timeColumn("ts", "end of the evaluated window (UTC)"),
			timeColumn("window_start", "start of the evaluated window (UTC)"),
			lcStr("detector", "detector that fired, e.g. psi, spc_we1, xid, straggler"),
			lcStr("class", "what kind of problem: thermal, ecc, nvlink, straggler, gpu_lost, covariate_drift, latency, ..."),
			lcStr("severity", "info, warning or critical"),
			lcStr("entity_type", "gpu, node, rack, job, rank, model, feature, pipeline, ..."),
			str("entity", "the entity's id: GPU UUID, node name, model, model/feature, ..."),
			str("key", "stable detection key (detector and entity); one problem keeps one key"),
		},
		topologyColumns(),
		[]Column{
			lcStr("gpu_uuid", "GPU UUID, for GPU-level detections"),
			lcStr("gpu_model", "GPU product name, for peer grouping"),
			lcStr("job", "training job, when known"),
			lcStr("model", "ML model, for model-level detections"),
			lcStr("model_version", "model version"),
			lcStr("feature", "feature, for drift detections"),
			{Name: "value", Type: "Float64", Comment: "the detector's statistic (PSI, z-score, ratio to peers, ...)"},
			{Name: "threshold", Type: "Float64", Comment: "the threshold it crossed"},
			{Name: "p_value", Type: "Float64", Comment: "p-value where the detector has one; nan otherwise"},
			lcStr("action", "recommended action: investigate, drain, reset, reboot, rma, retrain, rollback, ..."),
			str("summary", "one line for humans"),
			str("evidence", "JSON object with the numbers behind the detection"),
		},
	),
	Engine:        ReplacingMergeTree,
	TimeColumn:    "ts",
	Partition:     PartitionMonthly,
	OrderBy:       []string{"class", "key", "ts"},
	RetentionDays: 400,
	ShardingKey:   "cityHash64(key)",
}
