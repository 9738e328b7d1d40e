package chcluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// eventually polls f until it returns "" or the deadline passes, then
// fails with f's last answer.
func eventually(t *testing.T, timeout time.Duration, f func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := f()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, msg)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func scalar(c *storage.Client, q string) (uint64, error) {
	var n uint64
	err := c.QueryScalar(context.Background(), q, &n)
	return n, err
}

// The schema migrates on a real 2 × 2 cluster, and the rows written
// through the Distributed table are the rows read through it: each shard's
// two replicas hold the same rows, the shards split them by series, and a
// retried insert of the same block is dropped by the replicas' block
// de-duplication (the raw count, before any merge, is unchanged).
func TestRowsWrittenAreRowsReadAndRetriesAreNotDoubled(t *testing.T) {
	cl := chtest.StartCluster(t)
	c := chtest.OpenClusterDB(t, cl)
	ctx := context.Background()
	db := c.Config().Database
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	const n, series = 100_000, 64
	block := chtest.SampleRows(0, n, series, day)
	if err := w.Write(ctx, block.Block()); err != nil {
		t.Fatal(err)
	}
	// A retry: the same rows again, as a writer does when an insert's
	// answer was lost.
	if err := w.Write(ctx, chtest.SampleRows(0, n, series, day).Block()); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, func() string {
		got, err := scalar(c, "SELECT count() FROM "+db+".gpu_samples")
		if err != nil {
			return err.Error()
		}
		if got != n {
			return fmt.Sprintf("%d rows through the Distributed table (no FINAL), want %d", got, n)
		}
		return ""
	})
	// Merged on one replica per shard, the others follow.
	if err := c.OptimizeFinal(ctx, "gpu_samples"); err != nil {
		t.Fatal(err)
	}
	var perShard []uint64
	for s := 0; s < cl.Shards(); s++ {
		var counts []uint64
		for r := 0; r < cl.Replicas(); r++ {
			rc := chtest.ClientOn(t, cl.Server(s, r), db)
			eventually(t, time.Minute, func() string {
				got, err := scalar(rc, "SELECT count() FROM "+db+".gpu_samples_local")
				if err == nil && got != 0 {
					var parts uint64
					if parts, err = scalar(rc, "SELECT count() FROM system.parts WHERE active AND database = "+chsql.String(db)+" AND table = 'gpu_samples_local'"); err == nil && parts != 1 {
						return fmt.Sprintf("shard %d replica %d: %d active parts after OPTIMIZE FINAL, want 1", s+1, r+1, parts)
					}
				}
				if err != nil {
					return err.Error()
				}
				if r > 0 && got != counts[0] {
					return fmt.Sprintf("shard %d: replica %d holds %d rows, replica 1 %d", s+1, r+1, got, counts[0])
				}
				if r == 0 {
					counts = append(counts, got)
				}
				return ""
			})
		}
		perShard = append(perShard, counts[0])
	}
	var sum uint64
	for s, k := range perShard {
		if k == 0 {
			t.Errorf("shard %d holds no rows: the sharding key does not spread series", s+1)
		}
		sum += k
	}
	if sum != n {
		t.Errorf("the shards hold %v rows, %d in all; want %d", perShard, sum, n)
	}
	t.Logf("%d rows: per shard %v, each replicated twice", n, perShard)
}
