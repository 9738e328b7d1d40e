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
    ts DateTime COMMENT 'sample time (UTC, seconds)' CODEC(DoubleDelta, ZSTD(1)),
    metric LowCardinality(String) COMMENT 'DCGM field name, e.g. DCGM_FI_DEV_GPU_TEMP',
    series UInt64 COMMENT 'series id: hash of metric and every identifying label; joins gpu_series',
    value Float64 COMMENT 'sample value in the field\'s classic DCGM unit' CODEC(Gorilla, ZSTD(1)),
    delta Float64 COMMENT 'counters: increase since the previous sample of the series, resets handled; gauges: 0' CODEC(Gorilla, ZSTD(1))
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/gpu_samples_local', '{replica}')
PARTITION BY toYYYYMMDD(ts)
ORDER BY (metric, series, ts)
TTL ts + toIntervalDay(7);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_samples ON CLUSTER fleet AS fleetwatch.gpu_samples_local
ENGINE = Distributed(fleet, fleetwatch, gpu_samples_local, series);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_series_local ON CLUSTER fleet
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/gpu_series_local', '{replica}', last_seen)
PARTITION BY toYYYYMM(last_seen)
ORDER BY (metric, cluster, node, series)
TTL last_seen + toIntervalDay(400);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_series ON CLUSTER fleet AS fleetwatch.gpu_series_local
ENGINE = Distributed(fleet, fleetwatch, gpu_series_local, series);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_samples_1m_local ON CLUSTER fleet
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
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/fleetwatch/gpu_samples_1m_local', '{replica}')
PARTITION BY toYYYYMM(minute)
ORDER BY (metric, series, minute)
TTL minute + toIntervalDay(400);

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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/gpu_events_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (event, cluster, node, uuid, ts, code)
TTL ts + toIntervalDay(400);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_events ON CLUSTER fleet AS fleetwatch.gpu_events_local
ENGINE = Distributed(fleet, fleetwatch, gpu_events_local, cityHash64(node));

CREATE TABLE IF NOT EXISTS fleetwatch.inference_events_local ON CLUSTER fleet
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/inference_events_local', '{replica}')
PARTITION BY toYYYYMMDD(ts)
ORDER BY (model, model_version, ts, request_id)
TTL ts + toIntervalDay(30);

CREATE TABLE IF NOT EXISTS fleetwatch.inference_events ON CLUSTER fleet AS fleetwatch.inference_events_local
ENGINE = Distributed(fleet, fleetwatch, inference_events_local, cityHash64(request_id));

