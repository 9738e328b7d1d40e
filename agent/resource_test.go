package agent_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent"
	"github.com/fleetwatch/fleetwatch/agent/kubeapi/kubeapitest"
	"github.com/fleetwatch/fleetwatch/agent/podres/podrestest"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

func TestResourceFromNode(t *testing.T) {
	node := map[string]string{"topology.kubernetes.io/zone": "dc-east", "example.com/rack": "rack-07", "example.com/empty": ""}
	get := func(_ context.Context, name string) (map[string]string, error) {
		if name != "gpu-017" {
			return nil, errors.New("no such node " + name)
		}
		return node, nil
	}
	for _, tc := range []struct {
		name   string
		in     agent.ResourceConfig
		want   agent.ResourceConfig // without NodeLabels
		warn   string               // in the log, "" for none
		err    string
		called bool
	}{
		{
			name:   "labels fill their fields",
			in:     agent.ResourceConfig{K8sNode: "gpu-017", Cluster: "train-a", NodeLabels: agent.NodeLabels{Datacenter: "topology.kubernetes.io/zone", Rack: "example.com/rack"}},
			want:   agent.ResourceConfig{K8sNode: "gpu-017", Datacenter: "dc-east", Rack: "rack-07", Cluster: "train-a"},
			called: true,
		},
		{
			name:   "a label wins over the configured value",
			in:     agent.ResourceConfig{K8sNode: "gpu-017", Rack: "rack-00", NodeLabels: agent.NodeLabels{Rack: "example.com/rack"}},
			want:   agent.ResourceConfig{K8sNode: "gpu-017", Rack: "rack-07"},
			called: true,
		},
		{
			name:   "an absent or empty label keeps the configured value and says so",
			in:     agent.ResourceConfig{K8sNode: "gpu-017", Row: "row-1", Rack: "rack-00", NodeLabels: agent.NodeLabels{Row: "example.com/row", Rack: "example.com/empty"}},
			want:   agent.ResourceConfig{K8sNode: "gpu-017", Row: "row-1", Rack: "rack-00"},
			warn:   `row="example.com/row (kept \"row-1\")" rack="example.com/empty (kept \"rack-00\")"`,
			called: true,
		},
		{
			name: "without node_labels the API is not asked",
			in:   agent.ResourceConfig{K8sNode: "elsewhere", Rack: "rack-00"},
			want: agent.ResourceConfig{K8sNode: "elsewhere", Rack: "rack-00"},
		},
		{
			name:   "a failed lookup is an error",
			in:     agent.ResourceConfig{K8sNode: "gpu-999", NodeLabels: agent.NodeLabels{Rack: "example.com/rack"}},
			err:    "resource.node_labels: no such node gpu-999",
			called: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			called := false
			r := tc.in
			err := r.FromNode(context.Background(), func(ctx context.Context, n string) (map[string]string, error) {
				called = true
				return get(ctx, n)
			}, slog.New(slog.NewTextHandler(&logs, nil)))
			if called != tc.called {
				t.Errorf("API asked: %v, want %v", called, tc.called)
			}
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r.NodeLabels = agent.NodeLabels{}
			if r != tc.want {
				t.Errorf("resource %+v, want %+v", r, tc.want)
			}
			if got := strings.Contains(logs.String(), "level=WARN"); got != (tc.warn != "") || !strings.Contains(logs.String(), tc.warn) {
				t.Errorf("log:\n%s\nwant a warning with %s", logs.String(), tc.warn)
			}
		})
	}
}

func TestHostIsTheKubernetesNode(t *testing.T) {
	t.Setenv("NODE_NAME", "gpu-017")
	cfg := agent.NewDefaultConfig()
	cfg.Resolve()
	if cfg.Resource.Host != "gpu-017" || cfg.Resource.K8sNode != "gpu-017" {
		t.Errorf("in a pod: host %q, k8s node %q; want both the node's name, not the pod's", cfg.Resource.Host, cfg.Resource.K8sNode)
	}
	t.Setenv("NODE_NAME", "")
	cfg = agent.NewDefaultConfig()
	cfg.Resource.Host = "given"
	cfg.Resolve()
	if cfg.Resource.Host != "given" {
		t.Errorf("a configured host was replaced: %q", cfg.Resource.Host)
	}
}

