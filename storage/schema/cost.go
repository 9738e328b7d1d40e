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

// GPUHeld1h is the hourly rollup of held GPU-hours per scope (migration
// 17, issue 19 item 10): what a daily cost pass over a fleet of 100,000
// GPUs reads instead of joining gpu_samples_1m with gpu_series. One row
// per hour, kind, price key (GPU model, cluster, purchase), MIG profile
// and holder scope (namespace, team, model, model version, cost centre,
// job); the pod and the GPU are summed away, so a row stands for every
// GPU of that scope in that hour (rows grow with scopes, not GPUs).
//
// No materialized view can fill it: the holder of a GPU-hour lives in
// gpu_series and its usage in gpu_samples_1m, and the split among a
// GPU-hour's concurrent holders needs the whole hour. The analyzer's
// hourly pass (analytics/cost.Store.RollUp, the cost_rollup detector)
// writes each completed hour once with INSERT … SELECT and records it in
// gpu_held_1h_hours; readers use the rollup only for periods whose every
// hour is recorded there.
var GPUHeld1h = Table{
	Name: "gpu_held_1h",
	Doc:  "Hourly rollup of held GPU-hours per price key and holder scope (namespace, team, model, version, cost centre, job), with SM-activity and memory sums; written by the analyzer's hourly cost pass.",
	Columns: []Column{
		timeColumn("hour", "start of the hour (UTC)"),
		lcStr("kind", "held (by a workload), system (only system-namespace pods held it) or unallocated (reported, nobody held it)"),
		lcStr("model_name", "GPU product name (gpu_series.model_name): the price key's GPU model"),
		lcStr("cluster", "logical compute cluster: the price key's cluster"),
		lcStr("purchase", "pod label purchase (on_demand, reserved, spot); empty: the store's default"),
		lcStr("gpu_profile", "MIG profile, empty for whole GPUs (gpu_hours already counts a 3g.40gb instance as 3/7)"),
		lcStr("namespace", "Kubernetes namespace of the holder"),
		lcStr("team", "pod label team"),
		lcStr("model", "pod label model"),
		lcStr("model_version", "pod label model_version"),
		lcStr("cost_center", "pod label cost_center"),
		lcStr("job", "Slurm job (hpc_job) or job label"),
		{Name: "gpus", Type: "UInt64", Comment: "GPU-hours (GPU or MIG instance × hour) behind the row; a GPU-hour shared by two holders counts in both rows"},
		{Name: "gpu_hours", Type: "Float64", Comment: "held GPU-hours in whole-GPU equivalents: each GPU-hour split equally among its concurrent holders outside the system namespaces, a MIG instance its share of the GPU"},
		{Name: "busy_gpu_hours", Type: "Float64", Comment: "Σ gpu_hours × the holder's SM activity in the hour (GPU utilization / 100 where SM activity is not reported)"},
		{Name: "mem_gpu_hours", Type: "Float64", Comment: "Σ gpu_hours × the fraction of device memory in use"},
		{Name: "idle_gpu_hours", Type: "Float64", Comment: "Σ gpu_hours of GPU-hours whose SM activity was below 0.05 (the waste detector's default idle_sm)"},
	},
	Engine:     SummingMergeTree,
	EngineArgs: "(gpus, gpu_hours, busy_gpu_hours, mem_gpu_hours, idle_gpu_hours)",
	TimeColumn: "hour",
	Partition:  PartitionMonthly,
	OrderBy: []string{"hour", "kind", "model_name", "cluster", "purchase", "gpu_profile", "namespace", "team", "model",
		"model_version", "cost_center", "job"},
	RetentionDays: 400,
	ShardingKey:   "cityHash64(model, team, job)",
}

// GPUHeld1d is gpu_held_1h summed per UTC day, filled by the
// materialized view gpu_held_1d_mv as the hourly pass inserts: a 90-day
// cost pass reads a day's rows instead of 24 hours' (the same columns,
// day for hour).
var GPUHeld1d = Table{
	Name:          "gpu_held_1d",
	Doc:           "Daily sums of gpu_held_1h (held GPU-hours per price key and holder scope), filled by gpu_held_1d_mv: what a 90-day cost pass reads.",
	Columns:       append([]Column{timeColumn("day", "the UTC day (00:00)")}, GPUHeld1h.Columns[1:]...),
	Engine:        SummingMergeTree,
	EngineArgs:    GPUHeld1h.EngineArgs,
	TimeColumn:    "day",
	Partition:     PartitionMonthly,
	OrderBy:       append([]string{"day"}, GPUHeld1h.OrderBy[1:]...),
	RetentionDays: 400,
	ShardingKey:   GPUHeld1h.ShardingKey,
}

// GPUHeld1dView feeds gpu_held_1d from each insert into gpu_held_1h.
var GPUHeld1dView = View{
	Name: "gpu_held_1d_mv",
	From: "gpu_held_1h",
	To:   "gpu_held_1d",
	Select: `SELECT
    toStartOfDay(hour) AS day, kind, model_name, cluster, purchase, gpu_profile, namespace, team, model, model_version, cost_center, job,
    sum(gpus) AS gpus, sum(gpu_hours) AS gpu_hours, sum(busy_gpu_hours) AS busy_gpu_hours, sum(mem_gpu_hours) AS mem_gpu_hours,
    sum(idle_gpu_hours) AS idle_gpu_hours
FROM {from}
GROUP BY day, kind, model_name, cluster, purchase, gpu_profile, namespace, team, model, model_version, cost_center, job`,
}

// GPUHeld1hHours records each hour the hourly cost pass rolled up into
// gpu_held_1h: a reader trusts the rollup only for periods whose every
// hour is here, and the pass skips an hour already here.
var GPUHeld1hHours = Table{
	Name: "gpu_held_1h_hours",
	Doc:  "The hours rolled up into gpu_held_1h: one row per hour the analyzer's hourly cost pass completed, with what it wrote.",
	Columns: []Column{
		timeColumn("hour", "start of the rolled-up hour (UTC)"),
		timeColumn("rolled_at", "when the pass wrote it"),
		{Name: "rows", Type: "UInt64", Comment: "gpu_held_1h rows the pass wrote for the hour"},
		{Name: "gpus", Type: "UInt64", Comment: "GPU-hours that reported in the hour (provisioned GPUs and MIG instances)"},
		{Name: "gpu_hours", Type: "Float64", Comment: "provisioned GPU-hours in whole-GPU equivalents: Σ gpu_held_1h.gpu_hours of the hour"},
	},
	Engine:        ReplacingMergeTree,
	EngineArgs:    "rolled_at",
	TimeColumn:    "hour",
	Partition:     PartitionMonthly,
	OrderBy:       []string{"hour"},
	RetentionDays: 400,
	ShardingKey:   "cityHash64(hour)",
}
