package score

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/protobuf/proto"

	"github.com/fleetwatch/fleetwatch/agent/otlp"
	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/analytics/health"
	"github.com/fleetwatch/fleetwatch/collector/chexporter"
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
	ecfg := chexporter.NewFactory().CreateDefaultConfig().(*chexporter.Config)
	ecfg.Endpoints, ecfg.Database, ecfg.CreateSchema = c.Config().Addrs, c.Config().Database, false
	ecfg.Queue.Directory = t.TempDir()
	ecfg.Queue.DrainOnShutdown = 2 * time.Minute // Shutdown below returns once everything is written
	set := exportertest.NewNopSettings(chexporter.Type)
	metrics, err := chexporter.NewFactory().CreateMetrics(ctx, set, ecfg)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := chexporter.NewFactory().CreateLogs(ctx, set, ecfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, comp := range []interface {
		Start(context.Context, component.Host) error
		Shutdown(context.Context) error
	}{metrics, logs} {
		if err := comp.Start(ctx, componenttest.NewNopHost()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = comp.Shutdown(context.Background()) })
	}
	encoders := map[string]*otlp.Encoder{}
	var failed error
	_, err = Simulate(sc, quiet, func(b *record.Batch) {
		if failed != nil {
			return
		}
		enc := encoders[b.Resource.Host]
		if enc == nil {
			enc = otlp.NewEncoder(sc.Start, "test")
			encoders[b.Resource.Host] = enc
		}
		if req := enc.Metrics(b); req != nil {
			md := pmetricotlp.NewExportRequest()
			failed = unmarshal(req, md.UnmarshalProto)
			if failed == nil {
				failed = metrics.ConsumeMetrics(ctx, md.Metrics())
			}
		}
		if req := enc.Logs(b); req != nil && failed == nil {
			ld := plogotlp.NewExportRequest()
			failed = unmarshal(req, ld.UnmarshalProto)
			if failed == nil {
				failed = logs.ConsumeLogs(ctx, ld.Logs())
			}
		}
	})
	if err != nil || failed != nil {
		t.Fatal(err, failed)
	}
	for _, comp := range []component.Component{metrics, logs} {
		if err := comp.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
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

func unmarshal(m proto.Message, into func([]byte) error) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return into(data)
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
