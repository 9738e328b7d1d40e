package chaos_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/internal/testsupport/disktest"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// Every process of the data path is killed with SIGKILL mid-run — the agent
// first (its replacement replays the whole scenario from the start), then the
// collector six times, ClickHouse once — and the collector is down a while:
// the database ends up with exactly the clean run's data.
func TestKillEveryProcessMidRun(t *testing.T) {
	ref := reference(t, "60s")
	srv := chtest.StartServer(t)
	p := newPipeline(t, chtest.OpenDB(t, srv, true), pipelineOpts{duration: "60s"}) // real time: a minute of sending
	p.collector.start()
	p.agent.start()
	down := 15 * time.Second
	if long() {
		down = 3 * time.Minute
	}
	step := schedule(t)
	step(4*time.Second, "kill -9 agent, restart (the scenario replays from its start)", func() {
		p.agent.kill()
		p.agent.start()
	})
	// Fractions of a second, so that the kills fall at every phase of the
	// agent's once-a-second sends.
	for _, at := range []time.Duration{9100, 13350, 17600, 21850} {
		step(at*time.Millisecond, "kill -9 collector, restart at once", func() {
			p.collector.kill()
			p.collector.start()
		})
	}
	step(26*time.Second, "kill -9 ClickHouse, restart 5 s later", func() {
		srv.Kill()
		time.Sleep(5 * time.Second)
		if err := srv.Restart(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	step(36*time.Second, "kill -9 collector, down for "+down.String(), func() {
		p.collector.kill()
		time.Sleep(down)
		p.collector.start()
	})
	step(60*time.Second+down, "kill -9 collector, restart at once", func() {
		p.collector.kill()
		p.collector.start()
	})
	// The second agent finishes its minute about 65 s in.
	converge(t, p.db, ref, 2*time.Minute+down, p.agent, p.collector)
	if dropped, ok := scrape(p.agentAt, "fleetwatch_agent_items_dropped_total", nil); !ok || dropped != 0 {
		t.Errorf("the agent dropped %v items (scraped: %v)", dropped, ok)
	}
}

// The agent's disk fills while the collector is away, then the collector's
// queue disk fills while ClickHouse is away: each pushes back on its sender,
// nothing is dropped, and everything arrives once the disks drain by
// themselves.
func TestFullDisksPushBackAndDrain(t *testing.T) {
	ref := reference(t, "60s")
	srv := chtest.StartServer(t)
	p := newPipeline(t, chtest.OpenDB(t, srv, true), pipelineOpts{duration: "60s", fast: true,
		agentDir: disktest.Tmpfs(t, "512k"), queueDir: disktest.Tmpfs(t, "512k"), agentBufferBytes: 64 << 20})
	p.agent.start()
	waitMetric(t, p.agentAt, "fleetwatch_agent_buffer_blocked", nil, 1, "the agent's disk to fill", p.agent)
	srv.Kill()
	p.collector.start()
	waitMetric(t, p.colProm, "fleetwatch_exporter_refused_items", map[string]string{"reason": "disk_full"}, 1, "the collector's queue disk to fill", p.agent, p.collector)
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	converge(t, p.db, ref, 3*time.Minute, p.agent, p.collector)
	if dropped, _ := scrape(p.agentAt, "fleetwatch_agent_items_dropped_total", nil); dropped != 0 {
		t.Errorf("the agent dropped %v items", dropped)
	}
}

// waitMetric waits until a scraped metric reaches at least min.
func waitMetric(t *testing.T, port int, name string, labels map[string]string, min float64, what string, procs ...*process) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if v, ok := scrape(port, name, labels); ok && v >= min {
			return
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, p := range procs {
				fmt.Fprintf(&logs, "\n--- %s (last lines)\n%s", p.name, p.tail(15))
			}
			t.Fatalf("timed out waiting for %s (%s)%s", what, name, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
