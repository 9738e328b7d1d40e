package canary

import (
	"context"
	"fmt"
	"math"
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
	// MaxFeatures is the most numeric features per model whose drift is
	// measured (FeatureEdges); 0: no feature drift.
	MaxFeatures int
}

// DefaultOutcomeWindow is the Reader's default OutcomeWindow.
const DefaultOutcomeWindow = 2 * time.Minute

// NewReader returns a Reader on c's database, every outcome counting as
// engagement within DefaultOutcomeWindow, the drift of up to
// DefaultMaxFeatures features measured.
func NewReader(c *storage.Client) *Reader {
	return &Reader{client: c, OutcomeWindow: DefaultOutcomeWindow, MaxFeatures: DefaultMaxFeatures}
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

// Observe returns the observation of a canary started at start, as of now:
// every count read over [start, now).
func (r *Reader) Observe(ctx context.Context, model, canaryVersion, baselineVersion string, start, now time.Time) (Observation, error) {
	o := newObservation()
	o.Elapsed = now.Sub(start)
	if err := r.ObserveRequests(ctx, &o, model, canaryVersion, baselineVersion, start, now); err != nil {
		return Observation{}, err
	}
	if err := r.ObserveEngagement(ctx, &o, model, canaryVersion, baselineVersion, start, now); err != nil {
		return Observation{}, err
	}
	if err := r.ObserveAccuracy(ctx, &o, model, canaryVersion, baselineVersion, start, now); err != nil {
		return Observation{}, err
	}
	return o, nil
}

// ObserveRequests adds to o both versions' requests, errors and latency
// histogram over [from, to). o's histograms must not be nil.
func (r *Reader) ObserveRequests(ctx context.Context, o *Observation, model, canaryVersion, baselineVersion string, from, to time.Time) error {
	var res chsql.Result
	v, b, n, e := res.Str("v"), res.Int("b"), res.Int("n"), res.Int("e")
	sql := CountsSQL(r.client.Config().Database, model, canaryVersion, baselineVersion, from, to)
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
		return fmt.Errorf("canary counts for %s %s vs %s: %w", model, canaryVersion, baselineVersion, err)
	}
	return nil
}

// ObserveEngagement adds to o the engagement of both versions' requests
// in [from, to − OutcomeWindow), with their outcomes in [from, to):
// nothing while to − from is not past OutcomeWindow.
func (r *Reader) ObserveEngagement(ctx context.Context, o *Observation, model, canaryVersion, baselineVersion string, from, to time.Time) error {
	if to.Sub(from) <= r.OutcomeWindow {
		return nil
	}
	err := r.pairs(ctx, EngagementSQL(r.client.Config().Database, model, canaryVersion, baselineVersion, r.Outcome, from, to, r.OutcomeWindow), canaryVersion, o,
		func(c *Counts, n, k uint64) { c.Trials, c.Successes = c.Trials+n, c.Successes+k })
	if err != nil {
		return fmt.Errorf("canary engagement for %s %s vs %s: %w", model, canaryVersion, baselineVersion, err)
	}
	return nil
}

