CREATE DATABASE IF NOT EXISTS fleetwatch ON CLUSTER fleet;

CREATE TABLE IF NOT EXISTS fleetwatch.schema_migrations_local ON CLUSTER fleet
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime,
    server_version String,
    profile String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/schema_migrations_local', '{replica}', applied_at)
ORDER BY (version);

CREATE TABLE IF NOT EXISTS fleetwatch.schema_migrations ON CLUSTER fleet AS fleetwatch.schema_migrations_local
ENGINE = Distributed(fleet, fleetwatch, schema_migrations_local, rand());

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_samples_local ON CLUSTER fleet
(
    ts DateTime,
    metric String,
    series UInt64,
    value Float64,
    delta Float64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/gpu_samples_local', '{replica}')
PARTITION BY toYYYYMMDD(ts)
ORDER BY (metric, series, ts);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_samples ON CLUSTER fleet AS fleetwatch.gpu_samples_local
ENGINE = Distributed(fleet, fleetwatch, gpu_samples_local, series);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_series_local ON CLUSTER fleet
(
    series UInt64,
    metric String,
    counter UInt8,
    datacenter String,
    row String,
    rack String,
    node String,
    cluster String,
    gpu String,
    uuid String,
    pci_bus_id String,
    device String,
    model_name String,
    gpu_instance String,
    gpu_profile String,
    namespace String,
    pod String,
    container String,
    job String,
    label_keys Array(String),
    label_values Array(String),
    first_seen DateTime,
    last_seen DateTime
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/gpu_series_local', '{replica}', last_seen)
PARTITION BY toYYYYMM(last_seen)
ORDER BY (metric, cluster, node, series);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_series ON CLUSTER fleet AS fleetwatch.gpu_series_local
ENGINE = Distributed(fleet, fleetwatch, gpu_series_local, series);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_samples_1m_local ON CLUSTER fleet
(
    minute DateTime,
    metric String,
    series UInt64,
    samples AggregateFunction(count),
    sum AggregateFunction(sum, Float64),
    min AggregateFunction(min, Float64),
    max AggregateFunction(max, Float64),
    last AggregateFunction(argMax, Float64, DateTime),
    delta_sum AggregateFunction(sum, Float64)
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
    ts DateTime,
    event String,
    code Int64,
    count UInt32 DEFAULT 1,
    message String,
    source String,
    datacenter String,
    row String,
    rack String,
    node String,
    cluster String,
    gpu String,
    uuid String,
    pci_bus_id String,
    device String,
    model_name String,
    gpu_instance String,
    gpu_profile String,
    namespace String,
    pod String,
    container String,
    job String,
    label_keys Array(String),
    label_values Array(String)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/gpu_events_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (event, cluster, node, uuid, ts, code);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_events ON CLUSTER fleet AS fleetwatch.gpu_events_local
ENGINE = Distributed(fleet, fleetwatch, gpu_events_local, cityHash64(node));

CREATE TABLE IF NOT EXISTS fleetwatch.inference_events_local ON CLUSTER fleet
(
    ts DateTime,
    model String,
    model_version String,
    request_id String,
    latency_ms Float64,
    status String,
    feature_names Array(String),
    feature_values Array(Float64),
    cat_feature_names Array(String),
    cat_feature_values Array(String),
    prediction Float64,
    prediction_class String,
    sample_rate Float64 DEFAULT 1,
    service String,
    datacenter String,
    cluster String,
    node String,
    gpu_uuid String,
    namespace String,
    pod String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/inference_events_local', '{replica}')
PARTITION BY toYYYYMMDD(ts)
ORDER BY (model, model_version, ts, request_id);

CREATE TABLE IF NOT EXISTS fleetwatch.inference_events ON CLUSTER fleet AS fleetwatch.inference_events_local
ENGINE = Distributed(fleet, fleetwatch, inference_events_local, cityHash64(request_id));

CREATE TABLE IF NOT EXISTS fleetwatch.delayed_labels_local ON CLUSTER fleet
(
    ts DateTime,
    model String,
    request_id String,
    label String,
    label_value Float64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/delayed_labels_local', '{replica}', ts)
PARTITION BY toYYYYMM(ts)
ORDER BY (model, request_id);

CREATE TABLE IF NOT EXISTS fleetwatch.delayed_labels ON CLUSTER fleet AS fleetwatch.delayed_labels_local
ENGINE = Distributed(fleet, fleetwatch, delayed_labels_local, cityHash64(request_id));

CREATE TABLE IF NOT EXISTS fleetwatch.model_deployments_local ON CLUSTER fleet
(
    ts DateTime,
    model String,
    model_version String,
    previous_version String,
    change String,
    environment String,
    actor String,
    note String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/model_deployments_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (model, ts, model_version);

CREATE TABLE IF NOT EXISTS fleetwatch.model_deployments ON CLUSTER fleet AS fleetwatch.model_deployments_local
ENGINE = Distributed(fleet, fleetwatch, model_deployments_local, cityHash64(model));

CREATE TABLE IF NOT EXISTS fleetwatch.spans_local ON CLUSTER fleet
(
    ts DateTime,
    start_ns Int64,
    duration_ns Int64,
    trace_id String,
    span_id String,
    parent_span_id String,
    service String,
    operation String,
    kind String,
    status_code String,
    status_message String,
    model String,
    model_version String,
    request_id String,
    cluster String,
    node String,
    namespace String,
    pod String,
    container String,
    attr_keys Array(String),
    attr_values Array(String)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/spans_local', '{replica}')
PARTITION BY toYYYYMMDD(ts)
ORDER BY (service, operation, ts, trace_id, span_id);

CREATE TABLE IF NOT EXISTS fleetwatch.spans ON CLUSTER fleet AS fleetwatch.spans_local
ENGINE = Distributed(fleet, fleetwatch, spans_local, cityHash64(trace_id));

CREATE TABLE IF NOT EXISTS fleetwatch.detections_local ON CLUSTER fleet
(
    ts DateTime,
    window_start DateTime,
    detector String,
    class String,
    severity String,
    entity_type String,
    entity String,
    key String,
    datacenter String,
    row String,
    rack String,
    node String,
    cluster String,
    gpu_uuid String,
    gpu_model String,
    job String,
    model String,
    model_version String,
    feature String,
    value Float64,
    threshold Float64,
    p_value Float64,
    action String,
    summary String,
    evidence String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/detections_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (class, key, ts);

CREATE TABLE IF NOT EXISTS fleetwatch.detections ON CLUSTER fleet AS fleetwatch.detections_local
ENGINE = Distributed(fleet, fleetwatch, detections_local, cityHash64(key));

CREATE TABLE IF NOT EXISTS fleetwatch.drift_profiles_local ON CLUSTER fleet
(
    created_at DateTime,
    model String,
    model_version String,
    feature String,
    kind String,
    source String,
    ref_start DateTime,
    ref_end DateTime,
    detail String,
    edges Array(Float64),
    categories Array(String),
    counts Array(Float64),
    missing Float64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/drift_profiles_local', '{replica}', created_at)
ORDER BY (model, model_version, feature);

CREATE TABLE IF NOT EXISTS fleetwatch.drift_profiles ON CLUSTER fleet AS fleetwatch.drift_profiles_local
ENGINE = Distributed(fleet, fleetwatch, drift_profiles_local, cityHash64(model));

CREATE TABLE IF NOT EXISTS fleetwatch.drift_scores_local ON CLUSTER fleet
(
    ts DateTime,
    window_start DateTime,
    model String,
    model_version String,
    feature String,
    kind String,
    psi Float64,
    p_value Float64,
    q_value Float64,
    method String,
    df UInt16,
    null_psi Float64,
    band String,
    n_ref Float64,
    n_cur Float64,
    missing_ref Float64,
    missing_cur Float64,
    cur_counts Array(Float64),
    cusum Float64,
    cusum_run UInt32,
    cusum_excess Float64,
    flagged UInt8
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/drift_scores_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (model, model_version, feature, ts);

CREATE TABLE IF NOT EXISTS fleetwatch.drift_scores ON CLUSTER fleet AS fleetwatch.drift_scores_local
ENGINE = Distributed(fleet, fleetwatch, drift_scores_local, cityHash64(model));

CREATE TABLE IF NOT EXISTS fleetwatch.spc_state_local ON CLUSTER fleet
(
    ts DateTime,
    detector String,
    series String,
    metric String,
    class String,
    entity_type String,
    entity String,
    value Float64,
    rules UInt8,
    phase UInt8,
    baseline Array(Float64),
    mean Float64,
    sigma Float64,
    zones UInt64,
    ewma Float64,
    ewma_f Float64,
    cusum_hi Float64,
    cusum_lo Float64,
    learn_n Float64,
    learn_sum Float64,
    learn_mr Float64,
    learn_mr_n Float64,
    last Float64,
    out_run UInt32,
    stale UInt32
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/spc_state_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (detector, series, ts);

CREATE TABLE IF NOT EXISTS fleetwatch.spc_state ON CLUSTER fleet AS fleetwatch.spc_state_local
ENGINE = Distributed(fleet, fleetwatch, spc_state_local, cityHash64(series));

CREATE TABLE IF NOT EXISTS fleetwatch.analyzer_windows_local ON CLUSTER fleet
(
    window_end DateTime,
    window_start DateTime,
    detector String,
    status String,
    detections UInt32,
    attempts UInt32,
    duration_ms Float64,
    evaluated_at DateTime,
    error String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/analyzer_windows_local', '{replica}', evaluated_at)
PARTITION BY toYYYYMM(window_end)
ORDER BY (detector, window_end);

CREATE TABLE IF NOT EXISTS fleetwatch.analyzer_windows ON CLUSTER fleet AS fleetwatch.analyzer_windows_local
ENGINE = Distributed(fleet, fleetwatch, analyzer_windows_local, cityHash64(detector));

CREATE TABLE IF NOT EXISTS fleetwatch.incidents_local ON CLUSTER fleet
(
    key String,
    version UInt64,
    updated_at DateTime,
    opened_at DateTime,
    acked_at DateTime,
    resolved_at DateTime,
    status String,
    level String,
    scope String,
    family String,
    class String,
    severity String,
    team String,
    oncall String,
    domain String,
    title String,
    cause String,
    evidence_count UInt32,
    flaps UInt32,
    silenced UInt8,
    state String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/incidents_local', '{replica}', version)
ORDER BY (key);

CREATE TABLE IF NOT EXISTS fleetwatch.incidents ON CLUSTER fleet AS fleetwatch.incidents_local
ENGINE = Distributed(fleet, fleetwatch, incidents_local, cityHash64(key));

CREATE TABLE IF NOT EXISTS fleetwatch.incident_evidence_local ON CLUSTER fleet
(
    incident_key String,
    detection_key String,
    first_seen DateTime,
    last_seen DateTime,
    detector String,
    class String,
    severity String,
    entity_type String,
    entity String,
    datacenter String,
    row String,
    rack String,
    node String,
    cluster String,
    gpu_uuid String,
    model String,
    feature String,
    value Float64,
    summary String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/incident_evidence_local', '{replica}', last_seen)
PARTITION BY toYYYYMM(first_seen)
ORDER BY (incident_key, detection_key, first_seen);

CREATE TABLE IF NOT EXISTS fleetwatch.incident_evidence ON CLUSTER fleet AS fleetwatch.incident_evidence_local
ENGINE = Distributed(fleet, fleetwatch, incident_evidence_local, cityHash64(incident_key));

CREATE TABLE IF NOT EXISTS fleetwatch.notifications_local ON CLUSTER fleet
(
    ts DateTime,
    incident_key String,
    receiver String,
    receiver_type String,
    action String,
    attempt UInt32,
    outcome String,
    http_status UInt16,
    error String,
    duration_ms Float64,
    severity String
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/fleetwatch/notifications_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (incident_key, ts);

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
    ts DateTime,
    model String,
    model_version String,
    feature String,
    profile UInt64,
    bin Int16,
    count UInt64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/fleetwatch/drift_bins_local', '{replica}', count)
PARTITION BY toYYYYMMDD(ts)
ORDER BY (model, model_version, ts, feature, profile, bin);

CREATE TABLE IF NOT EXISTS fleetwatch.drift_bins ON CLUSTER fleet AS fleetwatch.drift_bins_local
ENGINE = Distributed(fleet, fleetwatch, drift_bins_local, cityHash64(model));

/* on one replica of each shard */ ALTER TABLE fleetwatch.gpu_samples_local ADD COLUMN ts_ns UInt32, MODIFY ORDER BY (metric, series, ts, ts_ns);

/* on every server */ ALTER TABLE fleetwatch.gpu_samples ADD COLUMN ts_ns UInt32;

CREATE TABLE IF NOT EXISTS fleetwatch.notification_outbox_local ON CLUSTER fleet
(
    id String,
    version UInt64,
    created_at DateTime,
    updated_at DateTime,
    incident_key String,
    transition UInt32,
    idempotency_key String,
    receiver String,
    receiver_type String,
    action String,
    state String,
    attempts UInt32,
    next_at DateTime,
    expires_at DateTime,
    error String,
    incident String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/notification_outbox_local', '{replica}')
PARTITION BY toYYYYMM(created_at)
ORDER BY (id, version);

CREATE TABLE IF NOT EXISTS fleetwatch.notification_outbox ON CLUSTER fleet AS fleetwatch.notification_outbox_local
ENGINE = Distributed(fleet, fleetwatch, notification_outbox_local, cityHash64(id));

ALTER TABLE fleetwatch.inference_events_local ON CLUSTER fleet ADD COLUMN feature_update_names Array(String);

ALTER TABLE fleetwatch.inference_events_local ON CLUSTER fleet ADD COLUMN feature_update_ts Array(Float64);

/* on every server */ ALTER TABLE fleetwatch.inference_events ADD COLUMN feature_update_names Array(String);

/* on every server */ ALTER TABLE fleetwatch.inference_events ADD COLUMN feature_update_ts Array(Float64);

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
    ts DateTime,
    window_start DateTime,
    detector String,
    job String,
    ranks UInt32,
    step_seconds Float64,
    baseline_step_seconds Float64,
    step_z Float64,
    steps Float64,
    goodput Float64,
    stalled_ranks UInt32,
    stall_seconds Float64,
    checkpoints Float64,
    checkpoint_seconds Float64,
    baseline_checkpoint_seconds Float64,
    checkpoint_failures Float64,
    flags UInt8
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/job_health_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (detector, job, ts);

CREATE TABLE IF NOT EXISTS fleetwatch.job_health ON CLUSTER fleet AS fleetwatch.job_health_local
ENGINE = Distributed(fleet, fleetwatch, job_health_local, cityHash64(job));

ALTER TABLE fleetwatch.detections_local ON CLUSTER fleet ADD COLUMN source String;

/* on every server */ ALTER TABLE fleetwatch.detections ADD COLUMN source String;

CREATE TABLE IF NOT EXISTS fleetwatch.cost_daily_local ON CLUSTER fleet
(
    day DateTime,
    detector String,
    scope_kind String,
    scope String,
    currency String,
    cost Float64,
    gpu_hours Float64,
    busy_gpu_hours Float64,
    requests Float64,
    latency_p99 Float64,
    cost_per_1k_requests Float64,
    change String,
    budget Float64,
    month_spent Float64,
    forecast Float64,
    anomaly String,
    evidence String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/cost_daily_local', '{replica}')
PARTITION BY toYYYYMM(day)
ORDER BY (detector, scope_kind, scope, day);

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
    hour DateTime,
    kind String,
    model_name String,
    cluster String,
    purchase String,
    gpu_profile String,
    namespace String,
    team String,
    model String,
    model_version String,
    cost_center String,
    job String,
    gpus UInt64,
    gpu_hours Float64,
    busy_gpu_hours Float64,
    mem_gpu_hours Float64,
    idle_gpu_hours Float64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/fleetwatch/gpu_held_1h_local', '{replica}', (gpus, gpu_hours, busy_gpu_hours, mem_gpu_hours, idle_gpu_hours))
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, kind, model_name, cluster, purchase, gpu_profile, namespace, team, model, model_version, cost_center, job);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_held_1h ON CLUSTER fleet AS fleetwatch.gpu_held_1h_local
ENGINE = Distributed(fleet, fleetwatch, gpu_held_1h_local, cityHash64(model, team, job));

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_held_1d_local ON CLUSTER fleet
(
    day DateTime,
    kind String,
    model_name String,
    cluster String,
    purchase String,
    gpu_profile String,
    namespace String,
    team String,
    model String,
    model_version String,
    cost_center String,
    job String,
    gpus UInt64,
    gpu_hours Float64,
    busy_gpu_hours Float64,
    mem_gpu_hours Float64,
    idle_gpu_hours Float64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/fleetwatch/gpu_held_1d_local', '{replica}', (gpus, gpu_hours, busy_gpu_hours, mem_gpu_hours, idle_gpu_hours))
PARTITION BY toYYYYMM(day)
ORDER BY (day, kind, model_name, cluster, purchase, gpu_profile, namespace, team, model, model_version, cost_center, job);

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
    hour DateTime,
    rolled_at DateTime,
    rows UInt64,
    gpus UInt64,
    gpu_hours Float64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/gpu_held_1h_hours_local', '{replica}', rolled_at)
PARTITION BY toYYYYMM(hour)
ORDER BY (hour);

CREATE TABLE IF NOT EXISTS fleetwatch.gpu_held_1h_hours ON CLUSTER fleet AS fleetwatch.gpu_held_1h_hours_local
ENGINE = Distributed(fleet, fleetwatch, gpu_held_1h_hours_local, cityHash64(hour));

CREATE TABLE IF NOT EXISTS fleetwatch.business_outcomes_local ON CLUSTER fleet
(
    ts DateTime,
    model String,
    model_version String,
    request_id String,
    outcome String,
    success UInt8 DEFAULT 1,
    value Float64,
    service String,
    namespace String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/business_outcomes_local', '{replica}')
PARTITION BY toYYYYMMDD(ts)
ORDER BY (model, ts, request_id, outcome);

CREATE TABLE IF NOT EXISTS fleetwatch.business_outcomes ON CLUSTER fleet AS fleetwatch.business_outcomes_local
ENGINE = Distributed(fleet, fleetwatch, business_outcomes_local, cityHash64(request_id));

CREATE TABLE IF NOT EXISTS fleetwatch.canary_verdicts_local ON CLUSTER fleet
(
    ts DateTime,
    detector String,
    model String,
    model_version String,
    baseline_version String,
    started DateTime,
    outcome String,
    gate String,
    gate_reason String,
    elapsed_s Float64,
    time_left_s Float64,
    failed_rules Array(String),
    last_known_good String,
    rule Array(String),
    rule_outcome Array(String),
    canary_value Array(Float64),
    baseline_value Array(Float64),
    effect Array(Float64),
    unit Array(String),
    threshold Array(Float64),
    canary_samples Array(Float64),
    baseline_samples Array(Float64),
    evidence String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fleetwatch/canary_verdicts_local', '{replica}')
PARTITION BY toYYYYMM(ts)
ORDER BY (model, model_version, started, ts);

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

