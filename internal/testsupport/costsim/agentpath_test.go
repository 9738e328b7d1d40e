package costsim_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/protobuf/proto"

	"github.com/fleetwatch/fleetwatch/agent/kubeapi/kubeapitest"
	"github.com/fleetwatch/fleetwatch/agent/otlp"
	"github.com/fleetwatch/fleetwatch/agent/podlabels"
	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/analytics/cost"
	"github.com/fleetwatch/fleetwatch/collector/chexporter"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/costsim"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

// kubelet is the pod-resources side of the agent: which pod holds which GPU.
type kubelet map[string]record.Workload

func (k kubelet) Workload(uuid string) record.Workload { return k[uuid] }

func (k kubelet) Pods() []record.Workload {
	var out []record.Workload
	for _, w := range k {
		out = append(out, w)
	}
	return out
}

// TestPodLabelsReachCostByTeam follows a pod's team label from the API
// server to cost by team: the agent's pod-labels lookup (against a TLS fake
// API server, pod_labels [team=example.com/team, cost_center]) labels the
// GPUs, the agent's OTLP encoder sends them (the labels on each GPU's
// resource), the collector's ClickHouse exporter writes them, and
// cost.Store attributes the GPU-hours. Hand-computed: over 3 hours at
// $2/GPU-hour, GPU-A (pod trainer-0, example.com/team=search,
// cost_center=cc-1) and GPU-B (pod scorer, example.com/team=fraud) are
// held all 3 hours: search and fraud 3 GPU-hours and $6 each, cc-1 $6;
// GPU-C, held by nobody, is 3 unallocated GPU-hours; $18 provisioned.
func TestPodLabelsReachCostByTeam(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	api := kubeapitest.Start(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/namespaces/ml/pods/trainer-0":
			w.Write([]byte(`{"metadata":{"uid":"u-trainer","labels":{"example.com/team":"search","cost_center":"cc-1"}}}`))
		case "/api/v1/namespaces/fraud/pods/scorer":
			w.Write([]byte(`{"metadata":{"uid":"u-scorer","labels":{"example.com/team":"fraud"}}}`))
		default:
			http.Error(w, "{}", http.StatusNotFound)
		}
	})
	cfg := podlabels.NewDefaultConfig()
	cfg.Labels = []string{"team=example.com/team", "cost_center"}
	holders := kubelet{"GPU-A": {Namespace: "ml", Pod: "trainer-0", Container: "trainer"}, "GPU-B": {Namespace: "fraud", Pod: "scorer", Container: "scorer"}}
	lab, err := podlabels.New(cfg, api.Client, holders, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	lab.Sync(ctx)
	if got := lab.Workload("GPU-B"); got.Team != "fraud" || got.PodUID != "u-scorer" {
		t.Fatalf("GPU-B labelled %+v", got)
	}
	workload := lab.Workload

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
	hours := costsim.Hours(day, 3)
	enc := otlp.NewEncoder(day, "test")
	res := &record.Resource{Host: "gpu-node-1", Cluster: "c1"}
	for _, h := range hours {
		for _, m := range []int{7, 37} {
			b := &record.Batch{Source: "nvml", Resource: res, Time: h.Add(time.Duration(m) * time.Minute)}
			for i, uuid := range []string{"GPU-A", "GPU-B", "GPU-C"} {
				b.GPUs = append(b.GPUs, record.GPU{Index: string(rune('0' + i)), UUID: uuid, ModelName: "NVIDIA H100 80GB HBM3", Workload: workload(uuid)})
				for _, f := range []struct {
					name string
					v    float64
				}{{telemetry.SMActive, 0.5}, {telemetry.FBUsed, 40000}, {telemetry.FBFree, 40000}} {
					b.Samples = append(b.Samples, record.Sample{Field: int16(telemetry.Index(f.name)), GPU: int32(i), Link: -1, Value: f.v})
				}
			}
			req := enc.Metrics(b)
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
	if err := db.QueryScalar(ctx, `SELECT any(label_values[indexOf(label_keys, 'pod_uid')]) FROM gpu_series WHERE uuid = 'GPU-B'`, &uid); err != nil {
		t.Fatal(err)
	}
	if uid != "u-scorer" {
		t.Errorf("GPU-B's series carry pod_uid %q, want u-scorer", uid)
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
	for team, want := range map[string]float64{"search": 3, "fraud": 3} {
		if r := a.Row(team); !near(r.GPUHours, want) || !near(r.Direct, 2*want) {
			t.Errorf("team %s: %+v, want %v GPU-hours for $%v", team, r, want, 2*want)
		}
	}
	if !near(a.UnallocatedGPUHours, 3) || !near(a.ProvisionedCost, 18) {
		t.Errorf("unallocated %v GPU-hours of $%v provisioned, want 3 of $18", a.UnallocatedGPUHours, a.ProvisionedCost)
	}
	byCC, err := p.Attribute(book, cost.AttributionConfig{GroupBy: []cost.Dimension{cost.ByCostCenter}, Shared: cost.SharedSeparately})
	if err != nil {
		t.Fatal(err)
	}
	if r := byCC.Row("cc-1"); !near(r.Direct, 6) {
		var keys []string
		for _, r := range byCC.Rows {
			keys = append(keys, r.Key)
		}
		t.Errorf("cost centre cc-1: %+v (rows %s), want $6", r, strings.Join(keys, ", "))
	}
}

func near(a, b float64) bool { d := a - b; return d < 1e-9 && d > -1e-9 }
