package chexporter

import (
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

func TestLabelsWithKeepsKeyOrderAndOwnsItsSlices(t *testing.T) {
	base := pointLabels{keys: []string{"a", "m", "z"}, values: []string{"1", "2", "3"}, truncated: 1}
	got := base.with("le", "0.5")
	if !slices.Equal(got.keys, []string{"a", "le", "m", "z"}) || !slices.Equal(got.values, []string{"1", "0.5", "2", "3"}) || got.truncated != 1 {
		t.Fatalf("with: %v %v truncated %d", got.keys, got.values, got.truncated)
	}
	other := base.with("quantile", "0.99")
	got.values[0] = "changed"
	if base.values[0] != "1" || other.values[0] != "1" || !slices.Equal(base.keys, []string{"a", "m", "z"}) {
		t.Fatalf("copies share memory: base %v, other %v", base.values, other.values)
	}
}

// The agent's job label is hpc_job since issue 13 (Prometheus owns "job");
// older agents and training jobs send job. Both fill the job column and give
// the same series, so upgrading an agent does not split its series.
func TestJobLabelBothSpellings(t *testing.T) {
	e := &chExporter{cfg: &Config{MaxLabelLength: 1024}}
	var ids []uint64
	for _, key := range []string{"hpc_job", "job"} {
		attrs := pcommon.NewMap()
		attrs.PutStr("UUID", "GPU-1")
		attrs.PutStr(key, "llm-pretrain")
		pl := e.labelsOf(attrs, nil, nil)
		if pl.job != "llm-pretrain" || len(pl.keys) != 0 {
			t.Fatalf("%s: job %q, other labels %v", key, pl.job, pl.keys)
		}
		ids = append(ids, seriesID("DCGM_FI_DEV_GPU_TEMP", &resource{}, "n1", &pl))
	}
	if ids[0] != ids[1] {
		t.Fatal("hpc_job and job give different series")
	}
}

// A resource's GPU labels count as every data point's under it; a point's
// own value of a label wins, in any of its spellings; truncations are
// counted once per label the point ends up with.
func TestResourceLabelsUnderPointLabels(t *testing.T) {
	e := &chExporter{cfg: &Config{MaxLabelLength: 24}}
	long, cut := strings.Repeat("x", 30), strings.Repeat("x", 24)
	type kv = [2]string
	for _, tc := range []struct {
		name      string
		resource  []kv
		point     []kv
		extra     map[string]string
		uuid, job string
		keys      []string
		values    []string
		truncated int
	}{
		{"point form", nil, []kv{{"UUID", "GPU-1"}, {"gpu", "0"}, {"pod_uid", "u"}}, nil, "GPU-1", "", []string{"pod_uid"}, []string{"u"}, 0},
		{"resource form", []kv{{"UUID", "GPU-1"}, {"gpu", "0"}, {"pod_uid", "u"}, {"service.name", "x"}}, nil, nil, "GPU-1", "", []string{"pod_uid"}, []string{"u"}, 0},
		{"link on the point", []kv{{"UUID", "GPU-1"}, {"pod_uid", "u"}}, []kv{{"link", "3"}}, nil, "GPU-1", "", []string{"link", "pod_uid"}, []string{"3", "u"}, 0},
		{"link from the name", []kv{{"UUID", "GPU-1"}, {"pod_uid", "u"}}, nil, map[string]string{"link": "2"}, "GPU-1", "", []string{"link", "pod_uid"}, []string{"2", "u"}, 0},
		{"the point's value wins", []kv{{"UUID", "GPU-1"}, {"DCGM_FI_DRIVER_VERSION", "550"}, {"hpc_job", "a"}},
			[]kv{{"uuid", "GPU-2"}, {"DCGM_FI_DRIVER_VERSION", "580"}, {"job", "b"}}, nil, "GPU-2", "b", []string{"DCGM_FI_DRIVER_VERSION"}, []string{"580"}, 0},
		{"keys merge in order", []kv{{"UUID", "GPU-1"}, {"a", "not a GPU label"}, {"pod_uid", "u"}}, []kv{{"z", "1"}, {"b", "2"}}, nil,
			"GPU-1", "", []string{"b", "pod_uid", "z"}, []string{"2", "u", "1"}, 0},
		{"truncated on the resource", []kv{{"UUID", long}, {"pod_uid", long}}, nil, nil, cut, "", []string{"pod_uid"}, []string{cut}, 2},
		{"truncated resource labels the point replaces", []kv{{"UUID", long}, {"pod_uid", long}}, []kv{{"UUID", "GPU-1"}, {"pod_uid", "u"}, {"rank", long}}, nil,
			"GPU-1", "", []string{"pod_uid", "rank"}, []string{"u", cut}, 1},
		{"truncated on both", []kv{{"UUID", long}, {"pod_uid", long}}, []kv{{"rank", "1"}}, nil, cut, "", []string{"pod_uid", "rank"}, []string{cut, "1"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ra, pa := pcommon.NewMap(), pcommon.NewMap()
			for _, l := range tc.resource {
				ra.PutStr(l[0], l[1])
			}
			for _, l := range tc.point {
				pa.PutStr(l[0], l[1])
			}
			res := resourceOf(ra, e.cfg.MaxLabelLength)
			pl := e.labelsOf(pa, tc.extra, res.gpuLabels())
			if pl.gpu.UUID != tc.uuid || pl.job != tc.job || !slices.Equal(pl.keys, tc.keys) || !slices.Equal(pl.values, tc.values) || pl.truncated != tc.truncated {
				t.Fatalf("got UUID %q job %q labels %v=%v truncated %d; want %q %q %v=%v %d",
					pl.gpu.UUID, pl.job, pl.keys, pl.values, pl.truncated, tc.uuid, tc.job, tc.keys, tc.values, tc.truncated)
			}
			// The resource's labels are not changed by a point's.
			if again := e.labelsOf(pcommon.NewMap(), nil, res.gpuLabels()); len(tc.resource) > 0 && again.gpu.UUID != truncate(tc.resource[0][1], 24) {
				t.Fatalf("the resource's labels changed: %+v", again)
			}
		})
	}
}
