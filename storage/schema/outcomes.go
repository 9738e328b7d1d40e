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

// canarySignalSteps are migration 18's steps.
var canarySignalSteps = []Step{CreateTable{BusinessOutcomes}}
