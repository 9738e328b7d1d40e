package freshness_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/freshness"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

// testCatalog: pipeline p serves one feature of each type (and one realtime
// feature with a tighter SLO) to two models; legacy serves a feature whose
// emitter reports no update times.
const testCatalog = `components:
  - name: p
    type: feature_pipeline
    ownership: {team: feature-platform, oncall: feature-oncall}
    features:
      - {name: country, type: static}
      - {name: purchases_30d, type: slowly_changing}
      - {name: session_clicks, type: session}
      - {name: cart_value, type: realtime}
      - {name: bid, type: realtime, freshness_slo: 20s}
  - name: legacy
    type: feature_pipeline
    features: [{name: old_score, type: session}]
models:
  - model: {name: ranker, domain: recsys}
    dependencies: {upstream: [p, legacy]}
  - model: {name: retrieval, domain: recsys}
    dependencies: {upstream: [p]}
`

var end = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// event is one inference event at ts carrying every feature, with the
// given update times (Unix seconds) for those that report them.
func event(ts time.Time, model string, updated map[string]time.Time) *fleet.InferenceEvent {
	e := &fleet.InferenceEvent{Time: ts, Model: model, ModelVersion: "v1", RequestID: model + ts.Format(time.RFC3339), Status: "ok",
		FeatureNames: []string{"cart_value", "purchases_30d", "session_clicks", "bid"}, FeatureValues: []float64{1, 2, 3, 4},
		CatFeatureNames: []string{"country"}, CatFeatureValues: []string{"DE"}}
	if model == "ranker" {
		e.FeatureNames, e.FeatureValues = append(e.FeatureNames, "old_score"), append(e.FeatureValues, 0.5)
	}
	for _, n := range slices.Sorted(maps.Keys(updated)) {
		e.FeatureUpdateNames = append(e.FeatureUpdateNames, n)
		e.FeatureUpdateTimes = append(e.FeatureUpdateTimes, float64(updated[n].Unix()))
	}
	return e
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func write(t *testing.T, db *storage.Client, evs []*fleet.InferenceEvent) {
	t.Helper()
	var b storage.InferenceEventBlock
	for _, e := range evs {
		b.Append(e)
	}
	w, err := db.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(context.Background(), b.Block()); err != nil {
		t.Fatal(err)
	}
}

// breaches renders detections as "entity/feature measure" keys.
func breaches(t *testing.T, ds []fleet.Detection) []string {
	t.Helper()
	var out []string
	for _, d := range ds {
		var ev struct {
			Measure string `json:"measure"`
		}
		if err := json.Unmarshal([]byte(d.Evidence), &ev); err != nil {
			t.Fatal(err)
		}
		if d.Class != "freshness" || d.Severity != "error" || d.EntityType != "pipeline" || d.Model != "" || !(d.Value > d.Threshold) {
			t.Errorf("detection %+v", d)
		}
		out = append(out, d.Entity+"/"+d.Feature+" "+ev.Measure)
	}
	return out
}

// The documents' canonical silent failure: values keep being served every
// 10 s, so the newest event carrying each feature is never older than a
// window (the old measure said fresh), but the pipeline stopped updating
// cart_value: its staleness grows past the realtime SLO and it breaches.
// Each feature is judged against its own type's SLO; a feature without
// update times falls back to arrival age, named as such.
func TestStaleValuesStillServedBreach(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	cat, err := catalog.Parse([]byte(testCatalog))
	if err != nil {
		t.Fatal(err)
	}
	start := end.Add(-10 * time.Minute)
	stuck := end.Add(-5 * time.Minute) // cart_value's last update
	var evs []*fleet.InferenceEvent
	for ts := start; ts.Before(end); ts = ts.Add(10 * time.Second) {
		upd := map[string]time.Time{
			"country":        end.Add(-30 * time.Hour),               // static: 48h SLO, fresh
			"purchases_30d":  end.Add(-7 * time.Hour),                // slowly changing: 6h SLO, stale
			"session_clicks": ts.Add(-10 * time.Minute),              // session: 15m SLO, fresh
			"cart_value":     earlier(ts.Add(-2*time.Second), stuck), // realtime: stops updating
			"bid":            ts.Add(-30 * time.Second),              // realtime with a 20s override: stale
		}
		for _, m := range []string{"ranker", "retrieval"} {
			evs = append(evs, event(ts, m, upd))
		}
	}
	write(t, db, evs)

	d, err := freshness.NewDetector(freshness.NewDefaultConfig(), freshness.NewReader(db), cat)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Restore(ctx, fleet.Window{}); err != nil {
		t.Fatal(err)
	}
	eval := func(w fleet.Window) []string {
		t.Helper()
		ds, err := d.Evaluate(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		return breaches(t, ds)
	}
	// Before cart_value got stuck: only the features stale all along.
	early := fleet.Window{Start: stuck.Add(-time.Minute), End: stuck}
	if got, want := eval(early), []string{"p/bid update_time", "p/purchases_30d update_time"}; !slices.Equal(got, want) {
		t.Errorf("at %v: %v, want %v", early.End, got, want)
	}
	// The last window: cart_value still arrives every 10 s (arrival age
	// under 10 s) but was last updated 5 minutes ago.
	last := fleet.Window{Start: end.Add(-time.Minute), End: end}
	ns, err := freshness.ReadNewest(ctx, db, last.Start, last.End)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if n.Feature == "cart_value" && (last.End.Sub(n.Arrival) > 10*time.Second || n.Update != stuck) {
			t.Errorf("cart_value newest %+v: want arrivals within 10s and update %v", n, stuck)
		}
	}
	want := []string{"p/bid update_time", "p/cart_value update_time", "p/purchases_30d update_time"}
	if got := eval(last); !slices.Equal(got, want) {
		t.Errorf("at %v: %v, want %v", last.End, got, want)
	}

	// No more events at all: staleness keeps growing from what was seen;
	// legacy's feature, without update times, goes by arrival age.
	later := fleet.Window{Start: end.Add(20 * time.Minute), End: end.Add(21 * time.Minute)}
	ds, err := d.Evaluate(ctx, later)
	if err != nil {
		t.Fatal(err)
	}
	got := breaches(t, ds)
	want = []string{"legacy/old_score arrival_age", "p/bid update_time", "p/cart_value update_time", "p/purchases_30d update_time", "p/session_clicks update_time"}
	if !slices.Equal(got, want) {
		t.Errorf("20 minutes after the last event: %v, want %v", got, want)
	}
	for _, d := range ds {
		if d.Feature == "cart_value" && math.Abs(d.Value-26*60) > 1 {
			t.Errorf("cart_value staleness %v s, want 26 min", d.Value)
		}
		if d.Feature == "old_score" && !strings.Contains(d.Summary, "arrival age") {
			t.Errorf("fallback not named: %q", d.Summary)
		}
	}

	// A restarted detector recovers the last updates from the lookback.
	d2, err := freshness.NewDetector(freshness.NewDefaultConfig(), freshness.NewReader(db), cat)
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.Restore(ctx, fleet.Window{Start: later.Start.Add(-time.Minute), End: later.Start}); err != nil {
		t.Fatal(err)
	}
	ds2, err := d2.Evaluate(ctx, later)
	if err != nil {
		t.Fatal(err)
	}
	if got2 := breaches(t, ds2); !slices.Equal(got2, want) {
		t.Errorf("after a restart: %v, want %v", got2, want)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := freshness.NewDefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := freshness.NewDefaultConfig()
	bad.SLO = map[string]time.Duration{"static": time.Hour, "hourly": time.Hour}
	bad.Lookback = time.Minute
	bad.Severity = "page"
	err := bad.Validate()
	for _, want := range []string{"slo.slowly_changing", "slo.hourly: unknown", "lookback", "severity"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

// The on-call view lists every feature served in the last hour by
// staleness, with the pipeline and SLO of those in breach first.
func TestOncallFeatureFreshnessView(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)
	var evs []*fleet.InferenceEvent
	for ts := now.Add(-10 * time.Minute); ts.Before(now); ts = ts.Add(time.Minute) {
		e := event(ts, "retrieval", map[string]time.Time{"cart_value": now.Add(-2 * time.Hour), "bid": ts})
		evs = append(evs, e)
	}
	write(t, db, evs)
	cat, err := catalog.Parse([]byte(testCatalog))
	if err != nil {
		t.Fatal(err)
	}
	d, err := freshness.NewDetector(freshness.NewDefaultConfig(), freshness.NewReader(db), cat)
	if err != nil {
		t.Fatal(err)
	}
	w := fleet.Window{Start: now.Add(-time.Minute), End: now}
	ds, err := d.Evaluate(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	var b storage.DetectionBlock
	for i := range ds {
		b.Append(&ds[i], ds[i].Detector)
	}
	wr, err := db.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := wr.Write(ctx, b.Block()); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Conn().Query(ctx, "SELECT feature, measure, pipeline, slo_s, breached, staleness_s FROM oncall_feature_freshness")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var feature, measure, pipeline string
		var slo, stale float64
		var breached uint8
		if err := rows.Scan(&feature, &measure, &pipeline, &slo, &breached, &stale); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s %s %g %d", feature, measure, pipeline, slo, breached))
		if feature == "cart_value" && math.Abs(stale-7200) > 120 {
			t.Errorf("cart_value staleness %v s, want about 2h", stale)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// cart_value breaches realtime's 60s, bid (newest update a minute
	// old) its 20s override: breaches first, stalest first; the other
	// features report no update times (arrival age under a minute).
	want := "cart_value update_time p 60 1\nbid update_time p 20 1\ncountry arrival_age  0 0\npurchases_30d arrival_age  0 0\nsession_clicks arrival_age  0 0"
	if g := strings.Join(got, "\n"); g != want {
		t.Errorf("oncall_feature_freshness:\n%s\nwant\n%s", g, want)
	}
}

// The reader queries a window once: a second caller of the same window gets
// the first answer (it does not see rows written since), another window is
// queried anew.
func TestReaderQueriesEachWindowOnce(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	w := fleet.Window{Start: end.Add(-time.Minute), End: end}
	write(t, db, []*fleet.InferenceEvent{event(w.Start.Add(10*time.Second), "ranker", map[string]time.Time{"bid": w.Start})})
	r := freshness.NewReader(db)
	first, err := r.Window(ctx, w)
	if err != nil || len(first) == 0 {
		t.Fatalf("first read: %v, %d rows", err, len(first))
	}
	write(t, db, []*fleet.InferenceEvent{event(w.Start.Add(20*time.Second), "retrieval", nil)})
	again, err := r.Window(ctx, w)
	if err != nil || len(again) != len(first) {
		t.Errorf("same window read again: %v, %d rows; want the first answer's %d", err, len(again), len(first))
	}
	direct, err := freshness.ReadNewest(ctx, db, w.Start, w.End)
	if err != nil || len(direct) <= len(first) {
		t.Fatalf("the second event is not in ClickHouse: %v, %d rows", err, len(direct))
	}
	next := fleet.Window{Start: w.Start.Add(-time.Minute), End: w.End}
	if other, err := r.Window(ctx, next); err != nil || len(other) != len(direct) {
		t.Errorf("another window: %v, %d rows; want %d", err, len(other), len(direct))
	}
}
