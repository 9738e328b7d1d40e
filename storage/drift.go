package storage

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/fleetwatch/fleetwatch/lib/profile"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// The analyzer's drift tables that more than one stage touches: the
// reference profiles (drift_profiles: the analyzer writes them, the collector
// reads them to bin at ingest) and the counts binned at ingest (drift_bins:
// the collector writes them, the analyzer reads them). The types are the
// pure library's (lib/profile).

// DriftProfilesSQL loads every stored profile; FINAL keeps the newest of a
// rebuilt one. LoadDriftProfiles reads its columns by these names.
func DriftProfilesSQL(database string) string {
	return "SELECT model, model_version, feature, kind, source, ref_start, ref_end, detail, edges, categories, counts, missing, created_at FROM " +
		chsql.Ident(database, schema.DriftProfiles.Name) + " FINAL ORDER BY model, model_version, feature"
}

// DriftProfilesBlock renders profiles as one drift_profiles block.
func DriftProfilesBlock(ps []*profile.Profile) Block {
	var b DriftProfileBlock
	for _, p := range ps {
		b.CreatedAt = append(b.CreatedAt, unix(p.CreatedAt))
		b.Model = append(b.Model, p.Model)
		b.ModelVersion = append(b.ModelVersion, p.ModelVersion)
		b.Feature = append(b.Feature, p.Feature)
		b.Kind = append(b.Kind, string(p.Kind))
		b.Source = append(b.Source, p.Source)
		b.RefStart = append(b.RefStart, unix(p.RefStart))
		b.RefEnd = append(b.RefEnd, unix(p.RefEnd))
		b.Detail = append(b.Detail, p.Detail)
		b.Edges = append(b.Edges, nonNil(p.Edges))
		b.Categories = append(b.Categories, nonNil(p.Categories))
		b.Counts = append(b.Counts, nonNil(p.Counts))
		b.Missing = append(b.Missing, p.Missing)
	}
	return b.Block()
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// LoadDriftProfiles reads every stored drift profile.
func LoadDriftProfiles(ctx context.Context, c *Client) ([]*profile.Profile, error) {
	var res chsql.Result
	model, version, feature, kind, source := res.Str("model"), res.Str("model_version"), res.Str("feature"), res.Str("kind"), res.Str("source")
	refStart, refEnd, created := res.Time("ref_start"), res.Time("ref_end"), res.Time("created_at")
	detail, edges, cats, counts, missing := res.Str("detail"), res.Floats("edges"), res.Strings("categories"), res.Floats("counts"), res.F64("missing")
	var out []*profile.Profile
	err := res.ForRows(ctx, c, DriftProfilesSQL(c.Config().Database), func(r int) {
		tm := func(c *chsql.TimeCol) time.Time {
			if v := c.Seconds(r); v != 0 {
				return time.Unix(v, 0).UTC()
			}
			return time.Time{}
		}
		out = append(out, &profile.Profile{Model: model.At(r), ModelVersion: version.At(r), Feature: feature.At(r), Kind: profile.Kind(kind.At(r)),
			Source: source.At(r), RefStart: tm(refStart), RefEnd: tm(refEnd), Detail: detail.At(r), Edges: edges.At(r),
			Categories: cats.At(r), Counts: counts.At(r), Missing: missing.At(r), CreatedAt: tm(created)})
	})
	if err != nil {
		return nil, fmt.Errorf("load drift profiles: %w", err)
	}
	return out, nil
}

// Append adds one row.
func (b *DriftBinBlock) Append(c *profile.BinCount) {
	b.Ts = append(b.Ts, c.Minute.Unix())
	b.Model = append(b.Model, c.Model)
	b.ModelVersion = append(b.ModelVersion, c.ModelVersion)
	b.Feature = append(b.Feature, c.Feature)
	b.Profile = append(b.Profile, c.Profile)
	b.Bin = append(b.Bin, c.Bin)
	b.Count = append(b.Count, c.Count)
}

// DriftBins renders counts (a profile.PrebinBatch's) as one drift_bins block.
func DriftBins(counts iter.Seq[profile.BinCount]) Block {
	var b DriftBinBlock
	for c := range counts {
		b.Append(&c)
	}
	return b.Block()
}
