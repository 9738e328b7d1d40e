package analyzer

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetwatch/fleetwatch/analytics/jobs"
	"github.com/fleetwatch/fleetwatch/fleet"
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
	d := liveDetector[*jobs.Detector](c.a)
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

// liveDetector is the detector of type T this analyzer runs now: its
// own when alone; when analyzers share the fleet, the live one if this
// analyzer holds its (whole) share; else nil.
func liveDetector[T fleet.Detector](a *Analyzer) T {
	var dets []fleet.Detector
	if a.share == nil {
		dets = a.dets
	} else {
		a.share.mu.Lock()
		dets = slices.Collect(maps.Values(a.share.live))
		a.share.mu.Unlock()
	}
	for _, d := range dets {
		if t, ok := d.(T); ok {
			return t
		}
	}
	var zero T
	return zero
}
