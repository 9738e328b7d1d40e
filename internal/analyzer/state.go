package analyzer

import (
	"context"
	"fmt"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/storage"
)

// The analyzer's results as Prometheus series, so teams can chart and alert
// on them with the Prometheus and Alertmanager they already run.
var (
	descPSI = prometheus.NewDesc("fleetwatch_drift_psi",
		"Latest population stability index per model version and feature (@prediction for outputs).",
		[]string{"model", "model_version", "feature"}, nil)
	descPValue = prometheus.NewDesc("fleetwatch_drift_p_value",
		"p-value of no shift for the latest drift test, given its sample sizes.",
		[]string{"model", "model_version", "feature"}, nil)
	descBand = prometheus.NewDesc("fleetwatch_drift_band",
		"1 for the latest PSI band of each feature: stable (< 0.1), investigate (< 0.25) or action.",
		[]string{"model", "model_version", "feature", "band"}, nil)
	descSPCValue = prometheus.NewDesc("fleetwatch_spc_value",
		"Latest value of each control-charted series.", []string{"detector", "metric", "entity"}, nil)
	descSPCZ = prometheus.NewDesc("fleetwatch_spc_z",
		"Latest value of each charted series in baseline sigmas from its baseline mean.", []string{"detector", "metric", "entity"}, nil)
	descSPCOut = prometheus.NewDesc("fleetwatch_spc_out_of_control_windows",
		"Consecutive windows the series has fired a control rule (0 = in control).", []string{"detector", "metric", "entity"}, nil)
	descIncidents = prometheus.NewDesc("fleetwatch_incidents_open",
		"Open (paged or acknowledged) incidents by level, class and severity.", []string{"level", "class", "severity"}, nil)
	descStateErrors = prometheus.NewDesc("fleetwatch_analyzer_state_query_errors_total",
		"Failed reads of drift_scores and spc_state for /metrics.", nil, nil)
)

type driftRow struct {
	model, version, feature, band string
	psi, pValue                   float64
}

type spcRow struct {
	detector, metric, entity string
	value, z                 float64
	outRun                   uint32
}

// stateCache reads the latest drift scores and SPC state from ClickHouse,
// at most once per refresh interval however often /metrics is scraped.
type stateCache struct {
	client   *storage.Client
	lookback time.Duration
	refresh  time.Duration

	mu     sync.Mutex
	at     time.Time
	drift  []driftRow
	spc    []spcRow
	errors uint64
}

func newStateCache(c *storage.Client, lookback time.Duration) *stateCache {
	return &stateCache{client: c, lookback: lookback, refresh: 15 * time.Second}
}

// get returns the cached rows, reading them again when they are older than
// the refresh interval. On a failed read it keeps serving the last rows.
func (s *stateCache) get(ctx context.Context) ([]driftRow, []spcRow, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.at) < s.refresh {
		return s.drift, s.spc, s.errors
	}
	s.at = time.Now()
	d, err := s.readDrift(ctx)
	if err == nil {
		s.drift = d
	} else {
		s.errors++
	}
	p, err := s.readSPC(ctx)
	if err == nil {
		s.spc = p
	} else {
		s.errors++
	}
	return s.drift, s.spc, s.errors
}

func (s *stateCache) readDrift(ctx context.Context) ([]driftRow, error) {
	q := fmt.Sprintf(`SELECT toString(model) AS model, toString(model_version) AS version, toString(feature) AS feature,
		argMax(psi, ts) AS psi, argMax(p_value, ts) AS p, toString(argMax(band, ts)) AS band
		FROM %s WHERE ts >= now() - %d
		GROUP BY model, model_version, feature`, chsql.Ident(s.client.Config().Database, "drift_scores"), int64(s.lookback.Seconds()))
	var out []driftRow
	var res chsql.Result
	model, version, feature, psi, p, band := res.Str("model"), res.Str("version"), res.Str("feature"), res.F64("psi"), res.F64("p"), res.Str("band")
	err := res.ForRows(ctx, s.client, q, func(r int) {
		out = append(out, driftRow{model: model.At(r), version: version.At(r), feature: feature.At(r), psi: psi.At(r), pValue: p.At(r), band: band.At(r)})
	})
	if err != nil {
		return nil, fmt.Errorf("read drift_scores: %w", err)
	}
	return out, nil
}

func (s *stateCache) readSPC(ctx context.Context) ([]spcRow, error) {
	q := fmt.Sprintf(`SELECT toString(detector) AS detector, toString(metric) AS metric, toString(entity) AS entity,
		argMax(value, ts) AS value, argMax(mean, ts) AS mean, argMax(sigma, ts) AS sigma, argMax(phase, ts) AS phase,
		argMax(out_run, ts) AS out_run
		FROM %s WHERE ts >= now() - %d
		GROUP BY detector, series, metric, entity`, chsql.Ident(s.client.Config().Database, "spc_state"), int64(s.lookback.Seconds()))
	var out []spcRow
	var res chsql.Result
	detector, metric, entity, value := res.Str("detector"), res.Str("metric"), res.Str("entity"), res.F64("value")
	mean, sigma, phase, outRun := res.F64("mean"), res.F64("sigma"), res.Int("phase"), res.Int("out_run")
	err := res.ForRows(ctx, s.client, q, func(r int) {
		if phase.At(r) == 0 {
			return // still collecting its baseline: nothing to chart yet
		}
		row := spcRow{detector: detector.At(r), metric: metric.At(r), entity: entity.At(r), value: value.At(r), outRun: uint32(outRun.At(r))}
		if sd := sigma.At(r); sd > 0 {
			row.z = (row.value - mean.At(r)) / sd
		}
		out = append(out, row)
	})
	if err != nil {
		return nil, fmt.Errorf("read spc_state: %w", err)
	}
	return out, nil
}

// collectState emits the drift, SPC and incident series. When analyzers
// share the fleet only the alerting owner does, so that Prometheus gets
// one copy of them.
func (c collector) collectState(ch chan<- prometheus.Metric) {
	st := c.a.alerting()
	if c.a.share != nil && st == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	drift, spc, errs := c.a.state.get(ctx)
	ch <- prometheus.MustNewConstMetric(descStateErrors, prometheus.CounterValue, float64(errs))
	for _, r := range drift {
		ch <- prometheus.MustNewConstMetric(descPSI, prometheus.GaugeValue, r.psi, r.model, r.version, r.feature)
		ch <- prometheus.MustNewConstMetric(descPValue, prometheus.GaugeValue, r.pValue, r.model, r.version, r.feature)
		ch <- prometheus.MustNewConstMetric(descBand, prometheus.GaugeValue, 1, r.model, r.version, r.feature, r.band)
	}
	for _, r := range spc {
		ch <- prometheus.MustNewConstMetric(descSPCValue, prometheus.GaugeValue, r.value, r.detector, r.metric, r.entity)
		ch <- prometheus.MustNewConstMetric(descSPCZ, prometheus.GaugeValue, r.z, r.detector, r.metric, r.entity)
		ch <- prometheus.MustNewConstMetric(descSPCOut, prometheus.GaugeValue, float64(r.outRun), r.detector, r.metric, r.entity)
	}
	if st != nil {
		open := map[[3]string]int{}
		for _, inc := range st.manager.Incidents() {
			if inc.Status == incident.StatusOpen || inc.Status == incident.StatusAcknowledged {
				open[[3]string{string(inc.Level), inc.Class, inc.Severity}]++
			}
		}
		for k, n := range open {
			ch <- prometheus.MustNewConstMetric(descIncidents, prometheus.GaugeValue, float64(n), k[0], k[1], k[2])
		}
	}
}
