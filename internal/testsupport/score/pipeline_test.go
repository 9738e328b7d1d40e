package score

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/analytics/health"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

// TestPipelineThroughClickHouse runs a scenario with one fault of every GPU
// type through the real pipeline: the simulated fleet read by the agent's
// NVML source, encoded by the agent's OTLP encoder, written by the
// collector's ClickHouse exporter into a private ClickHouse, read back by
// the detector's SQL through Arrow on the engine's schedule, and its
// detections written to the detections table. It scores what the table
// holds, and checks that the in-memory path raises exactly the same.
func TestPipelineThroughClickHouse(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	sc := load(t, "mixed.yaml", 0)
	sc.Start = time.Now().UTC().Add(-sc.Duration - time.Minute).Truncate(time.Minute)
	end := sc.Start.Add(sc.Duration)

	// Agent → collector exporter → ClickHouse.
	if _, err := Store(ctx, sc, c, StoreOptions{QueueDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}

	// The analyzer's engine with the detector, past the end of the run.
	cfg := health.NewDefaultConfig()
	ecfgE := engine.NewDefaultConfig()
	ecfgE.StartAt, ecfgE.MaxCatchUp = sc.Start, 1000
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	clock := engine.NewManualClock(end.Add(ecfgE.Lateness))
	eng, err := engine.New(ecfgE, c, engine.WithClock(clock), engine.WithLogger(chtest.Logger(t)), engine.WithSink(engine.NewDetectionTable(w)))
	if err != nil {
		t.Fatal(err)
	}
	det, err := health.NewDetector(cfg, c, chtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Add(det); err != nil {
		t.Fatal(err)
	}
	n, err := eng.Step(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := int(sc.Duration / cfg.Interval); n != want {
		t.Errorf("evaluated %d windows, want %d", n, want)
	}
	got := readDetections(t, c)

	truths, mem, err := Run(sc, cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	rep := Score(truths, got, Options{Interval: cfg.Interval, Grace: 2 * cfg.Interval, RunEnd: end})
	t.Logf("through ClickHouse:\n%s", rep.Markdown())
	for _, fa := range rep.FalseAlarms {
		t.Logf("false alarm: %s", fa)
	}
	if rep.Total.Precision < 0.95 || rep.Total.Recall < 0.95 || rep.Total.MaxWindows > 3 {
		t.Errorf("through ClickHouse: precision %.3f, recall %.3f, slowest %d windows", rep.Total.Precision, rep.Total.Recall, rep.Total.MaxWindows)
	}
	if a, b := keys(got), keys(mem); !slices.Equal(a, b) {
		t.Errorf("ClickHouse path and in-memory path differ:\nclickhouse %q\nin memory  %q", a, b)
	}
}

// readDetections reads back what the engine wrote, with the columns the
// scoring uses.
func readDetections(t *testing.T, c *storage.Client) []fleet.Detection {
	t.Helper()
	var out []fleet.Detection
	sql := "SELECT key, window_start, ts, feature, gpu_uuid, node, rack, datacenter, class FROM " + c.Config().Database +
		".detections WHERE detector = 'fleet_health' ORDER BY key, window_start"
	var res chsql.Result
	key, start, end, feature, uuid := res.Str("key"), res.Time("window_start"), res.Time("ts"), res.Str("feature"), res.Str("gpu_uuid")
	node, rack, dc, class := res.Str("node"), res.Str("rack"), res.Str("datacenter"), res.Str("class")
	err := res.ForRows(context.Background(), c, sql, func(r int) {
		out = append(out, fleet.Detection{Key: key.At(r), WindowStart: time.Unix(start.Seconds(r), 0).UTC(),
			Time: time.Unix(end.Seconds(r), 0).UTC(), Feature: feature.At(r), GPUUUID: uuid.At(r),
			Topology: fleet.Topology{Node: node.At(r), Rack: rack.At(r), Datacenter: dc.At(r)}, Class: class.At(r)})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no detections in the detections table")
	}
	return out
}

func keys(ds []fleet.Detection) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Key + "@" + d.WindowStart.UTC().Format(time.TimeOnly)
	}
	slices.Sort(out)
	return out
}
