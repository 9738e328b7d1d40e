package agent_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip"

	"github.com/fleetwatch/fleetwatch/agent"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// receiver is a local OTLP gRPC endpoint that records what it gets.
type receiver struct {
	colmetrics.UnimplementedMetricsServiceServer

	mu      sync.Mutex
	points  map[string]int // identity -> times received
	logs    map[string]int
	order   []time.Time // data point times in arrival order (one source)
	srv     *grpc.Server
	addr    string
	batches int
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	r := &receiver{points: map[string]int{}, logs: map[string]int{}, addr: l.Addr().String()}
	t.Cleanup(r.stop)
	return r
}

func (r *receiver) start(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	r.srv = grpc.NewServer()
	colmetrics.RegisterMetricsServiceServer(r.srv, r)
	collogs.RegisterLogsServiceServer(r.srv, logsAdapter{r: r})
	go r.srv.Serve(l)
}

func (r *receiver) stop() {
	if r.srv != nil {
		r.srv.Stop()
		r.srv = nil
	}
}

func attr(kvs []*commonpb.KeyValue, k string) string {
	for _, kv := range kvs {
		if kv.Key == k {
			return kv.Value.GetStringValue()
		}
	}
	return ""
}

func (r *receiver) Export(ctx context.Context, req *colmetrics.ExportMetricsServiceRequest) (*colmetrics.ExportMetricsServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches++
	for _, rm := range req.ResourceMetrics {
		host := attr(rm.Resource.Attributes, telemetry.AttrHostName)
		gpu := attr(rm.Resource.Attributes, telemetry.LabelUUID) // one resource per GPU
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				dps := m.GetGauge().GetDataPoints()
				if s := m.GetSum(); s != nil {
					dps = s.DataPoints
				}
				for _, dp := range dps {
					uuid := attr(dp.Attributes, telemetry.LabelUUID)
					if uuid == "" {
						uuid = gpu
					}
					key := fmt.Sprintf("%s|%s|%s|%s|%s|%d", host, m.Name, uuid,
						attr(dp.Attributes, telemetry.LabelLink), attr(dp.Attributes, telemetry.LabelRank), dp.TimeUnixNano)
					r.points[key]++
					if m.Name == telemetry.GPUTemp {
						r.order = append(r.order, time.Unix(0, int64(dp.TimeUnixNano)))
					}
				}
			}
		}
	}
	return &colmetrics.ExportMetricsServiceResponse{}, nil
}

func (r *receiver) logsExport(req *collogs.ExportLogsServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rl := range req.ResourceLogs {
		for _, sl := range rl.ScopeLogs {
			for _, lr := range sl.LogRecords {
				key := fmt.Sprintf("%s|%s|%s|%s|%d|%d", lr.EventName, attr(lr.Attributes, telemetry.AttrRequestID),
					attr(lr.Attributes, telemetry.LabelUUID), attr(lr.Attributes, telemetry.AttrGPUEvent), lr.TimeUnixNano, lr.ObservedTimeUnixNano)
				r.logs[key]++
			}
		}
	}
}

func (r *receiver) counts() (points, dupPoints, logs, dupLogs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.points {
		points++
		dupPoints += n - 1
	}
	for _, n := range r.logs {
		logs++
		dupLogs += n - 1
	}
	return
}

// logsAdapter serves the logs service for the receiver (whose Export is the
// metrics one).
type logsAdapter struct {
	collogs.UnimplementedLogsServiceServer
	r *receiver
}

func (a logsAdapter) Export(ctx context.Context, req *collogs.ExportLogsServiceRequest) (*collogs.ExportLogsServiceResponse, error) {
	a.r.logsExport(req)
	return &collogs.ExportLogsServiceResponse{}, nil
}

const scenario = `
name: e2e
seed: 3
start: 2026-11-23T10:00:00Z
duration: 60s
interval: 1s
fleet: {racks_per_row: 1, nodes_per_rack: 2, gpus_per_node: 4, nvlinks: 2}
jobs: [{name: train, nodes: 1}]
models:
  - {name: fraud, rps: 20, label_delay: 5s, label_fraction: 0.5, features: [{name: amount, mean: 10, sd: 2}]}
faults:
  - {type: xid79, target: {node: node-001, gpu: 2}, start: 20s}
`

