package agent_test

import (
	"bufio"
	"context"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/fleetwatch/fleetwatch/agent"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// compatScenario is a node whose GPUs run a training job (so the Kubernetes
// workload labels are set) next to one that idles.
const compatScenario = "interval: 1s\nduration: 10m\nfleet: {nodes_per_rack: 2, gpus_per_node: 2, nvlinks: 2}\njobs: [{name: llm, nodes: 1}]\n"

// startAgent runs an agent with the simulator as its source and /metrics on
// a free port until the test ends.
func startAgent(t *testing.T, runner *sim.Runner, realtime bool) *agent.Agent {
	t.Helper()
	rcv := newReceiver(t)
	rcv.start(t)
	cfg := agent.NewDefaultConfig()
	cfg.DataDir, cfg.NVML.Enabled = t.TempDir(), false
	cfg.Ship.Endpoint = rcv.addr
	cfg.Listen = "127.0.0.1:0"
	a, err := agent.New(cfg, agent.WithLogger(quiet), agent.WithSource(sim.Source{Runner: runner, Realtime: realtime}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	for a.Addr() == "" {
		time.Sleep(10 * time.Millisecond)
	}
	return a
}

func parseExposition(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// labelNames is the union of the label names of a family's series.
func labelNames(mf *dto.MetricFamily) map[string]bool {
	out := map[string]bool{}
	for _, m := range mf.Metric {
		for _, l := range m.Label {
			out[l.GetName()] = true
		}
	}
	return out
}

// Fixture names the agent does not produce, each with the reason. Empty:
// every metric and label of the real dcgm-exporter scrape is one NVML (or,
// for the Kubernetes labels, the workload mapping) can provide. On the
// fixture's own GPU (an RTX 4000 Ada) NVML has no GPM, so there the agent
// would lack DCGM_FI_PROF_GR_ENGINE_ACTIVE, _PIPE_TENSOR_ACTIVE,
// _DRAM_ACTIVE and DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL: a property of the
// GPU, not of the names; the simulated H100 here has GPM.
var notFromNVML = map[string]string{}

// Types that deliberately differ from the fixture.
var typeDiffers = map[string]string{
	// dcgm-exporter declares it a counter, but DCGM reports a rate (MB/s)
	// that goes up and down; the agent exposes it as the gauge it is.
	telemetry.NVLinkBandwidth: "gauge",
}

// The agent's /metrics has every metric and label name of a real
// dcgm-exporter scrape (shared fixture, agent/dcgmsrc/testdata), with the
// same types, for a simulated H100 node read through the NVML source.
func TestMetricsHaveTheDCGMExporterNames(t *testing.T) {
	f, err := os.Open("dcgmsrc/testdata/dcgm-exporter-sample.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fixture := parseExposition(t, f)
	if len(fixture) != 25 {
		t.Fatalf("fixture has %d families, want the 25 of the default counter set", len(fixture))
	}
	a := startAgent(t, newRunner(t, compatScenario), false)
	var got map[string]*dto.MetricFamily
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + a.Addr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		got = parseExposition(t, resp.Body)
		resp.Body.Close()
		if got[telemetry.GREngineActive] != nil { // the second poll's GPM metrics are in
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, name := range slices.Sorted(maps.Keys(fixture)) {
		if why, ok := notFromNVML[name]; ok {
			t.Logf("%s: not produced (%s)", name, why)
			continue
		}
		mf := got[name]
		if mf == nil {
			t.Errorf("%s: missing from the agent's /metrics", name)
			continue
		}
		want := strings.ToLower(fixture[name].GetType().String())
		if d, ok := typeDiffers[name]; ok {
			want = d
		}
		if gt := strings.ToLower(mf.GetType().String()); gt != want {
			t.Errorf("%s: type %s, want %s", name, gt, want)
		}
		have := labelNames(mf)
		for l := range labelNames(fixture[name]) {
			if !have[l] {
				t.Errorf("%s: no series has the label %s (agent's labels: %v)", name, l, slices.Sorted(maps.Keys(have)))
			}
		}
	}
	// Prometheus sets job on every scraped series; the agent must not.
	for name, mf := range got {
		if labelNames(mf)[telemetry.LabelJobLegacy] {
			t.Errorf("%s carries a job label: Prometheus would rename it exported_job", name)
		}
	}
}

// dashboardQueries reads testdata/dashboard-12239-queries.txt.
func dashboardQueries(t *testing.T) (titles, queries []string) {
	t.Helper()
	f, err := os.Open("testdata/dashboard-12239-queries.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		title, q, ok := strings.Cut(line, " | ")
		if !ok {
			t.Fatalf("bad line %q: want \"title | query\"", line)
		}
		titles, queries = append(titles, title), append(queries, q)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return titles, queries
}

// Debian's Prometheus scrapes the agent (a simulated fleet read through the
// NVML source); every query of dashboard 12239 returns series. The agent's
// job label arrives under its own name (hpc_job, not exported_job), and the
// NVLink totals are not added to their per-link series.
func TestDashboard12239QueriesReturnSeries(t *testing.T) {
	runner := newRunner(t, compatScenario)
	a := startAgent(t, runner, true)
	prom := promtest.Prometheus(t, time.Second, a.Addr())
	titles, queries := dashboardQueries(t)
	if len(queries) < 10 {
		t.Fatalf("only %d queries in the list", len(queries))
	}
	vars := strings.NewReplacer("$instance", a.Addr(), "$gpu", ".+")
	nonEmpty := func(s []promtest.Sample) bool { return len(s) > 0 }
	for i, q := range queries {
		res := prom.WaitQuery(t, vars.Replace(q), 30*time.Second, nonEmpty)
		t.Logf("%-40s %d series", titles[i], len(res))
	}
	gpus := len(runner.Fleet.Nodes) * len(runner.Fleet.Nodes[0].GPUs)
	prom.WaitQuery(t, `count(DCGM_FI_DEV_GPU_TEMP{hpc_job="llm", job="fleetwatch"})`, 10*time.Second, func(s []promtest.Sample) bool {
		return len(s) == 1 && int(s[0].Value) == len(runner.Fleet.Nodes[0].GPUs)
	})
	if res, err := prom.Query(context.Background(), `{exported_job!=""}`); err != nil || len(res) != 0 {
		t.Fatalf("series with exported_job: %v (%v)", res, err)
	}
	// A family is either per link or a total: the links add up to the total.
	prom.WaitQuery(t, `sum(DCGM_FI_PROF_NVLINK_TX_BYTES) / sum(DCGM_FI_PROF_NVLINK_LINK_TX_BYTES)`, 10*time.Second, func(s []promtest.Sample) bool {
		return len(s) == 1 && math.Abs(s[0].Value-1) < 1e-6
	})
	prom.WaitQuery(t, `fleetwatch_agent_unsupported_fields{field="`+telemetry.RetiredSBE+`"}`, 10*time.Second, func(s []promtest.Sample) bool {
		return len(s) == 1 && int(s[0].Value) == gpus
	})
}
