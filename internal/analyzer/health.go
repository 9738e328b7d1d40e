package analyzer

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetwatch/fleetwatch/analytics/health"
)

// HealthConfig turns on the fleet-health detector (issue 6): hard faults,
// gray failures and stragglers by peer comparison, failure prediction.
type HealthConfig struct {
	Enabled       bool `yaml:"enabled"`
	health.Config `yaml:",inline"`
}

// Fleet-health windows are short: a hard fault should page within a
// minute, a gray failure within three windows.
const (
	minHealthInterval = 15 * time.Second
	maxHealthInterval = 30 * time.Second
)

// NewDefaultHealthConfig returns the detector on, every 30 seconds.
func NewDefaultHealthConfig() HealthConfig {
	return HealthConfig{Enabled: true, Config: health.NewDefaultConfig()}
}

// Validate checks the detector's settings and its interval's range.
func (h HealthConfig) Validate() error {
	if err := h.Config.Validate(); err != nil {
		return err
	}
	if h.Interval < minHealthInterval || h.Interval > maxHealthInterval {
		return fmt.Errorf("health: interval %v: want %v to %v", h.Interval, minHealthInterval, maxHealthInterval)
	}
	return nil
}

var descHealthSkipped = prometheus.NewDesc("fleetwatch_analyzer_health_rules_skipped_total",
	"Fleet-health rules that could not run, per GPU and window, by rule and reason: no_signal, no_load_signal, too_few_peers or idle (each logged once).",
	[]string{"detector", "rule", "reason"}, nil)

// collectHealth exports the fleet-health detector's skipped rules.
func (c collector) collectHealth(ch chan<- prometheus.Metric) {
	for k, n := range c.a.healthSkipped() {
		ch <- prometheus.MustNewConstMetric(descHealthSkipped, prometheus.CounterValue, float64(n), c.a.cfg.Health.Name, k.Rule, k.Reason)
	}
}
