package spc

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/fleetwatch/fleetwatch/analytics/internal/chsql"
	"github.com/fleetwatch/fleetwatch/analytics/kernels"
	"github.com/fleetwatch/fleetwatch/storage"
)

// stateColumns are the spc_state columns a Set writes and restores.
var stateColumns = []string{"ts", "detector", "series", "metric", "class", "entity_type", "entity", "value", "rules", "phase",
	"baseline", "mean", "sigma", "zones", "ewma", "ewma_f", "cusum_hi", "cusum_lo", "learn_n", "learn_sum", "learn_mr",
	"learn_mr_n", "last", "out_run", "stale"}

// Block returns the state of every series after the window ending at ts, as
// one spc_state block. The set keeps no reference to it.
func (s *Set) Block(detector string, ts time.Time) storage.Block {
	n := s.Len()
	tsCol, det := make([]int64, n), make([]string, n)
	key, metric, class, etype, entity := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	rules, phase := make([]uint8, n), make([]uint8, n)
	base := make([][]float64, n)
	outRun, stale := make([]uint32, n), make([]uint32, n)
	for i, sr := range s.series {
		tsCol[i], det[i] = ts.Unix(), detector
		key[i], metric[i], class[i], etype[i], entity[i] = sr.Key, sr.Metric, sr.Class, sr.EntityType, sr.Entity
		rules[i] = uint8(s.rules[i])
		base[i] = []float64{}
		if s.charts.Sigma[i] > 0 {
			phase[i] = 1
		} else if s.phase1[i] != nil {
			base[i] = s.phase1[i]
		}
		outRun[i], stale[i] = s.outRun[i], s.stale[i]
	}
	c := &s.charts
	return storage.Block{Table: "spc_state", Columns: stateColumns, Data: []any{
		tsCol, det, key, metric, class, etype, entity, s.value, rules, phase, base, c.Mean, c.Sigma, c.Zones,
		c.EWMA, c.EWMAF, c.CusumHi, c.CusumLo, c.LearnN, c.LearnSum, c.LearnMR, c.LearnMRN, c.Last, outRun, stale,
	}}
}

// RestoreStateSQL reads a detector's series as of the window ending at ts.
// A window written twice (a replay) has identical rows; LIMIT 1 BY keeps one.
func RestoreStateSQL(database, detector string, ts time.Time) string {
	return fmt.Sprintf("SELECT %s FROM %s WHERE detector = %s AND ts = %s ORDER BY series LIMIT 1 BY series",
		strings.Join(stateColumns[2:], ", "), chsql.Ident(database, "spc_state"), chsql.String(detector), chsql.Time(ts))
}

// Restore replaces the set's series with a detector's state as of the
// window ending at ts (none when ts is zero).
func (s *Set) Restore(ctx context.Context, c *storage.Client, detector string, ts time.Time) error {
	fresh, _ := NewSet(s.cfg, s.windowSecs)
	*s = *fresh
	if ts.IsZero() {
		return nil
	}
	rr, err := c.QueryArrow(ctx, RestoreStateSQL(c.Config().Database, detector, ts))
	if err != nil {
		return fmt.Errorf("restore spc state: %w", err)
	}
	defer rr.Release()
	for rr.Next() {
		s.appendRecord(rr.Record())
	}
	if err := rr.Err(); err != nil {
		return fmt.Errorf("restore spc state: %w", err)
	}
	return nil
}

func (s *Set) appendRecord(rec arrow.Record) {
	str := func(j int) *array.String { return rec.Column(j).(*array.String) }
	f64 := func(j int) *array.Float64 { return rec.Column(j).(*array.Float64) }
	u8 := func(j int) *array.Uint8 { return rec.Column(j).(*array.Uint8) }
	u32 := func(j int) *array.Uint32 { return rec.Column(j).(*array.Uint32) }
	// Columns as in stateColumns[2:].
	key, metric, class, etype, entity := str(0), str(1), str(2), str(3), str(4)
	value, rules, phase := f64(5), u8(6), u8(7)
	base := rec.Column(8).(*array.List)
	baseVals := base.ListValues().(*array.Float64)
	zones := rec.Column(11).(*array.Uint64)
	for r := 0; r < int(rec.NumRows()); r++ {
		i := s.add(restoredSeries(key.Value(r), metric.Value(r), class.Value(r), etype.Value(r), entity.Value(r)))
		s.value[i], s.rules[i] = value.Value(r), kernels.Signal(rules.Value(r))
		if phase.Value(r) == 0 {
			lo, hi := base.ValueOffsets(r)
			s.phase1[i] = append([]float64(nil), baseVals.Float64Values()[lo:hi]...)
		}
		c := &s.charts
		c.Mean[i], c.Sigma[i], c.Zones[i] = f64(9).Value(r), f64(10).Value(r), zones.Value(r)
		c.EWMA[i], c.EWMAF[i], c.CusumHi[i], c.CusumLo[i] = f64(12).Value(r), f64(13).Value(r), f64(14).Value(r), f64(15).Value(r)
		c.LearnN[i], c.LearnSum[i], c.LearnMR[i], c.LearnMRN[i] = f64(16).Value(r), f64(17).Value(r), f64(18).Value(r), f64(19).Value(r)
		c.Last[i] = f64(20).Value(r)
		s.outRun[i], s.stale[i] = u32(21).Value(r), u32(22).Value(r)
	}
}

// restoredSeries rebuilds a series' description from its spc_state row.
// Until the series is observed again only what the row holds is known; the
// model and feature follow from the entity, so that a detection raised for
// a series without data (a model gone silent: throughput zero, features
// ageing) still names its model and feature after a restart.
func restoredSeries(key, metric, class, etype, entity string) Series {
	sr := Series{Key: key, Metric: metric, Class: class, EntityType: etype, Entity: entity}
	switch etype {
	case "model":
		sr.Model = entity
	case "feature":
		sr.Model, sr.Feature, _ = strings.Cut(entity, "/")
	case "gpu":
		if !strings.HasPrefix(entity, "series-") {
			sr.GPUUUID = entity
		}
	}
	sr.Unit = map[string]string{"throughput": "req/s", "freshness": "s", "latency_p50": "ms", "latency_p95": "ms", "latency_p99": "ms"}[metric]
	return sr
}
