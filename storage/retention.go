package storage

import (
	"context"
	"fmt"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"strconv"
	"time"

	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// DroppedPartition is one partition removed by EnforceRetention.
type DroppedPartition struct {
	Table, Partition string
	// End is when the partition's time range ends.
	End time.Time
}

// EnforceRetention drops every partition whose whole time range is older
// than its table's retention. This is how retention works on servers without
// TTL (ClickHouse 18.16); on current servers the TTL clause does the same
// row by row and this is a cheap backstop that also applies retention changed
// after the tables were created. In cluster mode it lists partitions on the
// connected server and drops them ON CLUSTER.
func (c *Client) EnforceRetention(ctx context.Context, now time.Time) ([]DroppedPartition, error) {
	tg := c.Target()
	var dropped []DroppedPartition
	for _, t := range schema.Tables() {
		days := tg.Retention(t)
		if days <= 0 || t.Partition == schema.PartitionNone {
			continue
		}
		cutoff := now.UTC().AddDate(0, 0, -days)
		parts, err := c.partitions(ctx, tg.Physical(t.Name))
		if err != nil {
			return dropped, err
		}
		for _, p := range parts {
			end, err := partitionEnd(t.Partition, p)
			if err != nil {
				c.log.Warn("retention: unexpected partition id, left alone", "table", t.Name, "partition", p, "err", err)
				continue
			}
			if end.After(cutoff) {
				continue
			}
			if err := c.Exec(ctx, DropPartitionSQL(tg, t.Name, p)); err != nil {
				return dropped, fmt.Errorf("retention for %s: %w", t.Name, err)
			}
			c.log.Info("retention: dropped partition", "table", t.Name, "partition", p, "retention_days", days)
			dropped = append(dropped, DroppedPartition{Table: t.Name, Partition: p, End: end})
		}
	}
	return dropped, nil
}

func (c *Client) partitions(ctx context.Context, table string) ([]string, error) {
	var out []string
	var res chsql.Result
	p := res.Str("partition")
	if err := res.ForRows(ctx, c, PartitionsSQL(c.cfg.Database, table), func(r int) { out = append(out, p.At(r)) }); err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", table, err)
	}
	return out, nil
}

// partitionEnd is the first instant after the partition's time range.
func partitionEnd(p schema.Partitioning, id string) (time.Time, error) {
	n, err := strconv.Atoi(id)
	if err != nil {
		return time.Time{}, err
	}
	switch p {
	case schema.PartitionDaily:
		if len(id) != 8 {
			return time.Time{}, fmt.Errorf("want YYYYMMDD")
		}
		return time.Date(n/10000, time.Month(n/100%100), n%100, 0, 0, 0, 0, time.UTC).AddDate(0, 0, 1), nil
	case schema.PartitionMonthly:
		if len(id) != 6 {
			return time.Time{}, fmt.Errorf("want YYYYMM")
		}
		return time.Date(n/100, time.Month(n%100), 1, 0, 0, 0, 0, time.UTC).AddDate(0, 1, 0), nil
	}
	return time.Time{}, fmt.Errorf("table is not time-partitioned")
}