// ObserveAccuracy adds to o the delayed-label accuracy of both versions'
// requests in [from, to) whose labels arrived in [from, to).
func (r *Reader) ObserveAccuracy(ctx context.Context, o *Observation, model, canaryVersion, baselineVersion string, from, to time.Time) error {
	err := r.pairs(ctx, AccuracySQL(r.client.Config().Database, model, canaryVersion, baselineVersion, from, to), canaryVersion, o,
		func(c *Counts, n, k uint64) { c.Labelled, c.Correct = c.Labelled+n, c.Correct+k })
	if err != nil {
		return fmt.Errorf("canary accuracy for %s %s vs %s: %w", model, canaryVersion, baselineVersion, err)
	}
	return nil
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

// Prediction and feature drift per version (issue 20 item 1): both
// versions' numeric predictions, and each numeric feature, binned on the
// same edges over the same minutes. The edges are the baseline's deciles
// in the hour before the canary started (PredictionReference), so they
// are fixed for the canary's life and the same after an analyzer restart;
// a baseline with fewer than MinReferencePredictions finite values of a
// series (the prediction, a feature) then gets no bins for it, and the
// judge no drift line. Features are capped at Reader.MaxFeatures per
// model: those with the most finite baseline values in that hour.
const (
	PredictionReference     = time.Hour
	PredictionBins          = 10
	MinReferencePredictions = 100
)

// DefaultMaxFeatures is the Reader's default MaxFeatures: the numeric
// features per model whose drift a canary is judged on.
const DefaultMaxFeatures = 50

// TopCategories is how many of a categorical feature's baseline
// categories (the most frequent in the hour before the canary) get a bin
// of their own; the others share one more bin.
const TopCategories = PredictionBins - 1

// series is a value of inference_events binned per version for drift: per
// key (a feature's name; one constant key for the prediction) the
// baseline's deciles (numeric) or top categories are the bins.
type series struct {
	join  string // the ARRAY JOIN clause the key and value need, or ""
	key   string // the key's expression
	value string // the value's expression
	valid string // the condition on a value to count (finite, not empty)
}

var (
	predictionSeries = series{key: "''", value: "prediction", valid: "isFinite(prediction)"}
	featureSeries    = series{join: " ARRAY JOIN feature_names AS fname, feature_values AS fvalue", key: "fname", value: "fvalue", valid: "isFinite(fvalue)"}
	// The categorical features, and a classifier's predicted class as one
	// more under the name PredictionClassFeature: its drift per version is
	// judged, and named, with the features'.
	categorySeries = series{join: " ARRAY JOIN arrayConcat(cat_feature_names, [" + chsql.String(PredictionClassFeature) + "]) AS cname, " +
		"arrayConcat(cat_feature_values, [toString(prediction_class)]) AS cvalue", key: "cname", value: "cvalue", valid: "cvalue != ''"}
)

// PredictionClassFeature is the name under which a classifier's predicted
// class (inference_events.prediction_class) is binned and judged with the
// categorical features.
const PredictionClassFeature = "prediction_class"

// where is the condition on the series' valid values of model's versions
// in [start, end).
func (s series) where(model string, versions []string, start, end time.Time) string {
	return fmt.Sprintf("model = %s AND model_version IN %s AND status = 'ok' AND %s AND %s",
		chsql.String(model), chsql.In(versions), s.valid, chsql.Between("ts", start, end))
}

// keysSQL returns the query: the series' keys (k) with at least
// MinReferencePredictions finite baseline values (n) in the hour before
// start, most values first.
func (s series) keysSQL(database, model, baselineVersion string, start time.Time) string {
	return fmt.Sprintf("SELECT k, n FROM (SELECT toString(%s) AS k, count() AS n FROM %s%s WHERE %s GROUP BY k) WHERE n >= %d ORDER BY n DESC, k",
		s.key, chsql.Ident(database, "inference_events"), s.join, s.where(model, []string{baselineVersion}, start.Add(-PredictionReference), start),
		MinReferencePredictions)
}

// edgesSQL returns the query: per key (k; only keys when not nil) with at
// least MinReferencePredictions finite baseline values in the hour before
// start, its deciles (q, one row each, ascending).
func (s series) edgesSQL(database, model, baselineVersion string, keys []string, start time.Time) string {
	levels := make([]string, 0, PredictionBins-1)
	for i := 1; i < PredictionBins; i++ {
		levels = append(levels, chsql.Float(float64(i)/PredictionBins))
	}
	only := ""
	if keys != nil {
		only = fmt.Sprintf(" AND %s IN %s", s.key, chsql.In(keys))
	}
	return fmt.Sprintf("SELECT k, arrayJoin(qs) AS q FROM (SELECT toString(%s) AS k, quantilesExact(%s)(%s) AS qs, count() AS n FROM %s%s "+
		"WHERE %s%s GROUP BY k) WHERE n >= %d ORDER BY k, q",
		s.key, strings.Join(levels, ", "), s.value, chsql.Ident(database, "inference_events"), s.join,
		s.where(model, []string{baselineVersion}, start.Add(-PredictionReference), start), only, MinReferencePredictions)
}

// categoriesSQL returns the query: per key of keys (k), its
// TopCategories most frequent baseline values (c, most frequent first) in
// the hour before start.
func (s series) categoriesSQL(database, model, baselineVersion string, keys []string, start time.Time) string {
	return fmt.Sprintf("SELECT k, c FROM (SELECT toString(%s) AS k, toString(%s) AS c, count() AS n FROM %s%s WHERE %s AND %s IN %s GROUP BY k, c) "+
		"ORDER BY k, n DESC, c LIMIT %d BY k",
		s.key, s.value, chsql.Ident(database, "inference_events"), s.join,
		s.where(model, []string{baselineVersion}, start.Add(-PredictionReference), start), s.key, chsql.In(keys), TopCategories)
}

// countsSQL returns the query: per version (v), key (i: its 1-based
// position in keys) and bin (b, the expression bin on the key's i), the ok
// requests' valid values in [start, end) (n).
func (s series) countsSQL(database, model, canaryVersion, baselineVersion string, keys []string, bin string, start, end time.Time) string {
	return fmt.Sprintf("SELECT toString(model_version) AS v, indexOf(%s, toString(%s)) AS i, toUInt32(%s) AS b, "+
		"count() AS n FROM %s%s WHERE %s AND i > 0 GROUP BY v, i, b",
		chsql.Strings(keys), s.key, bin, chsql.Ident(database, "inference_events"), s.join,
		s.where(model, []string{canaryVersion, baselineVersion}, start, end))
}

// numericBin is the bin of the series' value on key i's edges: the first
// edge it is at or below, len(edges[i]) above them all. It counts the
// edges the value is above as a sum of comparisons, the k-th against the
// k-th edge of every key (+inf past a key's last: never above), picked
// by i from a constant array: arithmetic on columns, about 5× faster on
// ClickHouse 18.16 than counting over the key's edges with a lambda
// (arrayCount), which builds an array per row (docs/BENCHMARKS.md).
func (s series) numericBin(edges [][]float64) string {
	most := 0
	for _, e := range edges {
		most = max(most, len(e))
	}
	if most == 0 {
		return "0"
	}
	terms := make([]string, most)
	col := make([]float64, len(edges))
	for k := range most {
		for i, e := range edges {
			col[i] = math.Inf(1)
			if k < len(e) {
				col[i] = e[k]
			}
		}
		terms[k] = fmt.Sprintf("(%s > arrayElement(%s, i))", s.value, chsql.Floats(col))
	}
	return strings.Join(terms, " + ")
}

// categoryBin is the 1-based position of the series' value in key i's
// categories, 0 for any other value.
func (s series) categoryBin(cats [][]string) string {
	arrays := make([]string, len(cats))
	for i, c := range cats {
		arrays[i] = chsql.Strings(c)
	}
	return fmt.Sprintf("indexOf(arrayElement(CAST([%s] AS Array(Array(String))), i), toString(%s))", strings.Join(arrays, ", "), s.value)
}

// PredictionEdgesSQL returns the query: the baseline's prediction deciles
// (q, one row each, in order; k is empty) over [start −
// PredictionReference, start).
func PredictionEdgesSQL(database, model, baselineVersion string, start time.Time) string {
	return predictionSeries.edgesSQL(database, model, baselineVersion, nil, start)
}

// PredictionCountsSQL returns the query: per version (v) and bin (b: the
// first edge a prediction is at or below, len(edges) above them all), the
// ok requests with a finite prediction in [start, end) (n); i is 1.
func PredictionCountsSQL(database, model, canaryVersion, baselineVersion string, edges []float64, start, end time.Time) string {
	return predictionSeries.countsSQL(database, model, canaryVersion, baselineVersion, []string{""}, predictionSeries.numericBin([][]float64{edges}), start, end)
}

// FeatureKeysSQL returns the query: model's numeric features (k) with at
// least MinReferencePredictions finite baseline values (n) in the hour
// before start, most values first.
func FeatureKeysSQL(database, model, baselineVersion string, start time.Time) string {
	return featureSeries.keysSQL(database, model, baselineVersion, start)
}

// FeatureEdgesSQL returns the query: per feature of names (k), the
// baseline's deciles before start (q, one row each, ascending).
func FeatureEdgesSQL(database, model, baselineVersion string, names []string, start time.Time) string {
	return featureSeries.edgesSQL(database, model, baselineVersion, names, start)
}

// FeatureCountsSQL returns the query: per version (v), numeric feature (i:
// its 1-based position in fb.Names) and bin (b), the ok requests' finite
// values in [start, end) (n).
func FeatureCountsSQL(database, model, canaryVersion, baselineVersion string, fb *FeatureBins, start, end time.Time) string {
	return featureSeries.countsSQL(database, model, canaryVersion, baselineVersion, fb.Names[:fb.Numeric], featureSeries.numericBin(fb.Edges[:fb.Numeric]), start, end)
}

// CategoryKeysSQL returns the query: model's categorical features (k)
// with at least MinReferencePredictions non-empty baseline values (n) in
// the hour before start, most values first.
func CategoryKeysSQL(database, model, baselineVersion string, start time.Time) string {
	return categorySeries.keysSQL(database, model, baselineVersion, start)
}

// CategoriesSQL returns the query: per categorical feature of names (k),
// its TopCategories most frequent baseline values before start (c).
func CategoriesSQL(database, model, baselineVersion string, names []string, start time.Time) string {
	return categorySeries.categoriesSQL(database, model, baselineVersion, names, start)
}

// CategoryCountsSQL returns the query: per version (v), categorical
// feature (i: its 1-based position after fb.Numeric in fb.Names) and bin
// (b: the value's 1-based position in its categories, 0 for any other),
// the ok requests' non-empty values in [start, end) (n).
func CategoryCountsSQL(database, model, canaryVersion, baselineVersion string, fb *FeatureBins, start, end time.Time) string {
	return categorySeries.countsSQL(database, model, canaryVersion, baselineVersion, fb.Names[fb.Numeric:], categorySeries.categoryBin(fb.Categories[fb.Numeric:]), start, end)
}

// edges reads a series' bin edges per key: the distinct deciles,
// ascending, of each key that has enough baseline values.
func (r *Reader) edges(ctx context.Context, sql string) (map[string][]float64, error) {
	var res chsql.Result
	k, q := res.Str("k"), res.F64("q")
	out := map[string][]float64{}
	err := res.ForRows(ctx, r.client, sql, func(row int) {
		key, x := k.At(row), q.At(row)
		if e := out[key]; len(e) == 0 || x > e[len(e)-1] {
			out[key] = append(e, x)
		}
	})
	return out, err
}

// PredictionEdges returns a canary's prediction bin edges: the distinct
// baseline deciles before start, ascending; nil when the baseline had too
// few predictions (or none are numeric).
func (r *Reader) PredictionEdges(ctx context.Context, model, baselineVersion string, start time.Time) ([]float64, error) {
	edges, err := r.edges(ctx, PredictionEdgesSQL(r.client.Config().Database, model, baselineVersion, start))
	if err != nil {
		return nil, fmt.Errorf("prediction edges of %s %s: %w", model, baselineVersion, err)
	}
	return edges[""], nil
}

// FeatureEdges returns a canary's feature bins: the MaxFeatures features
// with the most baseline values in the hour before start (at least
// MinReferencePredictions each), numeric ones first, each numeric one with
// its distinct baseline deciles as edges, each categorical one with its
// TopCategories most frequent baseline values and one bin for the others;
// nil when there are none or MaxFeatures is 0.
func (r *Reader) FeatureEdges(ctx context.Context, model, baselineVersion string, start time.Time) (*FeatureBins, error) {
	if r.MaxFeatures <= 0 {
		return nil, nil
	}
	db := r.client.Config().Database
	fb := &FeatureBins{}
	keys := func(sql string) error {
		var res chsql.Result
		k := res.Str("k")
		return res.ForRows(ctx, r.client, sql, func(row int) {
			fb.Found++
			if len(fb.Names) < r.MaxFeatures {
				fb.Names = append(fb.Names, k.At(row))
			}
		})
	}
	if err := keys(FeatureKeysSQL(db, model, baselineVersion, start)); err != nil {
		return nil, fmt.Errorf("features of %s %s: %w", model, baselineVersion, err)
	}
	fb.Numeric = len(fb.Names)
	if err := keys(CategoryKeysSQL(db, model, baselineVersion, start)); err != nil {
		return nil, fmt.Errorf("categorical features of %s %s: %w", model, baselineVersion, err)
	}
	if len(fb.Names) == 0 {
		return nil, nil
	}
	fb.Edges, fb.Categories = make([][]float64, len(fb.Names)), make([][]string, len(fb.Names))
	if fb.Numeric > 0 {
		edges, err := r.edges(ctx, FeatureEdgesSQL(db, model, baselineVersion, fb.Names[:fb.Numeric], start))
		if err != nil {
			return nil, fmt.Errorf("feature edges of %s %s: %w", model, baselineVersion, err)
		}
		for i, name := range fb.Names[:fb.Numeric] {
			fb.Edges[i] = edges[name]
		}
	}
	if len(fb.Names) > fb.Numeric {
		var res chsql.Result
		k, c := res.Str("k"), res.Str("c")
		cats := map[string][]string{}
		err := res.ForRows(ctx, r.client, CategoriesSQL(db, model, baselineVersion, fb.Names[fb.Numeric:], start), func(row int) {
			cats[k.At(row)] = append(cats[k.At(row)], c.At(row))
		})
		if err != nil {
			return nil, fmt.Errorf("feature categories of %s %s: %w", model, baselineVersion, err)
		}
		for i, name := range fb.Names[fb.Numeric:] {
			fb.Categories[fb.Numeric+i] = cats[name]
		}
	}
	fb.Offsets = make([]int, len(fb.Names)+1)
	for i := range fb.Names {
		fb.Offsets[i+1] = fb.Offsets[i] + fb.bins(i)
	}
	return fb, nil
}

// binCounts runs a countsSQL query and hands each row to add: the
// version's histogram, the key's index (0-based) and bin, the count.
func (r *Reader) binCounts(ctx context.Context, sql string, o *Observation, canaryVersion string, hist func(c *Counts) []float64, add func(h []float64, i, b int, n float64)) error {
	var res chsql.Result
	v, i, b, n := res.Str("v"), res.Int("i"), res.Int("b"), res.Int("n")
	return res.ForRows(ctx, r.client, sql, func(row int) {
		c := &o.Baseline
		if v.At(row) == canaryVersion {
			c = &o.Canary
		}
		add(hist(c), int(i.At(row))-1, int(b.At(row)), float64(n.At(row)))
	})
}

// bins returns h when it has n bins, else n empty bins.
func bins(h []float64, n int) []float64 {
	if len(h) == n {
		return h
	}
	return make([]float64, n)
}

// ObservePredictions adds to o's prediction histograms (len(edges)+1 bins
// each, made when o has none of that size) the predictions over [start,
// end); with no edges it leaves them as they are.
func (r *Reader) ObservePredictions(ctx context.Context, o *Observation, model, canaryVersion, baselineVersion string, edges []float64, start, end time.Time) error {
	if len(edges) == 0 {
		return nil
	}
	o.Canary.Predictions, o.Baseline.Predictions = bins(o.Canary.Predictions, len(edges)+1), bins(o.Baseline.Predictions, len(edges)+1)
	err := r.binCounts(ctx, PredictionCountsSQL(r.client.Config().Database, model, canaryVersion, baselineVersion, edges, start, end), o, canaryVersion,
		func(c *Counts) []float64 { return c.Predictions },
		func(h []float64, _, b int, n float64) { h[min(max(b, 0), len(edges))] += n })
	if err != nil {
		return fmt.Errorf("canary predictions for %s %s vs %s: %w", model, canaryVersion, baselineVersion, err)
	}
	return nil
}

// ObserveFeatures sets o's feature bins to fb and adds to both versions'
// feature histograms (fb's layout, made when o has none of that size) the
// features over [start, end); with no fb it leaves them as they are.
func (r *Reader) ObserveFeatures(ctx context.Context, o *Observation, model, canaryVersion, baselineVersion string, fb *FeatureBins, start, end time.Time) error {
	if fb == nil || len(fb.Names) == 0 {
		return nil
	}
	o.Features = fb
	size := fb.Offsets[len(fb.Names)]
	o.Canary.Features, o.Baseline.Features = bins(o.Canary.Features, size), bins(o.Baseline.Features, size)
	db := r.client.Config().Database
	hist := func(c *Counts) []float64 { return c.Features }
	if fb.Numeric > 0 {
		err := r.binCounts(ctx, FeatureCountsSQL(db, model, canaryVersion, baselineVersion, fb, start, end), o, canaryVersion, hist,
			func(h []float64, i, b int, n float64) {
				if i >= 0 && i < fb.Numeric {
					h[fb.Offsets[i]+min(max(b, 0), fb.bins(i)-1)] += n
				}
			})
		if err != nil {
			return fmt.Errorf("canary features for %s %s vs %s: %w", model, canaryVersion, baselineVersion, err)
		}
	}
	if len(fb.Names) > fb.Numeric {
		err := r.binCounts(ctx, CategoryCountsSQL(db, model, canaryVersion, baselineVersion, fb, start, end), o, canaryVersion, hist,
			func(h []float64, i, b int, n float64) {
				if i += fb.Numeric; i >= fb.Numeric && i < len(fb.Names) {
					other := fb.bins(i) - 1
					if b <= 0 || b > other {
						b = other + 1
					}
					h[fb.Offsets[i]+b-1] += n
				}
			})
		if err != nil {
			return fmt.Errorf("canary categorical features for %s %s vs %s: %w", model, canaryVersion, baselineVersion, err)
		}
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
