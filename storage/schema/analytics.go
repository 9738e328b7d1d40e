package schema

// The analyzer's own tables (issue 5): reference profiles, per-window drift
// scores, control-chart state, and the engine's ledger of evaluated windows.
// They are written by package analytics through storage.Writer and read back
// on restart, so the analyzer resumes where it stopped.

// analyticsSteps is migration 6.
var analyticsSteps = []Step{
	CreateTable{DriftProfiles},
	CreateTable{DriftScores},
	CreateTable{SPCState},
	CreateTable{AnalyzerWindows},
}

// DriftProfiles holds reference distributions, built once per model version
// and feature and reused by every drift check.
var DriftProfiles = Table{
	Name: "drift_profiles",
	Doc:  "Reference profiles for PSI drift: bin edges or top categories and reference counts per model version and feature.",
	Columns: []Column{
		timeColumn("created_at", "when the profile was built (the end of its reference window)"),
		lcStr("model", "model name"),
		lcStr("model_version", "model version"),
		lcStr("feature", "feature, or @prediction / @prediction_class for the model's outputs"),
		lcStr("kind", "numeric or categorical"),
		lcStr("source", "where the reference came from: deployment (its first hours), window or file"),
		timeColumn("ref_start", "start of the reference window (UTC); zero for a file"),
		timeColumn("ref_end", "end of the reference window (UTC); zero for a file"),
		str("detail", "file name or note"),
		{Name: "edges", Type: "Array(Float64)", Comment: "numeric: bin edges, sorted; bin i is [edges[i-1], edges[i]), outer bins open"},
		{Name: "categories", Type: "Array(String)", Comment: "categorical: the top-K categories; one more bin holds every other value"},
		{Name: "counts", Type: "Array(Float64)", Comment: "reference count per bin"},
		{Name: "missing", Type: "Float64", Comment: "reference count of missing values (null, NaN, Inf, empty string)"},
	},
	Engine:      ReplacingMergeTree,
	EngineArgs:  "created_at",
	OrderBy:     []string{"model", "model_version", "feature"},
	ShardingKey: "cityHash64(model)",
}

// DriftScores holds one row per model version, feature and evaluated window.
var DriftScores = Table{
	Name: "drift_scores",
	Doc:  "PSI drift per model version, feature and window: PSI, p-value, FDR q-value, band, sample sizes, sequential state.",
	Columns: []Column{
		timeColumn("ts", "end of the evaluated window (UTC)"),
		timeColumn("window_start", "start of the evaluated window (UTC)"),
		lcStr("model", "model name"),
		lcStr("model_version", "model version"),
		lcStr("feature", "feature, or @prediction / @prediction_class"),
		lcStr("kind", "numeric or categorical"),
		{Name: "psi", Type: "Float64", Codec: "Gorilla, ZSTD(1)", Comment: "population stability index against the profile (smoothed, see docs)"},
		{Name: "p_value", Type: "Float64", Comment: "p-value of no shift given the sample sizes"},
		{Name: "q_value", Type: "Float64", Comment: "Benjamini-Hochberg adjusted p-value across the whole pass"},
		lcStr("method", "how the p-value was computed: chi2 or monte_carlo"),
		{Name: "df", Type: "UInt16", Comment: "bins in use minus one"},
		{Name: "null_psi", Type: "Float64", Comment: "PSI expected from sampling alone at these sample sizes"},
		lcStr("band", "stable, investigate or action"),
		{Name: "n_ref", Type: "Float64", Comment: "reference values"},
		{Name: "n_cur", Type: "Float64", Comment: "current values"},
		{Name: "missing_ref", Type: "Float64", Comment: "missing share in the reference"},
		{Name: "missing_cur", Type: "Float64", Comment: "missing share in the window"},
		{Name: "cur_counts", Type: "Array(Float64)", Comment: "current counts per profile bin, then the missing count"},
		{Name: "cusum", Type: "Float64", Comment: "sequential CUSUM statistic after this window"},
		{Name: "cusum_run", Type: "UInt32", Comment: "windows since the CUSUM was last zero"},
		{Name: "cusum_excess", Type: "Float64", Comment: "sum of PSI minus null_psi over that run"},
		{Name: "flagged", Type: "UInt8", Comment: "1 when this window raised a detection"},
	},
	Engine:        ReplacingMergeTree,
	TimeColumn:    "ts",
	Partition:     PartitionMonthly,
	OrderBy:       []string{"model", "model_version", "feature", "ts"},
	RetentionDays: 90,
	ShardingKey:   "cityHash64(model)",
}

