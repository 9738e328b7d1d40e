package spc

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/freshness"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
)

// Source produces one window's observations from ClickHouse. Sources push
// the aggregation into SQL: a window of millions of events comes back as a
// few rows per model or series.
type Source interface {
	Name() string
	Observe(ctx context.Context, w fleet.Window) ([]Observation, error)
}

// metricUnits are the units of the sources' metrics that have one, for
// observed and restored series alike.
var metricUnits = map[string]string{
	"latency_p50": "ms", "latency_p95": "ms", "latency_p99": "ms",
	"throughput": "req/s", "cost": "per window", "freshness": "s",
}

// windowFilter is the time filter of a window on column col.
func windowFilter(col string, w fleet.Window) string {
	return chsql.Between(col, w.Start, w.End)
}

// inShard is the condition on a model column of shard's models.
func inShard(col string, shard fleet.Shard) string { return chsql.InShard(col, shard.Index, shard.Of) }

// ModelMetricsSQL aggregates inference_events per model of shard over a
// window: sampled rows, requests (rows weighted by 1/sample_rate), weighted
// errors, exact latency percentiles, and serving GPUs.
func ModelMetricsSQL(database string, w fleet.Window, shard fleet.Shard) string {
	return fmt.Sprintf(`SELECT model, argMax(model_version, ts) AS version, count() AS rows,
    sum(1 / sample_rate) AS requests, sumIf(1 / sample_rate, status != 'ok') AS errors,
    quantilesExactIf(0.5, 0.95, 0.99)(latency_ms, isFinite(latency_ms)) AS latency,
    uniqExactIf(gpu_uuid, gpu_uuid != '') AS gpus
FROM %s
WHERE %s AND sample_rate > 0 AND %s
GROUP BY model
ORDER BY model`, chsql.Ident(database, "inference_events"), windowFilter("ts", w), inShard("model", shard))
}

// ModelMetrics charts, per model and window: latency p50/p95/p99, error
// rate, throughput, and cost (serving GPUs × window hours × price).
type ModelMetrics struct {
	client *storage.Client
	// PricePerGPUHour turns GPU time into cost; 0 leaves cost out.
	PricePerGPUHour float64
	// Shard limits the source to one shard's models (zero: all).
	Shard fleet.Shard
}

// NewModelMetrics returns the source.
func NewModelMetrics(c *storage.Client, pricePerGPUHour float64) *ModelMetrics {
	return &ModelMetrics{client: c, PricePerGPUHour: pricePerGPUHour}
}

// Name implements Source.
func (m *ModelMetrics) Name() string { return "model_metrics" }

// Observe implements Source.
func (m *ModelMetrics) Observe(ctx context.Context, w fleet.Window) ([]Observation, error) {
	var out []Observation
	secs := w.End.Sub(w.Start).Seconds()
	var res chsql.Result
	modelCol, versionCol, requestsCol, errorsCol := res.Str("model"), res.Str("version"), res.F64("requests"), res.F64("errors")
	latency, gpusCol := res.Floats("latency"), res.Int("gpus")
	err := res.ForRows(ctx, m.client, ModelMetricsSQL(m.client.Config().Database, w, m.Shard), func(r int) {
		model, version := modelCol.At(r), versionCol.At(r)
		requests, errs := requestsCol.At(r), errorsCol.At(r)
		lv := latency.At(r)
		gpus := float64(gpusCol.At(r))
		obs := func(metric, class string, v float64) {
			out = append(out, Observation{Series: Series{Key: "model=" + model + "/" + metric, Metric: metric, Class: class,
				EntityType: "model", Entity: model, Model: model, ModelVersion: version, Unit: metricUnits[metric]}, Value: v})
		}
		obs("latency_p50", "latency", lv[0])
		obs("latency_p95", "latency", lv[1])
		obs("latency_p99", "latency", lv[2])
		if requests > 0 {
			obs("error_rate", "error_rate", errs/requests)
		}
		obs("throughput", "throughput", requests/secs)
		if m.PricePerGPUHour > 0 && gpus > 0 {
			obs("cost", "cost", gpus*secs/3600*m.PricePerGPUHour)
		}
	})
	return out, err
}

