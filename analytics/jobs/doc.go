// Package jobs is the analyzer's training-job health detector (issue 16):
// what goes wrong with a whole training job rather than one slow rank
// (health's straggler rule). Per window and job it judges
//
//   - step-time regression: the job's step time (the median over its ranks
//     of each rank's mean fleetwatch_train_step_seconds, so that one
//     straggling rank does not move it) against the job's own trailing
//     history: median and σ = 1.4826·MAD, σ held at least rel_floor of the
//     median so a very steady history cannot turn noise into a huge z; a
//     window is out when it is both step_ratio times the median and min_z
//     σ above it, and a detection needs persist such windows in a row;
//   - stalled or hung ranks: no increase of fleetwatch_train_steps_total for
//     longer than the largest of stall_steps × the job's median step time,
//     stall_reports × the rank's report interval, min_stall, and
//     stall_checkpoints × the job's longest recent checkpoint write (a
//     synchronous checkpoint pauses stepping);
//   - checkpoints: the write time of each completed checkpoint (its
//     slowest rank's fleetwatch_train_checkpoint_seconds) against the job's
//     earlier checkpoints, needing both checkpoint_ratio × the median and
//     min_z σ (σ at least checkpoint_rel_floor of the median) after
//     min_checkpoints; and failed writes
//     (fleetwatch_train_checkpoint_failures_total), flagged until a
//     checkpoint completes again;
//   - goodput: the share of the window's wall time that made progress at
//     the job's healthy pace, steps completed × baseline step time / window.
//
// Every rule that cannot run for a job says why: a counter per rule and
// reason (fleetwatch_analyzer_jobs_rules_skipped_total) and one log line
// the first time. Each window's view of every job is a row of job_health,
// from which a restarted detector rebuilds its baselines. Detections are
// about the job (entity type "job"): alerting opens one incident per job
// (family training_job), not one per rank.
//
// A Source reads a window from ClickHouse (source.go), an Evaluator judges
// it in memory (evaluator.go); the Detector joins them for the engine.
package jobs
