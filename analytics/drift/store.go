package drift

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
)

var inf = math.Inf(1)

// profileColumns are the drift_profiles columns, in ProfilesSQL order.
var profileColumns = []string{"model", "model_version", "feature", "kind", "source", "ref_start", "ref_end", "detail",
	"edges", "categories", "counts", "missing", "created_at"}

// ProfilesBlock renders profiles as one drift_profiles block.
func ProfilesBlock(ps []*Profile) storage.Block {
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
	return storage.Block{Table: "drift_profiles", Columns: profileColumns, Data: []any{
		model, version, feature, kind, source, start, end, detail, edges, cats, counts, missing, created}}
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// LoadProfiles reads every stored profile.
func LoadProfiles(ctx context.Context, c *storage.Client) ([]*Profile, error) {
	var out []*Profile
	err := chsql.ForRows(ctx, c, ProfilesSQL(c.Config().Database), func(rec arrow.Record, r int) {
		out = append(out, profileRow(rec, r))
	})
	if err != nil {
		return nil, fmt.Errorf("load drift profiles: %w", err)
	}
	return out, nil
}

func profileRow(rec arrow.Record, r int) *Profile {
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
	return &Profile{Model: s(0), ModelVersion: s(1), Feature: s(2), Kind: Kind(s(3)), Source: s(4), RefStart: tm(5), RefEnd: tm(6),
		Detail: s(7), Edges: chsql.FloatList(rec, 8, r), Categories: cats, Counts: chsql.FloatList(rec, 10, r),
		Missing: chsql.F64(rec, 11, r), CreatedAt: tm(12)}
}