// newRunner builds a simulator for a scenario given as YAML.
func newRunner(tb testing.TB, yaml string) *sim.Runner {
	tb.Helper()
	sc, err := sim.Parse([]byte(yaml))
	if err != nil {
		tb.Fatal(err)
	}
	runner, err := sim.New(sc, quiet)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(runner.Close)
	return runner
}

// runAgent runs an agent with the simulator until the scenario is done and
// the buffer is drained (or timeout), then stops it.
func runAgent(t *testing.T, dataDir, collector string, mutate func(*agent.Config), wait func(*agent.Agent) bool) *agent.Agent {
	t.Helper()
	runner := newRunner(t, scenario)
	cfg := agent.NewDefaultConfig()
	cfg.DataDir = dataDir
	cfg.NVML.Enabled = false
	cfg.Ship.Endpoint = collector
	cfg.Ship.InitialBackoff, cfg.Ship.MaxBackoff = 20*time.Millisecond, 100*time.Millisecond
	cfg.Listen = "127.0.0.1:0"
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := agent.New(cfg, agent.WithLogger(quiet), agent.WithSource(sim.Source{Runner: runner}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	reached := wait(a)
	for !reached && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		reached = wait(a)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !reached {
		t.Log("the agent did not reach the awaited state within 30 s")
	}
	return a
}

func collected(a *agent.Agent) (samples, records uint64) {
	mfs, _ := a.Registry().Gather()
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			switch mf.GetName() {
			case "fleetwatch_agent_samples_collected_total":
				samples += uint64(m.GetCounter().GetValue())
			case "fleetwatch_agent_records_collected_total":
				records += uint64(m.GetCounter().GetValue())
			}
		}
	}
	return
}

func metricValue(a *agent.Agent, name string, labels map[string]string) float64 {
	mfs, _ := a.Registry().Gather()
	var total float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return total
}

func TestEverySampleArrives(t *testing.T) {
	rcv := newReceiver(t)
	rcv.start(t)
	a := runAgent(t, t.TempDir(), rcv.addr, nil, func(a *agent.Agent) bool {
		s, r := collected(a)
		p, _, l, _ := rcv.counts()
		return s > 0 && uint64(p) == s && uint64(l) == r && a.Buffer().Pending == 0 && s > 60*8*30
	})
	samples, records := collected(a)
	points, dupPoints, logs, dupLogs := rcv.counts()
	if uint64(points) != samples || dupPoints != 0 {
		t.Fatalf("collected %d samples, received %d distinct (%d duplicates)", samples, points, dupPoints)
	}
	if uint64(logs) != records || dupLogs != 0 {
		t.Fatalf("collected %d records, received %d distinct (%d duplicates)", records, logs, dupLogs)
	}
	shipped := metricValue(a, "fleetwatch_agent_items_shipped_total", nil)
	if uint64(shipped) != samples+records {
		t.Fatalf("shipped %v, collected %d", shipped, samples+records)
	}
	if d := metricValue(a, "fleetwatch_agent_items_dropped_total", nil); d != 0 {
		t.Fatalf("dropped %v", d)
	}
	t.Logf("%d samples and %d records, all accounted for", samples, records)
}

