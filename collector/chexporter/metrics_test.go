package chexporter

import (
	"slices"
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
		pl := e.labelsOf(attrs, nil)
		if pl.job != "llm-pretrain" || len(pl.keys) != 0 {
			t.Fatalf("%s: job %q, other labels %v", key, pl.job, pl.keys)
		}
		ids = append(ids, seriesID("DCGM_FI_DEV_GPU_TEMP", &resource{}, "n1", &pl))
	}
	if ids[0] != ids[1] {
		t.Fatal("hpc_job and job give different series")
	}
}