// Freshness charts, per model and feature, the staleness at the end of
// each window: the window end minus the newest update time the window's
// events reported for the feature's value (analytics/freshness), or, for a
// feature whose emitter reports none, minus the newest event carrying it
// (arrival age). A value still served but no longer updated gets older
// window by window; so does a feature that stops arriving (AbsentAge).
type Freshness struct{ reader *freshness.Reader }

// NewFreshness returns the source, reading through r (shared with the
// freshness SLO detector, so a window is queried once).
func NewFreshness(r *freshness.Reader) *Freshness { return &Freshness{reader: r} }

// Name implements Source.
func (f *Freshness) Name() string { return "freshness" }

// Observe implements Source.
func (f *Freshness) Observe(ctx context.Context, w fleet.Window) ([]Observation, error) {
	ns, err := f.reader.Window(ctx, w)
	if err != nil {
		return nil, err
	}
	out := make([]Observation, 0, len(ns))
	for _, n := range ns {
		stale, _ := n.Staleness(w.End)
		model, feature := n.Model, n.Feature
		out = append(out, Observation{Series: Series{Key: "model=" + model + "/feature=" + feature + "/freshness", Metric: "freshness",
			Class: "freshness", EntityType: "feature", Entity: model + "/" + feature, Model: model, Feature: feature, Unit: metricUnits["freshness"]},
			Value: stale.Seconds()})
	}
	return out, nil
}

// LabelMetricsSQL joins a window's predictions with the labels that arrived
// by labelDeadline (the window end plus the label delay, so a replay sees
// the same labels) and returns, per model, labelled predictions, correct
// classes, and the mean absolute error of numeric labels, of shard's models.
func LabelMetricsSQL(database string, w fleet.Window, labelDeadline time.Time, shard fleet.Shard) string {
	return fmt.Sprintf(`SELECT model, count() AS labelled, countIf(label != '' AND prediction_class = label) AS correct,
    countIf(label != '') AS classified, avgIf(abs(prediction - label_value), isFinite(label_value) AND isFinite(prediction)) AS mae
FROM %s AS e
ANY INNER JOIN (SELECT request_id, label, label_value FROM %s WHERE %s) AS l USING request_id
WHERE %s AND status = 'ok' AND %s
GROUP BY model
ORDER BY model`, chsql.Ident(database, "inference_events"), chsql.Ident(database, "delayed_labels"),
		chsql.Between("ts", w.Start, labelDeadline), windowFilter("ts", w), inShard("model", shard))
}

// Labels charts delayed-label accuracy (classifiers) and mean absolute
// error (regressors) per model and window of prediction time. Its detector
// waits for the labels with a lateness allowance of LabelDelay.
type Labels struct {
	client     *storage.Client
	LabelDelay time.Duration
	// MinLabels is the fewest labelled predictions a window needs.
	MinLabels int
	// Shard limits the source to one shard's models (zero: all).
	Shard fleet.Shard
}

// NewLabels returns the source.
func NewLabels(c *storage.Client, delay time.Duration, minLabels int) *Labels {
	return &Labels{client: c, LabelDelay: delay, MinLabels: minLabels}
}

// Name implements Source.
func (l *Labels) Name() string { return "labels" }

// Observe implements Source.
func (l *Labels) Observe(ctx context.Context, w fleet.Window) ([]Observation, error) {
	var out []Observation
	sql := LabelMetricsSQL(l.client.Config().Database, w, w.End.Add(l.LabelDelay), l.Shard)
	var res chsql.Result
	modelCol, labelledCol, correct, classifiedCol, maeCol := res.Str("model"), res.Int("labelled"), res.Int("correct"), res.Int("classified"), res.F64("mae")
	err := res.ForRows(ctx, l.client, sql, func(r int) {
		model := modelCol.At(r)
		classified := float64(classifiedCol.At(r))
		labelled := float64(labelledCol.At(r))
		mk := func(metric string, v float64) Observation {
			return Observation{Series: Series{Key: "model=" + model + "/" + metric, Metric: metric, Class: "accuracy",
				EntityType: "model", Entity: model, Model: model}, Value: v}
		}
		if classified >= float64(l.MinLabels) {
			out = append(out, mk("accuracy", float64(correct.At(r))/classified))
		}
		if mae := maeCol.At(r); labelled-classified >= float64(l.MinLabels) && !math.IsNaN(mae) {
			out = append(out, mk("mae", mae))
		}
	})
	return out, err
}