// SPCState holds each control chart's state after each evaluated window.
var SPCState = Table{
	Name: "spc_state",
	Doc:  "Control-chart state per series after each window: baseline, limits, EWMA/CUSUM, rule history, the value and rules fired.",
	Columns: []Column{
		timeColumn("ts", "end of the evaluated window (UTC)"),
		lcStr("detector", "analyzer detector that owns the series, e.g. spc_models"),
		str("series", "series key, e.g. model=fraud/latency_p99"),
		lcStr("metric", "what is charted: latency_p99, error_rate, throughput, freshness, cost, accuracy, a DCGM field"),
		lcStr("class", "detection class for this series"),
		lcStr("entity_type", "model, feature, gpu, ..."),
		str("entity", "entity id"),
		{Name: "value", Type: "Float64", Codec: "Gorilla, ZSTD(1)", Comment: "the window's value; nan when the series had no data"},
		{Name: "rules", Type: "UInt8", Comment: "bit set of the rules fired: 1 we1, 2 we2, 4 we3, 8 we4, 16 ewma, 32 cusum"},
		{Name: "phase", Type: "UInt8", Comment: "0 collecting the baseline, 1 charting"},
		{Name: "baseline", Type: "Array(Float64)", Comment: "phase 0: the baseline points collected so far"},
		{Name: "mean", Type: "Float64", Comment: "baseline mean"},
		{Name: "sigma", Type: "Float64", Comment: "baseline sigma (average moving range / 1.128)"},
		{Name: "zones", Type: "UInt64", Comment: "recent zone history for rules 2-4"},
		{Name: "ewma", Type: "Float64", Comment: "EWMA statistic"},
		{Name: "ewma_f", Type: "Float64", Comment: "(1-lambda)^(2t), for the EWMA's exact limits"},
		{Name: "cusum_hi", Type: "Float64", Comment: "upper tabular CUSUM, in sigma"},
		{Name: "cusum_lo", Type: "Float64", Comment: "lower tabular CUSUM, in sigma"},
		{Name: "learn_n", Type: "Float64", Comment: "baseline points learned (decayed)"},
		{Name: "learn_sum", Type: "Float64", Comment: "sum of learned points (decayed)"},
		{Name: "learn_mr", Type: "Float64", Comment: "sum of learned moving ranges (decayed)"},
		{Name: "learn_mr_n", Type: "Float64", Comment: "learned moving ranges (decayed)"},
		{Name: "last", Type: "Float64", Comment: "last accepted point; nan when the last point was rejected"},
		{Name: "out_run", Type: "UInt32", Comment: "consecutive windows with a rule fired"},
		{Name: "stale", Type: "UInt32", Comment: "consecutive windows without data"},
	},
	Engine:        ReplacingMergeTree,
	TimeColumn:    "ts",
	Partition:     PartitionMonthly,
	OrderBy:       []string{"detector", "series", "ts"},
	RetentionDays: 90,
	ShardingKey:   "cityHash64(series)",
}

// AnalyzerWindows is the engine's ledger: one row per detector and
// evaluated (or skipped) window.
var AnalyzerWindows = Table{
	Name: "analyzer_windows",
	Doc:  "The analytics engine's ledger: every window each detector evaluated or skipped, with its outcome.",
	Columns: []Column{
		timeColumn("window_end", "end of the window (UTC)"),
		timeColumn("window_start", "start of the window (UTC)"),
		lcStr("detector", "detector name"),
		lcStr("status", "ok, or skipped (the reason is in error)"),
		{Name: "detections", Type: "UInt32", Comment: "detections raised"},
		{Name: "attempts", Type: "UInt32", Comment: "evaluation attempts it took"},
		{Name: "duration_ms", Type: "Float64", Comment: "time the evaluation took"},
		timeColumn("evaluated_at", "wall-clock time of the evaluation (UTC)"),
		str("error", "why the window was skipped, or the last error before success"),
	},
	Engine:        ReplacingMergeTree,
	EngineArgs:    "evaluated_at",
	TimeColumn:    "window_end",
	Partition:     PartitionMonthly,
	OrderBy:       []string{"detector", "window_end"},
	RetentionDays: 400,
	ShardingKey:   "cityHash64(detector)",
}

// driftBinsSteps is migration 10.
var driftBinsSteps = []Step{CreateTable{DriftBins}}

// DriftBins holds inference feature values binned at ingest into their
// stored profiles, per minute, so a drift pass sums a few counts per
// profile bin instead of unnesting every event's feature arrays. The
// collector writes it next to inference_events; the analyzer uses a
// profile's rows only when they cover every event of the window and falls
// back to binning inference_events in SQL otherwise.
var DriftBins = Table{
	Name: "drift_bins",
	Doc:  "Feature values binned at ingest into their drift profiles: counts per minute, model version, feature and profile bin.",
	Columns: []Column{
		timeColumn("ts", "start of the minute the events happened in (UTC)"),
		lcStr("model", "model name"),
		lcStr("model_version", "model version"),
		lcStr("feature", "feature, or @prediction / @prediction_class"),
		{Name: "profile", Type: "UInt64", Comment: "fingerprint of the profile's edges or categories the values were binned with"},
		{Name: "bin", Type: "Int16", Comment: "profile bin; the bin after the last is missing values; -1 counts the events of the model version binned, with or without this feature"},
		{Name: "count", Type: "UInt64", Comment: "values (events for bin -1); rows with the same key are summed"},
	},
	Engine:        SummingMergeTree,
	EngineArgs:    "count",
	TimeColumn:    "ts",
	Partition:     PartitionDaily,
	OrderBy:       []string{"model", "model_version", "ts", "feature", "profile", "bin"},
	RetentionDays: 30,
	ShardingKey:   "cityHash64(model)",
}
