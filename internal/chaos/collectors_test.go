package chaos_test

import (
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// Two collectors, each with its own persistent queue, behind one agent
// endpoint (a list; the agent uses one at random). The one taking the
// agent's traffic is killed with SIGKILL mid-run and stays down 20 s: the
// agent's sends that failed are retried from its disk buffer onto the
// other collector, and the killed one's queue is drained when it comes back
// (as a Kubernetes pod restarted on its volume would); its queued counter
// points are older than what the other stored, so their increases are not
// counted twice. The database ends with exactly the reference data, and
// the agent dropped nothing.
func TestTwoCollectorsOneKilled(t *testing.T) {
	ref := reference(t, "60s")
	p := newPipeline(t, chtest.OpenDB(t, chtest.StartServer(t), true), pipelineOpts{duration: "60s", collectors: 2})
	for _, c := range p.collectors {
		c.start()
	}
	p.agent.start()
	time.Sleep(15 * time.Second)
	// Exactly one collector has taken the first 15 s.
	busy := -1
	for i, port := range p.colProms {
		n, ok := scrape(port, "fleetwatch_exporter_received_items", nil)
		if !ok {
			t.Fatalf("collector %d does not answer on /metrics", i+1)
		}
		if n > 0 {
			if busy >= 0 {
				t.Fatalf("collectors %d and %d both took the agent's data: a series must go through one at a time", busy+1, i+1)
			}
			busy = i
		}
	}
	if busy < 0 {
		t.Fatal("no collector received anything in 15 s")
	}
	t.Logf("15 s: kill -9 collector %d, which has the agent's traffic; it stays down 20 s", busy+1)
	p.collectors[busy].kill()
	time.Sleep(20 * time.Second)
	if n, _ := scrape(p.colProms[1-busy], "fleetwatch_exporter_received_items", nil); n <= 0 {
		t.Errorf("the other collector received nothing while collector %d was down", busy+1)
	}
	p.collectors[busy].start()
	converge(t, p.db, ref, 2*time.Minute, append([]*process{p.agent}, p.collectors...)...)
	if dropped, ok := scrape(p.agentAt, "fleetwatch_agent_items_dropped_total", nil); !ok || dropped != 0 {
		t.Errorf("the agent dropped %v items (scraped: %v)", dropped, ok)
	}
}
