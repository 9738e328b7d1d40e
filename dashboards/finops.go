package dashboards

import (
	"fmt"

	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// The FinOps dashboard (issue 19): what the fleet costs and who spends it,
// from the cost detector's daily rows (cost_daily), its detections
// (anomalies with their cause, idle and zombie findings) and the GPU
// rollups. Dollars are the price book's, as the analyzer priced them.

// dailyBy is a daily series of expr per scope of kind.
func dailyBy(kind, expr, alias, cond string) string {
	return fmt.Sprintf(`SELECT day AS time, scope AS %s, %s AS %s
FROM cost_daily FINAL
WHERE scope_kind = %s AND $__timeFilter(day)%s
GROUP BY time, %s
ORDER BY time, %s`, kind, expr, alias, chsql.String(kind), cond, kind, kind)
}

// costFindings is a table of the cost detectors' detections matching cond.
func costFindings(cols, cond string) string {
	return `SELECT ` + cols + `
FROM detections
WHERE ` + cond + ` AND $__timeFilter(ts)
ORDER BY ts DESC, value DESC
LIMIT 200`
}

func finops() *board {
	b := newBoard("fleetwatch-finops", "Fleetwatch / FinOps",
		"What the GPUs cost and who spends it: daily cost by team and model, unit cost, busy share of held GPU-hours, budget burn, cost anomalies with their cause, idle and zombie GPUs. Needs analyzer.cost (a price book); days appear after midnight UTC + lateness.")
	b.add(sqlPanel("stat", "Team spend", "Direct cost of the GPU-hours teams held in the range (cost_daily; shared cost and unlabelled holders not included).", 6, 4, statLook("currencyUSD"),
		`SELECT sum(cost) AS cost FROM cost_daily FINAL WHERE scope_kind = 'team' AND $__timeFilter(day)`),
		Expect{Columns: []string{"cost"}, Rows: true})
	b.add(sqlPanel("stat", "Busy share", "Busy GPU-hours (SM activity × held hours) over held GPU-hours, all teams: the useful part of the spend.", 6, 4,
		look{unit: "percentunit", thresholds: []float64{0.3, 0.6}, options: statOptions},
		`SELECT if(sum(gpu_hours) = 0, 0, sum(busy_gpu_hours) / sum(gpu_hours)) AS busy_share FROM cost_daily FINAL WHERE scope_kind = 'team' AND $__timeFilter(day)`),
		Expect{Columns: []string{"busy_share"}, Rows: true})
	b.add(sqlPanel("stat", "Cost anomalies", "Days a model, team or job moved by |Z| > 3 and |Δ%| > 50 (detector cost).", 6, 4, statLook("none", 1),
		`SELECT count() AS anomalies FROM detections WHERE detector = 'cost' AND class != 'budget_forecast_over' AND $__timeFilter(ts)`),
		Expect{Columns: []string{"anomalies"}, Rows: true})
	b.add(sqlPanel("stat", "Idle and zombie findings", "Idle and idle-held GPU runs and zombie models (detector cost_waste).", 6, 4, statLook("none", 1),
		`SELECT count() AS findings FROM detections WHERE detector = 'cost_waste' AND $__timeFilter(ts)`),
		Expect{Columns: []string{"findings"}, Rows: true})

	b.add(sqlPanel("timeseries", "Daily cost by team", "Direct cost per team and UTC day.", 12, 8, lineLook("currencyUSD"), dailyBy("team", "sum(cost)", "cost", "")),
		Expect{Columns: []string{"time", "team", "cost"}})
	b.add(sqlPanel("timeseries", "Daily cost by model", "Direct cost per model and UTC day.", 12, 8, lineLook("currencyUSD"), dailyBy("model", "sum(cost)", "cost", "")),
		Expect{Columns: []string{"time", "model", "cost"}})
	b.add(sqlPanel("timeseries", "Cost per 1,000 requests by model", "Unit cost trend: a rise with flat traffic is an efficiency regression or a leak.", 12, 8, lineLook("currencyUSD"),
		dailyBy("model", "any(cost_per_1k_requests)", "cost_per_1k", " AND isFinite(cost_per_1k_requests)")),
		Expect{Columns: []string{"time", "model", "cost_per_1k"}})
	b.add(sqlPanel("timeseries", "Busy share of held GPU-hours by team", "Busy GPU-hours over held GPU-hours per team and day (equation 13 over the team's GPUs).", 12, 8, lineLook("percentunit"),
		dailyBy("team", "if(sum(gpu_hours) = 0, 0, sum(busy_gpu_hours) / sum(gpu_hours))", "busy_share", "")),
		Expect{Columns: []string{"time", "team", "busy_share"}})
	b.add(sqlPanel("timeseries", "GPU-hours by cluster", "Series-hours of GPU utilization reported per cluster, from one-minute rollups: provisioned capacity, held or not (a GPU shared by two holders counts twice).", 12, 8, lineLook("h"),
		`SELECT `+bucket("minute")+` AS time, cluster, count() / 60 AS gpu_hours
FROM
(
    SELECT minute, series FROM gpu_samples_1m
    WHERE metric = 'DCGM_FI_DEV_GPU_UTIL' AND $__timeFilter(minute)
    GROUP BY minute, series
) AS q1
ANY INNER JOIN
(
    SELECT series, any(cluster) AS cluster FROM gpu_series WHERE metric = 'DCGM_FI_DEV_GPU_UTIL' GROUP BY series
) AS q2 USING series
GROUP BY time, cluster
ORDER BY time, cluster`),
		Expect{Columns: []string{"time", "cluster", "gpu_hours"}, Rows: true})
	b.add(sqlPanel("table", "Serving efficiency by model", "From the model servers' own metrics (docs/TELEMETRY.md, \"Model servers\"): tokens generated per second over the range, mean batch executed over the largest allowed, cache hits over lookups. Counters are read as increases; a restarted server counts from its new value. Empty for models that do not report them.", 12, 8, tableLook,
		`SELECT m AS model,
    sumIf(inc, metric = 'fleetwatch_model_tokens_total') / (toUInt32($__toTime) - toUInt32($__fromTime)) AS tokens_per_second,
    avgIf(mean, metric = 'fleetwatch_model_batch_size') AS mean_batch,
    if(avgIf(mean, metric = 'fleetwatch_model_max_batch_size') > 0, mean_batch / avgIf(mean, metric = 'fleetwatch_model_max_batch_size'), nan) AS batch_efficiency,
    if(sumIf(inc, metric = 'fleetwatch_model_cache_lookups_total') > 0, sumIf(inc, metric = 'fleetwatch_model_cache_hits_total') / sumIf(inc, metric = 'fleetwatch_model_cache_lookups_total'), nan) AS cache_hit_ratio
FROM
(
    SELECT series, metric, sum(value) / count() AS mean,
        arraySort((v, t) -> t, groupArray(value), groupArray(ts)) AS vs,
        arraySum(arrayMap((d, v) -> if(d >= 0, d, v), arrayDifference(vs), vs)) AS inc
    FROM gpu_samples
    WHERE metric IN ('fleetwatch_model_tokens_total', 'fleetwatch_model_batch_size', 'fleetwatch_model_max_batch_size', 'fleetwatch_model_cache_hits_total', 'fleetwatch_model_cache_lookups_total')
      AND $__timeFilter(ts)
    GROUP BY series, metric
) AS q1
ANY INNER JOIN
(
    SELECT series, any(label_values[indexOf(label_keys, 'model')]) AS m FROM gpu_series
    WHERE metric IN ('fleetwatch_model_tokens_total', 'fleetwatch_model_batch_size', 'fleetwatch_model_max_batch_size', 'fleetwatch_model_cache_hits_total', 'fleetwatch_model_cache_lookups_total')
    GROUP BY series
) AS q2 USING series
WHERE m != ''
GROUP BY m
ORDER BY tokens_per_second DESC, m`),
		Expect{Columns: []string{"model", "tokens_per_second", "mean_batch", "batch_efficiency", "cache_hit_ratio"}})
	b.add(sqlPanel("table", "Budget burn", "Each budgeted scope's latest day: the month's budget, spent so far, the month-end forecast at the last week's burn and its share of the budget (over 1 pages the owner).", 12, 8, tableLook,
		`SELECT scope_kind, scope, argMax(budget, day) AS monthly_budget, argMax(month_spent, day) AS spent, argMax(forecast, day) AS month_forecast,
    if(monthly_budget > 0, month_forecast / monthly_budget, 0) AS forecast_share, max(day) AS as_of
FROM cost_daily FINAL
WHERE budget > 0 AND $__timeFilter(day)
GROUP BY scope_kind, scope
ORDER BY forecast_share DESC, scope`),
		Expect{Columns: []string{"scope_kind", "scope", "monthly_budget", "spent", "month_forecast", "forecast_share", "as_of"}})
	b.add(sqlPanel("table", "Cost anomalies and their cause", "Each anomaly with the class that explains it (traffic, efficiency_regression, resource_leak, pricing_change, configuration) and the evidence that decided it; critical when the scope's budget forecast is over.", 24, 8, tableLook,
		costFindings("ts, entity_type AS scope_kind, entity AS scope, class AS cause, severity, value AS cost, summary, evidence", "detector = 'cost'")),
		Expect{Columns: []string{"ts", "scope_kind", "scope", "cause", "severity", "cost", "summary", "evidence"}})
	b.add(sqlPanel("table", "Idle and idle-held GPUs", "Allocated GPUs below the SM-activity threshold for hours in a row; idle-held ones keep device memory (a model loaded, no work).", 12, 8, tableLook,
		costFindings("ts, gpu_uuid, class, value AS cost, summary, evidence", "detector = 'cost_waste' AND class IN ('idle', 'idle_held')")),
		Expect{Columns: []string{"ts", "gpu_uuid", "class", "cost", "summary", "evidence"}})
	b.add(sqlPanel("table", "Zombie models", "Models holding GPUs with negligible traffic per GPU-hour.", 12, 8, tableLook,
		costFindings("ts, model, value AS cost, summary, evidence", "detector = 'cost_waste' AND class = 'zombie_model'")),
		Expect{Columns: []string{"ts", "model", "cost", "summary", "evidence"}})
	b.add(sqlPanel("table", "Cost findings, last 7 days (on-call view)", "Everything the cost detectors raised in the last week (view oncall_cost_findings).", 24, 8, tableLook,
		`SELECT * FROM oncall_cost_findings`),
		Expect{Columns: schema.OncallCostFindings.ColumnNames()})
	return b
}
