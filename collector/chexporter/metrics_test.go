package chexporter

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
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

// A resource's points are looked up through the hints of its last request
// (the same position, the same raw identity): reordered, added, renamed or
// relabelled points still get their own series, and a series is described
// again only when its refresh is due.
func TestResourceHintsGiveTheSeriesOfTheFullPath(t *testing.T) {
	e := &chExporter{cfg: createDefaultConfig(), series: newSeriesState(time.Hour)}
	request := func(points ...[2]string) pmetric.Metrics {
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("UUID", "GPU-1")
		rm.Resource().Attributes().PutStr("host.name", "n1")
		ms := rm.ScopeMetrics().AppendEmpty().Metrics()
		for _, p := range points {
			m := ms.AppendEmpty()
			m.SetName(p[0])
			dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
			dp.SetDoubleValue(1)
			dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
			if p[1] != "" {
				dp.Attributes().PutStr("pod_uid", p[1])
			}
		}
		return md
	}
	// ids converts one request and returns its series by "metric/pod" and
	// how many series rows it wrote.
	ids := func(now time.Time, points ...[2]string) (map[string]uint64, int) {
		mb := e.convert(request(points...), now)
		out := map[string]uint64{}
		for i := range mb.samples.Metric {
			out[mb.samples.Metric[i]+"/"+points[i][1]] = mb.samples.Series[i]
		}
		return out, mb.series.Len()
	}
	now := time.Now()
	a, b, c := [2]string{"DCGM_FI_DEV_GPU_TEMP", ""}, [2]string{"DCGM_FI_DEV_POWER_USAGE", ""}, [2]string{"DCGM_FI_DEV_GPU_UTIL", "p1"}
	first, described := ids(now, a, b, c)
	if len(first) != 3 || described != 3 {
		t.Fatalf("first request: %d series, %d described; want 3, 3", len(first), described)
	}
	for _, tc := range []struct {
		name      string
		points    [][2]string
		described int
	}{
		{"same order", [][2]string{a, b, c}, 0},
		{"reordered", [][2]string{c, a, b}, 0},
		{"one more", [][2]string{a, {"DCGM_FI_DEV_SM_CLOCK", ""}, b, c}, 1},
		{"relabelled", [][2]string{a, b, {"DCGM_FI_DEV_GPU_UTIL", "p2"}}, 1},
		{"fewer", [][2]string{b}, 0},
		{"back to the first", [][2]string{a, b, c}, 0},
	} {
		got, described := ids(now.Add(time.Second), tc.points...)
		if described != tc.described {
			t.Errorf("%s: %d series described, want %d", tc.name, described, tc.described)
		}
		for k, id := range got {
			if want, ok := first[k]; ok && id != want {
				t.Errorf("%s: %s has series %x, the first request gave %x", tc.name, k, id, want)
			}
			if _, ok := first[k]; !ok {
				for k2, id2 := range first {
					if id == id2 {
						t.Errorf("%s: %s got %s's series", tc.name, k, k2)
					}
				}
			}
		}
	}
	// Due for a refresh: the hinted path describes the series again.
	if _, described := ids(now.Add(2*time.Hour), a, b, c); described != 3 {
		t.Fatalf("after the refresh interval %d series described, want 3", described)
	}
}
