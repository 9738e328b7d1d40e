CREATE DATABASE IF NOT EXISTS fleetwatch;

CREATE TABLE IF NOT EXISTS fleetwatch.schema_migrations
(
    version UInt32 COMMENT 'migration number',
    name String COMMENT 'migration name',
    checksum String COMMENT 'sha256 of the SQL that was applied',
    applied_at DateTime COMMENT 'when it was applied (UTC)',
    server_version String COMMENT 'ClickHouse version it was applied on',
    profile String COMMENT 'feature profile: legacy or modern'
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY (version);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_samples
(
    ts DateTime COMMENT 'sample time (UTC, seconds)' CODEC(DoubleDelta, ZSTD(1)),
    metric LowCardinality(String) COMMENT 'DCGM field name, e.g. DCGM_FI_DEV_GPU_TEMP',
    series UInt64 COMMENT 'series id: hash of metric and every identifying label; joins gpu_series',
    value Float64 COMMENT 'sample value in the field\'s classic DCGM unit' CODEC(Gorilla, ZSTD(1)),
    delta Float64 COMMENT 'counters: increase since the previous sample of the series, resets handled; gauges: 0' CODEC(Gorilla, ZSTD(1))
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY (metric, series, ts)
TTL ts + toIntervalDay(14);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_series
(
    series UInt64 COMMENT 'series id, as in gpu_samples',
    metric LowCardinality(String) COMMENT 'DCGM field name',
    counter UInt8 COMMENT '1 for a cumulative counter, 0 for a gauge',
    datacenter LowCardinality(String) COMMENT 'datacenter (resource attribute fleetwatch.datacenter)',
    row LowCardinality(String) COMMENT 'row or pod of racks (resource attribute fleetwatch.row)',
    rack LowCardinality(String) COMMENT 'rack (resource attribute fleetwatch.rack)',
    node LowCardinality(String) COMMENT 'host name (dcgm-exporter label Hostname)',
    cluster LowCardinality(String) COMMENT 'logical compute cluster, Kubernetes or Slurm (resource attribute fleetwatch.cluster)',
    gpu LowCardinality(String) COMMENT 'GPU index on the node (dcgm-exporter label gpu)',
    uuid LowCardinality(String) COMMENT 'GPU UUID (label UUID)',
    pci_bus_id LowCardinality(String) COMMENT 'PCI bus id (label pci_bus_id)',
    device LowCardinality(String) COMMENT 'device name, e.g. nvidia0 (label device)',
    model_name LowCardinality(String) COMMENT 'GPU product name (label modelName)',
    gpu_instance LowCardinality(String) COMMENT 'MIG GPU instance id (label GPU_I_ID); empty for a whole GPU',
    gpu_profile LowCardinality(String) COMMENT 'MIG profile (label GPU_I_PROFILE)',
    namespace LowCardinality(String) COMMENT 'Kubernetes namespace',
    pod LowCardinality(String) COMMENT 'Kubernetes pod',
    container LowCardinality(String) COMMENT 'Kubernetes container',
    job LowCardinality(String) COMMENT 'training or serving job the GPU is assigned to, when known',
    label_keys Array(String) COMMENT 'other label names, sorted',
    label_values Array(String) COMMENT 'other label values, aligned with label_keys',
    first_seen DateTime COMMENT 'when a writer first saw the series (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    last_seen DateTime COMMENT 'when a writer last refreshed the series (UTC)' CODEC(DoubleDelta, ZSTD(1))
)
ENGINE = ReplacingMergeTree(last_seen)
PARTITION BY toYYYYMM(last_seen)
ORDER BY (metric, cluster, node, series)
TTL last_seen + toIntervalDay(400);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_samples_1m
(
    minute DateTime COMMENT 'start of the minute (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    metric LowCardinality(String) COMMENT 'DCGM field name',
    series UInt64 COMMENT 'series id; joins gpu_series',
    samples AggregateFunction(count) COMMENT 'countMerge(samples): samples in the minute',
    sum AggregateFunction(sum, Float64) COMMENT 'sumMerge(sum)',
    min AggregateFunction(min, Float64) COMMENT 'minMerge(min)',
    max AggregateFunction(max, Float64) COMMENT 'maxMerge(max)',
    last AggregateFunction(argMax, Float64, DateTime) COMMENT 'argMaxMerge(last): the minute\'s last value',
    delta_sum AggregateFunction(sum, Float64) COMMENT 'sumMerge(delta_sum): counter increase in the minute'
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (metric, series, minute)
TTL minute + toIntervalDay(400);

CREATE MATERIALIZED VIEW IF NOT EXISTS fleetwatch.gpu_samples_1m_mv TO fleetwatch.gpu_samples_1m AS
SELECT
    toStartOfMinute(ts) AS minute, metric, series,
    countState() AS samples, sumState(value) AS sum, minState(value) AS min, maxState(value) AS max,
    argMaxState(value, ts) AS last, sumState(delta) AS delta_sum
FROM fleetwatch.gpu_samples
GROUP BY minute, metric, series;

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_events
(
    ts DateTime COMMENT 'event time (UTC, seconds)' CODEC(DoubleDelta, ZSTD(1)),
    event LowCardinality(String) COMMENT 'event kind: xid, ecc_sbe, ecc_dbe, clock_event, row_remap, gpu_lost, ...',
    code Int64 COMMENT 'XID number, or the clock-event reason bit mask',
    count UInt32 DEFAULT 1 COMMENT 'occurrences folded into this row (same GPU, event, code, second)',
    message String COMMENT 'human-readable detail, e.g. the XID message',
    source LowCardinality(String) COMMENT 'where it was read: nvml or dcgm',
    datacenter LowCardinality(String) COMMENT 'datacenter (resource attribute fleetwatch.datacenter)',
    row LowCardinality(String) COMMENT 'row or pod of racks (resource attribute fleetwatch.row)',
    rack LowCardinality(String) COMMENT 'rack (resource attribute fleetwatch.rack)',
    node LowCardinality(String) COMMENT 'host name (dcgm-exporter label Hostname)',
    cluster LowCardinality(String) COMMENT 'logical compute cluster, Kubernetes or Slurm (resource attribute fleetwatch.cluster)',
    gpu LowCardinality(String) COMMENT 'GPU index on the node (dcgm-exporter label gpu)',
    uuid LowCardinality(String) COMMENT 'GPU UUID (label UUID)',
    pci_bus_id LowCardinality(String) COMMENT 'PCI bus id (label pci_bus_id)',
    device LowCardinality(String) COMMENT 'device name, e.g. nvidia0 (label device)',
    model_name LowCardinality(String) COMMENT 'GPU product name (label modelName)',
    gpu_instance LowCardinality(String) COMMENT 'MIG GPU instance id (label GPU_I_ID); empty for a whole GPU',
    gpu_profile LowCardinality(String) COMMENT 'MIG profile (label GPU_I_PROFILE)',
    namespace LowCardinality(String) COMMENT 'Kubernetes namespace',
    pod LowCardinality(String) COMMENT 'Kubernetes pod',
    container LowCardinality(String) COMMENT 'Kubernetes container',
    job LowCardinality(String) COMMENT 'job label',
    label_keys Array(String) COMMENT 'other label names, sorted',
    label_values Array(String) COMMENT 'other label values, aligned with label_keys'
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (event, cluster, node, uuid, ts, code)
TTL ts + toIntervalDay(400);

CREATE TABLE IF NOT EXISTS fleetwatch.inference_events
(
    ts DateTime COMMENT 'request time (UTC, seconds)' CODEC(DoubleDelta, ZSTD(1)),
    model LowCardinality(String) COMMENT 'model name as in the model catalog',
    model_version LowCardinality(String) COMMENT 'model version',
    request_id String COMMENT 'request id; delayed labels join on it',
    latency_ms Float64 COMMENT 'end-to-end latency in milliseconds',
    status LowCardinality(String) COMMENT 'ok, or an error class (timeout, error, rejected, ...)',
    feature_names Array(String) COMMENT 'numeric feature names',
    feature_values Array(Float64) COMMENT 'numeric feature values aligned with feature_names; nan = missing',
    cat_feature_names Array(String) COMMENT 'categorical feature names',
    cat_feature_values Array(String) COMMENT 'categorical values aligned with cat_feature_names; empty = missing',
    prediction Float64 COMMENT 'numeric output or score; nan when the model emits only a class',
    prediction_class LowCardinality(String) COMMENT 'categorical output, if any',
    sample_rate Float64 DEFAULT 1 COMMENT 'fraction of requests kept by edge sampling; each row stands for 1/sample_rate requests',
    service LowCardinality(String) COMMENT 'service.name of the emitter',
    datacenter LowCardinality(String) COMMENT 'datacenter',
    cluster LowCardinality(String) COMMENT 'cluster',
    node LowCardinality(String) COMMENT 'serving host',
    gpu_uuid LowCardinality(String) COMMENT 'serving GPU, when known',
    namespace LowCardinality(String) COMMENT 'Kubernetes namespace',
    pod LowCardinality(String) COMMENT 'Kubernetes pod'
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY (model, model_version, ts, request_id)
TTL ts + toIntervalDay(30);

CREATE TABLE IF NOT EXISTS fleetwatch.delayed_labels
(
    ts DateTime COMMENT 'when the label became known (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    model LowCardinality(String) COMMENT 'model name',
    request_id String COMMENT 'request id of the inference event',
    label LowCardinality(String) COMMENT 'true class, for classifiers',
    label_value Float64 COMMENT 'true value, for regressors; nan otherwise'
)
ENGINE = ReplacingMergeTree(ts)
PARTITION BY toYYYYMM(ts)
ORDER BY (model, request_id)
TTL ts + toIntervalDay(90);

CREATE TABLE IF NOT EXISTS fleetwatch.model_deployments
(
    ts DateTime COMMENT 'when the change took effect (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    model LowCardinality(String) COMMENT 'model name',
    model_version LowCardinality(String) COMMENT 'version now serving',
    previous_version LowCardinality(String) COMMENT 'version it replaced',
    change LowCardinality(String) COMMENT 'deploy, canary, promote or rollback',
    environment LowCardinality(String) COMMENT 'environment, e.g. prod',
    actor String COMMENT 'who or what made the change',
    note String COMMENT 'free text'
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (model, ts, model_version);

CREATE TABLE IF NOT EXISTS fleetwatch.spans
(
    ts DateTime COMMENT 'span start (UTC, seconds)' CODEC(DoubleDelta, ZSTD(1)),
    start_ns Int64 COMMENT 'span start, Unix nanoseconds' CODEC(DoubleDelta, ZSTD(1)),
    duration_ns Int64 COMMENT 'span duration in nanoseconds',
    trace_id String COMMENT 'trace id, 32 hex digits',
    span_id String COMMENT 'span id, 16 hex digits',
    parent_span_id String COMMENT 'parent span id; empty for a root span',
    service LowCardinality(String) COMMENT 'service.name',
    operation LowCardinality(String) COMMENT 'span name',
    kind LowCardinality(String) COMMENT 'internal, server, client, producer or consumer',
    status_code LowCardinality(String) COMMENT 'unset, ok or error',
    status_message String COMMENT 'status description',
    model LowCardinality(String) COMMENT 'model (attribute fleetwatch.model), when the span serves one',
    model_version LowCardinality(String) COMMENT 'model version (attribute fleetwatch.model_version)',
    request_id String COMMENT 'request id (attribute fleetwatch.request_id)',
    cluster LowCardinality(String) COMMENT 'cluster',
    node LowCardinality(String) COMMENT 'host',
    namespace LowCardinality(String) COMMENT 'Kubernetes namespace',
    pod LowCardinality(String) COMMENT 'Kubernetes pod',
    container LowCardinality(String) COMMENT 'Kubernetes container',
    attr_keys Array(String) COMMENT 'other span attribute names, sorted',
    attr_values Array(String) COMMENT 'other span attribute values, aligned with attr_keys',
    INDEX trace_idx trace_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY (service, operation, ts, trace_id, span_id)
TTL ts + toIntervalDay(7);

CREATE TABLE IF NOT EXISTS fleetwatch.detections
(
    ts DateTime COMMENT 'end of the evaluated window (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    window_start DateTime COMMENT 'start of the evaluated window (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    detector LowCardinality(String) COMMENT 'detector that fired, e.g. psi, spc_we1, xid, straggler',
    class LowCardinality(String) COMMENT 'what kind of problem: thermal, ecc, nvlink, straggler, gpu_lost, covariate_drift, latency, ...',
    severity LowCardinality(String) COMMENT 'info, warning or critical',
    entity_type LowCardinality(String) COMMENT 'gpu, node, rack, job, rank, model, feature, pipeline, ...',
    entity String COMMENT 'the entity\'s id: GPU UUID, node name, model, model/feature, ...',
    key String COMMENT 'stable detection key (detector and entity); one problem keeps one key',
    datacenter LowCardinality(String) COMMENT 'datacenter (resource attribute fleetwatch.datacenter)',
    row LowCardinality(String) COMMENT 'row or pod of racks (resource attribute fleetwatch.row)',
    rack LowCardinality(String) COMMENT 'rack (resource attribute fleetwatch.rack)',
    node LowCardinality(String) COMMENT 'host name (dcgm-exporter label Hostname)',
    cluster LowCardinality(String) COMMENT 'logical compute cluster, Kubernetes or Slurm (resource attribute fleetwatch.cluster)',
    gpu_uuid LowCardinality(String) COMMENT 'GPU UUID, for GPU-level detections',
    gpu_model LowCardinality(String) COMMENT 'GPU product name, for peer grouping',
    job LowCardinality(String) COMMENT 'training job, when known',
    model LowCardinality(String) COMMENT 'ML model, for model-level detections',
    model_version LowCardinality(String) COMMENT 'model version',
    feature LowCardinality(String) COMMENT 'feature, for drift detections',
    value Float64 COMMENT 'the detector\'s statistic (PSI, z-score, ratio to peers, ...)',
    threshold Float64 COMMENT 'the threshold it crossed',
    p_value Float64 COMMENT 'p-value where the detector has one; nan otherwise',
    action LowCardinality(String) COMMENT 'recommended action: investigate, drain, reset, reboot, rma, retrain, rollback, ...',
    summary String COMMENT 'one line for humans',
    evidence String COMMENT 'JSON object with the numbers behind the detection'
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (class, key, ts)
TTL ts + toIntervalDay(400);

