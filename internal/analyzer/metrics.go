package analyzer

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descWindows = prometheus.NewDesc("fleetwatch_analyzer_windows_evaluated_total",
		"Windows a detector evaluated and recorded.", []string{"detector"}, nil)
	descFailures = prometheus.NewDesc("fleetwatch_analyzer_window_failures_total",
		"Failed evaluation attempts (retried, or skipped after max_attempts).", []string{"detector"}, nil)
	descSkipped = prometheus.NewDesc("fleetwatch_analyzer_windows_skipped_total",
		"Windows not evaluated, by reason: behind (downtime beyond max_catch_up) or failed (max_attempts reached).",
		[]string{"detector", "reason"}, nil)
	descDetections = prometheus.NewDesc("fleetwatch_analyzer_detections_total",
		"Detections raised.", []string{"detector"}, nil)
	descLastWindow = prometheus.NewDesc("fleetwatch_analyzer_last_window_end_seconds",
		"End of the last evaluated window, Unix seconds.", []string{"detector"}, nil)
	descLastDuration = prometheus.NewDesc("fleetwatch_analyzer_last_evaluation_seconds",
		"How long the last evaluation took.", []string{"detector"}, nil)
	descDrift = prometheus.NewDesc("fleetwatch_analyzer_drift_columns_total",
		"Drift detector counters: tests run, columns skipped (skipped_insufficient_samples), versions without a profile yet, profiles built, version windows counted from drift_bins (versions_prebinned) or binned in SQL (versions_binned_in_sql).",
		[]string{"what"}, nil)
)

// collector reads the engine's and the drift detector's counters at
// scrape time.
type collector struct{ a *Analyzer }

func (a *Analyzer) collector() prometheus.Collector { return collector{a} }

// Describe implements prometheus.Collector.
func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWindows, descFailures, descSkipped, descDetections, descLastWindow, descLastDuration, descDrift,
		descPSI, descPValue, descBand, descSPCValue, descSPCZ, descSPCOut, descIncidents, descStateErrors, descHealthSkipped, descJobsSkipped, descJobGoodput, descCanarySkipped} {
		ch <- d
	}
	for _, d := range alertingDescs {
		ch <- d
	}
	for _, d := range sharingDescs {
		ch <- d
	}
	for _, d := range scalingDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	for name, st := range c.a.Engine.Stats() {
		ch <- prometheus.MustNewConstMetric(descWindows, prometheus.CounterValue, float64(st.Evaluated), name)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(st.Failures), name)
		ch <- prometheus.MustNewConstMetric(descDetections, prometheus.CounterValue, float64(st.Detections), name)
		for _, reason := range []string{"behind", "failed"} {
			ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.CounterValue, float64(st.Skipped[reason]), name, reason)
		}
		if !st.LastWindowEnd.IsZero() {
			ch <- prometheus.MustNewConstMetric(descLastWindow, prometheus.GaugeValue, float64(st.LastWindowEnd.Unix()), name)
			ch <- prometheus.MustNewConstMetric(descLastDuration, prometheus.GaugeValue, st.LastDuration.Seconds(), name)
		}
	}
	for what, n := range c.a.driftStats() {
		ch <- prometheus.MustNewConstMetric(descDrift, prometheus.CounterValue, float64(n), what)
	}
	c.collectState(ch)
	c.collectHealth(ch)
	c.collectJobs(ch)
	c.collectCanary(ch)
	c.collectScaling(ch)
	if st := c.a.alerting(); st != nil {
		st.collect(ch)
	}
	if c.a.share != nil {
		c.a.share.collect(ch)
	}
}
