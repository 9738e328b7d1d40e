package health

import (
	"context"
	"fmt"
	"time"

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
	shard     fleet.Shard
}

// NewSource returns a source on c, reading the GPUs of cfg.Shard.
func NewSource(c *storage.Client, cfg Config) *Source {
	return &Source{client: c, heartbeat: cfg.Heartbeat, lostAfter: cfg.LostAfter, shard: cfg.Shard}
}

// seriesOf is gpu_series' identity of the metrics' series of the GPUs in
// shard (their datacenters'). A series of another datacenter finds no
// match in the ANY LEFT JOIN and is dropped with the GPUs without a uuid.
func seriesOf(db, metricsIn string, shard fleet.Shard) string {
	return fmt.Sprintf("SELECT series, %s FROM %s WHERE metric IN %s AND %s", gpuColumns, chsql.Ident(db, "gpu_series"), metricsIn,
		chsql.InShard("datacenter", shard.Index, shard.Of))
}

// gpuColumns are gpu_series' identity columns, in the order gpuAt reads them.
const gpuColumns = "uuid, model_name, gpu, datacenter, row, rack, node, cluster, job"

// gpuAny picks, in a query grouped by uuid, one value of each identity
// column, named as gpuCols reads them (apart from the columns' own names,
// which aliases must not shadow).
const gpuAny = `uuid, any(model_name) AS g_model, any(gpu) AS g_index, any(datacenter) AS g_datacenter, any(row) AS g_row,
    any(rack) AS g_rack, any(node) AS g_node, any(cluster) AS g_cluster, any(job) AS g_job`

// gpuCols reads the columns gpuAny names.
type gpuCols struct{ uuid, model, index, dc, row, rack, node, cluster, job *chsql.StrCol }

func readGPU(res *chsql.Result) gpuCols {
	return gpuCols{res.Str("uuid"), res.Str("g_model"), res.Str("g_index"), res.Str("g_datacenter"), res.Str("g_row"),
		res.Str("g_rack"), res.Str("g_node"), res.Str("g_cluster"), res.Str("g_job")}
}

func (c gpuCols) at(r int) GPU {
	return GPU{UUID: c.uuid.At(r), Model: c.model.At(r), Index: c.index.At(r),
		Topology: fleet.Topology{Datacenter: c.dc.At(r), Row: c.row.At(r), Rack: c.rack.At(r), Node: c.node.At(r), Cluster: c.cluster.At(r)},
		Job:      c.job.At(r)}
}

// RowsSQL aggregates every GPU's samples of the signals' metrics over the
// window, per GPU and metric, in two steps: per series (the raw table's
// order), then per GPU after joining each series to its GPU. Per-link
// series of a total are left out (the total is read); a per-link family
// (the catalog's PerLink fields the signals read) is read as the sum over
// its links of each link's mean. The rank label comes along for training
// metrics. Only the GPUs of shard's datacenters are read.
func RowsSQL(db string, w fleet.Window, shard fleet.Shard) string {
	metrics, links := chsql.In(Metrics()), chsql.In(perLink)
	return fmt.Sprintf(`SELECT metric, %s,
    any(rank) AS g_rank, if(metric IN %s, sum(v_sum / n), sum(v_sum) / sum(n)) AS mean, max(v_max) AS peak,
    sum(v_delta) AS increase, sum(n) AS samples
FROM (
    SELECT metric, series, sum(value) AS v_sum, max(value) AS v_max, sum(delta) AS v_delta, count() AS n
    FROM %s WHERE metric IN %s AND %s GROUP BY metric, series) AS s
ANY LEFT JOIN (
    SELECT series, %s, label_values[indexOf(label_keys, 'rank')] AS rank, has(label_keys, 'link') AS per_link
    FROM %s WHERE metric IN %s AND %s) AS g USING series
WHERE (per_link = 0 OR metric IN %s) AND uuid != ''
GROUP BY metric, uuid`, gpuAny, links, chsql.Ident(db, "gpu_samples"), metrics, chsql.Between("ts", w.Start, w.End),
		gpuColumns, chsql.Ident(db, "gpu_series"), metrics, chsql.InShard("datacenter", shard.Index, shard.Of), links)
}

