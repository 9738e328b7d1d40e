package offline

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fleetwatch/fleetwatch/analytics/drift"
	"github.com/fleetwatch/fleetwatch/analytics/tabular"
	"github.com/fleetwatch/fleetwatch/lib/profile"
)

// table makes rows rows: x ~ N(shift, 1) with some NaN, k an integer,
// c a category, t text only in this table.
func table(r *rand.Rand, rows int, shift float64, extra string) *tabular.Table {
	x, k := make([]float64, rows), make([]float64, rows)
	c, e := make([]string, rows), make([]string, rows)
	for i := range x {
		x[i] = r.NormFloat64() + shift
		if r.IntN(40) == 0 {
			x[i] = math.NaN()
		}
		k[i] = float64(r.IntN(4))
		c[i] = []string{"a", "b", "c", ""}[r.IntN(4)]
		e[i] = "z"
	}
	return &tabular.Table{Rows: rows, Columns: []tabular.Column{
		{Name: "x", Numeric: true, Floats: x}, {Name: "k", Numeric: true, Floats: k},
		{Name: "c", Strings: c}, {Name: extra, Strings: e}}}
}

// Streaming an Arrow IPC file gives exactly the in-memory result when the
// sample covers the reference, and exact counts when it does not.
func TestStreamingMatchesInMemory(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	ref, cur := table(r, 5000, 0, "only_ref"), table(r, 3000, 0.6, "only_cur")
	dir := t.TempDir()
	refPath, curPath := filepath.Join(dir, "ref.arrow"), filepath.Join(dir, "cur.arrow")
	if err := tabular.WriteIPC(refPath, ref, 700); err != nil {
		t.Fatal(err)
	}
	if err := tabular.WriteIPC(curPath, cur, 512); err != nil {
		t.Fatal(err)
	}
	opt := NewDefaultOptions()
	mem, err := CompareTables(ref, cur, opt)
	if err != nil {
		t.Fatal(err)
	}
	opt.SampleRows, opt.Workers = 1_000_000, 3
	stream, err := CompareFiles(refPath, curPath, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(mem.Columns) != 3 || len(stream.Columns) != 3 || stream.RefRows != 5000 || stream.CurRows != 3000 {
		t.Fatalf("columns %d/%d, rows %d/%d", len(mem.Columns), len(stream.Columns), stream.RefRows, stream.CurRows)
	}
	for i := range mem.Columns {
		a, b := mem.Columns[i], stream.Columns[i]
		if a.Name != b.Name || a.Result.PSI != b.Result.PSI || !slices.Equal(a.Profile.Edges, b.Profile.Edges) ||
			!slices.Equal(a.Result.CurCounts, b.Result.CurCounts) || a.Flagged != b.Flagged {
			t.Errorf("%s: in memory %+v\nstreamed %+v", a.Name, a.Result, b.Result)
		}
	}
	if x := mem.Columns[0]; !x.Flagged || x.Result.Band == drift.Stable {
		t.Errorf("a 0.6σ shift with 3000 rows not flagged: %+v", x.Result)
	}
	if k := mem.Columns[1]; k.Flagged {
		t.Errorf("unchanged integer column flagged: %+v", k.Result)
	}
	want := []Skip{{"only_ref", "only in the reference"}, {"only_cur", "only in the current file"}}
	if !slices.Equal(stream.Skipped, want) || !slices.Equal(mem.Skipped, want) {
		t.Errorf("skipped %v / %v", mem.Skipped, stream.Skipped)
	}

	// A sample of 1,400 rows sets the edges; the counts stay exact.
	opt.SampleRows = 1000
	sampled, err := CompareFiles(refPath, curPath, opt)
	if err != nil {
		t.Fatal(err)
	}
	x := sampled.Columns[0]
	if slices.Equal(x.Profile.Edges, mem.Columns[0].Profile.Edges) {
		t.Error("sampled edges equal the exact ones; the sample was not a sample")
	}
	if x.Result.NRef != 5000 || x.Result.NCur != 3000 || !x.Flagged {
		t.Errorf("sampled: %+v", x.Result)
	}
}

func TestKindMismatchIsSkippedWithReason(t *testing.T) {
	ref := &tabular.Table{Rows: 2, Columns: []tabular.Column{{Name: "v", Numeric: true, Floats: []float64{1, 2}}}}
	cur := &tabular.Table{Rows: 2, Columns: []tabular.Column{{Name: "v", Strings: []string{"a", "b"}}}}
	rep, err := CompareTables(ref, cur, NewDefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Columns) != 0 || len(rep.Skipped) != 1 || rep.Skipped[0].Reason != "numeric in the reference but not in the current file" {
		t.Fatalf("%+v", rep)
	}
}

func TestProfileFile(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	path := filepath.Join(t.TempDir(), "train.arrow")
	if err := tabular.WriteIPC(path, table(r, 1000, 0, "note"), 256); err != nil {
		t.Fatal(err)
	}
	ps, err := ProfileFile(path, profile.NewDefaultBuildConfig())
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 4 || ps[0].Feature != "x" || ps[0].Kind != profile.Numeric || ps[2].Kind != profile.Categorical || ps[0].N() != 1000 {
		t.Fatalf("%+v", ps)
	}
}
