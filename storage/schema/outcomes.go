package schema

// Business outcomes (issue 20 item 1): engagement and CTR-style success
// events a model server reports per request, so the canary judge can
// compare the versions' success rates over the same minutes. Written by
// the collector (event fleetwatch.outcome), read by analytics/canary's
// Reader joined to inference_events by request id.

// BusinessOutcomes holds one row per reported business outcome of a
// request: a click, a conversion, an accepted answer (success = 1) or an
// explicit miss (success = 0).
var BusinessOutcomes = Table{
	Name: "business_outcomes",
	Doc:  "Business outcomes of requests (engagement, CTR-style success events), joined to inference_events by request id; the canary judge's engagement per version.",
	Columns: []Column{
		timeColumn("ts", "when the outcome happened (UTC, seconds); after the request"),
		lcStr("model", "model name as in the model catalog"),
		lcStr("model_version", "version that served the request, as the sender knows it; the judge takes the request's version from inference_events"),
		str("request_id", "request id of the inference event"),
		lcStr("outcome", "what happened: click, conversion, ...; engagement by default"),
		{Name: "success", Type: "UInt8", Default: "1", Comment: "1 when the outcome is a success (the request engaged), 0 for an explicit miss"},
		{Name: "value", Type: "Float64", Comment: "optional magnitude (revenue, dwell seconds); nan when not sent"},
		lcStr("service", "service.name of the emitter"),
		lcStr("namespace", "Kubernetes namespace"),
	},
	Engine:        ReplacingMergeTree,
	TimeColumn:    "ts",
	Partition:     PartitionDaily,
	OrderBy:       []string{"model", "ts", "request_id", "outcome"},
	RetentionDays: 30,
	ShardingKey:   "cityHash64(request_id)",
}

// CanaryVerdicts holds the canary judge's verdicts (issue 20 item 8): per
// running canary, its look when the verdict or the gate changed and at
// least one a minute, with every rule's evidence as parallel arrays (one
// element per rule, in the judge's order), so on-call sees the latest
// verdict and both versions' signals as the judge saw them.
var CanaryVerdicts = Table{
	Name: "canary_verdicts",
	Doc:  "The canary judge's verdicts: per canary (model, version, start) its looks with outcome, gate, failed rules and every rule's evidence (both versions' values, effect, threshold, samples).",
	Columns: []Column{
		timeColumn("ts", "the look (UTC, seconds)"),
		lcStr("detector", "analyzer detector that judged it, e.g. canary"),
		lcStr("model", "model name"),
		lcStr("model_version", "the canary version"),
		lcStr("baseline_version", "the version it is judged against"),
		{Name: "started", Type: "DateTime", Comment: "the canary's start: its model_deployments row's time"},
		lcStr("outcome", "pass, fail or inconclusive"),
		lcStr("gate", "the evaluation gate: pass, fail or inconclusive (may the canary widen)"),
		str("gate_reason", "what decided the gate"),
		{Name: "elapsed_s", Type: "Float64", Comment: "seconds since the start"},
		{Name: "time_left_s", Type: "Float64", Comment: "while inconclusive, seconds until every rule decides at the observed traffic; -1 when none in sight; 0 once decided"},
		{Name: "failed_rules", Type: "Array(String)", Comment: "rules that failed"},
		lcStr("last_known_good", "the catalog's last-known-good version, when it names one"),
		{Name: "rule", Type: "Array(String)", Comment: "per rule: error_rate, engagement, accuracy, latency_p99_ratio, latency_gate_p50/p99, prediction_drift, feature_drift"},
		{Name: "rule_outcome", Type: "Array(String)", Comment: "per rule: pass, fail, inconclusive, info or n/a"},
		{Name: "canary_value", Type: "Array(Float64)", Comment: "per rule: the canary's rate, or latency in ms"},
		{Name: "baseline_value", Type: "Array(Float64)", Comment: "per rule: the baseline's rate, or latency in ms"},
		{Name: "effect", Type: "Array(Float64)", Comment: "per rule: the canary against the baseline, in unit"},
		{Name: "unit", Type: "Array(String)", Comment: "per rule: absolute, relative, ratio, ms or psi"},
		{Name: "threshold", Type: "Array(Float64)", Comment: "per rule: the effect at which it fails"},
		{Name: "canary_samples", Type: "Array(Float64)", Comment: "per rule: the canary's samples tested"},
		{Name: "baseline_samples", Type: "Array(Float64)", Comment: "per rule: the baseline's samples tested"},
		str("evidence", "every rule's evidence line, one per line"),
	},
	Engine:        ReplacingMergeTree,
	TimeColumn:    "ts",
	Partition:     PartitionMonthly,
	OrderBy:       []string{"model", "model_version", "started", "ts"},
	RetentionDays: 400,
	ShardingKey:   "cityHash64(model)",
}

// canarySignalSteps are migration 18's steps.
var canarySignalSteps = []Step{
	CreateTable{BusinessOutcomes},
	CreateTable{CanaryVerdicts},
	CreateQueryView{OncallCanaryVerdicts},
	CreateQueryView{OncallCanarySignals},
}
