package analyzer

// Issue 17, item 6: a simulated 100,000-GPU fleet's analyzer pass, each
// stage timed against the window it must fit in, with the configuration
// the project ships (deploy/analyzer.example.yaml and
// deploy/alerting.example.yaml) and the entry points the analyzer calls:
// health.Evaluator.Evaluate (what health.Detector.Evaluate runs on what
// its Source read), drift.Detector.Evaluate against a private ClickHouse,
// alerting.Manager.Consume (the engine sink that correlates), and
// health.Source.Read against a private ClickHouse at sizes this machine
// holds. docs/SIZING.md ("Simulated 100k-GPU analyzer pass") records the
// numbers.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/alerting"
	"github.com/fleetwatch/fleetwatch/alerting/correlate"
	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/analytics/drift"
	"github.com/fleetwatch/fleetwatch/analytics/health"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/fixture"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/proc"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/score"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/traffic"
	"github.com/fleetwatch/fleetwatch/lib/profile"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// shippedConfig is the configuration the project ships: the analyzer's
// example file (every key at its default) and alerting's.
func shippedConfig(tb testing.TB) (Config, alerting.Config) {
	tb.Helper()
	cfg, err := LoadConfig("../../deploy/analyzer.example.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	al, err := LoadConfig("../../deploy/alerting.example.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	return cfg, al.Alerting.Config
}

// fit reports a stage's time per pass against the window it must fit in:
// ms/pass and headroom, the window over the time (≥ 1: it fits).
func fit(b *testing.B, window time.Duration) {
	per := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(per*1e3, "ms/pass")
	b.ReportMetric(window.Seconds()/per, "headroom")
}

// The simulated fleet: 4 datacenters of 49 rows; a row is a simulated tile
// of 16 racks × 4 nodes × 8 GPUs (512 GPUs), 81% of its nodes in three
// training jobs of 256, 128 and 32 GPUs. 196 rows: 100,352 GPUs.
const (
	scaleDatacenters = 4
	scaleRowsPerDC   = 49
	scaleWindows     = 8 // 30 s windows simulated per tile; the last is timed
)

// tileSpec is a scenario of rows rows of 16 racks × 4 nodes × 8 GPUs,
// 512 GPUs a row, 81% of each row's nodes in three training jobs of 256,
// 128 and 32 GPUs.
func tileSpec(seed uint64, rows int, duration, interval time.Duration, faults string) []byte {
	var jobs strings.Builder
	for r := range rows {
		fmt.Fprintf(&jobs, `  - {name: pretrain-%[1]d, first_node: %[2]d, nodes: 32, step_seconds: 1.1}
  - {name: finetune-%[1]d, first_node: %[3]d, nodes: 16, step_seconds: 0.6, batch_per_rank: 16}
  - {name: eval-%[1]d, first_node: %[4]d, nodes: 4, step_seconds: 0.9}
`, r, 64*r, 64*r+32, 64*r+48)
	}
	return fmt.Appendf(nil, `name: tile
seed: %d
start: 2026-11-23T00:00:00Z
duration: %v
interval: %v
fleet: {rows_per_datacenter: %d, racks_per_row: 16, nodes_per_rack: 4, gpus_per_node: 8}
jobs:
%sfaults: [%s]
`, seed, duration, interval, rows, jobs.String(), faults)
}

// scaleFaults are the rows with faults, by row index: a rack's CDU
// failing, and GPU faults of every kind the simulator has scattered over
// the four datacenters — 17 faults in all, a busy half minute for 100k
// GPUs. Every other row copies one of 8 healthy rows (seeds 1–8).
var scaleFaults = map[int]string{
	9: `{name: cdu, type: rack_cdu, target: {rack: rack-05}, start: 1m},
        {name: slow, type: straggler, target: {node: node-001, gpu: 2}, start: 1m30s}`,
	33: `{name: fan, type: gpu_fan, target: {node: node-010, gpu: 3}, start: 1m},
        {name: ecc, type: ecc_ramp, target: {node: node-020, gpu: 5}, start: 1m},
        {name: link, type: nvlink_degradation, target: {node: node-030, gpu: 1}, start: 1m}`,
	60: `{name: bus, type: xid79, target: {node: node-040, gpu: 4}, start: 2m},
        {name: slow, type: straggler, target: {node: node-005, gpu: 0}, start: 1m},
        {name: cooling, type: node_cooling, target: {node: node-050}, start: 1m}`,
	101: `{name: fan, type: gpu_fan, target: {node: node-012, gpu: 6}, start: 1m30s},
        {name: slow, type: straggler, target: {node: node-033, gpu: 7}, start: 1m},
        {name: ecc, type: ecc_ramp, target: {node: node-044, gpu: 2}, start: 1m}`,
	140: `{name: link, type: nvlink_degradation, target: {node: node-003, gpu: 6}, start: 1m},
        {name: bus, type: xid79, target: {node: node-025, gpu: 1}, start: 2m30s},
        {name: fan, type: gpu_fan, target: {node: node-060, gpu: 0}, start: 1m}`,
	185: `{name: slow, type: straggler, target: {node: node-017, gpu: 4}, start: 1m},
        {name: cooling, type: node_cooling, target: {node: node-036}, start: 1m30s},
        {name: ecc, type: ecc_ramp, target: {node: node-058, gpu: 3}, start: 1m}`,
}

// scaleFleet is the simulated fleet's health inputs: each simulated tile's
// windows, as health.Source would read them (per GPU and metric of
// health.Metrics()), copied into every row under the row's names.
type scaleFleet struct {
	tiles [][]*health.Input // per simulated tile, its windows
	use   []int             // per row, the simulated tile it copies
	ids   []map[string]health.GPU
}

var (
	scaleOnce sync.Once
	scaleSim  *scaleFleet
	scaleErr  error
)

// simulatedFleet simulates the tiles once per process (about 15 tiles ×
// 2 s of one core).
func simulatedFleet(tb testing.TB, cfg health.Config) *scaleFleet {
	tb.Helper()
	scaleOnce.Do(func() { scaleSim, scaleErr = simulateFleet(cfg) })
	if scaleErr != nil {
		tb.Fatal(scaleErr)
	}
	return scaleSim
}

func simulateFleet(cfg health.Config) (*scaleFleet, error) {
	const healthy = 8
	rows := scaleDatacenters * scaleRowsPerDC
	f := &scaleFleet{use: make([]int, rows), ids: make([]map[string]health.GPU, rows)}
	read := map[string]bool{}
	for _, m := range health.Metrics() {
		read[m] = true
	}
	simulate := func(seed uint64, faults string) error {
		sc, err := sim.Parse(tileSpec(seed, 1, scaleWindows*cfg.Interval, 10*time.Second, faults))
		if err != nil {
			return err
		}
		w := score.NewWindower(cfg)
		var wins []*health.Input
		if _, err := score.Simulate(sc, quiet, func(b *record.Batch) { wins = append(wins, w.Add(b)...) }); err != nil {
			return err
		}
		if len(wins) != scaleWindows {
			return fmt.Errorf("tile %d: %d windows, want %d", seed, len(wins), scaleWindows)
		}
		for _, in := range wins {
			in.Rows = slices.DeleteFunc(in.Rows, func(r health.Row) bool { return !read[r.Metric] })
		}
		f.tiles = append(f.tiles, wins)
		return nil
	}
	for s := range healthy {
		if err := simulate(uint64(s+1), ""); err != nil {
			return nil, err
		}
	}
	for r := range rows {
		f.use[r] = r % healthy
		f.ids[r] = map[string]health.GPU{}
	}
	for _, r := range slices.Sorted(maps.Keys(scaleFaults)) {
		f.use[r] = len(f.tiles)
		if err := simulate(uint64(100+r), scaleFaults[r]); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// gpu is the simulated GPU g as it is in row r of the fleet.
func (f *scaleFleet) gpu(r int, g *health.GPU) health.GPU {
	id, ok := f.ids[r][g.UUID]
	if !ok {
		p := fmt.Sprintf("r%03d-", r)
		id = *g
		id.UUID, id.Rack, id.Node, id.Rank = p+g.UUID, p+g.Rack, p+g.Node, ""
		id.Datacenter = fmt.Sprintf("dc-%d", r/scaleRowsPerDC)
		id.Row = fmt.Sprintf("row-%d-%02d", r/scaleRowsPerDC, r%scaleRowsPerDC)
		if g.Job != "" {
			id.Job = p + g.Job
		}
		f.ids[r][g.UUID] = id
	}
	id.Rank = g.Rank
	return id
}

// window is the fleet's k-th window. With silent ≥ 0, datacenter silent
// sent nothing in it: its GPUs are missing, as health.Source reports GPUs
// that reported within lost_after before the window and not in it.
func (f *scaleFleet) window(k, silent int) *health.Input {
	n := 0
	for r, t := range f.use {
		if r/scaleRowsPerDC != silent {
			n += len(f.tiles[t][k].Rows)
		}
	}
	in := &health.Input{Window: f.tiles[0][k].Window, Rows: make([]health.Row, 0, n)}
	for r, t := range f.use {
		src := f.tiles[t][k]
		if r/scaleRowsPerDC == silent {
			seen := map[string]bool{}
			for i := range src.Rows {
				if g := &src.Rows[i].GPU; !seen[g.UUID] {
					seen[g.UUID] = true
					id := f.gpu(r, g)
					id.Rank = ""
					in.Missing = append(in.Missing, id)
				}
			}
			continue
		}
		for _, row := range src.Rows {
			row.GPU = f.gpu(r, &row.GPU)
			in.Rows = append(in.Rows, row)
		}
		for _, e := range src.Events {
			e.GPU = f.gpu(r, &e.GPU)
			in.Events = append(in.Events, e)
		}
		for i := range src.Missing {
			in.Missing = append(in.Missing, f.gpu(r, &src.Missing[i]))
		}
	}
	return in
}

// inventory is the fleet's inventory, as alerting's store reads it from
// gpu_series at the analyzer's start.
func (f *scaleFleet) inventory() (*correlate.Inventory, int) {
	inv := correlate.NewInventory()
	n := 0
	for r, t := range f.use {
		seen := map[string]bool{}
		for i := range f.tiles[t][0].Rows {
			if g := &f.tiles[t][0].Rows[i].GPU; !seen[g.UUID] {
				seen[g.UUID] = true
				id := f.gpu(r, g)
				inv.Add(id.Topology, id.UUID)
				n++
			}
		}
	}
	return inv, n
}

// warmHealth returns the shipped fleet-health evaluator after the first
// scaleWindows-1 windows, the last window's input and the heap it takes.
func warmHealth(b *testing.B, cfg health.Config, silent int) (*health.Evaluator, *health.Input, uint64) {
	b.Helper()
	f := simulatedFleet(b, cfg)
	ev, err := health.NewEvaluator(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ev.SetLogger(quiet)
	for k := range scaleWindows - 1 {
		ev.Evaluate(f.window(k, -1))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	in := f.window(scaleWindows-1, silent)
	runtime.GC()
	runtime.ReadMemStats(&after)
	return ev, in, after.HeapAlloc - min(before.HeapAlloc, after.HeapAlloc)
}

// healthLoads are the two windows the health and correlation benchmarks
// time: the busy half minute of scaleFaults, and the same with a whole
// datacenter (25,088 GPUs) gone silent (its agents or its collector down).
// incidents are what correlation must make of them: each fault one
// incident at its level (the CDU a rack, a node's cooling a node, the
// rest a GPU), the silent datacenter one pipeline incident, its own
// faults (row 185) unseen.
var healthLoads = []struct {
	name      string
	silent    int
	incidents map[incident.Level]int
}{
	{"busy", -1, map[incident.Level]int{incident.LevelRack: 1, incident.LevelNode: 2, incident.LevelGPU: 14, incident.LevelModel: 10}},
	{"datacenter-silent", 3, map[incident.Level]int{incident.LevelPipeline: 1, incident.LevelRack: 1, incident.LevelNode: 1,
		incident.LevelGPU: 12, incident.LevelModel: 10}},
}

// BenchmarkScale100kHealth is one fleet-health window of 100,352 GPUs
// through the shipped detector: folding what the Source read (≈ 2.5M rows
// of GPU × metric) into the frame, the tick (medians, MADs, rules,
// persistence) and the detections. Its window is the detector's interval.
// "input-MiB" is the heap the window's input takes.
func BenchmarkScale100kHealth(b *testing.B) {
	cfg, _ := shippedConfig(b)
	for _, load := range healthLoads {
		b.Run(load.name, func(b *testing.B) {
			ev, in, heap := warmHealth(b, cfg.Health.Config, load.silent)
			var dets []fleet.Detection
			b.ReportAllocs()
			for b.Loop() {
				dets = ev.Evaluate(in)
			}
			fit(b, cfg.Health.Interval)
			b.ReportMetric(float64(len(in.Rows)), "rows")
			b.ReportMetric(float64(heap)/(1<<20), "input-MiB")
			b.ReportMetric(float64(len(dets)), "detections")
		})
	}
}

// BenchmarkScale100kCorrelation is alerting's pass on a fleet-health
// window of 100,352 GPUs: the manager (the engine's sink, memory only:
// no incident store, no notifier) takes the window's detections, beside
// drift's from its last window, correlates every active detection up the
// topology against the fleet's inventory and moves the incidents. It runs
// after every detector's window; the health detector's 30 s is the
// shortest. It checks what correlation made of the faults
// (healthLoads).
func BenchmarkScale100kCorrelation(b *testing.B) {
	cfg, al := shippedConfig(b)
	ctx := context.Background()
	for _, load := range healthLoads {
		b.Run(load.name, func(b *testing.B) {
			ev, in, _ := warmHealth(b, cfg.Health.Config, load.silent)
			dets := ev.Evaluate(in)
			inv, gpus := simulatedFleet(b, cfg.Health.Config).inventory()
			m, err := alerting.NewManager(al, alerting.Deps{Inventory: inv, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			// Drift's last window: 10 of 1,000 models drifting.
			dw := fleet.Align(in.Window.End, cfg.Drift.Interval)
			dm := fixture.Models(cfg.Drift.Name, "covariate_drift", "warning", dw.Start, fixture.Names("model", 0, 10))
			if err := m.Consume(ctx, fleet.Evaluation{Detector: cfg.Drift.Name, Window: dw, Detections: dm}); err != nil {
				b.Fatal(err)
			}
			w := in.Window
			b.ReportAllocs()
			for b.Loop() {
				if err := m.Consume(ctx, fleet.Evaluation{Detector: cfg.Health.Name, Window: w, Detections: dets}); err != nil {
					b.Fatal(err)
				}
				w = fleet.Window{Start: w.End, End: w.End.Add(cfg.Health.Interval)}
			}
			fit(b, cfg.Health.Interval)
			b.ReportMetric(float64(len(dets)), "detections")
			levels := map[incident.Level]int{}
			for _, inc := range m.Incidents() {
				levels[inc.Level]++
			}
			b.Logf("%d GPUs, %d detections, incidents by level: %v", gpus, len(dets), levels)
			if !maps.Equal(levels, load.incidents) {
				b.Fatalf("incidents by level %v, want %v", levels, load.incidents)
			}
		})
	}
}

// scaleTraffic is how many events 1,000 models log per 5-minute drift
// window: a long tail, from 20,000 (67 logged requests/s) down to 50 —
// below 100, PSI's p-value comes from the Monte Carlo bootstrap, the
// costliest test. 2.54M events, 261M feature and output values a window.
var scaleTraffic = []struct{ models, events, perInsert int }{
	{50, 20_000, 5}, {200, 5_000, 20}, {500, 1_000, 100}, {150, 200, 150}, {100, 50, 100},
}

// BenchmarkScale1000ModelsDrift is the shipped drift detector's pass over
// one 5-minute window of 1,000 models × 100 numeric features (+ a
// categorical feature and both outputs: 103,000 columns), against a
// private ClickHouse holding the window's events as the collector writes
// them (inference_events, and their ingest-time counts in drift_bins):
// the active-versions query, the drift_bins sum, 103,000 tests,
// Benjamini–Hochberg, CUSUMs and writing 103,000 drift_scores rows.
// "cold-s" is the first pass (Monte Carlo nulls not cached yet);
// "monte-carlo-columns" those whose p-value came from the bootstrap.
func BenchmarkScale1000ModelsDrift(b *testing.B) {
	cfg, _ := shippedConfig(b)
	ctx := context.Background()
	c := chtest.NewDB(b)
	models := traffic.Fleet(1000, 100)
	t1 := time.Now()
	profiles, err := traffic.Profiles(99, 2000, models...)
	if err != nil {
		b.Fatal(err)
	}
	pb, err := profile.NewPrebinner(profiles)
	if err != nil {
		b.Fatal(err)
	}
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Write(ctx, storage.DriftProfilesBlock(profiles)); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d profiles in %v", len(profiles), time.Since(t1))
	// A recent window (the tables' retention runs on event time).
	win := fleet.Align(time.Now().Add(-time.Hour), cfg.Drift.Interval)
	t1 = time.Now()
	events, next := 0, 0
	for _, tier := range scaleTraffic {
		for i := 0; i < tier.models; i += tier.perInsert {
			gen := traffic.New(uint64(next+i), models[next+i:next+min(i+tier.perInsert, tier.models)]...)
			gen.Prebin = pb
			if err := gen.Write(ctx, w, win.Start, win.End, cfg.Drift.Interval, tier.events, 0); err != nil {
				b.Fatal(err)
			}
		}
		next += tier.models
		events += tier.models * tier.events
	}
	if next != len(models) {
		b.Fatalf("traffic for %d models, want %d", next, len(models))
	}
	b.Logf("wrote %d events in %v", events, time.Since(t1))
	d, err := drift.NewDetector(cfg.Drift.Config, c, nil, quiet)
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Restore(ctx, fleet.Window{}); err != nil {
		b.Fatal(err)
	}
	t1 = time.Now()
	dets, err := d.Evaluate(ctx, win)
	if err != nil {
		b.Fatal(err)
	}
	cold := time.Since(t1)
	for b.Loop() {
		if _, err := d.Evaluate(ctx, win); err != nil {
			b.Fatal(err)
		}
	}
	fit(b, cfg.Drift.Interval)
	b.ReportMetric(cold.Seconds(), "cold-s")
	// The first pass's: later passes of the same window feed the CUSUMs
	// the same evidence again, as if it came back window after window.
	b.ReportMetric(float64(len(dets)), "detections")
	var mc uint64
	if err := c.QueryScalar(ctx, fmt.Sprintf("SELECT count() FROM %s.drift_scores WHERE method = 'monte_carlo'", c.Config().Database), &mc); err != nil {
		b.Fatal(err)
	}
	st := d.Stats()
	passes := uint64(b.N + 1)
	if st["tests"] != passes*uint64(len(profiles)) || st["versions_prebinned"] != passes*uint64(len(models)) {
		b.Fatalf("%d tests and %d versions from drift_bins in %d passes, want %d and %d", st["tests"], st["versions_prebinned"],
			passes, len(profiles), len(models))
	}
	b.ReportMetric(float64(mc/passes), "monte-carlo-columns")
}

// BenchmarkScaleHealthRead is the fleet-health detector's ClickHouse read
// (health.Source.Read: the GPU × metric aggregation, the window's events,
// the GPUs that stopped reporting) for one 30 s window, on rows of the
// simulated fleet written through the agent's encoder and the collector's
// exporter into a private ClickHouse 18.16, at fleet sizes this machine
// holds; docs/SIZING.md extrapolates per GPU. The run is 6 minutes, so the
// missing-GPU query reads its whole lost_after (5m) of heartbeats.
func BenchmarkScaleHealthRead(b *testing.B) {
	cfg, _ := shippedConfig(b)
	ctx := context.Background()
	for _, size := range []struct {
		rows     int
		interval time.Duration
	}{{1, 10 * time.Second}, {4, 10 * time.Second}, {1, time.Second}} {
		b.Run(fmt.Sprintf("gpus=%d/interval=%v", size.rows*512, size.interval), func(b *testing.B) {
			c := chtest.NewDB(b)
			sc, err := sim.Parse(tileSpec(1, size.rows, 6*time.Minute, size.interval, ""))
			if err != nil {
				b.Fatal(err)
			}
			sc.Start = time.Now().UTC().Add(-sc.Duration - time.Minute).Truncate(cfg.Health.Interval)
			t1 := time.Now()
			if _, err := score.Store(ctx, sc, c, score.StoreOptions{QueueDir: b.TempDir()}); err != nil {
				b.Fatal(err)
			}
			var samples uint64
			if err := c.QueryScalar(ctx, "SELECT count() FROM "+c.Config().Database+".gpu_samples", &samples); err != nil {
				b.Fatal(err)
			}
			b.Logf("stored %d samples in %v", samples, time.Since(t1))
			hc := cfg.Health.Config
			src := health.NewSource(c, hc)
			end := sc.Start.Add(sc.Duration)
			win := fleet.Window{Start: end.Add(-hc.Interval), End: end}
			pid := chtest.Server(b).PID()
			server0, err := proc.CPU(pid)
			if err != nil {
				b.Fatal(err)
			}
			client0 := proc.SelfCPU()
			var in *health.Input
			b.ReportAllocs()
			for b.Loop() {
				if in, err = src.Read(ctx, win); err != nil {
					b.Fatal(err)
				}
			}
			server1, err := proc.CPU(pid)
			if err != nil {
				b.Fatal(err)
			}
			client := proc.SelfCPU() - client0
			fit(b, hc.Interval)
			gpus := float64(size.rows * 512)
			b.ReportMetric(b.Elapsed().Seconds()*1e6/float64(b.N)/gpus, "µs/GPU")
			b.ReportMetric((server1-server0).Seconds()*1e6/float64(b.N)/gpus, "server-cpu-µs/GPU")
			b.ReportMetric(client.Seconds()*1e6/float64(b.N)/gpus, "client-cpu-µs/GPU")
			b.ReportMetric(float64(len(in.Rows)), "rows")
			// Each query alone, its rows not decoded into an Input.
			db := c.Config().Database
			for _, q := range []struct{ name, sql string }{
				{"samples", health.RowsSQL(db, win, hc.Shard)}, {"events", health.EventsSQL(db, win, hc.Shard)},
				{"missing", health.MissingSQL(db, hc.Heartbeat, hc.LostAfter, win, hc.Shard)},
			} {
				t1 := time.Now()
				if err := new(chsql.Result).ForRows(ctx, c, q.sql, func(int) {}); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(time.Since(t1).Microseconds())/1e3, q.name+"-query-ms")
			}
			if want := size.rows * 512 * 20; len(in.Rows) < want {
				b.Fatalf("%d rows read, want at least %d (20 metrics per GPU)", len(in.Rows), want)
			}
		})
	}
}