// With pod_resources on, NVML's GPU series carry the pod the kubelet
// allocated each GPU to, on /metrics as in what is shipped.
func TestGPUSeriesNameTheirPod(t *testing.T) {
	sc, err := sim.Parse([]byte("seed: 1\nfleet: {racks_per_row: 1, nodes_per_rack: 1, gpus_per_node: 2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	fl := sim.NewFleet(sc)
	gpu0, gpu1 := fl.Nodes[0].GPUs[0].UUID, fl.Nodes[0].GPUs[1].UUID
	k := podrestest.Start(t, []podrestest.Pod{{Name: "scorer-7d9f", Namespace: "fraud", Containers: []podrestest.Container{
		{Name: "scorer", Devices: []podrestest.Device{{Resource: "nvidia.com/gpu", IDs: []string{gpu0}}}}}}})
	a, _ := runOnNode(t, fl, func(cfg *agent.Config) {
		cfg.Listen = "127.0.0.1:0"
		cfg.Ship.Endpoint = "127.0.0.1:1" // nothing listens: the buffer keeps it
		cfg.PodResources.Enabled, cfg.PodResources.Socket = true, k.Socket
	})
	// temp is GPU uuid's last temperature line with all of has: a series
	// from before the pod was read stays on /metrics until stale_after
	// beside the labelled one.
	temp := func(uuid string, has ...string) string {
		return metricLine(agentMetrics(a), telemetry.GPUTemp+"{", append([]string{`UUID="` + uuid + `"`}, has...)...)
	}
	wants := []string{`namespace="fraud"`, `pod="scorer-7d9f"`, `container="scorer"`}
	deadline := time.Now().Add(10 * time.Second)
	for line := temp(gpu0, wants...); !strings.Contains(line, wants[1]) && time.Now().Before(deadline); line = temp(gpu0, wants...) {
		time.Sleep(20 * time.Millisecond)
	}
	line := temp(gpu0, wants...)
	for _, want := range wants {
		if !strings.Contains(line, want) {
			t.Errorf("GPU 0 lacks %s: %s", want, line)
		}
	}
	if other := temp(gpu1); other == "" || strings.Contains(other, "pod=") {
		t.Errorf("GPU 1, allocated to no pod: %q", other)
	}
}

// With pod_labels, the GPU series also carry the holding pod's UID and its
// team and cost centre labels, read from the API server; a pod the agent
// may not read is counted by reason on /metrics.
func TestGPUSeriesCarryTheirPodsLabels(t *testing.T) {
	sc, err := sim.Parse([]byte("seed: 1\nfleet: {racks_per_row: 1, nodes_per_rack: 1, gpus_per_node: 2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	fl := sim.NewFleet(sc)
	gpu0, gpu1 := fl.Nodes[0].GPUs[0].UUID, fl.Nodes[0].GPUs[1].UUID
	k := podrestest.Start(t, []podrestest.Pod{
		{Name: "scorer-7d9f", Namespace: "fraud", Containers: []podrestest.Container{
			{Name: "scorer", Devices: []podrestest.Device{{Resource: "nvidia.com/gpu", IDs: []string{gpu0}}}}}},
		{Name: "trainer-0", Namespace: "secret", Containers: []podrestest.Container{
			{Name: "trainer", Devices: []podrestest.Device{{Resource: "nvidia.com/gpu", IDs: []string{gpu1}}}}}},
	})
	api := kubeapitest.Start(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/namespaces/fraud/pods/scorer-7d9f" {
			http.Error(w, `{"kind":"Status","reason":"Forbidden"}`, http.StatusForbidden)
			return
		}
		w.Write([]byte(`{"metadata":{"name":"scorer-7d9f","uid":"0c1d-u1","labels":{"team":"fraud-eng","example.com/cc":"cc-7","app":"scorer"}}}`))
	})
	a, _ := runOnNode(t, fl, func(cfg *agent.Config) {
		cfg.Listen = "127.0.0.1:0"
		cfg.Ship.Endpoint = "127.0.0.1:1" // nothing listens: the buffer keeps it
		cfg.PodResources.Enabled, cfg.PodResources.Socket = true, k.Socket
		cfg.PodResources.Labels.Labels = []string{"team", "cost_center=example.com/cc"}
	}, agent.WithKubeAPI(api.Client))
	metrics := func() string { return agentMetrics(a) }
	// a GPU's series from before its pod was read stays until stale_after
	line := metricLine
	deadline := time.Now().Add(10 * time.Second)
	for line(metrics(), telemetry.GPUTemp+"{", gpu0, "team=") == "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	body := metrics()
	got := line(body, telemetry.GPUTemp+"{", gpu0, "team=")
	for _, want := range []string{`team="fraud-eng"`, `cost_center="cc-7"`, `pod_uid="0c1d-u1"`, `pod="scorer-7d9f"`} {
		if !strings.Contains(got, want) {
			t.Errorf("GPU 0 lacks %s: %s", want, got)
		}
	}
	if strings.Contains(got, "app=") || strings.Contains(got, "environment=") {
		t.Errorf("GPU 0 carries a label not asked for: %s", got)
	}
	if other := line(body, telemetry.GPUTemp+"{", gpu1); !strings.Contains(other, `pod="trainer-0"`) || line(body, telemetry.GPUTemp+"{", gpu1, "team=") != "" {
		t.Errorf("GPU 1, whose pod may not be read: %q", other)
	}
	if l := line(body, "fleetwatch_agent_source_errors_total{", `source="pod_labels"`); !strings.Contains(l, `reason="forbidden"`) || strings.HasSuffix(l, " 0") {
		t.Errorf("the forbidden read is not counted: %q", l)
	}
}

// agentMetrics is the agent's /metrics page once it listens ("" when the
// scrape fails).
func agentMetrics(a *agent.Agent) string {
	for a.Addr() == "" {
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get("http://" + a.Addr() + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// metricLine is the last line of body with prefix and all of has, "" when
// none has them.
func metricLine(body, prefix string, has ...string) string {
	var last string
lines:
	for _, l := range strings.Split(body, "\n") {
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		for _, h := range has {
			if !strings.Contains(l, h) {
				continue lines
			}
		}
		last = l
	}
	return last
}
