package scaling

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Reader reads models' Signals from ClickHouse: rates and latencies from
// inference_events (each row standing for 1/sample_rate requests), SM
// activity from gpu_samples of the GPUs in those events, queue depth from
// fleetwatch_model_queue_depth series labelled with the model.
type Reader struct {
	client *storage.Client
}

// NewReader returns a Reader on c's database.
func NewReader(c *storage.Client) *Reader { return &Reader{client: c} }

// RateSQL returns per model and minute before end (k = 0 is the last
// full minute) the requests (w, weighted), the latency sum (lat_sum,
// weighted, ms) and the rows (n), over [end-window, end).
func RateSQL(db string, models []string, end time.Time, window time.Duration) string {
	return fmt.Sprintf(`SELECT toString(model) AS m, toInt64(intDiv(toUInt32(%[1]s) - toUInt32(ts) - 1, 60)) AS k,
    toFloat64(sum(1 / sample_rate)) AS w, toFloat64(sum(latency_ms / sample_rate)) AS lat_sum, toInt64(count()) AS n
FROM %[2]s WHERE model IN %[3]s AND %[4]s GROUP BY m, k`,
		chsql.Time(end), chsql.Ident(db, "inference_events"), chsql.In(models), chsql.Between("ts", end.Add(-window), end))
}

// LatencySQL returns per model the p99 latency (ms) of the rows and the
// number of distinct GPUs that served it, over [end-window, end).
func LatencySQL(db string, models []string, end time.Time, window time.Duration) string {
	return fmt.Sprintf(`SELECT toString(model) AS m, toFloat64(quantileExact(0.99)(latency_ms)) AS p99,
    toInt64(uniqExactIf(gpu_uuid, gpu_uuid != '')) AS gpus
FROM %s WHERE model IN %s AND %s GROUP BY m`,
		chsql.Ident(db, "inference_events"), chsql.In(models), chsql.Between("ts", end.Add(-window), end))
}

// SMActiveSQL returns per model the mean DCGM_FI_PROF_SM_ACTIVE over
// [end-window, end) of the GPUs that served it then.
func SMActiveSQL(db string, models []string, end time.Time, window time.Duration) string {
	between := chsql.Between("ts", end.Add(-window), end)
	return fmt.Sprintf(`SELECT toString(m) AS m, toFloat64(avg(value)) AS sm FROM (
    SELECT uuid, value FROM %[1]s
    ANY INNER JOIN (SELECT series, any(uuid) AS uuid FROM %[2]s WHERE metric = %[3]s GROUP BY series) USING series
    WHERE metric = %[3]s AND %[4]s)
ALL INNER JOIN (SELECT DISTINCT model AS m, toString(gpu_uuid) AS uuid FROM %[5]s
    WHERE model IN %[6]s AND gpu_uuid != '' AND %[4]s) USING uuid
GROUP BY m`, chsql.Ident(db, "gpu_samples"), chsql.Ident(db, "gpu_series"), chsql.String(telemetry.SMActive), between,
		chsql.Ident(db, "inference_events"), chsql.In(models))
}

// QueueSQL returns per model the sum over its fleetwatch_model_queue_depth
// series of each series' last value in [end-window, end).
func QueueSQL(db string, models []string, end time.Time, window time.Duration) string {
	return fmt.Sprintf(`SELECT m, toFloat64(sum(v)) AS q FROM (
    SELECT series, argMax(value, ts) AS v FROM %[1]s WHERE metric = %[2]s AND %[3]s GROUP BY series)
ANY INNER JOIN (SELECT series, any(label_values[indexOf(label_keys, 'model')]) AS m FROM %[4]s
    WHERE metric = %[2]s GROUP BY series) USING series
WHERE m IN %[5]s GROUP BY m`, chsql.Ident(db, "gpu_samples"), chsql.String(telemetry.ModelQueueDepth),
		chsql.Between("ts", end.Add(-window), end), chsql.Ident(db, "gpu_series"), chsql.In(models))
}

