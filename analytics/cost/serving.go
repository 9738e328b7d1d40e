package cost

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Serving is one model's serving efficiency over a period, from the
// metrics its servers report (docs/TELEMETRY.md, "Model servers"): the
// tokens generated, the mean batch executed against the largest allowed,
// and cache hits against lookups. A quantity no server of the model
// reported is NaN.
type Serving struct {
	Model string
	// Seconds is the period's length.
	Seconds float64
	// Tokens, CacheHits and CacheLookups are counter increases over the
	// period, summed over the model's servers.
	Tokens, CacheHits, CacheLookups float64
	// BatchSize and MaxBatchSize are means of the servers' gauges.
	BatchSize, MaxBatchSize float64
}

// TokensPerSecond is the model's generation rate over the period.
func (s Serving) TokensPerSecond() float64 { return known(s.Tokens, s.Seconds) }

// BatchEfficiency is the mean batch executed ÷ the largest allowed.
func (s Serving) BatchEfficiency() float64 { return known(s.BatchSize, s.MaxBatchSize) }

// CacheHitRatio is hits ÷ lookups.
func (s Serving) CacheHitRatio() float64 { return known(s.CacheHits, s.CacheLookups) }

// CostPerMillionTokens is cost ÷ the tokens generated, per million.
func (s Serving) CostPerMillionTokens(cost float64) float64 { return known(cost*1e6, s.Tokens) }

// known is a / b, NaN when either is unknown or b is not positive.
func known(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b <= 0 {
		return math.NaN()
	}
	return a / b
}

// servingMetrics are the metrics Serving reads; counters are read as
// their increase.
var servingMetrics = []string{telemetry.ModelTokens, telemetry.ModelCacheHits, telemetry.ModelCacheLookups,
	telemetry.ModelBatchSize, telemetry.ModelMaxBatchSize}

// ServingSQL returns the query of Serving's inputs in [from, to): per model
// (the series' model label) and metric, the sum over series of each
// counter's increase — a fall (a restarted server) counts from the new
// value, as Prometheus' increase does — and the mean of each gauge.
func ServingSQL(database string, from, to time.Time) string {
	return fmt.Sprintf(`SELECT m, metric, sum(inc) AS inc, sum(total) / sum(n) AS mean FROM (
    SELECT series, metric, count() AS n, sum(value) AS total,
        arraySort((v, t) -> t, groupArray(value), groupArray(ts)) AS vs,
        arraySum(arrayMap((d, v) -> if(d >= 0, d, v), arrayDifference(vs), vs)) AS inc
    FROM %[1]s WHERE metric IN %[2]s AND %[3]s GROUP BY series, metric)
ANY INNER JOIN (SELECT series, any(label_values[indexOf(label_keys, 'model')]) AS m FROM %[4]s
    WHERE metric IN %[2]s GROUP BY series) USING series
WHERE m != ''
GROUP BY m, metric
ORDER BY m, metric`, chsql.Ident(database, "gpu_samples"), chsql.In(servingMetrics), chsql.Between("ts", from, to),
		chsql.Ident(database, "gpu_series"))
}

// Serving reads each model's serving efficiency in [from, to); a model
// none of whose servers reports these metrics is absent.
func (s *Store) Serving(ctx context.Context, from, to time.Time) (map[string]Serving, error) {
	var res chsql.Result
	m, metric, inc, mean := res.Str("m"), res.Str("metric"), res.F64("inc"), res.F64("mean")
	nan := math.NaN()
	out := map[string]Serving{}
	err := res.ForRows(ctx, s.client, ServingSQL(s.client.Config().Database, from, to), func(r int) {
		sv, ok := out[m.At(r)]
		if !ok {
			sv = Serving{Model: m.At(r), Seconds: to.Sub(from).Seconds(), Tokens: nan, CacheHits: nan, CacheLookups: nan, BatchSize: nan, MaxBatchSize: nan}
		}
		switch metric.At(r) {
		case telemetry.ModelTokens:
			sv.Tokens = inc.At(r)
		case telemetry.ModelCacheHits:
			sv.CacheHits = inc.At(r)
		case telemetry.ModelCacheLookups:
			sv.CacheLookups = inc.At(r)
		case telemetry.ModelBatchSize:
			sv.BatchSize = mean.At(r)
		case telemetry.ModelMaxBatchSize:
			sv.MaxBatchSize = mean.At(r)
		}
		out[m.At(r)] = sv
	})
	if err != nil {
		return nil, fmt.Errorf("serving efficiency: %w", err)
	}
	return out, nil
}
