// Package freshness measures feature freshness as design document 003
// defines it ("Feature Store Operations", "Freshness SLOs"): the staleness
// of a feature is now minus the time its served value was last updated
// (t_current − t_feature_update), judged against the SLO of the feature's
// type, not one global threshold.
//
// Update times travel with the inference events (fleetwatch.feature_updated_at,
// docs/TELEMETRY.md; inference_events.feature_update_names/_ts). A feature
// whose emitter does not report them is judged by the age of the newest
// event carrying a value ("arrival age"), which is all the project measured
// before: it cannot see a stale value that is still being served, the
// documents' canonical silent failure, so detections name the measure used.
//
// The detector judges the features the catalog's feature pipelines list,
// per (pipeline, feature), and raises one detection (class freshness) per
// breach with the pipeline as its entity: alerting opens one incident per
// pipeline, owned by the pipeline's on-call, not one per consuming model.
package freshness

import (
	"context"
	"fmt"
	"github.com/fleetwatch/fleetwatch/fleet"
	"math"
	"sync"
	"time"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
)

// Measures: how a staleness was measured.
const (
	// MeasureUpdate is now − the newest reported update time.
	MeasureUpdate = "update_time"
	// MeasureArrival is now − the newest event carrying a value: the
	// fallback for features that never report update times.
	MeasureArrival = "arrival_age"
)

// Newest is what one model's events said about one feature over a span.
type Newest struct {
	Model, Feature string
	// Update is the newest update time reported (zero: none reported).
	Update time.Time
	// Arrival is the newest event carrying a value (zero: none).
	Arrival time.Time
}

// Staleness is now minus the update time when there is one, else minus the
// arrival time, with the measure used.
func (n Newest) Staleness(now time.Time) (time.Duration, string) {
	if !n.Update.IsZero() {
		return now.Sub(n.Update), MeasureUpdate
	}
	return now.Sub(n.Arrival), MeasureArrival
}

// NewestSQL finds, per model and feature, over [from, to): the newest
// reported update time (kind 'update'), and the newest event carrying a
// value, a finite number or a non-empty category (kind 'arrival'); newest is
// in Unix seconds. Only shard's models are read. The lambdas use only their
// own arguments, as ClickHouse 18.16 requires.
func NewestSQL(database string, from, to time.Time, shard fleet.Shard) string {
	tbl := chsql.Ident(database, "inference_events")
	filter := chsql.Between("ts", from, to) + " AND " + chsql.InShard("model", shard.Index, shard.Of)
	return fmt.Sprintf(`SELECT toString(model) AS m, f, 'update' AS kind, max(u) AS newest FROM %s
ARRAY JOIN feature_update_names AS f, feature_update_ts AS u
WHERE %s GROUP BY model, f
UNION ALL
SELECT toString(model) AS m, f, 'arrival' AS kind, toFloat64(toUInt32(max(ts))) AS newest FROM %s
ARRAY JOIN arrayFilter((n, v) -> isFinite(v), feature_names, feature_values) AS f
WHERE %s GROUP BY model, f
UNION ALL
SELECT toString(model) AS m, f, 'arrival' AS kind, toFloat64(toUInt32(max(ts))) AS newest FROM %s
ARRAY JOIN arrayFilter((n, v) -> v != '', cat_feature_names, cat_feature_values) AS f
WHERE %s GROUP BY model, f`, tbl, filter, tbl, filter, tbl, filter)
}

// ReadNewest runs NewestSQL and merges its rows per model and feature, in
// the order the features first appear.
func ReadNewest(ctx context.Context, c *storage.Client, from, to time.Time) ([]Newest, error) {
	return readNewest(ctx, c, from, to, fleet.Shard{})
}

func readNewest(ctx context.Context, c *storage.Client, from, to time.Time, shard fleet.Shard) ([]Newest, error) {
	var out []Newest
	at := map[[2]string]int{}
	var res chsql.Result
	model, feature, kind, newest := res.Str("m"), res.Str("f"), res.Str("kind"), res.F64("newest")
	err := res.ForRows(ctx, c, NewestSQL(c.Config().Database, from, to, shard), func(r int) {
		k := [2]string{model.At(r), feature.At(r)}
		i, ok := at[k]
		if !ok {
			i = len(out)
			at[k] = i
			out = append(out, Newest{Model: k[0], Feature: k[1]})
		}
		t := unixTime(newest.At(r))
		if kind.At(r) == "update" {
			out[i].Update = later(out[i].Update, t)
		} else {
			out[i].Arrival = later(out[i].Arrival, t)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("feature freshness: %w", err)
	}
	return out, nil
}

// Reader reads each window's newest times once for every detector that
// needs them (the freshness SLO detector and the SPC staleness chart run on
// the same one-minute windows): the last window's answer is kept and
// handed to the next caller of the same window.
type Reader struct {
	client *storage.Client
	shard  fleet.Shard
	mu     sync.Mutex
	w      fleet.Window
	ns     []Newest
}

// NewReader returns a reader over c.
func NewReader(c *storage.Client) *Reader { return &Reader{client: c} }

// NewShardReader returns a reader of the models of one shard over c (an
// analyzer's share of the SPC staleness charts).
func NewShardReader(c *storage.Client, shard fleet.Shard) *Reader {
	return &Reader{client: c, shard: shard}
}

// Window returns ReadNewest over [w.Start, w.End), queried once per window.
// The slice is shared: callers must not change it.
func (r *Reader) Window(ctx context.Context, w fleet.Window) ([]Newest, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ns != nil && r.w == w {
		return r.ns, nil
	}
	ns, err := readNewest(ctx, r.client, w.Start, w.End, r.shard)
	if err != nil {
		return nil, err
	}
	if ns == nil {
		ns = []Newest{}
	}
	r.w, r.ns = w, ns
	return ns, nil
}

// unixTime converts Unix seconds (with a fraction) to a time.
func unixTime(secs float64) time.Time {
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)).UTC()
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
