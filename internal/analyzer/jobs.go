package analyzer

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetwatch/fleetwatch/analytics/jobs"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
)

// JobsConfig turns on the training-job detector (issue 16): a job's step
// time against its own history, stalled ranks, slow and failing
// checkpoints, goodput.
type JobsConfig struct {
	Enabled     bool `yaml:"enabled"`
	jobs.Config `yaml:",inline"`
}

// NewDefaultJobsConfig returns the detector on, every minute.
func NewDefaultJobsConfig() JobsConfig {
	return JobsConfig{Enabled: true, Config: jobs.NewDefaultConfig()}
}

// jobsDetectors returns the training-job detector when it is enabled,
// reading telemetry from in and writing job_health to out.
func jobsDetectors(cfg JobsConfig, in, out *storage.Client, log *slog.Logger) ([]fleet.Detector, *jobs.Detector, error) {
	if !cfg.Enabled {
		return nil, nil, nil
	}
	d, err := jobs.NewDetector(cfg.Config, in, out, log)
	if err != nil {
		return nil, nil, err
	}
	return []fleet.Detector{d}, d, nil
}

var (
	descJobsSkipped = prometheus.NewDesc("fleetwatch_analyzer_jobs_rules_skipped_total",
		"Training-job rules that could not run, per job (or series) and window, by rule and reason: no_step_time, short_history, no_step_counter, short_checkpoint_history, first_window, threshold_beyond_lookback, no_job, no_rank (each logged once).",
		[]string{"detector", "rule", "reason"}, nil)
	descJobGoodput = prometheus.NewDesc("fleetwatch_analyzer_job_goodput",
		"Share of the last window's wall time a training job made progress at its healthy pace (job_health.goodput).",
		[]string{"detector", "hpc_job"}, nil)
)

// collectJobs exports the training-job detector's skipped rules and goodput.
func (c collector) collectJobs(ch chan<- prometheus.Metric) {
	d := c.a.jobs
	if d == nil {
		return
	}
	for k, n := range d.Skipped() {
		ch <- prometheus.MustNewConstMetric(descJobsSkipped, prometheus.CounterValue, float64(n), d.Name(), k.Rule, k.Reason)
	}
	for job, g := range d.Goodput() {
		ch <- prometheus.MustNewConstMetric(descJobGoodput, prometheus.GaugeValue, g, d.Name(), job)
	}
}
