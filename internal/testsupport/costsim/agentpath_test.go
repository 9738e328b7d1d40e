package costsim_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/protobuf/proto"

	"github.com/fleetwatch/fleetwatch/agent/kubeapi/kubeapitest"
	"github.com/fleetwatch/fleetwatch/agent/nvmlsrc"
	"github.com/fleetwatch/fleetwatch/agent/otlp"
	"github.com/fleetwatch/fleetwatch/agent/podlabels"
	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/analytics/cost"
	"github.com/fleetwatch/fleetwatch/collector/chexporter"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/storage/heldrows"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

// kubelet is the pod-resources side of the agent: which pods hold which GPU.
type kubelet map[string][]record.Workload

func (k kubelet) Holders(uuid string) []record.Workload { return k[uuid] }

func (k kubelet) Pods() []record.Workload {
	var out []record.Workload
	for _, ws := range k {
		out = append(out, ws...)
	}
	return out
}

// TestPodLabelsReachCostByTeam follows pods' team labels from the API
// server to cost by team through the agent's code: the pod-labels lookup
// (against a TLS fake API server, pod_labels [team=example.com/team,
// cost_center]) labels the GPUs' holders, the NVML source (on a simulated
// node of 4 H100s) sends a GPU shared by two pods once per pod, the OTLP
// encoder puts the labels on each GPU's resource, the collector's
// ClickHouse exporter writes them, and cost.Store attributes the GPU-hours.
// Hand-computed over 3 hours at $2/GPU-hour: GPU 0 (pod trainer-0,
// example.com/team=search, cost_center=cc-1) and GPU 1 (pod scorer,
// example.com/team=fraud) are held all 3 hours: search and fraud 3
// GPU-hours and $6 each, cc-1 $6; GPU 2, time-sliced between nb-a (team x)
// and nb-b (team y), gives each 1/2: 1.5 GPU-hours, $3; GPU 3, held by
// nobody, is 3 unallocated GPU-hours; $24 provisioned.
func TestPodLabelsReachCostByTeam(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	pods := map[string]string{
		"/api/v1/namespaces/ml/pods/trainer-0": `{"metadata":{"uid":"u-trainer","labels":{"example.com/team":"search","cost_center":"cc-1"}}}`,
		"/api/v1/namespaces/fraud/pods/scorer": `{"metadata":{"uid":"u-scorer","labels":{"example.com/team":"fraud"}}}`,
		"/api/v1/namespaces/dev/pods/nb-a":     `{"metadata":{"uid":"u-nb-a","labels":{"example.com/team":"x"}}}`,
		"/api/v1/namespaces/dev/pods/nb-b":     `{"metadata":{"uid":"u-nb-b","labels":{"example.com/team":"y"}}}`,
	}
	api := kubeapitest.Start(t, func(w http.ResponseWriter, r *http.Request) {
		if body, ok := pods[r.URL.Path]; ok && kubeapitest.Authorized(r) {
			w.Write([]byte(body))
			return
		}
		http.Error(w, "{}", http.StatusNotFound)
	})
	sc, err := sim.Parse([]byte("seed: 1\nfleet: {racks_per_row: 1, nodes_per_rack: 1, gpus_per_node: 4}\n"))
	if err != nil {
		t.Fatal(err)
	}
	fl := sim.NewFleet(sc)
	uuid := func(i int) string { return fl.Nodes[0].GPUs[i].UUID }
	holders := kubelet{
		uuid(0): {{Namespace: "ml", Pod: "trainer-0", Container: "trainer"}},
		uuid(1): {{Namespace: "fraud", Pod: "scorer", Container: "scorer"}},
		uuid(2): {{Namespace: "dev", Pod: "nb-a", Container: "nb"}, {Namespace: "dev", Pod: "nb-b", Container: "nb"}},
	}
	cfg := podlabels.NewDefaultConfig()
	cfg.Labels = []string{"team=example.com/team", "cost_center"}
	lab, err := podlabels.New(cfg, api.Client, holders, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	lab.Sync(ctx)
	if got := lab.Workload(uuid(1)); got.Team != "fraud" || got.PodUID != "u-scorer" {
		t.Fatalf("GPU 1 labelled %+v", got)
	}
	src, err := nvmlsrc.New(fl.NVML(fl.Nodes[0]), nvmlsrc.NewDefaultConfig(), &record.Resource{Host: "gpu-node-1", Cluster: "c1"}, lab, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Open(); err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	ecfg := chexporter.NewFactory().CreateDefaultConfig().(*chexporter.Config)
	ecfg.Endpoints, ecfg.Database, ecfg.CreateSchema = db.Config().Addrs, db.Config().Database, false
	ecfg.Queue.Directory = t.TempDir()
	ecfg.Queue.DrainOnShutdown = time.Minute
	exp, err := chexporter.NewFactory().CreateMetrics(ctx, exportertest.NewNopSettings(chexporter.Type), ecfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(ctx, componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	enc := otlp.NewEncoder(day, "test")
	for _, h := range heldrows.Hours(day, 3) {
		for _, m := range []int{7, 37} {
			now := h.Add(time.Duration(m) * time.Minute)
			fl.Advance(now)
			req := enc.Metrics(src.Collect(now))
			data, err := proto.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			md := pmetricotlp.NewExportRequest()
			if err := md.UnmarshalProto(data); err != nil {
				t.Fatal(err)
			}
			if err := exp.ConsumeMetrics(ctx, md.Metrics()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var uid string
	if err := db.QueryScalar(ctx, `SELECT any(label_values[indexOf(label_keys, 'pod_uid')]) FROM gpu_series WHERE uuid = '`+uuid(1)+`'`, &uid); err != nil {
		t.Fatal(err)
	}
	if uid != "u-scorer" {
		t.Errorf("GPU 1's series carry pod_uid %q, want u-scorer", uid)
	}

	store, err := cost.NewStore(db, cost.NewDefaultStoreConfig())
	if err != nil {
		t.Fatal(err)
	}
	book, err := cost.NewPriceBook(cost.PriceBookConfig{Currency: "USD", Prices: []cost.Price{
		{PriceKey: cost.PriceKey{GPUModel: "NVIDIA H100 80GB HBM3", Cluster: "c1", Purchase: cost.OnDemand}, Effective: day.AddDate(0, -1, 0), PerGPUHour: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := store.Read(ctx, day, day.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	a, err := p.Attribute(book, cost.AttributionConfig{GroupBy: []cost.Dimension{cost.ByTeam}, Shared: cost.SharedSeparately})
	if err != nil {
		t.Fatal(err)
	}
	for team, want := range map[string]float64{"search": 3, "fraud": 3, "x": 1.5, "y": 1.5} {
		if r := a.Row(team); !near(r.GPUHours, want) || !near(r.Direct, 2*want) {
			t.Errorf("team %s: %+v, want %v GPU-hours for $%v", team, r, want, 2*want)
		}
	}
	if !near(a.UnallocatedGPUHours, 3) || !near(a.ProvisionedCost, 24) || len(a.Rows) != 5 {
		t.Errorf("unallocated %v GPU-hours of $%v provisioned, rows %+v; want 3 of $24, 4 teams and the shared row", a.UnallocatedGPUHours, a.ProvisionedCost, a.Rows)
	}
	byCC, err := p.Attribute(book, cost.AttributionConfig{GroupBy: []cost.Dimension{cost.ByCostCenter}, Shared: cost.SharedSeparately})
	if err != nil {
		t.Fatal(err)
	}
	if r := byCC.Row("cc-1"); !near(r.Direct, 6) {
		t.Errorf("cost centre cc-1: %+v, want $6", r)
	}
	// The shared GPU's usage is the GPU's, not diluted by its second holder.
	for _, u := range p.Usage {
		if u.GPU == uuid(2) && u.SMActive == 0 && u.MemUse == 0 {
			t.Errorf("the shared GPU's usage %+v is empty", u)
		}
	}
}

func near(a, b float64) bool { d := a - b; return d < 1e-9 && d > -1e-9 }
