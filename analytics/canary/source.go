package canary

import (
	"context"
	"fmt"
	"strings"
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
// unseen requests as samples).
//
// Over the same minutes it also reads each version's engagement (issue 20
// item 1): its ok requests old enough for their outcome to be known
// (trials) and those with a success in business_outcomes within
// OutcomeWindow of the request (successes); and its delayed-label
// accuracy: requests whose class label has arrived in delayed_labels
// (labelled) and those whose prediction_class equals it (correct). Both
// join by request id, so only kept (sampled) requests count, and a request
// takes its version from its inference event.
type Reader struct {
	client *storage.Client
	// OutcomeWindow is how long after a request its business outcome may
	// come: a request is a trial once that long has passed, and a success
	// counts when it comes within that long of the request. Every request
	// gets the same time to engage, so a version whose requests are younger
	// (a canary widening) is not judged on clicks still to come.
	OutcomeWindow time.Duration
	// Outcome, when set, is the only business_outcomes.outcome that
	// counts as engagement; empty: every outcome.
	Outcome string
}

// DefaultOutcomeWindow is the Reader's default OutcomeWindow.
const DefaultOutcomeWindow = 2 * time.Minute

// NewReader returns a Reader on c's database, every outcome counting as
// engagement within DefaultOutcomeWindow.
func NewReader(c *storage.Client) *Reader {
	return &Reader{client: c, OutcomeWindow: DefaultOutcomeWindow}
}

// CountsSQL returns the query: per version (v) and latency bucket (b, as
// BucketOf computes it), the rows (n) and the errors (e) of model in
// [start, end).
func CountsSQL(database, model, canaryVersion, baselineVersion string, start, end time.Time) string {
	bucket := fmt.Sprintf("toUInt32(if(latency_ms > %s, least(ceil(log(latency_ms / %s) / log(%s)), %d), 0))",
		chsql.Float(histMin), chsql.Float(histMin), chsql.Float(gamma), Buckets-1)
	return fmt.Sprintf("SELECT toString(model_version) AS v, %s AS b, count() AS n, countIf(status != 'ok') AS e FROM %s WHERE model = %s AND model_version IN %s AND %s GROUP BY v, b",
		bucket, chsql.Ident(database, "inference_events"), chsql.String(model), chsql.In([]string{canaryVersion, baselineVersion}), chsql.Between("ts", start, end))
}

// EngagementSQL returns the query: per version (v), the ok requests of
// model in [start, end − window) (n) and those with a success outcome
// (named outcome, or any when empty) in [start, end) no later than window
// after the request (k).
func EngagementSQL(database, model, canaryVersion, baselineVersion, outcome string, start, end time.Time, window time.Duration) string {
	only := ""
	if outcome != "" {
		only = " AND outcome = " + chsql.String(outcome)
	}
	return fmt.Sprintf("SELECT toString(model_version) AS v, count() AS n, countIf(hit = 1 AND ots <= rts + %d) AS k FROM "+
		"(SELECT model_version, request_id, ts AS rts FROM %s WHERE model = %s AND model_version IN %s AND status = 'ok' AND %s) AS r "+
		"ANY LEFT JOIN (SELECT request_id, toUInt8(1) AS hit, min(ts) AS ots FROM %s WHERE model = %s AND success = 1%s AND %s GROUP BY request_id) AS o "+
		"USING request_id GROUP BY v",
		int64(window/time.Second), chsql.Ident(database, "inference_events"), chsql.String(model), chsql.In([]string{canaryVersion, baselineVersion}),
		chsql.Between("ts", start, end.Add(-window)), chsql.Ident(database, "business_outcomes"), chsql.String(model), only, chsql.Between("ts", start, end))
}

// AccuracySQL returns the query: per version (v), the ok requests of
// model in [start, end) whose class label arrived in [start, end) (n) and
// those whose prediction_class is the label (k).
func AccuracySQL(database, model, canaryVersion, baselineVersion string, start, end time.Time) string {
	return fmt.Sprintf("SELECT toString(model_version) AS v, count() AS n, countIf(prediction_class = label) AS k FROM %s AS e "+
		"ANY INNER JOIN (SELECT request_id, label FROM %s WHERE model = %s AND label != '' AND %s) AS l USING request_id "+
		"WHERE model = %s AND model_version IN %s AND status = 'ok' AND %s GROUP BY v",
		chsql.Ident(database, "inference_events"), chsql.Ident(database, "delayed_labels"), chsql.String(model), chsql.Between("ts", start, end),
		chsql.String(model), chsql.In([]string{canaryVersion, baselineVersion}), chsql.Between("ts", start, end))
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
	db := r.client.Config().Database
	if now.Sub(start) > r.OutcomeWindow {
		err := r.pairs(ctx, EngagementSQL(db, model, canaryVersion, baselineVersion, r.Outcome, start, now, r.OutcomeWindow), canaryVersion, &o,
			func(c *Counts, n, k uint64) { c.Trials, c.Successes = c.Trials+n, c.Successes+k })
		if err != nil {
			return Observation{}, fmt.Errorf("canary engagement for %s %s vs %s: %w", model, canaryVersion, baselineVersion, err)
		}
	}
	err = r.pairs(ctx, AccuracySQL(db, model, canaryVersion, baselineVersion, start, now), canaryVersion, &o,
		func(c *Counts, n, k uint64) { c.Labelled, c.Correct = c.Labelled+n, c.Correct+k })
	if err != nil {
		return Observation{}, fmt.Errorf("canary accuracy for %s %s vs %s: %w", model, canaryVersion, baselineVersion, err)
	}
	return o, nil
}

// pairs runs a query returning per version v a count n and a part of it
// k, and hands each row to set with its version's counts.
func (r *Reader) pairs(ctx context.Context, sql, canaryVersion string, o *Observation, set func(c *Counts, n, k uint64)) error {
	var res chsql.Result
	v, n, k := res.Str("v"), res.Int("n"), res.Int("k")
	return res.ForRows(ctx, r.client, sql, func(row int) {
		c := &o.Baseline
		if v.At(row) == canaryVersion {
			c = &o.Canary
		}
		set(c, uint64(n.At(row)), uint64(k.At(row)))
	})
}

// Prediction drift per version (issue 20 item 1): both versions'
// numeric predictions binned on the same edges over the same minutes. The
// edges are the baseline's prediction deciles in the hour before the
// canary started (PredictionReference), so they are fixed for the
// canary's life and the same after an analyzer restart; a baseline with
// fewer than MinReferencePredictions finite predictions then gets none,
// and the judge no drift line.
const (
	PredictionReference     = time.Hour
	PredictionBins          = 10
	MinReferencePredictions = 100
)

// PredictionEdgesSQL returns the query: the baseline's prediction deciles
// (q, one row each, in order) over [start − PredictionReference, start).
func PredictionEdgesSQL(database, model, baselineVersion string, start time.Time) string {
	levels := make([]string, 0, PredictionBins-1)
	for i := 1; i < PredictionBins; i++ {
		levels = append(levels, chsql.Float(float64(i)/PredictionBins))
	}
	return fmt.Sprintf("SELECT arrayJoin(qs) AS q FROM (SELECT quantilesExact(%s)(prediction) AS qs, count() AS n FROM %s "+
		"WHERE model = %s AND model_version = %s AND status = 'ok' AND isFinite(prediction) AND %s) WHERE n >= %d",
		strings.Join(levels, ", "), chsql.Ident(database, "inference_events"), chsql.String(model), chsql.String(baselineVersion),
		chsql.Between("ts", start.Add(-PredictionReference), start), MinReferencePredictions)
}

// PredictionEdges returns a canary's prediction bin edges: the distinct
// baseline deciles before start, ascending; nil when the baseline had too
// few predictions (or none are numeric).
func (r *Reader) PredictionEdges(ctx context.Context, model, baselineVersion string, start time.Time) ([]float64, error) {
	var res chsql.Result
	q := res.F64("q")
	var edges []float64
	err := res.ForRows(ctx, r.client, PredictionEdgesSQL(r.client.Config().Database, model, baselineVersion, start), func(row int) {
		if x := q.At(row); len(edges) == 0 || x > edges[len(edges)-1] {
			edges = append(edges, x)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("prediction edges of %s %s: %w", model, baselineVersion, err)
	}
	return edges, nil
}

// PredictionCountsSQL returns the query: per version (v) and bin (b: the
// first edge a prediction is at or below, len(edges) above them all), the
// ok requests with a finite prediction in [start, end) (n).
func PredictionCountsSQL(database, model, canaryVersion, baselineVersion string, edges []float64, start, end time.Time) string {
	var bin strings.Builder
	bin.WriteString("multiIf(")
	for i, e := range edges {
		fmt.Fprintf(&bin, "prediction <= %s, %d, ", chsql.Float(e), i)
	}
	fmt.Fprintf(&bin, "%d)", len(edges))
	return fmt.Sprintf("SELECT toString(model_version) AS v, toUInt32(%s) AS b, count() AS n FROM %s "+
		"WHERE model = %s AND model_version IN %s AND status = 'ok' AND isFinite(prediction) AND %s GROUP BY v, b",
		bin.String(), chsql.Ident(database, "inference_events"), chsql.String(model), chsql.In([]string{canaryVersion, baselineVersion}), chsql.Between("ts", start, end))
}

// ObservePredictions sets o's prediction histograms (len(edges)+1 bins
// each) over [start, end); with no edges it leaves them nil.
func (r *Reader) ObservePredictions(ctx context.Context, o *Observation, model, canaryVersion, baselineVersion string, edges []float64, start, end time.Time) error {
	if len(edges) == 0 {
		return nil
	}
	o.Canary.Predictions, o.Baseline.Predictions = make([]float64, len(edges)+1), make([]float64, len(edges)+1)
	var res chsql.Result
	v, b, n := res.Str("v"), res.Int("b"), res.Int("n")
	err := res.ForRows(ctx, r.client, PredictionCountsSQL(r.client.Config().Database, model, canaryVersion, baselineVersion, edges, start, end), func(row int) {
		h := o.Baseline.Predictions
		if v.At(row) == canaryVersion {
			h = o.Canary.Predictions
		}
		h[min(max(int(b.At(row)), 0), len(edges))] += float64(n.At(row))
	})
	if err != nil {
		return fmt.Errorf("canary predictions for %s %s vs %s: %w", model, canaryVersion, baselineVersion, err)
	}
	return nil
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
