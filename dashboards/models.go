package dashboards

import (
	"fmt"

	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// The four views of the monitoring hierarchy (Executive, Portfolio, Model,
// Investigation) and the Drift dashboard.

var (
	singleModelVar = func() Variable {
		v := modelVar
		v.Multi, v.IncludeAll, v.Current = false, false, map[string]any{}
		v.Description = "The model under investigation."
		return v
	}()
	featureVar = queryVar("feature", "Feature", "Features (and @prediction outputs) of the selected models with drift scores in the range.",
		"SELECT DISTINCT feature FROM drift_scores WHERE "+modelFilter+" AND $__timeFilter(ts) ORDER BY feature", true)
	searchVar = textVar("search", "Search", "Case-insensitive text to find in GPU event messages and detection summaries (empty: everything).")
)

// Request statistics over inference_events, scaled back by edge sampling.
const (
	requestsExpr  = "sum(if(sample_rate > 0, 1 / sample_rate, 0))"
	errorRateExpr = "countIf(status != 'ok') / count()"
)

// perModel is a time series per model over inference_events.
func perModel(expr, alias string) string {
	return fmt.Sprintf(`SELECT %s AS time, model, %s AS %s
FROM inference_events
WHERE $__timeFilter(ts) AND %s
GROUP BY time, model
ORDER BY time, model`, bucket("ts"), expr, alias, modelFilter)
}

func executive() *board {
	b := newBoard("fleetwatch-executive", "Fleetwatch / Executive",
		"Is the business impaired? Fleet-wide traffic, errors, SLO breaches, unhealthy hardware and what the analyzer raised. Start here; drill down through Portfolio and Model.")
	b.add(sqlPanel("stat", "Requests served", "Requests in the range, scaled back by edge sampling.", 4, 4, statLook("short"),
		`SELECT `+requestsExpr+` AS requests FROM inference_events WHERE $__timeFilter(ts)`),
		Expect{Columns: []string{"requests"}, Rows: true})
	b.add(sqlPanel("stat", "Error rate", "Share of requests whose status is not ok.", 4, 4, statLook("percentunit", 0.005, 0.01),
		`SELECT if(count() = 0, 0, `+errorRateExpr+`) AS error_rate FROM inference_events WHERE $__timeFilter(ts)`),
		Expect{Columns: []string{"error_rate"}, Rows: true})
	b.add(sqlPanel("stat", "Models breaching SLO", "Models whose last hour misses an objective (view oncall_model_slo).", 4, 4, statLook("none", 1),
		`SELECT countIf(status = 'breach') AS breaching FROM oncall_model_slo`),
		Expect{Columns: []string{"breaching"}, Rows: true})
	b.add(sqlPanel("stat", "Critical nodes", "Nodes with XIDs or uncorrectable ECC errors now (view oncall_node_health).", 4, 4, statLook("none", 1),
		`SELECT countIf(status = 'critical') AS critical_nodes FROM oncall_node_health`),
		Expect{Columns: []string{"critical_nodes"}, Rows: true})
	b.add(sqlPanel("stat", "Features drifting", "Model columns whose latest PSI is in the action band (≥ 0.25).", 4, 4, statLook("none", 1),
		`SELECT countIf(latest_band = 'action') AS drifting FROM oncall_drift_leaders`),
		Expect{Columns: []string{"drifting"}, Rows: true})
	b.add(sqlPanel("stat", "Open incidents", "Incidents open or acknowledged now (view oncall_open_incidents): each one paged its owner once.", 4, 4, statLook("none", 1),
		`SELECT count() AS open_incidents FROM oncall_open_incidents`),
		Expect{Columns: []string{"open_incidents"}, Rows: true})

	b.add(sqlPanel("timeseries", "Fleet traffic", "Requests per second, all models.", 12, 8, lineLook("reqps"),
		`SELECT `+bucket("ts")+` AS time, `+requestsExpr+` / $__interval_s AS requests_per_s
FROM inference_events
WHERE $__timeFilter(ts)
GROUP BY time
ORDER BY time`),
		Expect{Columns: []string{"time", "requests_per_s"}, Rows: true})
	b.add(sqlPanel("timeseries", "Fleet error rate", "Share of failed requests, all models; the SLO objective is 1%.", 12, 8, lineLook("percentunit"),
		`SELECT `+bucket("ts")+` AS time, `+errorRateExpr+` AS error_rate
FROM inference_events
WHERE $__timeFilter(ts)
GROUP BY time
ORDER BY time`),
		Expect{Columns: []string{"time", "error_rate"}, Rows: true})
	b.add(sqlPanel("timeseries", "Detections by class", "Analyzer detections per interval, one series per class: many classes at once points at a shared dependency.", 12, 8, lineLook("none"),
		`SELECT `+bucket("ts")+` AS time, class, count() AS detections
FROM detections
WHERE $__timeFilter(ts)
GROUP BY time, class
ORDER BY time, class`),
		Expect{Columns: []string{"time", "class", "detections"}, Rows: true})
	b.add(sqlPanel("table", "Model SLO status", "Every model's last hour against its objectives (view oncall_model_slo).", 12, 8, tableLook,
		`SELECT * FROM oncall_model_slo`),
		Expect{Columns: schema.OncallModelSLO.ColumnNames(), Rows: true})
	b.add(sqlPanel("table", "Open incidents: owners and evidence", "Current open incidents with owner and evidence (view oncall_open_incidents).", 24, 8, tableLook,
		`SELECT * FROM oncall_open_incidents`),
		Expect{Columns: schema.OncallOpenIncidents.ColumnNames(), Rows: true})
	b.add(sqlPanel("timeseries", "GPU spend by team", "Direct cost of the GPU-hours each team held, per UTC day, as the analyzer's cost detector priced them (cost_daily; FinOps dashboard for the rest).", 24, 6, lineLook("currencyUSD"),
		dailyBy("team", "sum(cost)", "cost", "")),
		Expect{Columns: []string{"time", "team", "cost"}})
	// The collector (v0.162) exposes its counters without the _total suffix.
	b.add(promPanel("Collector ingest (Prometheus)", "Metric points the collectors accept per second (their own /metrics, :8888): a drop means blind dashboards, not a healthy fleet.", 12, 6,
		lineLook("short"), `sum by (receiver) (rate(otelcol_receiver_accepted_metric_points[$__rate_interval]))`, "{{receiver}}"), Expect{})
	b.add(promPanel("Analyzer lag (Prometheus)", "Seconds since the end of the last window each detector evaluated (the analyzer's /metrics, :9465): a line that keeps rising means detections and pages are late.", 12, 6,
		lineLook("s"), `time() - max by (detector) (fleetwatch_analyzer_last_window_end_seconds)`, "{{detector}}"), Expect{})
	return b
}

func portfolio() *board {
	b := newBoard("fleetwatch-portfolio", "Fleetwatch / Portfolio",
		"Which domain or model family drives the impairment? Model inventory, per-model latency and errors, deployments, drift and GPU use.",
		modelVar, clusterVar, rackVar, nodeVar)
	b.add(sqlPanel("table", "Model inventory", "Per model in the range: serving version, traffic, errors, latency and the GPUs and nodes serving it.", 24, 8, tableLook,
		`SELECT model, argMax(model_version, ts) AS serving_version, `+requestsExpr+` AS requests,
    `+errorRateExpr+` AS error_rate, quantile(0.5)(latency_ms) AS p50_ms, quantile(0.99)(latency_ms) AS p99_ms,
    uniqExact(gpu_uuid) AS gpus, uniqExact(node) AS nodes, max(ts) AS last_request
FROM inference_events
WHERE $__timeFilter(ts) AND `+modelFilter+`
GROUP BY model
ORDER BY error_rate DESC, model`),
		Expect{Columns: []string{"model", "serving_version", "requests", "error_rate", "p50_ms", "p99_ms", "gpus", "nodes", "last_request"}, Rows: true})
	b.add(sqlPanel("timeseries", "p99 latency by model", "", 12, 8, lineLook("ms"), perModel("quantile(0.99)(latency_ms)", "p99_ms")),
		Expect{Columns: []string{"time", "model", "p99_ms"}, Rows: true})
	b.add(sqlPanel("timeseries", "Error rate by model", "", 12, 8, lineLook("percentunit"), perModel(errorRateExpr, "error_rate")),
		Expect{Columns: []string{"time", "model", "error_rate"}, Rows: true})
	b.add(sqlPanel("table", "Recent deployments", "Version changes in the range: the first suspect when a model moves.", 12, 8, tableLook,
		`SELECT ts, model, change, previous_version, model_version, environment, actor, note
FROM model_deployments
WHERE $__timeFilter(ts) AND `+modelFilter+`
ORDER BY ts DESC
LIMIT 200`),
		Expect{Columns: []string{"ts", "model", "change", "previous_version", "model_version", "environment", "actor", "note"}, Rows: true})
	b.add(sqlPanel("bargauge", "Drifting columns per model", "Columns per model whose latest PSI is in the investigate (≥ 0.1) or action (≥ 0.25) band: several models at once means a shared feature pipeline.", 12, 8,
		look{options: map[string]any{"displayMode": "gradient", "orientation": "horizontal",
			"reduceOptions": map[string]any{"calcs": []string{"lastNotNull"}, "fields": "", "values": true}}, thresholds: []float64{1, 3}},
		`SELECT model, countIf(latest_band != 'stable') AS drifting_columns
FROM oncall_drift_leaders
WHERE `+modelFilter+`
GROUP BY model
ORDER BY drifting_columns DESC, model`),
		Expect{Columns: []string{"model", "drifting_columns"}, Rows: true})
	b.add(sqlPanel("timeseries", "GPU-hours by job", "GPU time per training or serving job per interval, from one-minute rollups: cost attribution.", 24, 8, lineLook("h"),
		rollup("job", "metric = 'DCGM_FI_DEV_GPU_UTIL'", "countMerge(samples)", "countIf(v > 0) / 60", "gpu_hours")),
		Expect{Columns: []string{"time", "job", "gpu_hours"}, Rows: true})
	b.add(sqlPanel("timeseries", "Daily cost by model", "Direct cost of the GPU-hours each selected model held, per UTC day (cost_daily, written by the analyzer's cost detector).", 12, 8, lineLook("currencyUSD"),
		dailyBy("model", "sum(cost)", "cost", " AND "+anyOf("scope", "model"))),
		Expect{Columns: []string{"time", "model", "cost"}})
	b.add(sqlPanel("timeseries", "Cost per 1,000 requests by model", "Unit cost of each selected model per UTC day (cost_daily).", 12, 8, lineLook("currencyUSD"),
		dailyBy("model", "any(cost_per_1k_requests)", "cost_per_1k", " AND isFinite(cost_per_1k_requests) AND "+anyOf("scope", "model"))),
		Expect{Columns: []string{"time", "model", "cost_per_1k"}})
	return b
}

func model() *board {
	b := newBoard("fleetwatch-model", "Fleetwatch / Model",
		"What changed for this model? Latency and errors against yesterday, its control chart, drift per feature, deployments (also as annotations), detections and cost.",
		singleModelVar)
	b.annotate("Deployments", "blue", `SELECT ts AS time, concat(change, ' ', previous_version, ' → ', model_version) AS text
FROM model_deployments
WHERE `+modelFilter+` AND $__timeFilter(ts)`)
	b.add(sqlPanel("timeseries", "Latency p50 / p99", "Latency of the selected model per interval.", 12, 8, lineLook("ms"),
		`SELECT `+bucket("ts")+` AS time, quantile(0.5)(latency_ms) AS p50_ms, quantile(0.99)(latency_ms) AS p99_ms
FROM inference_events
WHERE $__timeFilter(ts) AND `+modelFilter+`
GROUP BY time
ORDER BY time`),
		Expect{Columns: []string{"time", "p50_ms", "p99_ms"}, Rows: true})
	b.add(sqlPanel("timeseries", "p99 latency, same time yesterday", "Baseline: the same range one day earlier, shifted onto today's time axis.", 12, 8, lineLook("ms"),
		`SELECT toDateTime(intDiv(toUInt32(ts) + 86400, $__interval_s) * $__interval_s) AS time, quantile(0.99)(latency_ms) AS p99_ms_yesterday
FROM inference_events
WHERE ts >= $__fromTime - 86400 AND ts <= $__toTime - 86400 AND `+modelFilter+`
GROUP BY time
ORDER BY time`),
		Expect{Columns: []string{"time", "p99_ms_yesterday"}})
	b.add(sqlPanel("timeseries", "Error rate and traffic", "", 12, 8, lineLook("percentunit"),
		`SELECT `+bucket("ts")+` AS time, `+errorRateExpr+` AS error_rate, `+requestsExpr+` / $__interval_s AS requests_per_s
FROM inference_events
WHERE $__timeFilter(ts) AND `+modelFilter+`
GROUP BY time
ORDER BY time`),
		Expect{Columns: []string{"time", "error_rate", "requests_per_s"}, Rows: true})
	b.add(sqlPanel("timeseries", "Control chart: p99 latency", "The analyzer's SPC chart (spc_state): the window's value, centre line and 3σ limits.", 12, 8, lineLook("ms"),
		`SELECT ts AS time, value, mean AS centre, mean + 3 * sigma AS upper_limit, mean - 3 * sigma AS lower_limit
FROM spc_state FINAL
WHERE $__timeFilter(ts) AND entity_type = 'model' AND `+anyOf("entity", "model")+` AND metric = 'latency_p99' AND phase = 1
ORDER BY time`),
		Expect{Columns: []string{"time", "value", "centre", "upper_limit", "lower_limit"}, Rows: true})
	b.add(sqlPanel("timeseries", "PSI per feature", "Drift of every input and output of this model; bands at 0.1 (investigate) and 0.25 (action).", 12, 8, bandLook("none", 0.1, 0.25),
		`SELECT ts AS time, feature, psi
FROM drift_scores FINAL
WHERE $__timeFilter(ts) AND `+modelFilter+`
ORDER BY time, feature`),
		Expect{Columns: []string{"time", "feature", "psi"}, Rows: true})
	b.add(sqlPanel("table", "Deployment history", "", 12, 8, tableLook,
		`SELECT ts, change, previous_version, model_version, environment, actor, note
FROM model_deployments
WHERE `+modelFilter+`
ORDER BY ts DESC
LIMIT 50`),
		Expect{Columns: []string{"ts", "change", "previous_version", "model_version", "environment", "actor", "note"}, Rows: true})
	b.add(sqlPanel("table", "Detections for this model", "", 18, 8, tableLook,
		`SELECT ts, detector, class, severity, feature, value, threshold, action, summary
FROM detections
WHERE $__timeFilter(ts) AND `+modelFilter+`
ORDER BY ts DESC
LIMIT 200`),
		Expect{Columns: []string{"ts", "detector", "class", "severity", "feature", "value", "threshold", "action", "summary"}, Rows: true})
	b.add(sqlPanel("stat", "GPU-hours serving it", "GPUs that served the model times the range: its cost attribution.", 6, 8, statLook("h"),
		`SELECT uniqExact(gpu_uuid) * (toUInt32($__toTime) - toUInt32($__fromTime)) / 3600 AS gpu_hours
FROM inference_events
WHERE $__timeFilter(ts) AND `+modelFilter+` AND gpu_uuid != ''`),
		Expect{Columns: []string{"gpu_hours"}, Rows: true})
	return b
}

func investigation() *board {
	b := newBoard("fleetwatch-investigation", "Fleetwatch / Investigation",
		"Why did it change? Cross-model correlation, overlays of every model and detection class, raw samples of one node, GPU event and detection search, slow traces.",
		modelVar, clusterVar, rackVar, nodeVar, searchVar)
	b.add(sqlPanel("timeseries", "p99 latency relative to each model's median", "Every model's p99 divided by its own median p99 over the range: models that move together share a cause.", 24, 8, lineLook("none"),
		`SELECT time, model, p99_ms / median_p99_ms AS relative_p99
FROM
(
    SELECT `+bucket("ts")+` AS time, model, quantile(0.99)(latency_ms) AS p99_ms
    FROM inference_events
    WHERE $__timeFilter(ts) AND `+modelFilter+`
    GROUP BY time, model
) AS q1
ANY INNER JOIN
(
    SELECT model, median(p99) AS median_p99_ms
    FROM
    (
        SELECT `+bucket("ts")+` AS t, model, quantile(0.99)(latency_ms) AS p99
        FROM inference_events
        WHERE $__timeFilter(ts) AND `+modelFilter+`
        GROUP BY t, model
    )
    GROUP BY model
) AS q3 USING model
ORDER BY time, model`),
		Expect{Columns: []string{"time", "model", "relative_p99"}, Rows: true})
	b.add(sqlPanel("table", "Cross-model correlation of error rate", "Pearson correlation of per-interval error rates for every pair of models: a block of high correlations is a shared upstream.", 12, 8, tableLook,
		`SELECT model_a, model_b, corr(rate_a, rate_b) AS correlation, count() AS intervals
FROM
(
    SELECT `+bucket("ts")+` AS time, model AS model_a, `+errorRateExpr+` AS rate_a
    FROM inference_events
    WHERE $__timeFilter(ts) AND `+modelFilter+`
    GROUP BY time, model_a
) AS q2
ALL INNER JOIN
(
    SELECT `+bucket("ts")+` AS time, model AS model_b, `+errorRateExpr+` AS rate_b
    FROM inference_events
    WHERE $__timeFilter(ts) AND `+modelFilter+`
    GROUP BY time, model_b
) AS q4 USING time
WHERE model_a < model_b
GROUP BY model_a, model_b
ORDER BY correlation DESC`),
		Expect{Columns: []string{"model_a", "model_b", "correlation", "intervals"}, Rows: true})
	b.add(sqlPanel("timeseries", "Detections by entity type", "Overlay of every detection per interval by the level it was raised at (gpu, node, rack, model, feature, ...).", 12, 8, lineLook("none"),
		`SELECT `+bucket("ts")+` AS time, entity_type, count() AS detections
FROM detections
WHERE $__timeFilter(ts)
GROUP BY time, entity_type
ORDER BY time, entity_type`),
		Expect{Columns: []string{"time", "entity_type", "detections"}, Rows: true})
	b.add(sqlPanel("table", "Raw GPU samples (short ranges)", "Second-level samples of the selected nodes' temperature, power and utilisation (raw gpu_samples, newest 1,000): for the last minutes, where rollups are too coarse.", 12, 8, tableLook,
		`SELECT ts, gpu_node AS node, gpu_index AS gpu, metric, value
FROM gpu_samples
ANY INNER JOIN
(
    SELECT series, any(node) AS gpu_node, any(gpu) AS gpu_index FROM gpu_series WHERE `+topoFilter+` GROUP BY series
) AS q5 USING series
WHERE $__timeFilter(ts) AND metric IN ('DCGM_FI_DEV_GPU_TEMP', 'DCGM_FI_DEV_POWER_USAGE', 'DCGM_FI_DEV_GPU_UTIL')
ORDER BY ts DESC, node, gpu, metric
LIMIT 1000`),
		Expect{Columns: []string{"ts", "node", "gpu", "metric", "value"}, Rows: true})
	b.add(sqlPanel("table", "Search: GPU events", "GPU events whose message contains the search text.", 12, 8, tableLook,
		`SELECT ts, event, node, gpu, code, count, message
FROM gpu_events
WHERE $__timeFilter(ts) AND `+topoFilter+` AND positionCaseInsensitive(message, `+textOf("search")+`) > 0
ORDER BY ts DESC
LIMIT 500`),
		Expect{Columns: []string{"ts", "event", "node", "gpu", "code", "count", "message"}, Rows: true})
	b.add(sqlPanel("table", "Search: detections", "Detections whose summary contains the search text, every level.", 12, 8, tableLook,
		`SELECT ts, class, severity, entity_type, entity, node, model, feature, summary, evidence
FROM detections
WHERE $__timeFilter(ts) AND positionCaseInsensitive(summary, `+textOf("search")+`) > 0
ORDER BY ts DESC
LIMIT 500`),
		Expect{Columns: []string{"ts", "class", "severity", "entity_type", "entity", "node", "model", "feature", "summary", "evidence"}, Rows: true})
	b.add(sqlPanel("table", "Slowest traces", "Slowest root spans of the selected models (spans table): open one to see where the request spent its time.", 24, 8, tableLook,
		`SELECT ts, trace_id, service, operation, model, duration_ns / 1e6 AS duration_ms, status_code
FROM spans
WHERE $__timeFilter(ts) AND parent_span_id = '' AND `+modelFilter+`
ORDER BY duration_ns DESC
LIMIT 100`),
		Expect{Columns: []string{"ts", "trace_id", "service", "operation", "model", "duration_ms", "status_code"}})
	return b
}

func drift() *board {
	b := newBoard("fleetwatch-drift", "Fleetwatch / Drift",
		"PSI per feature over time with the 0.1 (investigate) and 0.25 (action) bands, the FDR-controlled q-values behind each flag, missing shares, and the leaders.",
		modelVar, featureVar)
	b.add(sqlPanel("timeseries", "PSI per feature", "Population stability index per evaluated window; the shaded bands start at 0.1 and 0.25.", 24, 9, bandLook("none", 0.1, 0.25),
		`SELECT ts AS time, concat(model, ' / ', feature) AS column, psi
FROM drift_scores FINAL
WHERE $__timeFilter(ts) AND `+modelFilter+` AND `+anyOf("feature", "feature")+`
ORDER BY time, column`),
		Expect{Columns: []string{"time", "column", "psi"}, Rows: true})
	b.add(sqlPanel("table", "Drift leaders", "Latest PSI per model column in the last 24 h (view oncall_drift_leaders).", 12, 8, tableLook,
		`SELECT * FROM oncall_drift_leaders WHERE `+modelFilter),
		Expect{Columns: schema.OncallDriftLeaders.ColumnNames(), Rows: true})
	b.add(sqlPanel("table", "Feature freshness", "Staleness of every feature served in the last hour: now minus the last update of the served value (arrival age where no update times come), with the pipeline and SLO of those in breach first (view oncall_feature_freshness; docs/RUNBOOK.md, \"Stale features\").", 12, 8, tableLook,
		`SELECT * FROM oncall_feature_freshness WHERE `+modelFilter),
		Expect{Columns: schema.OncallFeatureFreshness.ColumnNames()})
	b.add(sqlPanel("timeseries", "q-value per feature", "Benjamini-Hochberg adjusted p-values: a flag needs PSI in a band and a small q-value, so 100 features do not raise 5 false alarms a window.", 12, 8,
		look{unit: "none", interval: "1m", custom: map[string]any{"scaleDistribution": map[string]any{"type": "log", "log": 10}}},
		`SELECT ts AS time, concat(model, ' / ', feature) AS column, greatest(q_value, 1e-12) AS q_value
FROM drift_scores FINAL
WHERE $__timeFilter(ts) AND `+modelFilter+` AND `+anyOf("feature", "feature")+`
ORDER BY time, column`),
		Expect{Columns: []string{"time", "column", "q_value"}, Rows: true})
	b.add(sqlPanel("timeseries", "Missing share, current vs reference", "A jump in missing values is a broken pipeline rather than a shifted population.", 12, 8, lineLook("percentunit"),
		`SELECT ts AS time, concat(model, ' / ', feature) AS column, missing_cur - missing_ref AS missing_share_change
FROM drift_scores FINAL
WHERE $__timeFilter(ts) AND `+modelFilter+` AND `+anyOf("feature", "feature")+`
ORDER BY time, column`),
		Expect{Columns: []string{"time", "column", "missing_share_change"}, Rows: true})
	b.add(sqlPanel("table", "Drift detections", "Covariate and prediction drift detections in the range.", 12, 8, tableLook,
		`SELECT ts, model, model_version, feature, class, severity, value AS psi, p_value, summary
FROM detections
WHERE $__timeFilter(ts) AND class IN ('covariate_drift', 'prediction_drift') AND `+modelFilter+`
ORDER BY ts DESC
LIMIT 200`),
		Expect{Columns: []string{"ts", "model", "model_version", "feature", "class", "severity", "psi", "p_value", "summary"}, Rows: true})
	return b
}

// boards builds every dashboard, in file order.
func boards() []*board {
	return []*board{executive(), portfolio(), model(), investigation(), gpuFleet(), drift(), finops(), deployments()}
}
