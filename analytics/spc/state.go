package spc

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/fleetwatch/fleetwatch/lib/kernels"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// stateColumns are the spc_state columns a Set writes and restores.
var stateColumns = schema.SPCState.ColumnNames()

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
	return storage.Block{Table: schema.SPCState.Name, Columns: stateColumns, Data: []any{
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
	err := chsql.ForRows(ctx, c, RestoreStateSQL(c.Config().Database, detector, ts), s.appendRow)
	if err != nil {
		return fmt.Errorf("restore spc state: %w", err)
	}
	return nil
}

// appendRow adds the series of row r of a RestoreStateSQL record; its
// columns are stateColumns[2:].
func (s *Set) appendRow(rec arrow.Record, r int) {
	str := func(j int) string { return chsql.Str(rec, j, r) }
	f64 := func(j int) float64 { return chsql.F64(rec, j, r) }
	i := s.add(restoredSeries(str(0), str(1), str(2), str(3), str(4)))
	s.value[i], s.rules[i] = f64(5), kernels.Signal(chsql.Int(rec, 6, r))
	if chsql.Int(rec, 7, r) == 0 {
		s.phase1[i] = chsql.FloatList(rec, 8, r)
	}
	c := &s.charts
	c.Mean[i], c.Sigma[i], c.Zones[i] = f64(9), f64(10), uint64(chsql.Int(rec, 11, r))
	c.EWMA[i], c.EWMAF[i], c.CusumHi[i], c.CusumLo[i] = f64(12), f64(13), f64(14), f64(15)
	c.LearnN[i], c.LearnSum[i], c.LearnMR[i], c.LearnMRN[i] = f64(16), f64(17), f64(18), f64(19)
	c.Last[i] = f64(20)
	s.outRun[i], s.stale[i] = uint32(chsql.Int(rec, 21, r)), uint32(chsql.Int(rec, 22, r))
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
	sr.Unit = metricUnits[metric]
	return sr
}