CREATE TABLE IF NOT EXISTS fleetwatch.delayed_labels_local ON CLUSTER fleet
(
    ts DateTime COMMENT 'when the label became known (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    model LowCardinality(String) COMMENT 'model name',
    request_id String COMMENT 'request id of the inference event',
    label LowCardinality(String) COMMENT 'true class, for classifiers',
    label_value Float64 COMMENT 'true value, for regressors; nan otherwise'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/delayed_labels_local', '{replica}', ts)
PARTITION BY toYYYYMM(ts)
ORDER BY (model, request_id)
TTL ts + toIntervalDay(90);

CREATE TABLE IF NOT EXISTS fleetwatch.delayed_labels ON CLUSTER fleet AS fleetwatch.delayed_labels_local
ENGINE = Distributed(fleet, fleetwatch, delayed_labels_local, cityHash64(request_id));

CREATE TABLE IF NOT EXISTS fleetwatch.model_deployments_local ON CLUSTER fleet
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/model_deployments_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (model, ts, model_version);

CREATE TABLE IF NOT EXISTS fleetwatch.model_deployments ON CLUSTER fleet AS fleetwatch.model_deployments_local
ENGINE = Distributed(fleet, fleetwatch, model_deployments_local, cityHash64(model));

CREATE TABLE IF NOT EXISTS fleetwatch.spans_local ON CLUSTER fleet
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/spans_local', '{replica}')
PARTITION BY toYYYYMMDD(ts)
ORDER BY (service, operation, ts, trace_id, span_id)
TTL ts + toIntervalDay(7);

CREATE TABLE IF NOT EXISTS fleetwatch.spans ON CLUSTER fleet AS fleetwatch.spans_local
ENGINE = Distributed(fleet, fleetwatch, spans_local, cityHash64(trace_id));

CREATE TABLE IF NOT EXISTS fleetwatch.detections_local ON CLUSTER fleet
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/detections_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (class, key, ts)
TTL ts + toIntervalDay(400);

CREATE TABLE IF NOT EXISTS fleetwatch.detections ON CLUSTER fleet AS fleetwatch.detections_local
ENGINE = Distributed(fleet, fleetwatch, detections_local, cityHash64(key));

CREATE TABLE IF NOT EXISTS fleetwatch.drift_profiles_local ON CLUSTER fleet
(
    created_at DateTime COMMENT 'when the profile was built (the end of its reference window)' CODEC(DoubleDelta, ZSTD(1)),
    model LowCardinality(String) COMMENT 'model name',
    model_version LowCardinality(String) COMMENT 'model version',
    feature LowCardinality(String) COMMENT 'feature, or @prediction / @prediction_class for the model\'s outputs',
    kind LowCardinality(String) COMMENT 'numeric or categorical',
    source LowCardinality(String) COMMENT 'where the reference came from: deployment (its first hours), window or file',
    ref_start DateTime COMMENT 'start of the reference window (UTC); zero for a file' CODEC(DoubleDelta, ZSTD(1)),
    ref_end DateTime COMMENT 'end of the reference window (UTC); zero for a file' CODEC(DoubleDelta, ZSTD(1)),
    detail String COMMENT 'file name or note',
    edges Array(Float64) COMMENT 'numeric: bin edges, sorted; bin i is [edges[i-1], edges[i]), outer bins open',
    categories Array(String) COMMENT 'categorical: the top-K categories; one more bin holds every other value',
    counts Array(Float64) COMMENT 'reference count per bin',
    missing Float64 COMMENT 'reference count of missing values (null, NaN, Inf, empty string)'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/drift_profiles_local', '{replica}', created_at)
ORDER BY (model, model_version, feature);

CREATE TABLE IF NOT EXISTS fleetwatch.drift_profiles ON CLUSTER fleet AS fleetwatch.drift_profiles_local
ENGINE = Distributed(fleet, fleetwatch, drift_profiles_local, cityHash64(model));

CREATE TABLE IF NOT EXISTS fleetwatch.drift_scores_local ON CLUSTER fleet
(
    ts DateTime COMMENT 'end of the evaluated window (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    window_start DateTime COMMENT 'start of the evaluated window (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    model LowCardinality(String) COMMENT 'model name',
    model_version LowCardinality(String) COMMENT 'model version',
    feature LowCardinality(String) COMMENT 'feature, or @prediction / @prediction_class',
    kind LowCardinality(String) COMMENT 'numeric or categorical',
    psi Float64 COMMENT 'population stability index against the profile (smoothed, see docs)' CODEC(Gorilla, ZSTD(1)),
    p_value Float64 COMMENT 'p-value of no shift given the sample sizes',
    q_value Float64 COMMENT 'Benjamini-Hochberg adjusted p-value across the whole pass',
    method LowCardinality(String) COMMENT 'how the p-value was computed: chi2 or monte_carlo',
    df UInt16 COMMENT 'bins in use minus one',
    null_psi Float64 COMMENT 'PSI expected from sampling alone at these sample sizes',
    band LowCardinality(String) COMMENT 'stable, investigate or action',
    n_ref Float64 COMMENT 'reference values',
    n_cur Float64 COMMENT 'current values',
    missing_ref Float64 COMMENT 'missing share in the reference',
    missing_cur Float64 COMMENT 'missing share in the window',
    cur_counts Array(Float64) COMMENT 'current counts per profile bin, then the missing count',
    cusum Float64 COMMENT 'sequential CUSUM statistic after this window',
    cusum_run UInt32 COMMENT 'windows since the CUSUM was last zero',
    cusum_excess Float64 COMMENT 'sum of PSI minus null_psi over that run',
    flagged UInt8 COMMENT '1 when this window raised a detection'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/drift_scores_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (model, model_version, feature, ts)
TTL ts + toIntervalDay(90);

CREATE TABLE IF NOT EXISTS fleetwatch.drift_scores ON CLUSTER fleet AS fleetwatch.drift_scores_local
ENGINE = Distributed(fleet, fleetwatch, drift_scores_local, cityHash64(model));

CREATE TABLE IF NOT EXISTS fleetwatch.spc_state_local ON CLUSTER fleet
(
    ts DateTime COMMENT 'end of the evaluated window (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    detector LowCardinality(String) COMMENT 'analyzer detector that owns the series, e.g. spc_models',
    series String COMMENT 'series key, e.g. model=fraud/latency_p99',
    metric LowCardinality(String) COMMENT 'what is charted: latency_p99, error_rate, throughput, freshness, cost, accuracy, a DCGM field',
    class LowCardinality(String) COMMENT 'detection class for this series',
    entity_type LowCardinality(String) COMMENT 'model, feature, gpu, ...',
    entity String COMMENT 'entity id',
    value Float64 COMMENT 'the window\'s value; nan when the series had no data' CODEC(Gorilla, ZSTD(1)),
    rules UInt8 COMMENT 'bit set of the rules fired: 1 we1, 2 we2, 4 we3, 8 we4, 16 ewma, 32 cusum',
    phase UInt8 COMMENT '0 collecting the baseline, 1 charting',
    baseline Array(Float64) COMMENT 'phase 0: the baseline points collected so far',
    mean Float64 COMMENT 'baseline mean',
    sigma Float64 COMMENT 'baseline sigma (average moving range / 1.128)',
    zones UInt64 COMMENT 'recent zone history for rules 2-4',
    ewma Float64 COMMENT 'EWMA statistic',
    ewma_f Float64 COMMENT '(1-lambda)^(2t), for the EWMA\'s exact limits',
    cusum_hi Float64 COMMENT 'upper tabular CUSUM, in sigma',
    cusum_lo Float64 COMMENT 'lower tabular CUSUM, in sigma',
    learn_n Float64 COMMENT 'baseline points learned (decayed)',
    learn_sum Float64 COMMENT 'sum of learned points (decayed)',
    learn_mr Float64 COMMENT 'sum of learned moving ranges (decayed)',
    learn_mr_n Float64 COMMENT 'learned moving ranges (decayed)',
    last Float64 COMMENT 'last accepted point; nan when the last point was rejected',
    out_run UInt32 COMMENT 'consecutive windows with a rule fired',
    stale UInt32 COMMENT 'consecutive windows without data'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/spc_state_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (detector, series, ts)
TTL ts + toIntervalDay(90);

CREATE TABLE IF NOT EXISTS fleetwatch.spc_state ON CLUSTER fleet AS fleetwatch.spc_state_local
ENGINE = Distributed(fleet, fleetwatch, spc_state_local, cityHash64(series));

CREATE TABLE IF NOT EXISTS fleetwatch.analyzer_windows_local ON CLUSTER fleet
(
    window_end DateTime COMMENT 'end of the window (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    window_start DateTime COMMENT 'start of the window (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    detector LowCardinality(String) COMMENT 'detector name',
    status LowCardinality(String) COMMENT 'ok, or skipped (the reason is in error)',
    detections UInt32 COMMENT 'detections raised',
    attempts UInt32 COMMENT 'evaluation attempts it took',
    duration_ms Float64 COMMENT 'time the evaluation took',
    evaluated_at DateTime COMMENT 'wall-clock time of the evaluation (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    error String COMMENT 'why the window was skipped, or the last error before success'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/analyzer_windows_local', '{replica}', evaluated_at)
PARTITION BY toYYYYMM(window_end)
ORDER BY (detector, window_end)
TTL window_end + toIntervalDay(400);

CREATE TABLE IF NOT EXISTS fleetwatch.analyzer_windows ON CLUSTER fleet AS fleetwatch.analyzer_windows_local
ENGINE = Distributed(fleet, fleetwatch, analyzer_windows_local, cityHash64(detector));

CREATE TABLE IF NOT EXISTS fleetwatch.incidents_local ON CLUSTER fleet
(
    key String COMMENT 'stable incident key, e.g. thermal/rack/dc-0/row-0-1/rack-03; also the PagerDuty dedup_key',
    version UInt64 COMMENT 'state version (nanoseconds); the highest wins',
    updated_at DateTime COMMENT 'when this state was written (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    opened_at DateTime COMMENT 'when the incident opened (paged); reopening after a flap keeps the key' CODEC(DoubleDelta, ZSTD(1)),
    acked_at DateTime COMMENT 'when it was acknowledged; 1970 if not' CODEC(DoubleDelta, ZSTD(1)),
    resolved_at DateTime COMMENT 'when it resolved; 1970 while open' CODEC(DoubleDelta, ZSTD(1)),
    status LowCardinality(String) COMMENT 'open, acknowledged or resolved',
    level LowCardinality(String) COMMENT 'gpu, node, rack, row, datacenter, fleet (hardware) or model, upstream, portfolio, fleet (models)',
    scope String COMMENT 'what the level names: a topology path, a model, an upstream or a portfolio',
    family LowCardinality(String) COMMENT 'correlation family of the evidence classes, e.g. thermal or drift',
    class LowCardinality(String) COMMENT 'most frequent detection class among the evidence',
    severity LowCardinality(String) COMMENT 'info, warning, error or critical, from level, breadth and the evidence',
    team LowCardinality(String) COMMENT 'owning team (model catalog ownership.team)',
    oncall LowCardinality(String) COMMENT 'on-call rotation (model catalog ownership.oncall)',
    domain LowCardinality(String) COMMENT 'model domain / portfolio, for model incidents',
    title String COMMENT 'one line for humans',
    cause String COMMENT 'key of the incident this one is linked to as its probable cause (cross-layer) or merged into',
    evidence_count UInt32 COMMENT 'detections attached as evidence',
    flaps UInt32 COMMENT 'times the incident reopened within the flap window',
    silenced UInt8 COMMENT '1 while a silence or maintenance window matches its labels',
    state String COMMENT 'the whole incident as JSON (evidence, suspects, counters), for restore and fleetctl'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/incidents_local', '{replica}', version)
ORDER BY (key);

CREATE TABLE IF NOT EXISTS fleetwatch.incidents ON CLUSTER fleet AS fleetwatch.incidents_local
ENGINE = Distributed(fleet, fleetwatch, incidents_local, cityHash64(key));

CREATE TABLE IF NOT EXISTS fleetwatch.incident_evidence_local ON CLUSTER fleet
(
    incident_key String COMMENT 'incident the detection explains',
    detection_key String COMMENT 'the detection\'s stable key (detections.key)',
    first_seen DateTime COMMENT 'first window end the detection was active in this incident (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    last_seen DateTime COMMENT 'last window end it was active (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    detector LowCardinality(String) COMMENT 'detector that raised it',
    class LowCardinality(String) COMMENT 'detection class',
    severity LowCardinality(String) COMMENT 'detection severity',
    entity_type LowCardinality(String) COMMENT 'gpu, node, rack, model, feature, ...',
    entity String COMMENT 'entity id',
    datacenter LowCardinality(String) COMMENT 'datacenter (resource attribute fleetwatch.datacenter)',
    row LowCardinality(String) COMMENT 'row or pod of racks (resource attribute fleetwatch.row)',
    rack LowCardinality(String) COMMENT 'rack (resource attribute fleetwatch.rack)',
    node LowCardinality(String) COMMENT 'host name (dcgm-exporter label Hostname)',
    cluster LowCardinality(String) COMMENT 'logical compute cluster, Kubernetes or Slurm (resource attribute fleetwatch.cluster)',
    gpu_uuid LowCardinality(String) COMMENT 'GPU UUID, for GPU-level detections',
    model LowCardinality(String) COMMENT 'ML model, for model-level detections',
    feature LowCardinality(String) COMMENT 'feature, for drift detections',
    value Float64 COMMENT 'the detector\'s statistic',
    summary String COMMENT 'the detection\'s summary line'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/incident_evidence_local', '{replica}', last_seen)
PARTITION BY toYYYYMM(first_seen)
ORDER BY (incident_key, detection_key, first_seen)
TTL first_seen + toIntervalDay(400);

CREATE TABLE IF NOT EXISTS fleetwatch.incident_evidence ON CLUSTER fleet AS fleetwatch.incident_evidence_local
ENGINE = Distributed(fleet, fleetwatch, incident_evidence_local, cityHash64(incident_key));

CREATE TABLE IF NOT EXISTS fleetwatch.notifications_local ON CLUSTER fleet
(
    ts DateTime COMMENT 'when the attempt finished (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    incident_key String COMMENT 'incident notified; also the PagerDuty dedup_key',
    receiver LowCardinality(String) COMMENT 'receiver name from the routing config',
    receiver_type LowCardinality(String) COMMENT 'pagerduty, alertmanager or webhook',
    action LowCardinality(String) COMMENT 'trigger, acknowledge, resolve or refresh (Alertmanager re-send while firing)',
    attempt UInt32 COMMENT '1 for the first try, then retries',
    outcome LowCardinality(String) COMMENT 'sent, retry (429/5xx/network, tried again), failed, dropped (permanent 4xx) or silenced',
    http_status UInt16 COMMENT 'HTTP status of the attempt; 0 when none came back',
    error String COMMENT 'error text, if any',
    duration_ms Float64 COMMENT 'time the attempt took',
    severity LowCardinality(String) COMMENT 'incident severity at the time'
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/fleetwatch/notifications_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (incident_key, ts)
TTL ts + toIntervalDay(400);

CREATE TABLE IF NOT EXISTS fleetwatch.notifications ON CLUSTER fleet AS fleetwatch.notifications_local
ENGINE = Distributed(fleet, fleetwatch, notifications_local, cityHash64(incident_key));

CREATE VIEW IF NOT EXISTS fleetwatch.oncall_node_health ON CLUSTER fleet AS
SELECT cluster, datacenter, rack, node, gpus, last_sample, max_temp_c, avg_util_pct, power_w,
    ecc_dbe, ecc_sbe, nvlink_errors, xids, detections,
    multiIf(xids > 0 OR ecc_dbe > 0, 'critical',
            max_temp_c >= 85 OR nvlink_errors > 0 OR detections > 0, 'warning', 'ok') AS status
FROM
(
SELECT cluster, datacenter, rack, node, gpus, last_sample, max_temp_c, avg_util_pct, power_w, ecc_dbe, ecc_sbe, nvlink_errors, xids
FROM
(
    SELECT cluster, datacenter, rack, node,
        uniqExact(uuid) AS gpus,
        max(last_minute) AS last_sample,
        maxIf(value, metric = 'DCGM_FI_DEV_GPU_TEMP') AS max_temp_c,
        avgIf(value, metric = 'DCGM_FI_DEV_GPU_UTIL') AS avg_util_pct,
        sumIf(value, metric = 'DCGM_FI_DEV_POWER_USAGE') AS power_w,
        sumIf(increase, metric = 'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL') AS ecc_dbe,
        sumIf(increase, metric = 'DCGM_FI_DEV_ECC_SBE_VOL_TOTAL') AS ecc_sbe,
        sumIf(increase, metric IN ('DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL', 'DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL',
            'DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL', 'DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL')) AS nvlink_errors
    FROM
    (
        SELECT metric, series, argMax(last_value, minute) AS value, max(minute) AS last_minute, sum(minute_increase) AS increase
        FROM
        (
            SELECT metric, series, minute, argMaxMerge(last) AS last_value, sumMerge(delta_sum) AS minute_increase
            FROM fleetwatch.gpu_samples_1m
            WHERE minute >= now() - INTERVAL 15 MINUTE
              AND metric IN ('DCGM_FI_DEV_GPU_TEMP', 'DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_POWER_USAGE',
                  'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL', 'DCGM_FI_DEV_ECC_SBE_VOL_TOTAL',
                  'DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL', 'DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL',
                  'DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL', 'DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL')
            GROUP BY metric, series, minute
        )
        GROUP BY metric, series
    ) AS q1
    ANY INNER JOIN
    (
        SELECT series, any(cluster) AS cluster, any(datacenter) AS datacenter, any(rack) AS rack, any(node) AS node, any(uuid) AS uuid
        FROM fleetwatch.gpu_series
        GROUP BY series
    ) AS q5 USING series
    GROUP BY cluster, datacenter, rack, node
) AS q2
ANY LEFT JOIN
(
    SELECT node, toUInt64(sum(count)) AS xids
    FROM fleetwatch.gpu_events
    WHERE event = 'xid' AND ts >= now() - INTERVAL 1 HOUR
    GROUP BY node
) AS q6 USING node
) AS q3
ANY LEFT JOIN
(
    SELECT node, uniqExact(key) AS detections
    FROM fleetwatch.detections
    WHERE ts >= now() - INTERVAL 1 HOUR AND node != ''
    GROUP BY node
) AS q7 USING node
ORDER BY multiIf(status = 'critical', 0, status = 'warning', 1, 2), max_temp_c DESC, node;

CREATE VIEW IF NOT EXISTS fleetwatch.oncall_drift_leaders ON CLUSTER fleet AS
SELECT model, model_version, feature,
    argMax(psi, ts) AS latest_psi,
    argMax(band, ts) AS latest_band,
    argMax(q_value, ts) AS latest_q_value,
    max(psi) AS max_psi_24h,
    toUInt64(sum(flagged)) AS flagged_windows_24h,
    count() AS windows_24h,
    max(ts) AS last_window
FROM fleetwatch.drift_scores FINAL
WHERE ts >= now() - INTERVAL 1 DAY
GROUP BY model, model_version, feature
ORDER BY latest_psi DESC, model, model_version, feature;

CREATE VIEW IF NOT EXISTS fleetwatch.oncall_stragglers_24h ON CLUSTER fleet AS
SELECT key,
    any(entity_type) AS entity_type, any(entity) AS entity,
    any(cluster) AS cluster, any(rack) AS rack, any(node) AS node, any(gpu_uuid) AS gpu_uuid, any(job) AS job,
    min(ts) AS first_seen, max(ts) AS last_seen, count() AS windows, max(value) AS worst_value,
    argMax(severity, ts) AS severity, argMax(action, ts) AS action, argMax(summary, ts) AS summary
FROM fleetwatch.detections FINAL
WHERE class = 'straggler' AND ts >= now() - INTERVAL 1 DAY
GROUP BY key
ORDER BY last_seen DESC, key;

CREATE VIEW IF NOT EXISTS fleetwatch.oncall_model_slo ON CLUSTER fleet AS
SELECT model, serving_version, requests_1h, error_rate_1h, p50_ms_1h, p99_ms_1h, p99_ms_baseline,
    error_rate_1h / 0.01 AS error_budget_burn, last_request,
    multiIf(sampled_1h = 0, 'no_traffic',
            error_budget_burn > 1 OR p99_ms_1h > 1.5 * p99_ms_baseline, 'breach',
            error_budget_burn > 0.5 OR p99_ms_1h > 1.25 * p99_ms_baseline, 'at_risk', 'ok') AS status
FROM
(
    SELECT model,
        argMax(model_version, ts) AS serving_version,
        countIf(ts >= now() - INTERVAL 1 HOUR) AS sampled_1h,
        sumIf(1 / sample_rate, ts >= now() - INTERVAL 1 HOUR AND sample_rate > 0) AS requests_1h,
        if(sampled_1h = 0, 0, countIf(status != 'ok' AND ts >= now() - INTERVAL 1 HOUR) / sampled_1h) AS error_rate_1h,
        quantileIf(0.5)(latency_ms, ts >= now() - INTERVAL 1 HOUR) AS p50_ms_1h,
        quantileIf(0.99)(latency_ms, ts >= now() - INTERVAL 1 HOUR) AS p99_ms_1h,
        quantileIf(0.99)(latency_ms, ts < now() - INTERVAL 1 HOUR) AS p99_ms_baseline,
        max(ts) AS last_request
    FROM fleetwatch.inference_events
    WHERE ts >= now() - INTERVAL 25 HOUR
    GROUP BY model
)
ORDER BY multiIf(status = 'breach', 0, status = 'at_risk', 1, status = 'no_traffic', 2, 3), error_budget_burn DESC, model;

CREATE VIEW IF NOT EXISTS fleetwatch.oncall_open_incidents ON CLUSTER fleet AS
SELECT key, cur_status AS status, severity, level, scope, class, team, oncall, title, opened_at, silenced,
    evidence_count, last_evidence, evidence
FROM
(
    SELECT key,
        argMax(status, version) AS cur_status, argMax(severity, version) AS severity, argMax(level, version) AS level,
        argMax(scope, version) AS scope, argMax(class, version) AS class, argMax(team, version) AS team,
        argMax(oncall, version) AS oncall, argMax(title, version) AS title, argMax(opened_at, version) AS opened_at,
        argMax(silenced, version) AS silenced
    FROM fleetwatch.incidents
    GROUP BY key
    HAVING cur_status != 'resolved'
) AS q4
ANY LEFT JOIN
(
    SELECT incident_key AS key, count() AS evidence_count, max(last_seen) AS last_evidence,
        groupArray(10)(concat(entity_type, ' ', entity, ': ', summary)) AS evidence
    FROM fleetwatch.incident_evidence FINAL
    GROUP BY incident_key
) AS q8 USING key
ORDER BY multiIf(severity = 'critical', 0, severity = 'error', 1, severity = 'warning', 2, 3), opened_at, key;

CREATE TABLE IF NOT EXISTS fleetwatch.drift_bins_local ON CLUSTER fleet
(
    ts DateTime COMMENT 'start of the minute the events happened in (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    model LowCardinality(String) COMMENT 'model name',
    model_version LowCardinality(String) COMMENT 'model version',
    feature LowCardinality(String) COMMENT 'feature, or @prediction / @prediction_class',
    profile UInt64 COMMENT 'fingerprint of the profile\'s edges or categories the values were binned with',
    bin Int16 COMMENT 'profile bin; the bin after the last is missing values; -1 counts the events of the model version binned, with or without this feature',
    count UInt64 COMMENT 'values (events for bin -1); rows with the same key are summed'
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/fleetwatch/drift_bins_local', '{replica}', count)
PARTITION BY toYYYYMMDD(ts)
ORDER BY (model, model_version, ts, feature, profile, bin)
TTL ts + toIntervalDay(30);

CREATE TABLE IF NOT EXISTS fleetwatch.drift_bins ON CLUSTER fleet AS fleetwatch.drift_bins_local
ENGINE = Distributed(fleet, fleetwatch, drift_bins_local, cityHash64(model));

/* on one replica of each shard */ ALTER TABLE fleetwatch.gpu_samples_local ADD COLUMN IF NOT EXISTS ts_ns UInt32 COMMENT 'nanoseconds within the second of ts: the point\'s time is ts + ts_ns' CODEC(T64, ZSTD(1)), MODIFY ORDER BY (metric, series, ts, ts_ns);

/* on every server */ ALTER TABLE fleetwatch.gpu_samples ADD COLUMN IF NOT EXISTS ts_ns UInt32 COMMENT 'nanoseconds within the second of ts: the point\'s time is ts + ts_ns' CODEC(T64, ZSTD(1));

CREATE TABLE IF NOT EXISTS fleetwatch.notification_outbox_local ON CLUSTER fleet
(
    id String COMMENT 'idempotency_key@receiver',
    version UInt64 COMMENT 'state version: 1 when recorded, then one more per attempt; the highest is current',
    created_at DateTime COMMENT 'when the notification was recorded, before its first attempt (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    updated_at DateTime COMMENT 'when this state was written (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    incident_key String COMMENT 'incident notified; also the PagerDuty dedup_key',
    transition UInt32 COMMENT 'the incident\'s transition this notifies: 1 for its first trigger, one more per trigger, acknowledgement or resolve',
    idempotency_key String COMMENT 'incident_key#transition/action: the same on every retry (webhook Idempotency-Key header)',
    receiver LowCardinality(String) COMMENT 'receiver name from the routing config',
    receiver_type LowCardinality(String) COMMENT 'pagerduty, alertmanager or webhook',
    action LowCardinality(String) COMMENT 'trigger, acknowledge or resolve',
    state LowCardinality(String) COMMENT 'pending (not delivered yet), sent, dropped (permanent 4xx), failed (max_attempts reached), expired (not delivered within expire_after) or silenced',
    attempts UInt32 COMMENT 'attempts made so far',
    next_at DateTime COMMENT 'when the next attempt is due, while pending (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    expires_at DateTime COMMENT 'when it expires if still not delivered (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    error String COMMENT 'the last attempt\'s error, if any',
    incident String COMMENT 'the incident as JSON when the notification was recorded (what is sent); only on version 1'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/notification_outbox_local', '{replica}')
PARTITION BY toYYYYMM(created_at)
ORDER BY (id, version)
TTL created_at + toIntervalDay(400);

CREATE TABLE IF NOT EXISTS fleetwatch.notification_outbox ON CLUSTER fleet AS fleetwatch.notification_outbox_local
ENGINE = Distributed(fleet, fleetwatch, notification_outbox_local, cityHash64(id));

ALTER TABLE fleetwatch.inference_events_local ON CLUSTER fleet ADD COLUMN IF NOT EXISTS feature_update_names Array(String) COMMENT 'features whose served value reported when it was last updated (fleetwatch.feature_updated_at)';

ALTER TABLE fleetwatch.inference_events_local ON CLUSTER fleet ADD COLUMN IF NOT EXISTS feature_update_ts Array(Float64) COMMENT 'last update time of each feature_update_names value (Unix seconds)';

/* on every server */ ALTER TABLE fleetwatch.inference_events ADD COLUMN IF NOT EXISTS feature_update_names Array(String) COMMENT 'features whose served value reported when it was last updated (fleetwatch.feature_updated_at)';

/* on every server */ ALTER TABLE fleetwatch.inference_events ADD COLUMN IF NOT EXISTS feature_update_ts Array(Float64) COMMENT 'last update time of each feature_update_names value (Unix seconds)';

CREATE VIEW IF NOT EXISTS fleetwatch.oncall_feature_freshness ON CLUSTER fleet AS
SELECT model, feature, toDateTime(toUInt32(upd)) AS last_update, toDateTime(toUInt32(evt)) AS last_event,
    if(upd > 0, toFloat64(toUInt32(now())) - upd, toFloat64(toUInt32(now())) - evt) AS staleness_s,
    if(upd > 0, 'update_time', 'arrival_age') AS measure, pipeline, slo_s, breached
FROM
(
    SELECT model, feature, max(u0) AS upd, max(e0) AS evt
    FROM
    (
        SELECT toString(model) AS model, f AS feature, max(u) AS u0, toFloat64(0) AS e0
        FROM fleetwatch.inference_events ARRAY JOIN feature_update_names AS f, feature_update_ts AS u
        WHERE ts >= now() - INTERVAL 1 HOUR GROUP BY model, f
        UNION ALL
        SELECT toString(model) AS model, f AS feature, toFloat64(0) AS u0, toFloat64(toUInt32(max(ts))) AS e0
        FROM fleetwatch.inference_events ARRAY JOIN arrayFilter((n, v) -> isFinite(v), feature_names, feature_values) AS f
        WHERE ts >= now() - INTERVAL 1 HOUR GROUP BY model, f
        UNION ALL
        SELECT toString(model) AS model, f AS feature, toFloat64(0) AS u0, toFloat64(toUInt32(max(ts))) AS e0
        FROM fleetwatch.inference_events ARRAY JOIN arrayFilter((n, v) -> v != '', cat_feature_names, cat_feature_values) AS f
        WHERE ts >= now() - INTERVAL 1 HOUR GROUP BY model, f
    )
    GROUP BY model, feature
) AS s
ANY LEFT JOIN
(
    SELECT toString(feature) AS feature, argMax(entity, ts) AS pipeline, argMax(threshold, ts) AS slo_s, toUInt8(1) AS breached
    FROM fleetwatch.detections
    WHERE class = 'freshness' AND entity_type = 'pipeline' AND ts >= now() - INTERVAL 10 MINUTE
    GROUP BY feature
) AS d USING feature
ORDER BY breached DESC, staleness_s DESC, model, feature;

CREATE TABLE IF NOT EXISTS fleetwatch.job_health_local ON CLUSTER fleet
(
    ts DateTime COMMENT 'end of the evaluated window (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    window_start DateTime COMMENT 'start of the evaluated window (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    detector LowCardinality(String) COMMENT 'analyzer detector that wrote the row, e.g. training_jobs',
    job String COMMENT 'training job (the hpc_job label)',
    ranks UInt32 COMMENT 'ranks that reported in the window',
    step_seconds Float64 COMMENT 'the job\'s step time: median over its ranks of each rank\'s mean step time; nan without one',
    baseline_step_seconds Float64 COMMENT 'median of the job\'s step times over its trailing history (this window left out); nan while the history is short',
    step_z Float64 COMMENT 'robust z of step_seconds against the baseline (sigma 1.4826·MAD, at least rel_floor of the median); nan without a baseline',
    steps Float64 COMMENT 'steps the job completed in the window: the fewest any rank completed',
    goodput Float64 COMMENT 'share of the window\'s wall time that made progress at the job\'s healthy pace: steps × baseline step time / window, at most 1; nan when unknown',
    stalled_ranks UInt32 COMMENT 'ranks without a step for longer than the stall threshold',
    stall_seconds Float64 COMMENT 'the longest time any rank went without a step, as of its last report',
    checkpoints Float64 COMMENT 'checkpoints the job completed in the window',
    checkpoint_seconds Float64 COMMENT 'write time of the window\'s checkpoint, its slowest rank\'s; nan without one',
    baseline_checkpoint_seconds Float64 COMMENT 'median write time of the job\'s earlier checkpoints; nan while there are too few',
    checkpoint_failures Float64 COMMENT 'failed checkpoint writes in the window (the rank with the most)',
    flags UInt8 COMMENT 'bit set: 1 step time out of baseline, 2 regression raised, 4 stalled, 8 checkpoint slow, 16 checkpoint failing'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/job_health_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (detector, job, ts)
TTL ts + toIntervalDay(90);

CREATE TABLE IF NOT EXISTS fleetwatch.job_health ON CLUSTER fleet AS fleetwatch.job_health_local
ENGINE = Distributed(fleet, fleetwatch, job_health_local, cityHash64(job));

ALTER TABLE fleetwatch.detections_local ON CLUSTER fleet ADD COLUMN IF NOT EXISTS source LowCardinality(String) COMMENT 'the analyzer\'s evaluation that raised it: the engine detector, or its share (fleet_health@dc0of4) when analyzers share the fleet; ts is the window\'s end';

/* on every server */ ALTER TABLE fleetwatch.detections ADD COLUMN IF NOT EXISTS source LowCardinality(String) COMMENT 'the analyzer\'s evaluation that raised it: the engine detector, or its share (fleet_health@dc0of4) when analyzers share the fleet; ts is the window\'s end';

CREATE TABLE IF NOT EXISTS fleetwatch.cost_daily_local ON CLUSTER fleet
(
    day DateTime COMMENT 'the UTC day (00:00)' CODEC(DoubleDelta, ZSTD(1)),
    detector LowCardinality(String) COMMENT 'analyzer detector that wrote the row, e.g. cost',
    scope_kind LowCardinality(String) COMMENT 'model, team or job',
    scope String COMMENT 'the model, team or job name',
    currency LowCardinality(String) COMMENT 'the price book\'s currency',
    cost Float64 COMMENT 'direct cost of the GPU-hours the scope held that day (shared cost not included)',
    gpu_hours Float64 COMMENT 'GPU-hours held (whole-GPU equivalents; concurrent holders split a GPU)',
    busy_gpu_hours Float64 COMMENT 'Σ SM activity × held hours: the part of gpu_hours that computed',
    requests Float64 COMMENT 'requests served (inference_events weighted by 1/sample_rate); 0 for jobs',
    latency_p99 Float64 COMMENT 'p99 latency of the day in seconds; 0 when unknown',
    cost_per_1k_requests Float64 COMMENT 'cost / requests × 1000; nan without requests',
    change String COMMENT 'deployment changes of the day (model_deployments), empty if none',
    budget Float64 COMMENT 'the scope\'s budget for the month; 0 without one',
    month_spent Float64 COMMENT 'month-to-date cost through this day; 0 without a budget',
    forecast Float64 COMMENT 'month-end forecast at the trailing burn rate; 0 without a budget',
    anomaly LowCardinality(String) COMMENT 'the day\'s anomaly cause (traffic, efficiency_regression, resource_leak, pricing_change, configuration, unknown); empty if none',
    evidence String COMMENT 'what decided the cause; empty if no anomaly'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/cost_daily_local', '{replica}')
PARTITION BY toYYYYMM(day)
ORDER BY (detector, scope_kind, scope, day)
TTL day + toIntervalDay(400);

CREATE TABLE IF NOT EXISTS fleetwatch.cost_daily ON CLUSTER fleet AS fleetwatch.cost_daily_local
ENGINE = Distributed(fleet, fleetwatch, cost_daily_local, cityHash64(scope));

CREATE VIEW IF NOT EXISTS fleetwatch.oncall_cost_findings ON CLUSTER fleet AS
SELECT ts, toString(detector) AS detector, toString(class) AS class, toString(severity) AS severity, toString(entity_type) AS entity_type,
    toString(entity) AS entity, toString(gpu_uuid) AS gpu_uuid, toString(model) AS model, value AS cost, summary, evidence
FROM fleetwatch.detections
WHERE detector IN ('cost', 'cost_budget', 'cost_waste') AND ts >= now() - INTERVAL 7 DAY
ORDER BY ts DESC, class, entity;

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_held_1h_local ON CLUSTER fleet
(
    hour DateTime COMMENT 'start of the hour (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    kind LowCardinality(String) COMMENT 'held (by a workload), system (only system-namespace pods held it) or unallocated (reported, nobody held it)',
    model_name LowCardinality(String) COMMENT 'GPU product name (gpu_series.model_name): the price key\'s GPU model',
    cluster LowCardinality(String) COMMENT 'logical compute cluster: the price key\'s cluster',
    purchase LowCardinality(String) COMMENT 'pod label purchase (on_demand, reserved, spot); empty: the store\'s default',
    gpu_profile LowCardinality(String) COMMENT 'MIG profile, empty for whole GPUs (gpu_hours already counts a 3g.40gb instance as 3/7)',
    namespace LowCardinality(String) COMMENT 'Kubernetes namespace of the holder',
    team LowCardinality(String) COMMENT 'pod label team',
    model LowCardinality(String) COMMENT 'pod label model',
    model_version LowCardinality(String) COMMENT 'pod label model_version',
    cost_center LowCardinality(String) COMMENT 'pod label cost_center',
    job LowCardinality(String) COMMENT 'Slurm job (hpc_job) or job label',
    gpus UInt64 COMMENT 'GPU-hours (GPU or MIG instance × hour) behind the row; a GPU-hour shared by two holders counts in both rows',
    gpu_hours Float64 COMMENT 'held GPU-hours in whole-GPU equivalents: each GPU-hour split equally among its concurrent holders outside the system namespaces, a MIG instance its share of the GPU',
    busy_gpu_hours Float64 COMMENT 'Σ gpu_hours × the holder\'s SM activity in the hour (GPU utilization / 100 where SM activity is not reported)',
    mem_gpu_hours Float64 COMMENT 'Σ gpu_hours × the fraction of device memory in use',
    idle_gpu_hours Float64 COMMENT 'Σ gpu_hours of GPU-hours whose SM activity was below 0.05 (the waste detector\'s default idle_sm)'
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/fleetwatch/gpu_held_1h_local', '{replica}', (gpus, gpu_hours, busy_gpu_hours, mem_gpu_hours, idle_gpu_hours))
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, kind, model_name, cluster, purchase, gpu_profile, namespace, team, model, model_version, cost_center, job)
TTL hour + toIntervalDay(400);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_held_1h ON CLUSTER fleet AS fleetwatch.gpu_held_1h_local
ENGINE = Distributed(fleet, fleetwatch, gpu_held_1h_local, cityHash64(model, team, job));

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_held_1d_local ON CLUSTER fleet
(
    day DateTime COMMENT 'the UTC day (00:00)' CODEC(DoubleDelta, ZSTD(1)),
    kind LowCardinality(String) COMMENT 'held (by a workload), system (only system-namespace pods held it) or unallocated (reported, nobody held it)',
    model_name LowCardinality(String) COMMENT 'GPU product name (gpu_series.model_name): the price key\'s GPU model',
    cluster LowCardinality(String) COMMENT 'logical compute cluster: the price key\'s cluster',
    purchase LowCardinality(String) COMMENT 'pod label purchase (on_demand, reserved, spot); empty: the store\'s default',
    gpu_profile LowCardinality(String) COMMENT 'MIG profile, empty for whole GPUs (gpu_hours already counts a 3g.40gb instance as 3/7)',
    namespace LowCardinality(String) COMMENT 'Kubernetes namespace of the holder',
    team LowCardinality(String) COMMENT 'pod label team',
    model LowCardinality(String) COMMENT 'pod label model',
    model_version LowCardinality(String) COMMENT 'pod label model_version',
    cost_center LowCardinality(String) COMMENT 'pod label cost_center',
    job LowCardinality(String) COMMENT 'Slurm job (hpc_job) or job label',
    gpus UInt64 COMMENT 'GPU-hours (GPU or MIG instance × hour) behind the row; a GPU-hour shared by two holders counts in both rows',
    gpu_hours Float64 COMMENT 'held GPU-hours in whole-GPU equivalents: each GPU-hour split equally among its concurrent holders outside the system namespaces, a MIG instance its share of the GPU',
    busy_gpu_hours Float64 COMMENT 'Σ gpu_hours × the holder\'s SM activity in the hour (GPU utilization / 100 where SM activity is not reported)',
    mem_gpu_hours Float64 COMMENT 'Σ gpu_hours × the fraction of device memory in use',
    idle_gpu_hours Float64 COMMENT 'Σ gpu_hours of GPU-hours whose SM activity was below 0.05 (the waste detector\'s default idle_sm)'
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/fleetwatch/gpu_held_1d_local', '{replica}', (gpus, gpu_hours, busy_gpu_hours, mem_gpu_hours, idle_gpu_hours))
PARTITION BY toYYYYMM(day)
ORDER BY (day, kind, model_name, cluster, purchase, gpu_profile, namespace, team, model, model_version, cost_center, job)
TTL day + toIntervalDay(400);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_held_1d ON CLUSTER fleet AS fleetwatch.gpu_held_1d_local
ENGINE = Distributed(fleet, fleetwatch, gpu_held_1d_local, cityHash64(model, team, job));

CREATE MATERIALIZED VIEW IF NOT EXISTS fleetwatch.gpu_held_1d_mv ON CLUSTER fleet TO fleetwatch.gpu_held_1d_local AS
SELECT
    toStartOfDay(hour) AS day, kind, model_name, cluster, purchase, gpu_profile, namespace, team, model, model_version, cost_center, job,
    sum(gpus) AS gpus, sum(gpu_hours) AS gpu_hours, sum(busy_gpu_hours) AS busy_gpu_hours, sum(mem_gpu_hours) AS mem_gpu_hours,
    sum(idle_gpu_hours) AS idle_gpu_hours
FROM fleetwatch.gpu_held_1h_local
GROUP BY day, kind, model_name, cluster, purchase, gpu_profile, namespace, team, model, model_version, cost_center, job;

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_held_1h_hours_local ON CLUSTER fleet
(
    hour DateTime COMMENT 'start of the rolled-up hour (UTC)' CODEC(DoubleDelta, ZSTD(1)),
    rolled_at DateTime COMMENT 'when the pass wrote it' CODEC(DoubleDelta, ZSTD(1)),
    rows UInt64 COMMENT 'gpu_held_1h rows the pass wrote for the hour',
    gpus UInt64 COMMENT 'GPU-hours that reported in the hour (provisioned GPUs and MIG instances)',
    gpu_hours Float64 COMMENT 'provisioned GPU-hours in whole-GPU equivalents: Σ gpu_held_1h.gpu_hours of the hour'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/gpu_held_1h_hours_local', '{replica}', rolled_at)
PARTITION BY toYYYYMM(hour)
ORDER BY (hour)
TTL hour + toIntervalDay(400);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_held_1h_hours ON CLUSTER fleet AS fleetwatch.gpu_held_1h_hours_local
ENGINE = Distributed(fleet, fleetwatch, gpu_held_1h_hours_local, cityHash64(hour));

CREATE TABLE IF NOT EXISTS fleetwatch.business_outcomes_local ON CLUSTER fleet
(
    ts DateTime COMMENT 'when the outcome happened (UTC, seconds); after the request' CODEC(DoubleDelta, ZSTD(1)),
    model LowCardinality(String) COMMENT 'model name as in the model catalog',
    model_version LowCardinality(String) COMMENT 'version that served the request, as the sender knows it; the judge takes the request\'s version from inference_events',
    request_id String COMMENT 'request id of the inference event',
    outcome LowCardinality(String) COMMENT 'what happened: click, conversion, ...; engagement by default',
    success UInt8 DEFAULT 1 COMMENT '1 when the outcome is a success (the request engaged), 0 for an explicit miss',
    value Float64 COMMENT 'optional magnitude (revenue, dwell seconds); nan when not sent',
    service LowCardinality(String) COMMENT 'service.name of the emitter',
    namespace LowCardinality(String) COMMENT 'Kubernetes namespace'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/business_outcomes_local', '{replica}')
PARTITION BY toYYYYMMDD(ts)
ORDER BY (model, ts, request_id, outcome)
TTL ts + toIntervalDay(30);

CREATE TABLE IF NOT EXISTS fleetwatch.business_outcomes ON CLUSTER fleet AS fleetwatch.business_outcomes_local
ENGINE = Distributed(fleet, fleetwatch, business_outcomes_local, cityHash64(request_id));

CREATE TABLE IF NOT EXISTS fleetwatch.canary_verdicts_local ON CLUSTER fleet
(
    ts DateTime COMMENT 'the look (UTC, seconds)' CODEC(DoubleDelta, ZSTD(1)),
    detector LowCardinality(String) COMMENT 'analyzer detector that judged it, e.g. canary',
    model LowCardinality(String) COMMENT 'model name',
    model_version LowCardinality(String) COMMENT 'the canary version',
    baseline_version LowCardinality(String) COMMENT 'the version it is judged against',
    started DateTime COMMENT 'the canary\'s start: its model_deployments row\'s time',
    outcome LowCardinality(String) COMMENT 'pass, fail or inconclusive',
    gate LowCardinality(String) COMMENT 'the evaluation gate: pass, fail or inconclusive (may the canary widen)',
    gate_reason String COMMENT 'what decided the gate',
    elapsed_s Float64 COMMENT 'seconds since the start',
    time_left_s Float64 COMMENT 'while inconclusive, seconds until every rule decides at the observed traffic; -1 when none in sight; 0 once decided',
    failed_rules Array(String) COMMENT 'rules that failed',
    last_known_good LowCardinality(String) COMMENT 'the catalog\'s last-known-good version, when it names one',
    rule Array(String) COMMENT 'per rule: error_rate, engagement, accuracy, latency_p99_ratio, latency_gate_p50/p99, prediction_drift, feature_drift',
    rule_outcome Array(String) COMMENT 'per rule: pass, fail, inconclusive, info or n/a',
    canary_value Array(Float64) COMMENT 'per rule: the canary\'s rate, or latency in ms',
    baseline_value Array(Float64) COMMENT 'per rule: the baseline\'s rate, or latency in ms',
    effect Array(Float64) COMMENT 'per rule: the canary against the baseline, in unit',
    unit Array(String) COMMENT 'per rule: absolute, relative, ratio, ms or psi',
    threshold Array(Float64) COMMENT 'per rule: the effect at which it fails',
    canary_samples Array(Float64) COMMENT 'per rule: the canary\'s samples tested',
    baseline_samples Array(Float64) COMMENT 'per rule: the baseline\'s samples tested',
    evidence String COMMENT 'every rule\'s evidence line, one per line'
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/canary_verdicts_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (model, model_version, started, ts)
TTL ts + toIntervalDay(400);

CREATE TABLE IF NOT EXISTS fleetwatch.canary_verdicts ON CLUSTER fleet AS fleetwatch.canary_verdicts_local
ENGINE = Distributed(fleet, fleetwatch, canary_verdicts_local, cityHash64(model));

CREATE VIEW IF NOT EXISTS fleetwatch.oncall_canary_verdicts ON CLUSTER fleet AS
SELECT m AS model, v AS version, bv AS baseline_version, st AS started, last_look, verdict, gate_outcome, elapsed AS elapsed_s,
    failed, ever_failed, lkg AS last_known_good, evidence_lines
FROM
(
    SELECT toString(model) AS m, toString(model_version) AS v, toString(baseline_version) AS bv, started AS st,
        max(ts) AS last_look,
        toString(argMax(outcome, ts)) AS verdict,
        toString(argMax(gate, ts)) AS gate_outcome,
        argMax(elapsed_s, ts) AS elapsed,
        argMax(failed_rules, ts) AS failed,
        toUInt8(countIf(outcome = 'fail') > 0) AS ever_failed,
        toString(argMax(last_known_good, ts)) AS lkg,
        argMax(evidence, ts) AS evidence_lines
    FROM fleetwatch.canary_verdicts
    WHERE ts >= now() - INTERVAL 7 DAY
    GROUP BY model, model_version, baseline_version, started
)
ORDER BY ever_failed DESC, last_look DESC, model;

CREATE VIEW IF NOT EXISTS fleetwatch.oncall_canary_signals ON CLUSTER fleet AS
SELECT m AS model, v AS version, bv AS baseline_version, st AS started, last_look, verdict,
    r AS signal, ro AS signal_outcome, cv AS canary, bvv AS baseline, ef AS effect, un AS unit, th AS fail_at, cs AS canary_samples, bs AS baseline_samples
FROM
(
    SELECT toString(model) AS m, toString(model_version) AS v, toString(baseline_version) AS bv, started AS st,
        max(ts) AS last_look,
        toString(argMax(outcome, ts)) AS verdict,
        argMax(rule, ts) AS rules, argMax(rule_outcome, ts) AS outcomes,
        argMax(canary_value, ts) AS canary_values, argMax(baseline_value, ts) AS baseline_values,
        argMax(effect, ts) AS effects, argMax(unit, ts) AS units, argMax(threshold, ts) AS thresholds,
        argMax(canary_samples, ts) AS canary_n, argMax(baseline_samples, ts) AS baseline_n
    FROM fleetwatch.canary_verdicts
    WHERE ts >= now() - INTERVAL 1 HOUR
    GROUP BY model, model_version, baseline_version, started
)
ARRAY JOIN rules AS r, outcomes AS ro, canary_values AS cv, baseline_values AS bvv, effects AS ef, units AS un, thresholds AS th,
    canary_n AS cs, baseline_n AS bs
ORDER BY signal_outcome = 'fail' DESC, last_look DESC, model, signal;

