package dcgmsrc_test

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/dcgmsrc"
	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func parseFile(t *testing.T, path string) (*record.Batch, dcgmsrc.Stats) {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, st, err := dcgmsrc.Parse(body, "text/plain; version=0.0.4", time.Unix(1_700_000_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	return b, st
}

func values(b *record.Batch) map[string]float64 {
	out := map[string]float64{}
	for _, s := range b.Samples {
		out[s.MetricName()] = s.Value
	}
	return out
}

// The real scrape from ../shared/fixtures/dcgm (GPU Operator v25.10.0, RTX 4000 Ada).
func TestRealScrape(t *testing.T) {
	b, st := parseFile(t, "testdata/dcgm-exporter-sample.txt")
	if st.Series != 25 || st.Samples != 25 || len(st.Dropped) != 0 {
		t.Fatalf("stats %+v: want all 25 metric families kept", st)
	}
	if len(b.GPUs) != 1 {
		t.Fatalf("%d GPUs", len(b.GPUs))
	}
	g := b.GPUs[0]
	if g.UUID != "GPU-a8394b51-c086-568a-9f1a-c1e1c934c44c" || g.ModelName != "NVIDIA RTX 4000 Ada Generation" || g.Index != "0" ||
		g.PCIBusID != "00000000:00:02.0" || g.Device != "nvidia0" || g.Pod != "cuda-75454ffb9f-8ljq7" || g.Namespace != "default" || g.Container != "cuda" {
		t.Fatalf("GPU identity %+v", g)
	}
	if b.Resource.Host != "lke529760-766837-0a634ab30000" {
		t.Fatalf("host %q", b.Resource.Host)
	}
	v := values(b)
	want := map[string]float64{telemetry.SMClock: 2310, telemetry.MemClock: 9001, telemetry.GPUTemp: 48, telemetry.PowerUsage: 40.979,
		telemetry.TotalEnergy: 455497156, telemetry.FBFree: 20015, telemetry.FBUsed: 1, telemetry.FBReserved: 457,
		telemetry.GREngineActive: 0.004656, telemetry.DRAMActive: 0.003074, telemetry.PCIeTxBytes: 78398480, telemetry.XIDErrors: 0,
		telemetry.NVLinkBandwidth: 0, telemetry.VGPULicenseStatus: 0}
	for name, w := range want {
		got, ok := v[name]
		if !ok || math.Abs(got-w) > 1e-9*math.Max(1, w) {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, w)
		}
	}
	if st.PassedThrough != 0 {
		t.Errorf("passed through %d fields outside the catalog, want 0", st.PassedThrough)
	}
	// The driver version and pod UID are part of the GPU's identity, not
	// extra labels of each sample.
	if g.DriverVersion != "580.95.05" {
		t.Errorf("driver version %q", g.DriverVersion)
	}
	for _, s := range b.Samples {
		if len(s.Extra) != 0 {
			t.Errorf("%s has extra labels %v", s.MetricName(), s.Extra)
		}
	}
	if len(b.Events) != 0 {
		t.Errorf("XID 0 produced events: %+v", b.Events)
	}
}

// DCGM 4.6/4.7 names and base units map onto exactly the same samples.
func TestClassicAndNewNamesAgree(t *testing.T) {
	classic, _ := parseFile(t, "testdata/dcgm-exporter-sample.txt")
	modern, st := parseFile(t, "testdata/dcgm-4.7-sample.txt")
	if st.PassedThrough != 0 {
		t.Errorf("4.7 names not recognised: %d passed through", st.PassedThrough)
	}
	a, b := values(classic), values(modern)
	if len(a) != len(b) {
		t.Fatalf("%d vs %d fields", len(a), len(b))
	}
	for name, va := range a {
		vb, ok := b[name]
		if !ok || math.Abs(va-vb) > 1e-9*math.Max(1, math.Abs(va)) {
			t.Errorf("%s: classic %v, 4.7 %v", name, va, vb)
		}
	}
	if modern.Resource.Host != classic.Resource.Host {
		t.Errorf("lower-case hostname label: %q", modern.Resource.Host)
	}
}

func TestBlankSentinelsAreDropped(t *testing.T) {
	const scrape = `# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-1"} 9223372036854775794
DCGM_FI_DEV_GPU_TEMP{gpu="1",UUID="GPU-2"} 2147483634
DCGM_FI_DEV_GPU_TEMP{gpu="2",UUID="GPU-3"} 140737488355330
DCGM_FI_DEV_GPU_TEMP{gpu="3",UUID="GPU-4"} 41
DCGM_FI_DEV_GPU_TEMP{gpu="4",UUID="GPU-5"} NaN
DCGM_EXP_XID_ERRORS_COUNT{gpu="3",UUID="GPU-4"} 0
`
	b, st, err := dcgmsrc.Parse([]byte(scrape), "text/plain", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Samples) != 1 || b.Samples[0].Value != 41 {
		t.Fatalf("kept %+v", b.Samples)
	}
	if st.Dropped["blank"] != 3 || st.Dropped["not_finite"] != 1 || st.Dropped["not_a_dcgm_field"] != 1 {
		t.Fatalf("dropped %v", st.Dropped)
	}
}

func TestPerLinkNamesBecomeLinkLabels(t *testing.T) {
	const scrape = `DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_L3{gpu="0",UUID="GPU-1"} 12
DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL{gpu="0",UUID="GPU-1"} 12
DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT{gpu="0",UUID="GPU-1",link="7"} 2
`
	b, _, err := dcgmsrc.Parse([]byte(scrape), "text/plain", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int16{}
	for _, s := range b.Samples {
		got[s.MetricName()] = s.Link
	}
	if got[telemetry.NVLinkCRCFlit] != 3 || got[telemetry.NVLinkCRCFlitTotal] != -1 || got[telemetry.NVLinkReplay] != 7 {
		t.Fatalf("links %v", got)
	}
}

func TestScrapeReportsXIDChangesOnce(t *testing.T) {
	var xid atomic.Int64
	var fail atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, "# TYPE DCGM_FI_DEV_XID_ERRORS gauge\n")
		io.WriteString(w, `DCGM_FI_DEV_XID_ERRORS{gpu="0",UUID="GPU-1",err_code="`+itoa(xid.Load())+`",err_msg="Graphics Engine Exception"} `+itoa(xid.Load())+"\n")
	}))
	defer srv.Close()
	cfg := dcgmsrc.NewDefaultConfig()
	cfg.URL = srv.URL
	src, err := dcgmsrc.New(cfg, record.Resource{Rack: "r1"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var events []record.Event
	for _, code := range []int64{0, 13, 13, 13, 48} {
		xid.Store(code)
		b, err := src.Scrape(ctx, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if b.Resource.Rack != "r1" {
			t.Fatal("configured topology lost")
		}
		events = append(events, b.Events...)
	}
	if len(events) != 2 || events[0].Code != 13 || events[0].Message != "Graphics Engine Exception" || events[1].Code != 48 {
		t.Fatalf("events %+v, want XID 13 once then XID 48", events)
	}
	fail.Store(true)
	if _, err := src.Scrape(ctx, time.Now()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("failed scrape: %v", err)
	}
	if src.Errors()["http_503"] != 1 {
		t.Fatalf("errors %v", src.Errors())
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func TestConfigValidate(t *testing.T) {
	err := dcgmsrc.Config{URL: "localhost:9400", Interval: time.Millisecond}.Validate()
	if err == nil || !strings.Contains(err.Error(), "http(s) URL") || !strings.Contains(err.Error(), "interval") || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("got %v", err)
	}
}

func FuzzParse(f *testing.F) {
	body, _ := os.ReadFile("testdata/dcgm-exporter-sample.txt")
	f.Add(body)
	f.Add([]byte("DCGM_FI_DEV_GPU_TEMP 1\n"))
	f.Add([]byte("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_L99{UUID=\"x\"} 1e308\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, st, err := dcgmsrc.Parse(data, "text/plain", time.Now())
		if err != nil {
			return
		}
		if st.Samples != len(b.Samples) {
			t.Fatalf("stats say %d samples, batch has %d", st.Samples, len(b.Samples))
		}
		for _, s := range b.Samples {
			if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) || dcgmsrc.IsBlank(s.Value) {
				t.Fatalf("kept %v", s.Value)
			}
			if s.GPU >= int32(len(b.GPUs)) {
				t.Fatalf("GPU index %d of %d", s.GPU, len(b.GPUs))
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	body, _ := os.ReadFile("testdata/dcgm-exporter-sample.txt")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		if _, _, err := dcgmsrc.Parse(body, "text/plain", time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
