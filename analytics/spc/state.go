package spc

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fleetwatch/fleetwatch/lib/kernels"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// Block returns the state of every series after the window ending at ts, as
// one spc_state block. The set keeps no reference to it.
func (s *Set) Block(detector string, ts time.Time) storage.Block {
	var b storage.SPCStateBlock
	c := &s.charts
	for i, sr := range s.series {
		var phase uint8
		base := []float64{}
		if c.Sigma[i] > 0 {
			phase = 1
		} else if s.phase1[i] != nil {
			base = s.phase1[i]
		}
		b.Ts = append(b.Ts, ts.Unix())
		b.Detector = append(b.Detector, detector)
		b.Series = append(b.Series, sr.Key)
		b.Metric = append(b.Metric, sr.Metric)
		b.Class = append(b.Class, sr.Class)
		b.EntityType = append(b.EntityType, sr.EntityType)
		b.Entity = append(b.Entity, sr.Entity)
		b.Rules = append(b.Rules, uint8(s.rules[i]))
		b.Phase = append(b.Phase, phase)
		b.Baseline = append(b.Baseline, base)
		b.OutRun = append(b.OutRun, s.outRun[i])
		b.Stale = append(b.Stale, s.stale[i])
	}
	// The chart state is columnar already: the block shares its columns.
	b.Value, b.Mean, b.Sigma, b.Zones, b.EWMA, b.EWMAF = s.value, c.Mean, c.Sigma, c.Zones, c.EWMA, c.EWMAF
	b.CusumHi, b.CusumLo, b.LearnN, b.LearnSum, b.LearnMR, b.LearnMRN, b.Last = c.CusumHi, c.CusumLo, c.LearnN, c.LearnSum, c.LearnMR, c.LearnMRN, c.Last
	return b.Block()
}

// RestoreStateSQL reads a detector's series as of the window ending at ts.
// A window written twice (a replay) has identical rows; LIMIT 1 BY keeps one.
func RestoreStateSQL(database, detector string, ts time.Time) string {
	return fmt.Sprintf("SELECT * FROM %s WHERE detector = %s AND ts = %s ORDER BY series LIMIT 1 BY series",
		chsql.Ident(database, schema.SPCState.Name), chsql.String(detector), chsql.Time(ts))
}

// Restore replaces the set's series with a detector's state as of the
// window ending at ts (none when ts is zero); with keep, only the series it
// keeps (a share's).
func (s *Set) Restore(ctx context.Context, c *storage.Client, detector string, ts time.Time, keep func(Series) bool) error {
	fresh, _ := NewSet(s.cfg, s.windowSecs)
	*s = *fresh
	if ts.IsZero() {
		return nil
	}
	var res chsql.Result
	key, metric, class, etype, entity := res.Str("series"), res.Str("metric"), res.Str("class"), res.Str("entity_type"), res.Str("entity")
	value, rules, phase, base := res.F64("value"), res.Int("rules"), res.Int("phase"), res.Floats("baseline")
	mean, sigma, zones, ewma, ewmaF := res.F64("mean"), res.F64("sigma"), res.Int("zones"), res.F64("ewma"), res.F64("ewma_f")
	cusumHi, cusumLo, learnN, learnSum := res.F64("cusum_hi"), res.F64("cusum_lo"), res.F64("learn_n"), res.F64("learn_sum")
	learnMR, learnMRN, last, outRun, stale := res.F64("learn_mr"), res.F64("learn_mr_n"), res.F64("last"), res.Int("out_run"), res.Int("stale")
	err := res.ForRows(ctx, c, RestoreStateSQL(c.Config().Database, detector, ts), func(r int) {
		sr := restoredSeries(key.At(r), metric.At(r), class.At(r), etype.At(r), entity.At(r))
		if keep != nil && !keep(sr) {
			return
		}
		i := s.add(sr)
		s.value[i], s.rules[i] = value.At(r), kernels.Signal(rules.At(r))
		if phase.At(r) == 0 {
			s.phase1[i] = base.At(r)
		}
		c := &s.charts
		c.Mean[i], c.Sigma[i], c.Zones[i] = mean.At(r), sigma.At(r), uint64(zones.At(r))
		c.EWMA[i], c.EWMAF[i], c.CusumHi[i], c.CusumLo[i] = ewma.At(r), ewmaF.At(r), cusumHi.At(r), cusumLo.At(r)
		c.LearnN[i], c.LearnSum[i], c.LearnMR[i], c.LearnMRN[i] = learnN.At(r), learnSum.At(r), learnMR.At(r), learnMRN.At(r)
		c.Last[i] = last.At(r)
		s.outRun[i], s.stale[i] = uint32(outRun.At(r)), uint32(stale.At(r))
	})
	if err != nil {
		return fmt.Errorf("restore spc state: %w", err)
	}
	return nil
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
