package scaling

import (
	"context"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

var end = time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)

// WriteLoad writes five minutes before end: model ranker at 10, 12, 14,
// 16 and 18 requests/s (oldest first), latencies alternating 20 and 60
// ms, on GPU-a and GPU-b; model sampled at one row a second kept at
// sample_rate 0.25 (4 requests/s), 10 ms; SM activity of GPU-a 0.6, GPU-b
// 0.8 and GPU-c (no model) 0.1; ranker's two servers' queues ending at 3
// and 4, another model's at 50.
func writeLoad(t *testing.T, db *storage.Client) {
	t.Helper()
	var ev storage.InferenceEventBlock
	start := end.Add(-5 * time.Minute)
	id := 0
	for j := range 5 {
		rate := 10 + 2*j
		for s := range 60 {
			ts := start.Add(time.Duration(j*60+s) * time.Second)
			for k := range rate {
				id++
				lat, gpu := 20.0, "GPU-a"
				if id%2 == 0 {
					lat, gpu = 60, "GPU-b"
				}
				ev.Append(&fleet.InferenceEvent{Time: ts, Model: "ranker", ModelVersion: "v1", RequestID: fmt.Sprint(id, "-", k), LatencyMs: lat, Status: "ok", SampleRate: 1, GPUUUID: gpu})
			}
			ev.Append(&fleet.InferenceEvent{Time: ts, Model: "sampled", ModelVersion: "v1", RequestID: fmt.Sprint("s", j*60+s), LatencyMs: 10, Status: "ok", SampleRate: 0.25})
		}
	}
	// Outside the window: not counted.
	ev.Append(&fleet.InferenceEvent{Time: end, Model: "ranker", ModelVersion: "v1", RequestID: "late", LatencyMs: 9000, Status: "ok", SampleRate: 1, GPUUUID: "GPU-c"})
	var series storage.GPUSeriesBlock
	var samples storage.GPUSampleBlock
	for i, g := range []struct {
		uuid string
		v    float64
	}{{"GPU-a", 0.6}, {"GPU-b", 0.8}, {"GPU-c", 0.1}} {
		id := uint64(100 + i)
		series.Append(&storage.GPUSeries{Series: id, Metric: telemetry.SMActive, GPU: fleet.GPUIdentity{UUID: g.uuid}, FirstSeen: start, LastSeen: start})
		for s := 0; s < 300; s += 10 {
			samples.Append(&storage.GPUSample{Time: start.Add(time.Duration(s) * time.Second), Metric: telemetry.SMActive, Series: id, Value: g.v})
		}
	}
	for i, q := range []struct {
		model       string
		first, last float64
	}{{"ranker", 100, 3}, {"ranker", 0, 4}, {"other", 1, 50}} {
		id := uint64(200 + i)
		series.Append(&storage.GPUSeries{Series: id, Metric: telemetry.ModelQueueDepth, Labels: fleet.Labels{Keys: []string{"model"}, Values: []string{q.model}},
			FirstSeen: start, LastSeen: start})
		samples.Append(&storage.GPUSample{Time: start.Add(time.Minute), Metric: telemetry.ModelQueueDepth, Series: id, Value: q.first})
		samples.Append(&storage.GPUSample{Time: end.Add(-10 * time.Second), Metric: telemetry.ModelQueueDepth, Series: id, Value: q.last})
	}
	w, err := db.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []storage.Block{ev.Block(), series.Block(), samples.Block()} {
		if err := w.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

// TestReaderOnClickHouse checks every signal against the hand-computed
// load of writeLoad: ranker's trend line is 1/30 requests/s per second,
// ending at 19 requests/s (the last minute's 18 at its centre, 30 s
// before the end, + 30/30); mean latency 40 ms, p99 60 ms.
func TestReaderOnClickHouse(t *testing.T) {
	db := chtest.NewDB(t)
	writeLoad(t, db)
	got, err := NewReader(db).Read(context.Background(), []string{"ranker", "sampled", "absent"}, end, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r := got["ranker"]
	if !near(r.RequestRate, 19) || !near(r.RateSlope, 1.0/30) || !near(r.MeanLatency, 0.04) || !near(r.P99Latency, 0.06) ||
		r.GPUs != 2 || !near(r.SMActive, 0.7) || !near(r.QueueDepth, 7) || r.Requests != 60*(10+12+14+16+18) {
		t.Errorf("ranker %+v", r)
	}
	s := got["sampled"]
	if !near(s.RequestRate, 4) || !near(s.RateSlope, 0) || !near(s.MeanLatency, 0.01) || s.GPUs != 0 || !math.IsNaN(s.SMActive) || !math.IsNaN(s.QueueDepth) {
		t.Errorf("sampled %+v", s)
	}
	if _, ok := got["absent"]; ok {
		t.Error("a model without requests has signals")
	}
}

// TestDetectorRecommends: ranker's catalog policy, 0.1 requests per
// replica, steps of 2, load time 1 min: the rate 1 min ahead is 19 + 60/30
// = 21 requests/s, L = 21 × 0.04 = 0.84, 8.4 replicas → 9 → 10 in steps of
// 2. A model with a policy and no traffic gets its minimum.
func TestDetectorRecommends(t *testing.T) {
	db := chtest.NewDB(t)
	writeLoad(t, db)
	cat, err := catalog.Parse([]byte(`
models:
  - model: {name: ranker}
    serving: {min_replicas: 2, max_replicas: 100}
    scaling: {per_replica_concurrency: 0.1, step: 2, load_time: 1m}
  - model: {name: quiet}
    serving: {min_replicas: 3}
    scaling: {per_replica_concurrency: 4}
  - model: {name: sampled}
`))
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDetector(NewDefaultConfig(), db, cat)
	if err != nil {
		t.Fatal(err)
	}
	if dets, err := d.Evaluate(context.Background(), fleet.Window{Start: end.Add(-15 * time.Second), End: end}); err != nil || len(dets) != 0 {
		t.Fatalf("Evaluate = %v, %v", dets, err)
	}
	l := d.Latest()
	if len(l) != 2 {
		t.Fatalf("models %v, want ranker and quiet (sampled has no policy)", l)
	}
	if r := l["ranker"]; !near(r.ForecastRate, 21) || !near(r.Concurrency, 0.84) || r.Replicas != 10 || r.Clamped != ClampNone || !r.At.Equal(end) {
		t.Errorf("ranker %+v", r)
	}
	if q := l["quiet"]; q.Replicas != 3 || q.Clamped != ClampMin || q.RequestRate != 0 {
		t.Errorf("quiet %+v", q)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func(*Config)
		ok   bool
	}{
		{"default", func(*Config) {}, true},
		{"no name", func(c *Config) { c.Name = "" }, false},
		{"fractional interval", func(c *Config) { c.Interval = 1500 * time.Millisecond }, false},
		{"window not whole minutes", func(c *Config) { c.Window = 90 * time.Second }, false},
	} {
		c := NewDefaultConfig()
		tc.f(&c)
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
