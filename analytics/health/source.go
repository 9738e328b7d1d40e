package health

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
)

// Source reads a window's Input from ClickHouse with three queries, each
// aggregated in the server: a few rows per GPU and metric, the window's
// GPU events, and the GPUs that stopped reporting.
type Source struct {
	client    *storage.Client
	heartbeat string
	lostAfter time.Duration
}

// NewSource returns a source on c.
func NewSource(c *storage.Client, cfg Config) *Source {
	return &Source{client: c, heartbeat: cfg.Heartbeat, lostAfter: cfg.LostAfter}
}

// gpuColumns are gpu_series' identity columns, in the order gpuAt reads them.
const gpuColumns = "uuid, model_name, gpu, datacenter, row, rack, node, cluster, job"

func gpuAt(rec arrow.Record, col, r int) GPU {
	s := func(i int) string { return chsql.Str(rec, col+i, r) }
	return GPU{UUID: s(0), Model: s(1), Index: s(2),
		Topology: fleet.Topology{Datacenter: s(3), Row: s(4), Rack: s(5), Node: s(6), Cluster: s(7)}, Job: s(8)}
}

// RowsSQL aggregates every GPU's samples of the signals' metrics over the
// window, per GPU and metric, in two steps: per series (the raw table's
// order), then per GPU after joining each series to its GPU. Per-link
// series are left out (their totals are read); the rank label comes along
// for training metrics.
func RowsSQL(db string, w fleet.Window) string {
	metrics := chsql.In(Metrics())
	return fmt.Sprintf(`SELECT metric, uuid, any(model_name), any(gpu), any(datacenter), any(row), any(rack), any(node), any(cluster),
    any(job), any(rank), sum(v_sum) / sum(n), max(v_max), sum(v_delta), sum(n)
FROM (
    SELECT metric, series, sum(value) AS v_sum, max(value) AS v_max, sum(delta) AS v_delta, count() AS n
    FROM %s WHERE metric IN %s AND %s GROUP BY metric, series) AS s
ANY LEFT JOIN (
    SELECT series, %s, label_values[indexOf(label_keys, 'rank')] AS rank, has(label_keys, 'link') AS per_link
    FROM %s WHERE metric IN %s) AS g USING series
WHERE per_link = 0 AND uuid != ''
GROUP BY metric, uuid`, chsql.Ident(db, "gpu_samples"), metrics, chsql.Between("ts", w.Start, w.End),
		gpuColumns, chsql.Ident(db, "gpu_series"), metrics)
}

// EventsSQL reads the window's hard-fault events, folded per GPU, kind and
// code.
func EventsSQL(db string, w fleet.Window) string {
	kinds := chsql.In(HardFaultKinds)
	return fmt.Sprintf(`SELECT min(ts) AS first, event, code, sum(count) AS n, any(message),
    uuid, any(model_name), any(gpu), any(datacenter), any(row), any(rack), any(node), any(cluster), any(job)
FROM %s WHERE event IN %s AND %s
GROUP BY event, code, uuid ORDER BY uuid, event, code`, chsql.Ident(db, "gpu_events"), kinds, chsql.Between("ts", w.Start, w.End))
}

// MissingSQL finds the GPUs whose heartbeat metric has a sample in
// [start − lostAfter, start) and none in the window.
func MissingSQL(db, heartbeat string, lostAfter time.Duration, w fleet.Window) string {
	hb := chsql.String(heartbeat)
	return fmt.Sprintf(`SELECT uuid, any(model_name), any(gpu), any(datacenter), any(row), any(rack), any(node), any(cluster), any(job)
FROM (SELECT series, max(ts) AS last FROM %s WHERE metric = %s AND %s GROUP BY series) AS s
ANY LEFT JOIN (SELECT series, %s FROM %s WHERE metric = %s) AS g USING series
WHERE uuid != ''
GROUP BY uuid HAVING max(last) < %s ORDER BY uuid`, chsql.Ident(db, "gpu_samples"), hb, chsql.Between("ts", w.Start.Add(-lostAfter), w.End),
		gpuColumns, chsql.Ident(db, "gpu_series"), hb, chsql.Time(w.Start))
}

// Read runs the three queries for w.
func (s *Source) Read(ctx context.Context, w fleet.Window) (*Input, error) {
	db := s.client.Config().Database
	in := &Input{Window: w}
	err := chsql.ForRows(ctx, s.client, RowsSQL(db, w), func(rec arrow.Record, r int) {
		g := gpuAt(rec, 1, r)
		g.Rank = chsql.Str(rec, 10, r)
		in.Rows = append(in.Rows, Row{GPU: g, Metric: chsql.Str(rec, 0, r), Mean: chsql.F64(rec, 11, r), Max: chsql.F64(rec, 12, r),
			Delta: chsql.F64(rec, 13, r), Samples: int(chsql.Int(rec, 14, r))})
	})
	if err != nil {
		return nil, fmt.Errorf("health: read samples of %v: %w", w, err)
	}
	err = chsql.ForRows(ctx, s.client, EventsSQL(db, w), func(rec arrow.Record, r int) {
		in.Events = append(in.Events, Event{Time: time.Unix(chsql.Seconds(rec, 0, r), 0).UTC(), Kind: chsql.Str(rec, 1, r),
			Code: chsql.Int(rec, 2, r), Count: uint32(chsql.Int(rec, 3, r)), Message: chsql.Str(rec, 4, r), GPU: gpuAt(rec, 5, r)})
	})
	if err != nil {
		return nil, fmt.Errorf("health: read events of %v: %w", w, err)
	}
	err = chsql.ForRows(ctx, s.client, MissingSQL(db, s.heartbeat, s.lostAfter, w), func(rec arrow.Record, r int) {
		in.Missing = append(in.Missing, gpuAt(rec, 0, r))
	})
	if err != nil {
		return nil, fmt.Errorf("health: read missing GPUs of %v: %w", w, err)
	}
	return in, nil
}
