package chaos_test

import (
	"context"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/storage/chcluster"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// The pipeline writes into a real 2-shard × 2-replica cluster (ZooKeeper,
// Replicated tables, Distributed tables over them). One replica is killed
// with SIGKILL mid-ingest and comes back 13 s later; then a whole shard is
// killed for 15 s. Ingest goes on throughout (the collector fails over to
// a live server; inserts for the dead shard wait in the Distributed
// table's queue on the server that took them), the replicas catch up, and
// the cluster ends up with exactly the single server's reference data:
// nothing lost, nothing doubled, raw and rollup agreeing.
func TestClusterSurvivesAKilledReplicaAndADeadShard(t *testing.T) {
	ref := reference(t, "60s")
	cl := chtest.StartCluster(t)
	db := chtest.OpenClusterDB(t, cl)
	p := newPipeline(t, db, pipelineOpts{duration: "60s"}) // real time: a minute of sending
	p.collector.start()
	p.agent.start()
	step := schedule(t)
	restart := func(s, r int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cl.Restart(ctx, s, r); err != nil {
			t.Fatal(err)
		}
	}
	// Shard 1's first replica is the first address the collector tries.
	step(12*time.Second, "kill -9 shard 1 replica 1", func() { cl.Server(0, 0).Kill() })
	step(25*time.Second, "restart shard 1 replica 1", func() { restart(0, 0) })
	step(32*time.Second, "kill -9 both replicas of shard 2", func() {
		cl.Server(1, 0).Kill()
		cl.Server(1, 1).Kill()
	})
	step(47*time.Second, "restart shard 2", func() {
		restart(1, 0)
		restart(1, 1)
	})
	converge(t, db, ref, 3*time.Minute, p.agent, p.collector)
	if dropped, ok := scrape(p.agentAt, "fleetwatch_agent_items_dropped_total", nil); !ok || dropped != 0 {
		t.Errorf("the agent dropped %v items (scraped: %v)", dropped, ok)
	}
	// Each shard's replicas hold the same rows: the killed ones caught up.
	for _, tbl := range compared {
		for s := 0; s < cl.Shards(); s++ {
			var counts []uint64
			for r := 0; r < cl.Replicas(); r++ {
				counts = append(counts, localCount(t, cl, s, r, db.Config().Database, tbl))
			}
			if counts[0] != counts[1] {
				t.Errorf("%s, shard %d: replicas hold %v rows", tbl, s+1, counts)
			}
		}
	}
}

// localCount counts the merged rows of one replica's local table, waiting
// for its replication queue to empty.
func localCount(t *testing.T, cl *chcluster.Cluster, s, r int, database, table string) uint64 {
	t.Helper()
	c := chtest.ClientOn(t, cl.Server(s, r), database)
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for {
		var queued uint64
		if err := c.QueryScalar(ctx, "SELECT toUInt64(queue_size) FROM system.replicas WHERE database = "+chsql.String(database)+" AND table = "+chsql.String(table+"_local"), &queued); err != nil {
			t.Fatal(err)
		}
		if queued == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	var n uint64
	if err := c.QueryScalar(ctx, "SELECT count() FROM "+table+"_local FINAL", &n); err != nil {
		t.Fatal(err)
	}
	return n
}
