package telemetry_test

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/fleetwatch/fleetwatch/telemetry"
)

var update = flag.Bool("update", false, "rewrite the generated part of docs/TELEMETRY.md")

func TestCatalogIsConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range telemetry.Fields {
		if seen[f.Name] {
			t.Errorf("%s listed twice", f.Name)
		}
		seen[f.Name] = true
		if f.Kind != telemetry.Gauge && f.Kind != telemetry.Counter {
			t.Errorf("%s has no kind", f.Name)
		}
		if f.Unit == "" || f.Help == "" {
			t.Errorf("%s lacks unit or help", f.Name)
		}
	}
	for n, a := range telemetry.Aliases {
		if _, ok := telemetry.Lookup(a.Name); !ok {
			t.Errorf("alias %s points at unknown %s", n, a.Name)
		}
		if seen[n] {
			t.Errorf("alias %s shadows a catalog field", n)
		}
		if a.Factor == 0 {
			t.Errorf("alias %s has factor 0", n)
		}
	}
}

func TestCanonical(t *testing.T) {
	cases := []struct {
		in     string
		want   string
		factor float64
		link   int
	}{
		{"DCGM_FI_DEV_GPU_TEMP", telemetry.GPUTemp, 1, -1},
		{"DCGM_FI_DEV_SM_CLOCK_HERTZ", telemetry.SMClock, 1e-6, -1},
		{"DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", telemetry.ClockEventReasons, 1, -1},
		{"DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_L17", telemetry.NVLinkCRCFlit, 1, 17},
		{"DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_L0", telemetry.NVLinkCRCFlit, 1, 0},
		{"DCGM_FI_PROF_NVLINK_L3_TX_BYTES", telemetry.NVLinkLinkTxBytes, 1, 3},
		{"DCGM_FI_PROF_NVLINK_L17_RX_BYTES", telemetry.NVLinkLinkRxBytes, 1, 17},
		{"DCGM_FI_PROF_NVLINK_TX_BYTES", telemetry.NVLinkTxBytes, 1, -1},
	}
	for _, c := range cases {
		f, factor, link, ok := telemetry.Canonical(c.in)
		if !ok || f.Name != c.want || factor != c.factor || link != c.link {
			t.Errorf("Canonical(%s) = %s, %v, %d, %v", c.in, f.Name, factor, link, ok)
		}
	}
	for _, bad := range []string{"DCGM_FI_DEV_GPU_TEMP_L3", "DCGM_FI_NOPE", "DCGM_FI_PROF_NVLINK_LX_TX_BYTES", "DCGM_FI_PROF_NVLINK_L3_TX", "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_L", "X_L123"} {
		if _, _, _, ok := telemetry.Canonical(bad); ok {
			t.Errorf("Canonical(%s) accepted", bad)
		}
	}
}

func TestXID(t *testing.T) {
	if x := telemetry.XID(79); x.Class != telemetry.XIDHardware || x.Action != telemetry.ActionDrain || !x.Critical {
		t.Errorf("XID 79: %+v", x)
	}
	for _, app := range []int{13, 31, 43, 45, 68} {
		if x := telemetry.XID(app); x.Class != telemetry.XIDApplication || x.Critical {
			t.Errorf("XID %d should be an application error: %+v", app, x)
		}
	}
	if x := telemetry.XID(9999); x.Class != telemetry.XIDUnknown || x.Action != telemetry.ActionInvestigate {
		t.Errorf("unknown XID: %+v", x)
	}
	if got := strings.Join(telemetry.ClockEventNames(0x4|0x40), ","); got != "power_cap,hw_thermal" {
		t.Errorf("clock event names %q", got)
	}
}

func TestDocIsCurrent(t *testing.T) {
	const begin, end = "<!-- BEGIN GENERATED: go test ./telemetry -update -->\n", "<!-- END GENERATED -->"
	path := "../docs/TELEMETRY.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated-section markers", path)
	}
	want := s[:i+len(begin)] + telemetry.Markdown() + s[j:]
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if s != want {
		t.Errorf("%s is out of date; run go test ./telemetry -update", path)
	}
}

// The GPU labels a sender may put on a resource are the identity and
// workload labels, in every accepted spelling, and none of the labels that
// vary within one GPU (link, rank, the last XID).
func TestGPULabels(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{telemetry.LabelUUID, true}, {"uuid", true}, {telemetry.LabelGPU, true}, {telemetry.LabelModelName, true},
		{telemetry.LabelHostname, true}, {telemetry.LabelHostnameNew, true}, {telemetry.LabelMIGID, true},
		{telemetry.LabelDriverVersion, true}, {telemetry.LabelPodUID, true}, {telemetry.LabelJob, true}, {telemetry.LabelJobLegacy, true},
		{telemetry.LabelTeam, true}, {telemetry.LabelCostCenter, true}, {telemetry.LabelHPCUser, true}, {telemetry.LabelHPCAccount, true},
		{telemetry.LabelLink, false}, {telemetry.LabelRank, false}, {telemetry.LabelErrCode, false},
		{telemetry.AttrHostName, false}, {telemetry.AttrK8sNamespace, false}, {"service.instance.id", false},
	} {
		if got := telemetry.IsGPULabel(tc.key); got != tc.want {
			t.Errorf("IsGPULabel(%q) = %v, want %v", tc.key, got, tc.want)
		}
	}
}
