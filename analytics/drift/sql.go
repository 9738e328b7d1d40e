package drift

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/lib/profile"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
)

// The SQL the drift detector runs. Every statement runs on ClickHouse 18.16
// and on current releases (storage/chdb/analytics_test.go runs them there):
// no window functions, no roundDown, and lambdas that use only their own
// arguments. Aggregation that shrinks the data happens in ClickHouse: a
// window of millions of feature values comes back as one row per feature.
//
// Numeric features and the numeric output are unrolled together with
// ARRAY JOIN arrayPushBack(feature_names, '@prediction') AS n,
// arrayPushBack(feature_values, prediction) AS v, and likewise the
// categorical ones with the predicted class.

var (
	numericJoin     = "ARRAY JOIN arrayPushBack(feature_names, " + chsql.String(profile.PredictionFeature) + ") AS n, arrayPushBack(feature_values, prediction) AS v"
	categoricalJoin = "ARRAY JOIN arrayPushBack(cat_feature_names, " + chsql.String(profile.PredictionClassFeature) + ") AS n, arrayPushBack(cat_feature_values, prediction_class) AS v"
)

func versionFilter(model, version string, w fleet.Window) string {
	return fmt.Sprintf("model = %s AND model_version = %s AND %s",
		chsql.String(model), chsql.String(version), chsql.Between("ts", w.Start, w.End))
}

// ActiveVersionsSQL lists the model versions of shard's models with events
// in a window.
func ActiveVersionsSQL(database string, w fleet.Window, shard fleet.Shard) string {
	return fmt.Sprintf("SELECT model, model_version, count() AS events FROM %s WHERE %s AND %s GROUP BY model, model_version ORDER BY model, model_version",
		chsql.Ident(database, "inference_events"), chsql.Between("ts", w.Start, w.End), inShard(shard))
}

// inShard is the condition on the model column of shard's models.
func inShard(shard fleet.Shard) string { return chsql.InShard("model", shard.Index, shard.Of) }

// DeploymentTimeSQL finds when a model version was deployed (1970-01-01
// when there is no marker).
func DeploymentTimeSQL(database, model, version string) string {
	return fmt.Sprintf("SELECT min(ts) FROM %s WHERE model = %s AND model_version = %s AND change IN ('deploy', 'canary', 'promote', 'rollback')",
		chsql.Ident(database, "model_deployments"), chsql.String(model), chsql.String(version))
}

// FirstSeenSQL finds a version's first event in [since, before), for
// versions deployed without a marker.
func FirstSeenSQL(database, model, version string, since, before time.Time) string {
	return fmt.Sprintf("SELECT min(ts) FROM %s WHERE %s", chsql.Ident(database, "inference_events"),
		versionFilter(model, version, fleet.Window{Start: since, End: before}))
}

// NumericQuantilesSQL returns, per numeric feature (and @prediction) of a
// model version in the reference window, the finite values, their exact
// quantiles at levels (ClickHouse's quantileExact: the value at position
// floor(level·n) of the sorted values) and their maximum.
func NumericQuantilesSQL(database, model, version string, w fleet.Window, levels []float64) string {
	lv := make([]string, len(levels))
	for i, l := range levels {
		lv[i] = chsql.Float(l)
	}
	if len(lv) == 0 {
		lv = []string{"0.5"}
	}
	return fmt.Sprintf(`SELECT n, countIf(isFinite(v)) AS finite, quantilesExactIf(%s)(v, isFinite(v)) AS q, maxIf(v, isFinite(v)) AS top
FROM %s
%s
WHERE %s
GROUP BY n
ORDER BY n`, strings.Join(lv, ", "), chsql.Ident(database, "inference_events"), numericJoin, versionFilter(model, version, w))
}

// CategoryCountsSQL returns, per categorical feature (and
// @prediction_class) of a model version, its topK+1 most frequent values
// with their counts (the empty value, missing, may be among them), ties by
// value.
func CategoryCountsSQL(database, model, version string, w fleet.Window, topK int) string {
	return fmt.Sprintf(`SELECT n, v, count() AS c
FROM %s
%s
WHERE %s
GROUP BY n, v
ORDER BY n, c DESC, v
LIMIT %d BY n`, chsql.Ident(database, "inference_events"), categoricalJoin, versionFilter(model, version, w), topK+1)
}

