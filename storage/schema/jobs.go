package schema

// Training-job health (issue 16): the analyzer's per-window view of each
// training job, written by analytics/jobs and read back on restart.

// JobHealth holds one row per training job and evaluated window: its step
// time against its own history, its progress and goodput, its stalled
// ranks and its checkpoints. analytics/jobs rebuilds its baselines from
// these rows after a restart.
var JobHealth = Table{
	Name: "job_health",
	Doc:  "Training-job health per job and window: step time against the job's own baseline, steps and goodput, stalled ranks, checkpoint write times and failures.",
	Columns: []Column{
		timeColumn("ts", "end of the evaluated window (UTC)"),
		timeColumn("window_start", "start of the evaluated window (UTC)"),
		lcStr("detector", "analyzer detector that wrote the row, e.g. training_jobs"),
		str("job", "training job (the hpc_job label)"),
		{Name: "ranks", Type: "UInt32", Comment: "ranks that reported in the window"},
		{Name: "step_seconds", Type: "Float64", Comment: "the job's step time: median over its ranks of each rank's mean step time; nan without one"},
		{Name: "baseline_step_seconds", Type: "Float64", Comment: "median of the job's step times over its trailing history (this window left out); nan while the history is short"},
		{Name: "step_z", Type: "Float64", Comment: "robust z of step_seconds against the baseline (sigma 1.4826·MAD, at least rel_floor of the median); nan without a baseline"},
		{Name: "steps", Type: "Float64", Comment: "steps the job completed in the window: the fewest any rank completed"},
		{Name: "goodput", Type: "Float64", Comment: "share of the window's wall time that made progress at the job's healthy pace: steps × baseline step time / window, at most 1; nan when unknown"},
		{Name: "stalled_ranks", Type: "UInt32", Comment: "ranks without a step for longer than the stall threshold"},
		{Name: "stall_seconds", Type: "Float64", Comment: "the longest time any rank went without a step, as of its last report"},
		{Name: "checkpoints", Type: "Float64", Comment: "checkpoints the job completed in the window"},
		{Name: "checkpoint_seconds", Type: "Float64", Comment: "write time of the window's checkpoint, its slowest rank's; nan without one"},
		{Name: "baseline_checkpoint_seconds", Type: "Float64", Comment: "median write time of the job's earlier checkpoints; nan while there are too few"},
		{Name: "checkpoint_failures", Type: "Float64", Comment: "failed checkpoint writes in the window (the rank with the most)"},
		{Name: "flags", Type: "UInt8", Comment: "bit set: 1 step time out of baseline, 2 regression raised, 4 stalled, 8 checkpoint slow, 16 checkpoint failing"},
	},
	Engine:        ReplacingMergeTree,
	TimeColumn:    "ts",
	Partition:     PartitionMonthly,
	OrderBy:       []string{"detector", "job", "ts"},
	RetentionDays: 90,
	ShardingKey:   "cityHash64(job)",
}
