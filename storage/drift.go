package storage

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/fleetwatch/fleetwatch/lib/profile"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
)

// The analyzer's drift tables that more than one stage touches: the
// reference profiles (drift_profiles: the analyzer writes them, the collector
// reads them to bin at ingest) and the counts binned at ingest (drift_bins:
// the collector writes them, the analyzer reads them). The types are the
// pure library's (lib/profile).

// DriftProfilesSQL loads every stored profile; FINAL keeps the newest of a
// rebuilt one.
func DriftProfilesSQL(database string) string {
	return "SELECT model, model_version, feature, kind, source, ref_start, ref_end, detail, edges, categories, counts, missing, created_at FROM " +
		chsql.Ident(database, "drift_profiles") + " FINAL ORDER BY model, model_version, feature"
}

// profileColumns are the drift_profiles columns, in DriftProfilesSQL order.
var profileColumns = []string{"model", "model_version", "feature", "kind", "source", "ref_start", "ref_end", "detail",
	"edges", "categories", "counts", "missing", "created_at"}

// DriftProfilesBlock renders profiles as one drift_profiles block.
func DriftProfilesBlock(ps []*profile.Profile) Block {
	n := len(ps)
	model, version, feature, kind, source, detail := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	start, end, created := make([]int64, n), make([]int64, n), make([]int64, n)
	edges, counts := make([][]float64, n), make([][]float64, n)
	cats := make([][]string, n)
	missing := make([]float64, n)
	for i, p := range ps {
		model[i], version[i], feature[i], kind[i], source[i], detail[i] = p.Model, p.ModelVersion, p.Feature, string(p.Kind), p.Source, p.Detail
		start[i], end[i], created[i] = unix(p.RefStart), unix(p.RefEnd), unix(p.CreatedAt)
		edges[i], counts[i], cats[i] = nonNil(p.Edges), nonNil(p.Counts), nonNil(p.Categories)
		missing[i] = p.Missing
	}
	return Block{Table: "drift_profiles", Columns: profileColumns, Data: []any{
		model, version, feature, kind, source, start, end, detail, edges, cats, counts, missing, created}}
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// LoadDriftProfiles reads every stored drift profile.
func LoadDriftProfiles(ctx context.Context, c *Client) ([]*profile.Profile, error) {
	var out []*profile.Profile
	err := chsql.ForRows(ctx, c, DriftProfilesSQL(c.Config().Database), func(rec arrow.Record, r int) {
		out = append(out, driftProfileRow(rec, r))
	})
	if err != nil {
		return nil, fmt.Errorf("load drift profiles: %w", err)
	}
	return out, nil
}

func driftProfileRow(rec arrow.Record, r int) *profile.Profile {
	tm := func(c int) time.Time {
		if v := chsql.Seconds(rec, c, r); v != 0 {
			return time.Unix(v, 0).UTC()
		}
		return time.Time{}
	}
	l := rec.Column(9).(*array.List)
	lo, hi := l.ValueOffsets(r)
	vals := l.ListValues().(*array.String)
	var cats []string
	for i := lo; i < hi; i++ {
		cats = append(cats, vals.Value(int(i)))
	}
	s := func(c int) string { return chsql.Str(rec, c, r) }
	return &profile.Profile{Model: s(0), ModelVersion: s(1), Feature: s(2), Kind: profile.Kind(s(3)), Source: s(4), RefStart: tm(5), RefEnd: tm(6),
		Detail: s(7), Edges: chsql.FloatList(rec, 8, r), Categories: cats, Counts: chsql.FloatList(rec, 10, r),
		Missing: chsql.F64(rec, 11, r), CreatedAt: tm(12)}
}

// DriftBinBlock builds drift_bins blocks.
type DriftBinBlock struct {
	ts                      []int64
	model, version, feature []string
	profile, count          []uint64
	bin                     []int16
}

// Append adds one row.
func (b *DriftBinBlock) Append(c *profile.BinCount) {
	b.ts = append(b.ts, c.Minute.Unix())
	b.model = append(b.model, c.Model)
	b.version = append(b.version, c.ModelVersion)
	b.feature = append(b.feature, c.Feature)
	b.profile = append(b.profile, c.Profile)
	b.bin = append(b.bin, c.Bin)
	b.count = append(b.count, c.Count)
}

// Len is the number of rows.
func (b *DriftBinBlock) Len() int { return len(b.ts) }

// Reset empties the builder, keeping its capacity.
func (b *DriftBinBlock) Reset() {
	b.ts, b.model, b.version, b.feature = b.ts[:0], b.model[:0], b.version[:0], b.feature[:0]
	b.profile, b.bin, b.count = b.profile[:0], b.bin[:0], b.count[:0]
}

// Block returns the rows as a Block sharing the builder's memory.
func (b *DriftBinBlock) Block() Block {
	var cs columns
	cs.add("ts", b.ts)
	cs.add("model", b.model)
	cs.add("model_version", b.version)
	cs.add("feature", b.feature)
	cs.add("profile", b.profile)
	cs.add("bin", b.bin)
	cs.add("count", b.count)
	return cs.block("drift_bins")
}

// DriftBins renders counts (a profile.PrebinBatch's) as one drift_bins block.
func DriftBins(counts iter.Seq[profile.BinCount]) Block {
	var b DriftBinBlock
	for c := range counts {
		b.Append(&c)
	}
	return b.Block()
}