// NumericCountsSQL bins a window's numeric values of one model version
// into the given profiles' bins. For the feature with index fi (1-based, in
// profile order) it returns the rows, the missing values (NaN, ±Inf), the
// +Inf values, and for each edge k the values >= edge k. Each row looks up
// its feature's edges once with transform() (padded with inf to the longest
// profile); +Inf values are subtracted back out in Go. Of the forms
// measured on both ClickHouse generations (countIf per edge with array
// indexing, a sum of comparisons grouped by bin, multiIf, arrayCount) this
// was the fastest (docs/BENCHMARKS.md).
func NumericCountsSQL(database, model, version string, w fleet.Window, profiles []*profile.Profile) string {
	names := make([]string, len(profiles))
	maxEdges := 0
	for i, p := range profiles {
		names[i] = p.Feature
		maxEdges = max(maxEdges, len(p.Edges))
	}
	ids := ordinals(len(names))
	var lookups, ge []string
	for k := 0; k < maxEdges; k++ {
		col := make([]float64, len(profiles))
		for i, p := range profiles {
			col[i] = inf
			if k < len(p.Edges) {
				col[i] = p.Edges[k]
			}
		}
		lookups = append(lookups, fmt.Sprintf("transform(fi, %s, %s, inf) AS e%d", ids, chsql.Floats(col), k))
		ge = append(ge, fmt.Sprintf("countIf(v >= e%d) AS ge%d", k, k))
	}
	join := func(s []string, sep string) string {
		if len(s) == 0 {
			return ""
		}
		return sep + strings.Join(s, sep)
	}
	return fmt.Sprintf(`SELECT fi, count() AS rows, countIf(NOT isFinite(v)) AS missing, countIf(v = inf) AS posinf%s
FROM (
    SELECT transform(n, %s, %s, 0) AS fi, v%s
    FROM %s
    %s
    WHERE %s
)
WHERE fi > 0
GROUP BY fi
ORDER BY fi`, join(ge, ",\n    "), chsql.Strings(names), ids, join(lookups, ",\n        "),
		chsql.Ident(database, "inference_events"), numericJoin, versionFilter(model, version, w))
}

// CategoricalCountsSQL counts a window's categorical values of one model
// version per profile bin: ci is the 1-based category index, 0 for any
// other value, -1 for missing ("").
func CategoricalCountsSQL(database, model, version string, w fleet.Window, profiles []*profile.Profile) string {
	names := make([]string, len(profiles))
	cats := make([]string, len(profiles))
	for i, p := range profiles {
		names[i] = p.Feature
		c := p.Categories
		if len(c) == 0 {
			c = []string{""} // keeps the literal's type Array(Array(String)); "" never matches
		}
		cats[i] = chsql.Strings(c)
	}
	return fmt.Sprintf(`SELECT fi, ci, count() AS c
FROM %s
%s
WHERE %s
GROUP BY transform(n, %s, %s, 0) AS fi, if(v = '', toInt64(-1), toInt64(indexOf([%s][fi], v))) AS ci
HAVING fi > 0
ORDER BY fi, ci`, chsql.Ident(database, "inference_events"), categoricalJoin, versionFilter(model, version, w),
		chsql.Strings(names), ordinals(len(names)), strings.Join(cats, ", "))
}

var inf = math.Inf(1)

// PrebinnedSQL sums the ingest-time counts of drift_bins over a window
// that starts and ends on a minute: per model version, feature, profile
// fingerprint and bin (-1: the events binned), of shard's models.
func PrebinnedSQL(database string, w fleet.Window, shard fleet.Shard) string {
	return fmt.Sprintf(`SELECT model, model_version, feature, profile, bin, sum(count) AS n
FROM %s
WHERE %s AND %s
GROUP BY model, model_version, feature, profile, bin
ORDER BY model, model_version, feature, profile, bin`, chsql.Ident(database, "drift_bins"), chsql.Between("ts", w.Start, w.End), inShard(shard))
}

// CUSUMStateSQL restores the CUSUM of each profile of shard's models as of
// the window ending at ts, from scores written within memory before it.
func CUSUMStateSQL(database string, ts time.Time, memory time.Duration, shard fleet.Shard) string {
	return fmt.Sprintf(`SELECT model, model_version, feature, argMax(cusum, ts) AS s, argMax(cusum_run, ts) AS run, argMax(cusum_excess, ts) AS excess
FROM %s WHERE ts <= %s AND ts > %s AND %s GROUP BY model, model_version, feature`,
		chsql.Ident(database, "drift_scores"), chsql.Time(ts), chsql.Time(ts.Add(-memory)), inShard(shard))
}

func ordinals(n int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(i))
	}
	b.WriteByte(']')
	return b.String()
}