// The collector is down while the fleet is collected: everything waits on
// disk, then arrives in order, exactly once, when the collector comes up.
func TestOutageThenRecovery(t *testing.T) {
	rcv := newReceiver(t) // not started: the endpoint refuses connections
	var a *agent.Agent
	done := make(chan struct{})
	go func() {
		defer close(done)
		a = runAgent(t, t.TempDir(), rcv.addr, nil, func(a *agent.Agent) bool {
			s, r := collected(a)
			p, _, l, _ := rcv.counts()
			return s > 14000 && uint64(p) == s && uint64(l) == r && a.Buffer().Pending == 0
		})
	}()
	time.Sleep(1500 * time.Millisecond) // the whole scenario is collected meanwhile
	if p, _, _, _ := rcv.counts(); p != 0 {
		t.Fatalf("received %d points while down", p)
	}
	rcv.start(t)
	<-done
	samples, records := collected(a)
	points, dupPoints, logs, dupLogs := rcv.counts()
	if uint64(points) != samples || dupPoints != 0 || uint64(logs) != records || dupLogs != 0 {
		t.Fatalf("collected %d+%d, received %d+%d distinct, %d+%d duplicates", samples, records, points, logs, dupPoints, dupLogs)
	}
	if metricValue(a, "fleetwatch_agent_ship_retries_total", nil) == 0 {
		t.Error("no retries counted during the outage")
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for i := 1; i < len(rcv.order); i++ {
		if rcv.order[i].Before(rcv.order[i-1]) {
			t.Fatalf("out of order: %v after %v", rcv.order[i], rcv.order[i-1])
		}
	}
}

// With the collector down and a small buffer, the oldest data is dropped
// first and counted; collected = shipped + dropped.
func TestFullBufferDropsOldestAndCounts(t *testing.T) {
	rcv := newReceiver(t)
	small := func(c *agent.Config) { c.Buffer.SegmentBytes, c.Buffer.MaxBytes = 16<<10, 64<<10 }
	// The collector comes up only once the buffer has overflowed, however
	// slowly a loaded machine runs the simulation.
	started := false
	a := runAgent(t, t.TempDir(), rcv.addr, small, func(a *agent.Agent) bool {
		s, r := collected(a)
		shipped := metricValue(a, "fleetwatch_agent_items_shipped_total", nil)
		dropped := metricValue(a, "fleetwatch_agent_items_dropped_total", nil)
		if !started && s > 14000 && dropped > 0 {
			rcv.start(t)
			started = true
		}
		return started && a.Buffer().Pending == 0 && uint64(shipped+dropped) == s+r
	})
	samples, records := collected(a)
	dropped := metricValue(a, "fleetwatch_agent_items_dropped_total", map[string]string{"reason": "buffer_full"})
	shipped := metricValue(a, "fleetwatch_agent_items_shipped_total", nil)
	points, _, logs, _ := rcv.counts()
	if dropped == 0 || uint64(shipped+dropped) != samples+records || int(shipped) != points+logs {
		t.Fatalf("collected %d, shipped %v (received %d), dropped %v", samples+records, shipped, points+logs, dropped)
	}
	// Oldest first: what arrived is the end of the run — except, possibly,
	// the one record the shipper was already retrying when the buffer
	// overflowed (it is in flight, no longer in the buffer).
	rcv.mu.Lock()
	order := slices.Clone(rcv.order)
	rcv.mu.Unlock()
	next := slices.IndexFunc(order, func(ts time.Time) bool { return !ts.Equal(order[0]) })
	if next < 0 {
		next = 0 // one record's worth arrived: it must be new itself
	}
	rest := order[next:]
	if len(rest) == 0 || rest[0].Before(time.Date(2026, 11, 23, 10, 0, 30, 0, time.UTC)) {
		t.Errorf("the oldest data survived (%v after the in-flight %v) while newer data was dropped", rest, order[0])
	}
	t.Logf("collected %d, shipped %v, dropped %v (oldest first)", samples+records, shipped, dropped)
}

// What an agent buffered survives its restart and is shipped by the next run.
func TestBufferSurvivesRestart(t *testing.T) {
	rcv := newReceiver(t)
	dir := t.TempDir()
	first := runAgent(t, dir, rcv.addr, nil, func(a *agent.Agent) bool {
		s, _ := collected(a)
		return s > 14000 && a.Buffer().Pending > 0 && metricValue(a, "fleetwatch_agent_items_buffered", nil) > 0
	})
	samples, records := collected(first)
	if samples == 0 {
		t.Fatal("nothing collected")
	}
	rcv.start(t)
	cfg := agent.NewDefaultConfig()
	cfg.DataDir, cfg.NVML.Enabled, cfg.Listen = dir, false, ""
	cfg.Ship.Endpoint = rcv.addr
	second, err := agent.New(cfg, agent.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- second.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for second.Buffer().Pending > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	points, dupPoints, logs, dupLogs := rcv.counts()
	if uint64(points) != samples || uint64(logs) != records || dupPoints+dupLogs != 0 {
		t.Fatalf("first run collected %d+%d; after the restart %d+%d arrived (%d duplicates)", samples, records, points, logs, dupPoints+dupLogs)
	}
}

// Without an NVIDIA driver the NVML source says so and the log tailer keeps working.
func TestNoDriverKeepsOtherSources(t *testing.T) {
	rcv := newReceiver(t)
	rcv.start(t)
	dir := t.TempDir()
	logFile := dir + "/serve.jsonl"
	line := fmt.Sprintf(`{"model":"m","request_id":"r-1","ts":%d,"latency_ms":3}`+"\n", time.Now().Unix())
	if err := os.WriteFile(logFile, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	cfg := agent.NewDefaultConfig()
	cfg.DataDir, cfg.Listen = dir, ""
	cfg.Ship.Endpoint = rcv.addr
	cfg.Logs.Enabled = true
	cfg.Logs.Paths = []string{dir + "/*.jsonl"}
	cfg.Logs.Poll = 20 * time.Millisecond
	a, err := agent.New(cfg, agent.WithLogger(slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, l, _ := rcv.counts(); l == 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if _, _, l, _ := rcv.counts(); l != 1 {
		t.Fatalf("%d log records arrived, want the one inference event", l)
	}
	if !strings.Contains(logs.String(), "no NVIDIA driver") {
		t.Skipf("this machine has an NVIDIA driver; log: %s", logs.String())
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// A real Prometheus (Debian's) scrapes the agent's /metrics and sees the
// GPUs under dcgm-exporter's names and labels, and the agent's health.
func TestPrometheusScrapesTheAgent(t *testing.T) {
	runner := newRunner(t, "interval: 1s\nfleet: {nodes_per_rack: 1, gpus_per_node: 2, nvlinks: 2}\n")
	a := startAgent(t, runner, true)
	prom := promtest.Prometheus(t, time.Second, a.Addr())
	uuid := runner.Fleet.Nodes[0].GPUs[1].UUID
	prom.WaitQuery(t, `DCGM_FI_DEV_GPU_TEMP{UUID="`+uuid+`"}`, 30*time.Second, func(s []promtest.Sample) bool {
		return len(s) == 1 && s[0].Value > 20 && s[0].Labels["Hostname"] == "node-000" && s[0].Labels["gpu"] == "1" &&
			s[0].Labels["modelName"] == "NVIDIA H100 80GB HBM3" && s[0].Labels["device"] == "nvidia1" && s[0].Labels["pci_bus_id"] != ""
	})
	prom.WaitQuery(t, `count(DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT{link="1"})`, 10*time.Second, func(s []promtest.Sample) bool {
		return len(s) == 1 && s[0].Value == 2
	})
	prom.WaitQuery(t, `fleetwatch_agent_samples_collected_total{source="nvml"}`, 10*time.Second, func(s []promtest.Sample) bool {
		return len(s) == 1 && s[0].Value > 0
	})
	prom.WaitQuery(t, `fleetwatch_agent_collector_up`, 10*time.Second, func(s []promtest.Sample) bool {
		return len(s) == 1 && s[0].Value == 1
	})
}

// The agent's own NVML source, on a library handed to it (here the
// simulator's go-nvml mock of one node), ships every GPU's temperature.
func TestNVMLSourceOnAGivenLibrary(t *testing.T) {
	rcv := newReceiver(t)
	rcv.start(t)
	sc, err := sim.Parse([]byte("seed: 1\nfleet: {racks_per_row: 1, nodes_per_rack: 1, gpus_per_node: 2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	fl := sim.NewFleet(sc)
	_, stop := runOnNode(t, fl, func(cfg *agent.Config) { cfg.Ship.Endpoint = rcv.addr })
	temps := func() map[string]bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		seen := map[string]bool{}
		for key := range rcv.points {
			if parts := strings.Split(key, "|"); parts[1] == telemetry.GPUTemp {
				seen[parts[2]] = true
			}
		}
		return seen
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(temps()) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	want := map[string]bool{fl.Nodes[0].GPUs[0].UUID: true, fl.Nodes[0].GPUs[1].UUID: true}
	if got := temps(); !maps.Equal(got, want) {
		t.Errorf("temperatures from GPUs %v, want %v", got, want)
	}
}

// runOnNode runs an agent whose NVML source reads the simulated fleet's
// first node every 20 ms, with no /metrics listener unless adjust sets one;
// stop (also run at cleanup) ends it and fails the test if Run failed.
func runOnNode(t *testing.T, fl *sim.Fleet, adjust func(*agent.Config), opts ...agent.Option) (*agent.Agent, func()) {
	t.Helper()
	cfg := agent.NewDefaultConfig()
	cfg.DataDir, cfg.Listen = t.TempDir(), ""
	cfg.NVML.Interval = 20 * time.Millisecond
	adjust(&cfg)
	a, err := agent.New(cfg, append([]agent.Option{agent.WithLogger(quiet), agent.WithNVML(fl.NVML(fl.Nodes[0]))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return a, stop
}