// EventsSQL reads the window's hard-fault events of shard's datacenters,
// folded per GPU, kind and code.
func EventsSQL(db string, w fleet.Window, shard fleet.Shard) string {
	kinds := chsql.In(HardFaultKinds)
	return fmt.Sprintf(`SELECT min(ts) AS first, event, code, sum(count) AS n, any(message) AS msg,
    %s
FROM %s WHERE event IN %s AND %s AND %s
GROUP BY event, code, uuid ORDER BY uuid, event, code`, gpuAny, chsql.Ident(db, "gpu_events"), kinds, chsql.Between("ts", w.Start, w.End),
		chsql.InShard("datacenter", shard.Index, shard.Of))
}

// MissingSQL finds the GPUs of shard's datacenters whose heartbeat metric
// has a sample in [start − lostAfter, start) and none in the window.
func MissingSQL(db, heartbeat string, lostAfter time.Duration, w fleet.Window, shard fleet.Shard) string {
	hb := chsql.String(heartbeat)
	return fmt.Sprintf(`SELECT %s
FROM (SELECT series, max(ts) AS last FROM %s WHERE metric = %s AND %s GROUP BY series) AS s
ANY LEFT JOIN (%s) AS g USING series
WHERE uuid != ''
GROUP BY uuid HAVING max(last) < %s ORDER BY uuid`, gpuAny, chsql.Ident(db, "gpu_samples"), hb, chsql.Between("ts", w.Start.Add(-lostAfter), w.End),
		seriesOf(db, "("+hb+")", shard), chsql.Time(w.Start))
}

// Read runs the three queries for w.
func (s *Source) Read(ctx context.Context, w fleet.Window) (*Input, error) {
	db := s.client.Config().Database
	in := &Input{Window: w}
	var rows chsql.Result
	rowGPU, metric, rank := readGPU(&rows), rows.Str("metric"), rows.Str("g_rank")
	mean, peak, increase, samples := rows.F64("mean"), rows.F64("peak"), rows.F64("increase"), rows.Int("samples")
	err := rows.ForRows(ctx, s.client, RowsSQL(db, w, s.shard), func(r int) {
		g := rowGPU.at(r)
		g.Rank = rank.At(r)
		in.Rows = append(in.Rows, Row{GPU: g, Metric: metric.At(r), Mean: mean.At(r), Max: peak.At(r), Delta: increase.At(r), Samples: int(samples.At(r))})
	})
	if err != nil {
		return nil, fmt.Errorf("health: read samples of %v: %w", w, err)
	}
	var events chsql.Result
	eventGPU, first, kind, code, n, msg := readGPU(&events), events.Time("first"), events.Str("event"), events.Int("code"), events.Int("n"), events.Str("msg")
	err = events.ForRows(ctx, s.client, EventsSQL(db, w, s.shard), func(r int) {
		in.Events = append(in.Events, Event{Time: time.Unix(first.Seconds(r), 0).UTC(), Kind: kind.At(r),
			Code: code.At(r), Count: uint32(n.At(r)), Message: msg.At(r), GPU: eventGPU.at(r)})
	})
	if err != nil {
		return nil, fmt.Errorf("health: read events of %v: %w", w, err)
	}
	var missing chsql.Result
	missingGPU := readGPU(&missing)
	err = missing.ForRows(ctx, s.client, MissingSQL(db, s.heartbeat, s.lostAfter, w, s.shard), func(r int) {
		in.Missing = append(in.Missing, missingGPU.at(r))
	})
	if err != nil {
		return nil, fmt.Errorf("health: read missing GPUs of %v: %w", w, err)
	}
	return in, nil
}