// GPUMetricsSQL averages each GPU series of the given DCGM fields over a
// window from the one-minute rollup, with the GPU's identity and place.
func GPUMetricsSQL(database string, w fleet.Window, metrics []string) string {
	return fmt.Sprintf(`SELECT metric, series, v, uuid, model_name, datacenter, row, rack, node, cluster FROM (
    SELECT metric, series, sumMerge(sum) / countMerge(samples) AS v FROM %s
    WHERE metric IN %s AND %s GROUP BY metric, series) AS s
ANY LEFT JOIN (SELECT series, uuid, model_name, datacenter, row, rack, node, cluster FROM %s WHERE metric IN %s) AS g USING series
ORDER BY metric, series`, chsql.Ident(database, "gpu_samples_1m"), chsql.In(metrics), windowFilter("minute", w),
		chsql.Ident(database, "gpu_series"), chsql.In(metrics))
}

// GPUMetrics charts the window mean of each GPU series of some DCGM fields.
type GPUMetrics struct {
	client  *storage.Client
	Metrics []string
}

// NewGPUMetrics returns the source.
func NewGPUMetrics(c *storage.Client, metrics []string) *GPUMetrics {
	return &GPUMetrics{client: c, Metrics: metrics}
}

// Name implements Source.
func (g *GPUMetrics) Name() string { return "gpu_metrics" }

// Observe implements Source.
func (g *GPUMetrics) Observe(ctx context.Context, w fleet.Window) ([]Observation, error) {
	if len(g.Metrics) == 0 {
		return nil, nil
	}
	var out []Observation
	var res chsql.Result
	metricCol, seriesCol, v, uuidCol, modelName := res.Str("metric"), res.Int("series"), res.F64("v"), res.Str("uuid"), res.Str("model_name")
	dc, row, rack, node, cluster := res.Str("datacenter"), res.Str("row"), res.Str("rack"), res.Str("node"), res.Str("cluster")
	err := res.ForRows(ctx, g.client, GPUMetricsSQL(g.client.Config().Database, w, g.Metrics), func(r int) {
		metric, uuid := metricCol.At(r), uuidCol.At(r)
		series := uint64(seriesCol.At(r))
		entity := uuid
		if entity == "" {
			entity = fmt.Sprintf("series-%016x", series)
		}
		out = append(out, Observation{Series: Series{Key: fmt.Sprintf("gpu=%016x/%s", series, metric), Metric: metric,
			Class: GPUClass(metric), EntityType: "gpu", Entity: entity, GPUUUID: uuid, GPUModel: modelName.At(r),
			Topology: fleet.Topology{Datacenter: dc.At(r), Row: row.At(r), Rack: rack.At(r), Node: node.At(r), Cluster: cluster.At(r)}},
			Value: v.At(r)})
	})
	return out, err
}

// GPUClass maps a DCGM field to a detection class.
func GPUClass(metric string) string {
	for _, c := range []struct{ sub, class string }{
		{"TEMP", "thermal"}, {"POWER", "power"}, {"ECC", "ecc"}, {"NVLINK", "nvlink"}, {"PCIE", "pcie"},
		{"CLOCK", "clocks"}, {"FB_", "memory"}, {"UTIL", "utilization"}, {"ACTIVE", "utilization"},
	} {
		if strings.Contains(metric, c.sub) {
			return c.class
		}
	}
	return "gpu_metric"
}