// Read returns the Signals of each model with requests in [end-window,
// end); window is a whole number of minutes.
func (r *Reader) Read(ctx context.Context, models []string, end time.Time, window time.Duration) (map[string]Signals, error) {
	if len(models) == 0 {
		return map[string]Signals{}, nil
	}
	db := r.client.Config().Database
	minutes := int(window / time.Minute)
	type acc struct {
		perMin       []float64
		latSum, reqs float64
		rows         int
	}
	accs := map[string]*acc{}
	var res chsql.Result
	m, k, w, lat, n := res.Str("m"), res.Int("k"), res.F64("w"), res.F64("lat_sum"), res.Int("n")
	err := res.ForRows(ctx, r.client, RateSQL(db, models, end, window), func(row int) {
		a := accs[m.At(row)]
		if a == nil {
			a = &acc{perMin: make([]float64, minutes)}
			accs[m.At(row)] = a
		}
		if i := int(k.At(row)); i >= 0 && i < minutes {
			a.perMin[i] += w.At(row)
		}
		a.reqs += w.At(row)
		a.latSum += lat.At(row)
		a.rows += int(n.At(row))
	})
	if err != nil {
		return nil, fmt.Errorf("scaling: request rates: %w", err)
	}
	out := make(map[string]Signals, len(accs))
	for model, a := range accs {
		rate, slope := trend(a.perMin)
		s := idle()
		s.RequestRate, s.RateSlope, s.Requests = rate, slope, a.rows
		if a.reqs > 0 {
			s.MeanLatency = a.latSum / a.reqs / 1000
		}
		out[model] = s
	}
	var lr chsql.Result
	lm, p99, gpus := lr.Str("m"), lr.F64("p99"), lr.Int("gpus")
	if err := lr.ForRows(ctx, r.client, LatencySQL(db, models, end, window), func(row int) {
		if s, ok := out[lm.At(row)]; ok {
			s.P99Latency, s.GPUs = p99.At(row)/1000, int(gpus.At(row))
			out[lm.At(row)] = s
		}
	}); err != nil {
		return nil, fmt.Errorf("scaling: latency: %w", err)
	}
	var sr chsql.Result
	sm, smv := sr.Str("m"), sr.F64("sm")
	if err := sr.ForRows(ctx, r.client, SMActiveSQL(db, models, end, window), func(row int) {
		if s, ok := out[sm.At(row)]; ok {
			s.SMActive = smv.At(row)
			out[sm.At(row)] = s
		}
	}); err != nil {
		return nil, fmt.Errorf("scaling: SM activity: %w", err)
	}
	var qr chsql.Result
	qm, qv := qr.Str("m"), qr.F64("q")
	if err := qr.ForRows(ctx, r.client, QueueSQL(db, models, end, window), func(row int) {
		s, ok := out[qm.At(row)]
		if !ok {
			s = idle()
		}
		s.QueueDepth = qv.At(row)
		out[qm.At(row)] = s
	}); err != nil {
		return nil, fmt.Errorf("scaling: queue depth: %w", err)
	}
	return out, nil
}

// trend fits a least-squares line to requests per minute, perMin[0] being
// the last minute, and returns its value at the window's end and its
// slope, both per second. With one minute the rate is that minute's mean
// and the slope 0. The rate is never negative.
func trend(perMin []float64) (rate, slope float64) {
	n := float64(len(perMin))
	if n == 0 {
		return 0, 0
	}
	// x is the minute's centre in seconds before the end, negated: the
	// last minute is at x = -30.
	var sx, sy, sxx, sxy float64
	for i, c := range perMin {
		x, y := -(float64(i)+0.5)*60, c/60
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	mx, my := sx/n, sy/n
	if v := sxx/n - mx*mx; v > 0 {
		slope = (sxy/n - mx*my) / v
	}
	// The line at x = 0 (the window's end).
	return math.Max(my-slope*mx, 0), slope
}

// idle is the Signals of a model without requests: no rate, no latency,
// nothing known of its queue or GPUs.
func idle() Signals {
	nan := math.NaN()
	return Signals{QueueDepth: nan, SMActive: nan, P99Latency: nan}
}
