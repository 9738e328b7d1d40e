package analyzer

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetwatch/fleetwatch/analytics/scaling"
)

// ScalingConfig turns on the scaling signals (issue 20, item 6): per
// catalog model with a scaling section, its request rate, queue depth, SM
// activity, latency and Little's-law replica recommendation, exported on
// /metrics for KEDA or an HPA (docs/DEPLOY.md, "Autoscaling"). It needs the
// catalog (alerting.catalog).
type ScalingConfig struct {
	Enabled        bool `yaml:"enabled"`
	scaling.Config `yaml:",inline"`
}

// NewDefaultScalingConfig returns the signals off, every 15 s over 5
// minutes once on.
func NewDefaultScalingConfig() ScalingConfig {
	return ScalingConfig{Config: scaling.NewDefaultConfig()}
}

// The scaling gauges, one series per model: names a KEDA prometheus
// trigger or a prometheus-adapter external rule uses as they are.
var (
	descScaleReplicas = prometheus.NewDesc("fleetwatch_scaling_recommended_replicas",
		"Replicas a model needs by Little's law: ceil(forecast rate x mean latency / per-replica concurrency), in steps, clamped to the catalog's min/max.", []string{"model"}, nil)
	descScaleRate = prometheus.NewDesc("fleetwatch_scaling_requests_per_second",
		"A model's request rate at the window's end (trend line over the scaling window).", []string{"model"}, nil)
	descScaleForecast = prometheus.NewDesc("fleetwatch_scaling_forecast_requests_per_second",
		"The rate the recommendation is for: the rate one load time ahead when rising, else the current rate.", []string{"model"}, nil)
	descScaleConcurrency = prometheus.NewDesc("fleetwatch_scaling_concurrency",
		"Little's L: requests in flight at the forecast rate (forecast rate x mean latency).", []string{"model"}, nil)
	descScaleP99 = prometheus.NewDesc("fleetwatch_scaling_latency_p99_seconds",
		"A model's p99 latency over the scaling window.", []string{"model"}, nil)
	descScaleMean = prometheus.NewDesc("fleetwatch_scaling_latency_mean_seconds",
		"A model's mean latency over the scaling window (Little's W).", []string{"model"}, nil)
	descScaleQueue = prometheus.NewDesc("fleetwatch_scaling_queue_depth",
		"Requests waiting in a model's servers (sum of the last fleetwatch_model_queue_depth of each server).", []string{"model"}, nil)
	descScaleSM = prometheus.NewDesc("fleetwatch_scaling_sm_active_ratio",
		"Mean DCGM_FI_PROF_SM_ACTIVE of the GPUs that served a model.", []string{"model"}, nil)
	descScaleGPUs = prometheus.NewDesc("fleetwatch_scaling_gpus",
		"GPUs that served a model in the scaling window.", []string{"model"}, nil)
	scalingDescs = []*prometheus.Desc{descScaleReplicas, descScaleRate, descScaleForecast, descScaleConcurrency, descScaleP99,
		descScaleMean, descScaleQueue, descScaleSM, descScaleGPUs}
)

// collectScaling exports the scaling detector's latest signals; unknown
// values (no queue metric, no SM activity, no requests for a p99) are
// left out rather than exported as NaN.
func (c collector) collectScaling(ch chan<- prometheus.Metric) {
	d := liveDetector[*scaling.Detector](c.a)
	if d == nil {
		return
	}
	for model, m := range d.Latest() {
		for _, g := range []struct {
			d *prometheus.Desc
			v float64
		}{{descScaleReplicas, float64(m.Replicas)}, {descScaleRate, m.RequestRate}, {descScaleForecast, m.ForecastRate},
			{descScaleConcurrency, m.Concurrency}, {descScaleP99, m.P99Latency}, {descScaleMean, m.MeanLatency},
			{descScaleQueue, m.QueueDepth}, {descScaleSM, m.SMActive}, {descScaleGPUs, float64(m.GPUs)}} {
			if !math.IsNaN(g.v) {
				ch <- prometheus.MustNewConstMetric(g.d, prometheus.GaugeValue, g.v, model)
			}
		}
	}
}
