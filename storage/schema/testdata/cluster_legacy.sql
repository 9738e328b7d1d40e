CREATE DATABASE IF NOT EXISTS fleetwatch ON CLUSTER fleet;

CREATE TABLE IF NOT EXISTS fleetwatch.schema_migrations_local ON CLUSTER fleet
(
    version UInt32 COMMENT 'migration number',
    name String COMMENT 'migration name',
    checksum String COMMENT 'sha256 of the SQL that was applied',
    applied_at DateTime COMMENT 'when it was applied (UTC)',
    server_version String COMMENT 'ClickHouse version it was applied on',
    profile String COMMENT 'feature profile: legacy or modern'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/schema_migrations_local', '{replica}', applied_at)
ORDER BY (version);

CREATE TABLE IF NOT EXISTS fleetwatch.schema_migrations ON CLUSTER fleet AS fleetwatch.schema_migrations_local
ENGINE = Distributed(fleet, fleetwatch, schema_migrations_local, rand());

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_samples_local ON CLUSTER fleet
(
    ts DateTime COMMENT 'sample time (UTC, seconds)',
    metric String COMMENT 'DCGM field name, e.g. DCGM_FI_DEV_GPU_TEMP',
    series UInt64 COMMENT 'series id: hash of metric and every identifying label; joins gpu_series',
    value Float64 COMMENT 'sample value in the field\'s classic DCGM unit',
    delta Float64 COMMENT 'counters: increase since the previous sample of the series, resets handled; gauges: 0'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/gpu_samples_local', '{replica}')
PARTITION BY toYYYYMMDD(ts)
ORDER BY (metric, series, ts);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_samples ON CLUSTER fleet AS fleetwatch.gpu_samples_local
ENGINE = Distributed(fleet, fleetwatch, gpu_samples_local, series);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_series_local ON CLUSTER fleet
(
    series UInt64 COMMENT 'series id, as in gpu_samples',
    metric String COMMENT 'DCGM field name',
    counter UInt8 COMMENT '1 for a cumulative counter, 0 for a gauge',
    datacenter String COMMENT 'datacenter (resource attribute fleetwatch.datacenter)',
    row String COMMENT 'row or pod of racks (resource attribute fleetwatch.row)',
    rack String COMMENT 'rack (resource attribute fleetwatch.rack)',
    node String COMMENT 'host name (dcgm-exporter label Hostname)',
    cluster String COMMENT 'logical compute cluster, Kubernetes or Slurm (resource attribute fleetwatch.cluster)',
    gpu String COMMENT 'GPU index on the node (dcgm-exporter label gpu)',
    uuid String COMMENT 'GPU UUID (label UUID)',
    pci_bus_id String COMMENT 'PCI bus id (label pci_bus_id)',
    device String COMMENT 'device name, e.g. nvidia0 (label device)',
    model_name String COMMENT 'GPU product name (label modelName)',
    gpu_instance String COMMENT 'MIG GPU instance id (label GPU_I_ID); empty for a whole GPU',
    gpu_profile String COMMENT 'MIG profile (label GPU_I_PROFILE)',
    namespace String COMMENT 'Kubernetes namespace',
    pod String COMMENT 'Kubernetes pod',
    container String COMMENT 'Kubernetes container',
    job String COMMENT 'training or serving job the GPU is assigned to, when known',
    label_keys Array(String) COMMENT 'other label names, sorted',
    label_values Array(String) COMMENT 'other label values, aligned with label_keys',
    first_seen DateTime COMMENT 'when a writer first saw the series (UTC)',
    last_seen DateTime COMMENT 'when a writer last refreshed the series (UTC)'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/gpu_series_local', '{replica}', last_seen)
PARTITION BY toYYYYMM(last_seen)
ORDER BY (metric, cluster, node, series);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_series ON CLUSTER fleet AS fleetwatch.gpu_series_local
ENGINE = Distributed(fleet, fleetwatch, gpu_series_local, series);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_samples_1m_local ON CLUSTER fleet
(
    minute DateTime COMMENT 'start of the minute (UTC)',
    metric String COMMENT 'DCGM field name',
    series UInt64 COMMENT 'series id; joins gpu_series',
    samples AggregateFunction(count) COMMENT 'countMerge(samples): samples in the minute',
    sum AggregateFunction(sum, Float64) COMMENT 'sumMerge(sum)',
    min AggregateFunction(min, Float64) COMMENT 'minMerge(min)',
    max AggregateFunction(max, Float64) COMMENT 'maxMerge(max)',
    last AggregateFunction(argMax, Float64, DateTime) COMMENT 'argMaxMerge(last): the minute\'s last value',
    delta_sum AggregateFunction(sum, Float64) COMMENT 'sumMerge(delta_sum): counter increase in the minute'
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/fleetwatch/gpu_samples_1m_local', '{replica}')
PARTITION BY toYYYYMM(minute)
ORDER BY (metric, series, minute);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_samples_1m ON CLUSTER fleet AS fleetwatch.gpu_samples_1m_local
ENGINE = Distributed(fleet, fleetwatch, gpu_samples_1m_local, series);

CREATE MATERIALIZED VIEW IF NOT EXISTS fleetwatch.gpu_samples_1m_mv ON CLUSTER fleet TO fleetwatch.gpu_samples_1m_local AS
SELECT
    toStartOfMinute(ts) AS minute, metric, series,
    countState() AS samples, sumState(value) AS sum, minState(value) AS min, maxState(value) AS max,
    argMaxState(value, ts) AS last, sumState(delta) AS delta_sum
FROM fleetwatch.gpu_samples_local
GROUP BY minute, metric, series;

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_events_local ON CLUSTER fleet
(
    ts DateTime COMMENT 'event time (UTC, seconds)',
    event String COMMENT 'event kind: xid, ecc_sbe, ecc_dbe, clock_event, row_remap, gpu_lost, ...',
    code Int64 COMMENT 'XID number, or the clock-event reason bit mask',
    count UInt32 DEFAULT 1 COMMENT 'occurrences folded into this row (same GPU, event, code, second)',
    message String COMMENT 'human-readable detail, e.g. the XID message',
    source String COMMENT 'where it was read: nvml or dcgm',
    datacenter String COMMENT 'datacenter (resource attribute fleetwatch.datacenter)',
    row String COMMENT 'row or pod of racks (resource attribute fleetwatch.row)',
    rack String COMMENT 'rack (resource attribute fleetwatch.rack)',
    node String COMMENT 'host name (dcgm-exporter label Hostname)',
    cluster String COMMENT 'logical compute cluster, Kubernetes or Slurm (resource attribute fleetwatch.cluster)',
    gpu String COMMENT 'GPU index on the node (dcgm-exporter label gpu)',
    uuid String COMMENT 'GPU UUID (label UUID)',
    pci_bus_id String COMMENT 'PCI bus id (label pci_bus_id)',
    device String COMMENT 'device name, e.g. nvidia0 (label device)',
    model_name String COMMENT 'GPU product name (label modelName)',
    gpu_instance String COMMENT 'MIG GPU instance id (label GPU_I_ID); empty for a whole GPU',
    gpu_profile String COMMENT 'MIG profile (label GPU_I_PROFILE)',
    namespace String COMMENT 'Kubernetes namespace',
    pod String COMMENT 'Kubernetes pod',
    container String COMMENT 'Kubernetes container',
    job String COMMENT 'job label',
    label_keys Array(String) COMMENT 'other label names, sorted',
    label_values Array(String) COMMENT 'other label values, aligned with label_keys'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/gpu_events_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (event, cluster, node, uuid, ts, code);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_events ON CLUSTER fleet AS fleetwatch.gpu_events_local
ENGINE = Distributed(fleet, fleetwatch, gpu_events_local, cityHash64(node));

CREATE TABLE IF NOT EXISTS fleetwatch.inference_events_local ON CLUSTER fleet
(
    ts DateTime COMMENT 'request time (UTC, seconds)',
    model String COMMENT 'model name as in the model catalog',
    model_version String COMMENT 'model version',
    request_id String COMMENT 'request id; delayed labels join on it',
    latency_ms Float64 COMMENT 'end-to-end latency in milliseconds',
    status String COMMENT 'ok, or an error class (timeout, error, rejected, ...)',
    feature_names Array(String) COMMENT 'numeric feature names',
    feature_values Array(Float64) COMMENT 'numeric feature values aligned with feature_names; nan = missing',
    cat_feature_names Array(String) COMMENT 'categorical feature names',
    cat_feature_values Array(String) COMMENT 'categorical values aligned with cat_feature_names; empty = missing',
    prediction Float64 COMMENT 'numeric output or score; nan when the model emits only a class',
    prediction_class String COMMENT 'categorical output, if any',
    sample_rate Float64 DEFAULT 1 COMMENT 'fraction of requests kept by edge sampling; each row stands for 1/sample_rate requests',
    service String COMMENT 'service.name of the emitter',
    datacenter String COMMENT 'datacenter',
    cluster String COMMENT 'cluster',
    node String COMMENT 'serving host',
    gpu_uuid String COMMENT 'serving GPU, when known',
    namespace String COMMENT 'Kubernetes namespace',
    pod String COMMENT 'Kubernetes pod'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/inference_events_local', '{replica}')
PARTITION BY toYYYYMMDD(ts)
ORDER BY (model, model_version, ts, request_id);

CREATE TABLE IF NOT EXISTS fleetwatch.inference_events ON CLUSTER fleet AS fleetwatch.inference_events_local
ENGINE = Distributed(fleet, fleetwatch, inference_events_local, cityHash64(request_id));

CREATE TABLE IF NOT EXISTS fleetwatch.delayed_labels_local ON CLUSTER fleet
(
    ts DateTime COMMENT 'when the label became known (UTC)',
    model String COMMENT 'model name',
    request_id String COMMENT 'request id of the inference event',
    label String COMMENT 'true class, for classifiers',
    label_value Float64 COMMENT 'true value, for regressors; nan otherwise'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/delayed_labels_local', '{replica}', ts)
PARTITION BY toYYYYMM(ts)
ORDER BY (model, request_id);

CREATE TABLE IF NOT EXISTS fleetwatch.delayed_labels ON CLUSTER fleet AS fleetwatch.delayed_labels_local
ENGINE = Distributed(fleet, fleetwatch, delayed_labels_local, cityHash64(request_id));

CREATE TABLE IF NOT EXISTS fleetwatch.model_deployments_local ON CLUSTER fleet
(
    ts DateTime COMMENT 'when the change took effect (UTC)',
    model String COMMENT 'model name',
    model_version String COMMENT 'version now serving',
    previous_version String COMMENT 'version it replaced',
    change String COMMENT 'deploy, canary, promote or rollback',
    environment String COMMENT 'environment, e.g. prod',
    actor String COMMENT 'who or what made the change',
    note String COMMENT 'free text'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/model_deployments_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (model, ts, model_version);

CREATE TABLE IF NOT EXISTS fleetwatch.model_deployments ON CLUSTER fleet AS fleetwatch.model_deployments_local
ENGINE = Distributed(fleet, fleetwatch, model_deployments_local, cityHash64(model));

CREATE TABLE IF NOT EXISTS fleetwatch.spans_local ON CLUSTER fleet
(
    ts DateTime COMMENT 'span start (UTC, seconds)',
    start_ns Int64 COMMENT 'span start, Unix nanoseconds',
    duration_ns Int64 COMMENT 'span duration in nanoseconds',
    trace_id String COMMENT 'trace id, 32 hex digits',
    span_id String COMMENT 'span id, 16 hex digits',
    parent_span_id String COMMENT 'parent span id; empty for a root span',
    service String COMMENT 'service.name',
    operation String COMMENT 'span name',
    kind String COMMENT 'internal, server, client, producer or consumer',
    status_code String COMMENT 'unset, ok or error',
    status_message String COMMENT 'status description',
    model String COMMENT 'model (attribute fleetwatch.model), when the span serves one',
    model_version String COMMENT 'model version (attribute fleetwatch.model_version)',
    request_id String COMMENT 'request id (attribute fleetwatch.request_id)',
    cluster String COMMENT 'cluster',
    node String COMMENT 'host',
    namespace String COMMENT 'Kubernetes namespace',
    pod String COMMENT 'Kubernetes pod',
    container String COMMENT 'Kubernetes container',
    attr_keys Array(String) COMMENT 'other span attribute names, sorted',
    attr_values Array(String) COMMENT 'other span attribute values, aligned with attr_keys'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/spans_local', '{replica}')
PARTITION BY toYYYYMMDD(ts)
ORDER BY (service, operation, ts, trace_id, span_id);

CREATE TABLE IF NOT EXISTS fleetwatch.spans ON CLUSTER fleet AS fleetwatch.spans_local
ENGINE = Distributed(fleet, fleetwatch, spans_local, cityHash64(trace_id));

CREATE TABLE IF NOT EXISTS fleetwatch.detections_local ON CLUSTER fleet
(
    ts DateTime COMMENT 'end of the evaluated window (UTC)',
    window_start DateTime COMMENT 'start of the evaluated window (UTC)',
    detector String COMMENT 'detector that fired, e.g. psi, spc_we1, xid, straggler',
    class String COMMENT 'what kind of problem: thermal, ecc, nvlink, straggler, gpu_lost, covariate_drift, latency, ...',
    severity String COMMENT 'info, warning or critical',
    entity_type String COMMENT 'gpu, node, rack, job, rank, model, feature, pipeline, ...',
    entity String COMMENT 'the entity\'s id: GPU UUID, node name, model, model/feature, ...',
    key String COMMENT 'stable detection key (detector and entity); one problem keeps one key',
    datacenter String COMMENT 'datacenter (resource attribute fleetwatch.datacenter)',
    row String COMMENT 'row or pod of racks (resource attribute fleetwatch.row)',
    rack String COMMENT 'rack (resource attribute fleetwatch.rack)',
    node String COMMENT 'host name (dcgm-exporter label Hostname)',
    cluster String COMMENT 'logical compute cluster, Kubernetes or Slurm (resource attribute fleetwatch.cluster)',
    gpu_uuid String COMMENT 'GPU UUID, for GPU-level detections',
    gpu_model String COMMENT 'GPU product name, for peer grouping',
    job String COMMENT 'training job, when known',
    model String COMMENT 'ML model, for model-level detections',
    model_version String COMMENT 'model version',
    feature String COMMENT 'feature, for drift detections',
    value Float64 COMMENT 'the detector\'s statistic (PSI, z-score, ratio to peers, ...)',
    threshold Float64 COMMENT 'the threshold it crossed',
    p_value Float64 COMMENT 'p-value where the detector has one; nan otherwise',
    action String COMMENT 'recommended action: investigate, drain, reset, reboot, rma, retrain, rollback, ...',
    summary String COMMENT 'one line for humans',
    evidence String COMMENT 'JSON object with the numbers behind the detection'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/detections_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (class, key, ts);

CREATE TABLE IF NOT EXISTS fleetwatch.detections ON CLUSTER fleet AS fleetwatch.detections_local
ENGINE = Distributed(fleet, fleetwatch, detections_local, cityHash64(key));

