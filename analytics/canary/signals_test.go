package canary

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// signalFleet writes, from t0 for dur, per second 30 baseline (v1) and 10
// canary (v2) requests of each model, 0.5% failing; a success outcome 5 s
// after every ok request that engages (ctr per version), an explicit miss
// after some others, a late success (after the outcome window) for
// others still; a class label 30 s after every ok request, right at the
// version's accuracy. want tallies what the Reader must find as of at.
type signalModel struct {
	name             string
	ctr, acc         [2]float64 // baseline, canary
	skew             float64    // the canary's predictions are the baseline's to this power
	shift            float64    // the canary's feature x is the baseline's + shift
	bots             bool       // half the canary's requests come from a device the baseline never saw
	trials, succ     [2]uint64  // as of at
	labelled, correc [2]uint64
}

func writeSignals(t *testing.T, db *storage.Client, t0 time.Time, dur time.Duration, at time.Time, models []*signalModel) {
	t.Helper()
	var ev storage.InferenceEventBlock
	var oc storage.BusinessOutcomeBlock
	var lb storage.DelayedLabelBlock
	var dep storage.ModelDeploymentBlock
	window := DefaultOutcomeWindow
	for _, m := range models {
		dep.Append(&storage.ModelDeployment{Time: t0, Model: m.name, ModelVersion: "v2", PreviousVersion: "v1", Change: "canary"})
		// The baseline's predictions in the 10 minutes before: the bins.
		for s := range 600 {
			ev.Append(&fleet.InferenceEvent{Time: t0.Add(time.Duration(s-600) * time.Second), Model: m.name, ModelVersion: "v1",
				RequestID: fmt.Sprint(m.name, "-pre-", s), LatencyMs: 5, Status: "ok", Prediction: float64(s%100) / 100,
				FeatureNames: []string{"x", "y"}, FeatureValues: features(s, 0, 0), CatFeatureNames: []string{"device"}, CatFeatureValues: []string{device(s, 0, false)}})
		}
		var cnt [2]int
		for s := range int(dur / time.Second) {
			ts := t0.Add(time.Duration(s) * time.Second)
			for k := range 40 {
				ver := 0
				if k < 10 {
					ver = 1
				}
				c := cnt[ver]
				cnt[ver]++
				id := fmt.Sprintf("%s-%d-%d", m.name, ver, c)
				status := "ok"
				if c%200 == 7 {
					status = "error"
				}
				ev.Append(&fleet.InferenceEvent{Time: ts, Model: m.name, ModelVersion: fmt.Sprint("v", ver+1), RequestID: id,
					LatencyMs: 5 + float64(c%7), Status: status, PredictionClass: "a", Prediction: prediction(c, ver, m.skew),
					FeatureNames: []string{"x", "y"}, FeatureValues: features(c, ver, m.shift), CatFeatureNames: []string{"device"}, CatFeatureValues: []string{device(c, ver, m.bots)}})
				if status != "ok" {
					continue
				}
				// Engagement: the first ctr of every 100 requests.
				engaged := float64(c%100) < m.ctr[ver]*100
				if ts.Before(at.Add(-window)) {
					m.trials[ver]++
					if engaged && ts.Add(5*time.Second).Before(at) {
						m.succ[ver]++
					}
				}
				switch {
				case engaged:
					oc.Append(&storage.BusinessOutcome{Time: ts.Add(5 * time.Second), Model: m.name, ModelVersion: fmt.Sprint("v", ver+1), RequestID: id, Outcome: "click", Success: true, Value: math.NaN()})
				case c%10 == 3: // an explicit miss
					oc.Append(&storage.BusinessOutcome{Time: ts.Add(5 * time.Second), Model: m.name, RequestID: id, Outcome: "click", Value: math.NaN()})
				case c%10 == 4: // too late to count
					oc.Append(&storage.BusinessOutcome{Time: ts.Add(window + time.Minute), Model: m.name, RequestID: id, Outcome: "click", Success: true, Value: math.NaN()})
				}
				// Accuracy: right on the first acc of every 100.
				right := float64((c/3)%100) < m.acc[ver]*100
				label := "a"
				if !right {
					label = "b"
				}
				lb.Append(&storage.DelayedLabel{Time: ts.Add(30 * time.Second), Model: m.name, RequestID: id, Label: label, LabelValue: math.NaN()})
				if ts.Add(30 * time.Second).Before(at) {
					m.labelled[ver]++
					if right {
						m.correc[ver]++
					}
				}
			}
		}
	}
	w, err := db.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []storage.Block{dep.Block(), ev.Block(), oc.Block(), lb.Block()} {
		if err := w.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

// prediction is request c's score: uniform on [0, 1) in steps of 0.01,
// the canary's raised to skew (1 when 0).
func prediction(c, ver int, skew float64) float64 {
	p := float64(c%100) / 100
	if ver == 1 && skew != 0 {
		p = math.Pow(p, skew)
	}
	return p
}

// features are request c's numeric features x and y, both uniform on
// [0, 1) in steps of 0.01, y missing (NaN) on every 50th request; the
// canary's x is shifted by shift.
func features(c, ver int, shift float64) []float64 {
	x, y := float64(c%100)/100, float64((c*37)%100)/100
	if ver == 1 {
		x += shift
	}
	if c%50 == 0 {
		y = math.NaN()
	}
	return []float64{x, y}
}

// device is request c's categorical feature: one of four devices in turn,
// missing (empty) on every 10th request; with bots, half the canary's
// requests come from "bot".
func device(c, ver int, bots bool) string {
	switch {
	case ver == 1 && bots && c%2 == 1:
		return "bot"
	case c%10 == 5:
		return ""
	}
	return [...]string{"ios", "android", "web", "tv"}[c%4]
}

// TestEngagementAndAccuracyPerVersion (issue 20 item 1): both versions'
// engagement and delayed-label accuracy read from a real ClickHouse over
// the same minutes and judged. The ranker's canary engages half as often
// and is failed on engagement with its evidence; the fraud model's canary
// predicts 80% right against 95% and is failed on accuracy; the search
// model's canary is as good as its baseline and passes once every rule's
// window is over.
func TestEngagementAndAccuracyPerVersion(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	// Recent, so that the on-call views (relative to now) show it.
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-30 * time.Minute)
	dur := 18 * time.Minute
	at := t0.Add(10 * time.Minute) // the Reader's exact counts are checked here
	ranker := &signalModel{name: "ranker", ctr: [2]float64{0.20, 0.10}, acc: [2]float64{0.95, 0.95}, skew: 3, shift: 0.5}
	fraud := &signalModel{name: "fraud", ctr: [2]float64{0.20, 0.20}, acc: [2]float64{0.95, 0.80}, bots: true}
	search := &signalModel{name: "search", ctr: [2]float64{0.20, 0.20}, acc: [2]float64{0.95, 0.95}}
	models := []*signalModel{ranker, fraud, search}
	writeSignals(t, db, t0, dur, at, models)

	r := NewReader(db)
	for _, m := range models {
		o, err := r.Observe(ctx, m.name, "v2", "v1", t0, at)
		if err != nil {
			t.Fatal(err)
		}
		got := [2]Counts{o.Baseline, o.Canary}
		for ver := range 2 {
			c := got[ver]
			if c.Trials != m.trials[ver] || c.Successes != m.succ[ver] || c.Labelled != m.labelled[ver] || c.Correct != m.correc[ver] {
				t.Errorf("%s v%d: engagement %d/%d accuracy %d/%d, want %d/%d and %d/%d", m.name, ver+1,
					c.Successes, c.Trials, c.Correct, c.Labelled, m.succ[ver], m.trials[ver], m.correc[ver], m.labelled[ver])
			}
		}
	}
	if rate := float64(ranker.succ[1]) / float64(ranker.trials[1]); !(rate > 0.08 && rate < 0.12) {
		t.Fatalf("the fixture is off: ranker canary engages %d/%d", ranker.succ[1], ranker.trials[1])
	}

	// The judge, through the detector, every 30 s. A 25% engagement drop
	// is the models' threshold, so that the good canary can pass within
	// the fixture's minutes; the ranker's canary drops 50%.
	cat, err := catalog.Parse([]byte(`model: {name: ranker}
canary: {engagement_drop: 0.25}
---
model: {name: fraud}
canary: {engagement_drop: 0.25}
---
model: {name: search}
canary: {engagement_drop: 0.25}
`))
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDetector(NewDefaultDetectorConfig(), db, cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := db.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	d.RecordTo(w)
	last := map[string]Verdict{}
	d.OnVerdict = func(_ context.Context, dep Deployment, v Verdict) {
		v.Evidence = append([]Evidence(nil), v.Evidence...)
		last[dep.Model] = v
	}
	dets := map[string]fleet.Detection{}
	for end := t0.Add(30 * time.Second); !end.After(t0.Add(dur)); end = end.Add(30 * time.Second) {
		out, err := d.Evaluate(ctx, fleet.Window{Start: end.Add(-30 * time.Second), End: end})
		if err != nil {
			t.Fatal(err)
		}
		for _, det := range out {
			if _, dup := dets[det.Model]; dup {
				t.Errorf("%s raised twice", det.Model)
			}
			dets[det.Model] = det
			t.Logf("%v: %s", end.Sub(t0), det.Summary)
		}
	}
	for _, c := range []struct {
		model, rule string
	}{{"ranker", RuleEngagement}, {"fraud", RuleAccuracy}} {
		det, ok := dets[c.model]
		if !ok {
			t.Errorf("%s: no detection; last verdict %s", c.model, last[c.model].Outcome)
			continue
		}
		if !strings.Contains(det.Summary, "failed "+c.rule) || !strings.Contains(det.Evidence, c.rule+" fail") {
			t.Errorf("%s: detection %s\n%s", c.model, det.Summary, det.Evidence)
		}
	}
	for _, e := range last["ranker"].Evidence {
		if e.Rule == RuleEngagement && !(e.Outcome == Fail && math.Abs(e.Effect+0.5) < 0.05 && e.Unit == UnitRelative) {
			t.Errorf("ranker engagement evidence: %s", e)
		}
	}
	// Prediction drift per version (item 1): evidence, not a trigger.
	psi := func(model string) float64 {
		for _, e := range last[model].Evidence {
			if e.Rule == RuleDrift && e.Outcome == Info {
				return e.Effect
			}
		}
		return math.NaN()
	}
	if p := psi("ranker"); !(p >= 0.25) {
		t.Errorf("ranker's prediction drift PSI %v, want >= 0.25 (its canary's scores are cubed)", p)
	}
	if p := psi("search"); !(p < 0.01) {
		t.Errorf("search's prediction drift PSI %v, want < 0.01", p)
	}
	// Feature drift per version (item 1): the ranker's canary has x
	// shifted, the search model's canary no feature shifted.
	featureDrift := func(v Verdict) Evidence {
		for _, e := range v.Evidence {
			if e.Rule == RuleFeatureDrift {
				return e
			}
		}
		return Evidence{Effect: math.NaN()}
	}
	if e := featureDrift(last["ranker"]); !(e.Effect >= 0.25 && e.Outcome == Info && e.Features[0].Name == "x" && e.Features[0].PSI == e.Effect &&
		e.Features[1].PSI < 0.1 && e.FeaturesJudged == 3 && e.FeaturesFound == 3 && strings.Contains(e.String(), "worst PSI x ")) {
		t.Errorf("ranker's feature drift, want x with PSI >= 0.25 as info: %s", e)
	}
	t.Logf("ranker: %s; fraud: %s; search: %s", featureDrift(last["ranker"]), featureDrift(last["fraud"]), featureDrift(last["search"]))
	if e := featureDrift(last["fraud"]); !(e.Effect >= 0.25 && e.Features[0].Name == "device" && e.Features[1].PSI < 0.1) {
		t.Errorf("fraud's feature drift, want device with PSI >= 0.25: %s", e)
	}
	if e := featureDrift(last["search"]); !(e.Effect < 0.1 && e.Outcome == Info && e.CanarySamples > 1000) {
		t.Errorf("search's feature drift, want PSI < 0.1 as info: %s", e)
	}
	if _, ok := dets["search"]; ok || last["search"].Outcome != Pass {
		for _, e := range last["search"].Evidence {
			t.Log(e)
		}
		t.Errorf("search: verdict %s, want pass without a detection", last["search"].Outcome)
	}
	var ruled []string
	for _, e := range last["search"].Evidence {
		if e.Rule == RuleEngagement || e.Rule == RuleAccuracy {
			ruled = append(ruled, e.Rule+" "+string(e.Outcome))
		}
	}
	if strings.Join(ruled, ", ") != "engagement pass, accuracy pass" {
		t.Errorf("search's engagement and accuracy: %v", ruled)
	}

	// A restarted detector bins on the same edges: same PSI.
	d2, err := NewDetector(NewDefaultDetectorConfig(), db, cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := d2.Judge(ctx, Deployment{Model: "ranker", Version: "v2", BaselineVersion: "v1", Started: t0}, t0.Add(dur))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range v2.Evidence {
		if e.Rule == RuleDrift && e.Effect != psi("ranker") {
			t.Errorf("after a restart PSI %v, before %v", e.Effect, psi("ranker"))
		}
	}
	if after, before := featureDrift(v2), featureDrift(last["ranker"]); after.Effect != before.Effect || after.Features != before.Features {
		t.Errorf("after a restart feature drift %s\nbefore %s", after, before)
	}

	// Capped at one feature: the one with the most baseline values (x; y
	// misses some), the cap stated.
	capped := NewReader(db)
	capped.MaxFeatures = 1
	fb, err := capped.FeatureEdges(ctx, "ranker", "v1", t0)
	if err != nil {
		t.Fatal(err)
	}
	if fb == nil || len(fb.Names) != 1 || fb.Names[0] != "x" || fb.Found != 3 || len(fb.Edges[0]) != PredictionBins-1 {
		t.Fatalf("capped feature bins %+v, want x alone of 3 with 9 edges", fb)
	}
	all, err := NewReader(db).FeatureEdges(ctx, "fraud", "v1", t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[x y device] 2 [ios web android tv]"; all == nil || fmt.Sprint(all.Names, " ", all.Numeric, " ", all.Categories[2]) != want || all.Offsets[3] != 25 {
		t.Errorf("feature bins %+v, want %s in 10 + 10 + 5 bins", all, want)
	}
	o, err := capped.Observe(ctx, "ranker", "v2", "v1", t0, at)
	if err != nil {
		t.Fatal(err)
	}
	if err := capped.ObserveFeatures(ctx, &o, "ranker", "v2", "v1", fb, t0, at); err != nil {
		t.Fatal(err)
	}
	j, err := New(NewDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if e := featureDrift(j.Judge(o)); e.Features[0].Name != "x" || e.Features[1].Name != "" || !strings.Contains(e.String(), "1 of 3 features compared (capped at max_features: 2 more") {
		t.Errorf("capped feature drift: %s", e)
	}

	// The on-call views, on the recorded verdicts.
	db0 := db.Config().Database
	var rows string
	q := "SELECT arrayStringConcat(groupArray(concat(model, ' ', version, '<', baseline_version, ' ', verdict, ' ', toString(ever_failed), ' [', arrayStringConcat(failed, ','), ']')), '; ') FROM (SELECT * FROM " + db0 + ".oncall_canary_verdicts ORDER BY model)"
	if err := db.QueryScalar(ctx, q, &rows); err != nil {
		t.Fatal(err)
	}
	if want := "fraud v2<v1 fail 1 [accuracy]; ranker v2<v1 fail 1 [engagement]; search v2<v1 pass 0 []"; rows != want {
		t.Errorf("oncall_canary_verdicts:\n got %s\nwant %s", rows, want)
	}
	var evidence string
	if err := db.QueryScalar(ctx, "SELECT evidence_lines FROM "+db0+".oncall_canary_verdicts WHERE model = 'ranker'", &evidence); err != nil || !strings.Contains(evidence, "engagement fail: canary 0.09") {
		t.Errorf("ranker's evidence (%v):\n%s", err, evidence)
	}
	var signals string
	q = "SELECT arrayStringConcat(groupArray(concat(signal, ' ', signal_outcome, ' ', toString(round(canary, 2)), '/', toString(round(baseline, 2)))), '; ') FROM (SELECT * FROM " + db0 + ".oncall_canary_signals WHERE model = 'ranker' AND signal IN ('engagement', 'accuracy', 'error_rate') ORDER BY signal)"
	if err := db.QueryScalar(ctx, q, &signals); err != nil {
		t.Fatal(err)
	}
	if want := "accuracy pass 0.95/0.95; engagement fail 0.1/0.2; error_rate pass 0.01/0.01"; signals != want {
		t.Errorf("oncall_canary_signals for the ranker:\n got %s\nwant %s", signals, want)
	}
	var first string
	if err := db.QueryScalar(ctx, "SELECT concat(model, ' ', signal) FROM "+db0+".oncall_canary_signals LIMIT 1", &first); err != nil || !strings.HasSuffix(first, "accuracy") && !strings.HasSuffix(first, "engagement") {
		t.Errorf("the first signal row is %q (%v), want a failed one", first, err)
	}
}

func TestDetectorConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		set  func(c *DetectorConfig)
		want string
	}{
		{"default", func(*DetectorConfig) {}, ""},
		{"no outcome window", func(c *DetectorConfig) { c.OutcomeWindow = 0 }, "outcome_window"},
		{"fractional outcome window", func(c *DetectorConfig) { c.OutcomeWindow = 1500 * time.Millisecond }, "outcome_window"},
		{"no interval", func(c *DetectorConfig) { c.Interval = 0 }, "interval"},
		{"negative max features", func(c *DetectorConfig) { c.MaxFeatures = -1 }, "max_features"},
		{"no feature drift", func(c *DetectorConfig) { c.MaxFeatures = 0 }, ""},
		{"negative lateness", func(c *DetectorConfig) { c.Lateness = -time.Second }, "lateness"},
		{"the engine's lateness", func(c *DetectorConfig) { c.Lateness = 0 }, ""},
		{"negative settle", func(c *DetectorConfig) { c.Settle = -time.Minute }, "settle"},
		{"nothing kept unsettled", func(c *DetectorConfig) { c.Settle = 0 }, ""},
	} {
		cfg := NewDefaultDetectorConfig()
		c.set(&cfg)
		err := cfg.Validate()
		if (c.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", c.name, err, c.want)
		}
	}
}

// TestPredictionClassDriftPerVersion: a classifier's predicted class is
// judged with the categorical features under PredictionClassFeature. The
// baseline predicts a, b, c, d in turn before and during the canary; the
// canary predicts d for half its requests: its feature_drift names
// prediction_class with PSI ≥ 0.25. A canary predicting like the baseline
// stays under 0.1.
func TestPredictionClassDriftPerVersion(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	classes := []string{"a", "b", "c", "d"}
	var ev storage.InferenceEventBlock
	for _, m := range []struct {
		name  string
		shift bool
	}{{"shifted", true}, {"same", false}} {
		for s := range 600 { // the baseline, the 10 minutes before
			ev.Append(&fleet.InferenceEvent{Time: t0.Add(time.Duration(s-600) * time.Second), Model: m.name, ModelVersion: "v1",
				RequestID: fmt.Sprint(m.name, "-pre-", s), LatencyMs: 5, Status: "ok", PredictionClass: classes[s%4]})
		}
		for s := range 300 { // 5 minutes, 3 baseline and 2 canary requests a second
			for k := range 5 {
				ver, class := "v1", classes[(s*5+k)%4]
				if k >= 3 {
					ver = "v2"
					if m.shift && (s+k)%2 == 0 {
						class = "d"
					}
				}
				ev.Append(&fleet.InferenceEvent{Time: t0.Add(time.Duration(s) * time.Second), Model: m.name, ModelVersion: ver,
					RequestID: fmt.Sprint(m.name, "-", s, "-", k), LatencyMs: 5, Status: "ok", PredictionClass: class})
			}
		}
	}
	chtest.Write(t, db, ev.Block())
	r := NewReader(db)
	j, err := New(NewDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	at := t0.Add(5 * time.Minute)
	for _, m := range []string{"shifted", "same"} {
		fb, err := r.FeatureEdges(ctx, m, "v1", t0)
		if err != nil {
			t.Fatal(err)
		}
		if fb == nil || len(fb.Names) != 1 || fb.Names[0] != PredictionClassFeature || len(fb.Categories[0]) != 4 {
			t.Fatalf("%s: feature bins %+v, want prediction_class alone with its 4 classes", m, fb)
		}
		o, err := r.Observe(ctx, m, "v2", "v1", t0, at)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.ObserveFeatures(ctx, &o, m, "v2", "v1", fb, t0, at); err != nil {
			t.Fatal(err)
		}
		var e Evidence
		for _, x := range j.Judge(o).Evidence {
			if x.Rule == RuleFeatureDrift {
				e = x
			}
		}
		if m == "shifted" && !(e.Effect >= 0.25 && e.Features[0].Name == PredictionClassFeature) {
			t.Errorf("shifted classes: feature drift %s, want prediction_class with PSI >= 0.25", e)
		}
		if m == "same" && !(e.Effect < 0.1 && e.Rule == RuleFeatureDrift) {
			t.Errorf("same classes: feature drift %s, want PSI < 0.1", e)
		}
		t.Logf("%s: %s", m, e)
	}
}

// TestLooksReadOnlyWhatHasNotSettled: the detector keeps the counts older
// than Settle and reads only the rows since, yet every look sees what a
// full read since the canary's start sees: requests, errors, latencies,
// engagement, accuracy, predictions and features, at every look of 15
// minutes, rows that land after a look included (they are younger than
// Settle).
func TestLooksReadOnlyWhatHasNotSettled(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	dur := 15 * time.Minute
	m := &signalModel{name: "ranker", ctr: [2]float64{0.20, 0.10}, acc: [2]float64{0.95, 0.80}, skew: 3, shift: 0.5, bots: true}
	writeSignals(t, db, t0, dur, t0.Add(dur), []*signalModel{m})
	d, err := NewDetector(NewDefaultDetectorConfig(), db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	dep := Deployment{Model: "ranker", Version: "v2", BaselineVersion: "v1", Started: t0}
	r, err := d.track(ctx, dep, t0.Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if r.features == nil || len(r.edges) == 0 {
		t.Fatalf("the fixture has no prediction or feature bins: %v %v", r.edges, r.features)
	}
	full := func(at time.Time) Observation {
		o, err := d.reader.Observe(ctx, "ranker", "v2", "v1", t0, at)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.reader.ObservePredictions(ctx, &o, "ranker", "v2", "v1", r.edges, t0, at); err != nil {
			t.Fatal(err)
		}
		if err := d.reader.ObserveFeatures(ctx, &o, "ranker", "v2", "v1", r.features, t0, at); err != nil {
			t.Fatal(err)
		}
		return o
	}
	late := false
	for at := t0.Add(10 * time.Second); !at.After(t0.Add(dur)); at = at.Add(10 * time.Second) {
		if !late && at.Sub(t0) > 10*time.Minute {
			// Rows that land after the last look, 30 s older than it.
			late = true
			var ev storage.InferenceEventBlock
			for k := range 50 {
				ev.Append(&fleet.InferenceEvent{Time: at.Add(-40 * time.Second), Model: "ranker", ModelVersion: "v2", RequestID: fmt.Sprint("late-", k),
					LatencyMs: 900, Status: "error", Prediction: 0.99, FeatureNames: []string{"x", "y"}, FeatureValues: []float64{5, 5}})
			}
			chtest.Write(t, db, ev.Block())
		}
		got, err := d.observe(ctx, dep, r, at)
		if err != nil {
			t.Fatal(err)
		}
		want := full(at)
		for i, pair := range [][2]*Counts{{&got.Canary, &want.Canary}, {&got.Baseline, &want.Baseline}} {
			g, w := pair[0], pair[1]
			if g.Requests != w.Requests || g.Errors != w.Errors || g.Trials != w.Trials || g.Successes != w.Successes ||
				g.Labelled != w.Labelled || g.Correct != w.Correct || g.Latency.Count() != w.Latency.Count() ||
				g.Latency.Quantile(0.99) != w.Latency.Quantile(0.99) || !slices.Equal(g.Predictions, w.Predictions) || !slices.Equal(g.Features, w.Features) {
				t.Fatalf("look at %v, version %d: incremental %+v\nfull read %+v", at.Sub(t0), 2-i, *g, *w)
			}
		}
		if got.Elapsed != at.Sub(t0) {
			t.Fatalf("elapsed %v at %v", got.Elapsed, at.Sub(t0))
		}
	}
	if want := t0.Add(dur - d.cfg.Settle).Truncate(time.Minute); !r.settledAt.Equal(want) {
		t.Errorf("settled up to %v, want %v", r.settledAt.Sub(t0), want.Sub(t0))
	}
}
