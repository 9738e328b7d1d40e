package canary

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
)

// Reader reads a canary's per-version counts from inference_events: for
// the canary and the baseline version of one model, the requests, errors
// (status other than ok) and the latency histogram since the canary
// started, over the same minutes. The counts are rows, the sampled
// requests: a test on them is a test on a random sample of the requests,
// which is what the judge needs (weighting by 1/sample_rate would count
// unseen requests as samples). Engagement and prediction histograms are
// not read yet: inference_events has no business-outcome column (issue
// 20, item 1).
type Reader struct {
	client *storage.Client
}

// NewReader returns a Reader on c's database.
func NewReader(c *storage.Client) *Reader { return &Reader{client: c} }

// CountsSQL returns the query: per version (v) and latency bucket (b, as
// BucketOf computes it), the rows (n) and the errors (e) of model in
// [start, end).
func CountsSQL(database, model, canaryVersion, baselineVersion string, start, end time.Time) string {
	bucket := fmt.Sprintf("toUInt32(if(latency_ms > %s, least(ceil(log(latency_ms / %s) / log(%s)), %d), 0))",
		chsql.Float(histMin), chsql.Float(histMin), chsql.Float(gamma), Buckets-1)
	return fmt.Sprintf("SELECT toString(model_version) AS v, %s AS b, count() AS n, countIf(status != 'ok') AS e FROM %s WHERE model = %s AND model_version IN %s AND %s GROUP BY v, b",
		bucket, chsql.Ident(database, "inference_events"), chsql.String(model), chsql.In([]string{canaryVersion, baselineVersion}), chsql.Between("ts", start, end))
}

// Observe returns the observation of a canary started at start, as of now.
func (r *Reader) Observe(ctx context.Context, model, canaryVersion, baselineVersion string, start, now time.Time) (Observation, error) {
	o := Observation{Elapsed: now.Sub(start), Canary: Counts{Latency: &Histogram{}}, Baseline: Counts{Latency: &Histogram{}}}
	var res chsql.Result
	v, b, n, e := res.Str("v"), res.Int("b"), res.Int("n"), res.Int("e")
	sql := CountsSQL(r.client.Config().Database, model, canaryVersion, baselineVersion, start, now)
	err := res.ForRows(ctx, r.client, sql, func(row int) {
		c := &o.Baseline
		if v.At(row) == canaryVersion {
			c = &o.Canary
		}
		rows := uint64(n.At(row))
		c.Requests += rows
		c.Errors += uint64(e.At(row))
		c.Latency.AddN(min(max(int(b.At(row)), 0), Buckets-1), rows)
	})
	if err != nil {
		return Observation{}, fmt.Errorf("canary counts for %s %s vs %s: %w", model, canaryVersion, baselineVersion, err)
	}
	return o, nil
}

// RequestRate returns model's requests per hour in [from, to), all
// versions together, each row standing for 1/sample_rate requests: the
// observed traffic a rollout plan sizes its stages on.
func (r *Reader) RequestRate(ctx context.Context, model string, from, to time.Time) (float64, error) {
	if !to.After(from) {
		return 0, fmt.Errorf("request rate of %s: empty range %v to %v", model, from, to)
	}
	var n float64
	sql := fmt.Sprintf("SELECT toFloat64(sum(1 / sample_rate)) FROM %s WHERE model = %s AND %s",
		chsql.Ident(r.client.Config().Database, "inference_events"), chsql.String(model), chsql.Between("ts", from, to))
	if err := r.client.QueryScalar(ctx, sql, &n); err != nil {
		return 0, fmt.Errorf("request rate of %s: %w", model, err)
	}
	return n / to.Sub(from).Hours(), nil
}
