package schema

// Cost and utilization (issue 19): the analyzer's daily cost per scope,
// written by analytics/cost's detector, read by the FinOps dashboard.

// CostDaily holds one row per UTC day and scope (a model, team or job):
// what the cost detector judged that day, and the scope's budget burn.
// Allocation intervals themselves are not stored again: they are derived
// from gpu_series and gpu_samples_1m (analytics/cost.Store).
var CostDaily = Table{
	Name: "cost_daily",
	Doc:  "Daily cost per model, team and job as the cost detector judged it: cost, GPU-hours, busy GPU-hours, requests, unit cost, budget burn, and the day's anomaly class if any.",
	Columns: []Column{
		timeColumn("day", "the UTC day (00:00)"),
		lcStr("detector", "analyzer detector that wrote the row, e.g. cost"),
		lcStr("scope_kind", "model, team or job"),
		str("scope", "the model, team or job name"),
		lcStr("currency", "the price book's currency"),
		{Name: "cost", Type: "Float64", Comment: "direct cost of the GPU-hours the scope held that day (shared cost not included)"},
		{Name: "gpu_hours", Type: "Float64", Comment: "GPU-hours held (whole-GPU equivalents; concurrent holders split a GPU)"},
		{Name: "busy_gpu_hours", Type: "Float64", Comment: "Σ SM activity × held hours: the part of gpu_hours that computed"},
		{Name: "requests", Type: "Float64", Comment: "requests served (inference_events weighted by 1/sample_rate); 0 for jobs"},
		{Name: "latency_p99", Type: "Float64", Comment: "p99 latency of the day in seconds; 0 when unknown"},
		{Name: "cost_per_1k_requests", Type: "Float64", Comment: "cost / requests × 1000; nan without requests"},
		str("change", "deployment changes of the day (model_deployments), empty if none"),
		{Name: "budget", Type: "Float64", Comment: "the scope's budget for the month; 0 without one"},
		{Name: "month_spent", Type: "Float64", Comment: "month-to-date cost through this day; 0 without a budget"},
		{Name: "forecast", Type: "Float64", Comment: "month-end forecast at the trailing burn rate; 0 without a budget"},
		lcStr("anomaly", "the day's anomaly cause (traffic, efficiency_regression, resource_leak, pricing_change, configuration, unknown); empty if none"),
		str("evidence", "what decided the cause; empty if no anomaly"),
	},
	Engine:        ReplacingMergeTree,
	TimeColumn:    "day",
	Partition:     PartitionMonthly,
	OrderBy:       []string{"detector", "scope_kind", "scope", "day"},
	RetentionDays: 400,
	ShardingKey:   "cityHash64(scope)",
}

// OncallCostFindings lists the cost detectors' findings of the last week:
// anomalies with their cause, budget forecasts over, idle and idle-held
// GPUs and zombie models.
var OncallCostFindings = QueryView{
	Name: "oncall_cost_findings",
	Doc:  "Cost findings of the last 7 days: anomalies with their cause, budgets forecast over, idle and idle-held GPUs, zombie models; newest first.",
	Columns: []Column{
		outCol("ts", "DateTime", "end of the judged day"),
		outCol("detector", "String", "cost (anomalies), cost_budget (budgets forecast over) or cost_waste (idle, idle-held, zombies)"),
		outCol("class", "String", "traffic, efficiency_regression, resource_leak, pricing_change, configuration, unknown, budget_forecast_over, idle, idle_held or zombie_model"),
		outCol("severity", "String", "warning (a ticket) or critical (a budget about to be exceeded)"),
		outCol("entity_type", "String", "model, team, job or gpu"),
		outCol("entity", "String", "the scope or GPU"),
		outCol("gpu_uuid", "String", "the GPU of a waste finding"),
		outCol("model", "String", "the model, when known"),
		outCol("cost", "Float64", "the day's cost, the forecast, or the waste's cost"),
		outCol("summary", "String", "one line for humans"),
		outCol("evidence", "String", "what decided it"),
	},
	Select: `SELECT ts, toString(detector) AS detector, toString(class) AS class, toString(severity) AS severity, toString(entity_type) AS entity_type,
    toString(entity) AS entity, toString(gpu_uuid) AS gpu_uuid, toString(model) AS model, value AS cost, summary, evidence
FROM {db}.detections
WHERE detector IN ('cost', 'cost_budget', 'cost_waste') AND ts >= now() - INTERVAL 7 DAY
ORDER BY ts DESC, class, entity`,
}
