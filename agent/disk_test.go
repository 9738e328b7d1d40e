package agent_test

import (
	"testing"

	"github.com/fleetwatch/fleetwatch/agent"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/disktest"
)

// The agent's data directory is a 256 KiB file system and the collector is
// down, so the disk buffer fills up. The pipeline then holds the batch it
// cannot write and the sources wait (counted as disk_full, nothing dropped,
// nothing deleted); when the collector comes up, shipping frees space and the
// agent carries on by itself: every item collected arrives exactly once.
func TestFullDiskPushesBackAndRecovers(t *testing.T) {
	dir := disktest.Tmpfs(t, "256k")
	rcv := newReceiver(t) // not started yet: the endpoint refuses connections
	bounds := func(c *agent.Config) { c.Buffer.SegmentBytes, c.Buffer.MaxBytes = 16<<10, 1<<30 }
	started := false
	wantSamples, wantRecords := scenarioItems(t)
	var whileFull, droppedWhileFull float64
	a := runAgent(t, dir, rcv.addr, bounds, func(a *agent.Agent) bool {
		if !started && metricValue(a, "fleetwatch_agent_buffer_blocked", nil) == 1 {
			whileFull = metricValue(a, "fleetwatch_agent_buffer_errors_total", map[string]string{"reason": "disk_full"})
			droppedWhileFull = metricValue(a, "fleetwatch_agent_items_dropped_total", nil)
			rcv.start(t)
			started = true
		}
		s, r := collected(a)
		p, _, l, _ := rcv.counts()
		// The simulator collects flat out: wait until it has collected the
		// whole scenario (a pause of the simulator is not its end), so that
		// the stop cuts nothing off, and until all of it is delivered.
		return started && s == wantSamples && r == wantRecords && uint64(p) == s && uint64(l) == r && a.Buffer().Pending == 0
	})
	if !started {
		t.Fatal("the disk never filled up: the pipeline never blocked")
	}
	if whileFull == 0 || droppedWhileFull != 0 {
		t.Fatalf("while the disk was full: %v appends refused as disk_full (want > 0), %v items dropped (want 0)", whileFull, droppedWhileFull)
	}
	// The simulator collects flat out until the stop, so the last instants'
	// items may still be on disk (buffered, not lost) — or both delivered
	// and on disk, when the stop fell before their acknowledgement.
	samples, records := collected(a)
	points, dupPoints, logs, dupLogs := rcv.counts()
	buffered := metricValue(a, "fleetwatch_agent_items_buffered", nil)
	if uint64(points) > samples || uint64(logs) > records || uint64(points+logs)+uint64(buffered) < samples+records || dupPoints != 0 || dupLogs != 0 {
		t.Fatalf("collected %d+%d, received %d+%d distinct, %d+%d duplicates, %v still buffered, %v dropped (%v disk_full), %v shipped",
			samples, records, points, logs, dupPoints, dupLogs, buffered,
			metricValue(a, "fleetwatch_agent_items_dropped_total", nil),
			metricValue(a, "fleetwatch_agent_items_dropped_total", map[string]string{"reason": "disk_full"}),
			metricValue(a, "fleetwatch_agent_items_shipped_total", nil))
	}
	if d := metricValue(a, "fleetwatch_agent_items_dropped_total", nil); d != 0 {
		t.Fatalf("dropped %v items", d)
	}
	if b := metricValue(a, "fleetwatch_agent_buffer_blocked", nil); b != 0 {
		t.Fatalf("still blocked after recovering")
	}
	t.Logf("%d samples and %d records delivered; %v appends refused while the disk was full", samples, records, whileFull)
}

// Stopped while a full disk blocks it, the agent drops only the batches it
// still holds, and counts them: every item collected is buffered on disk or
// dropped as disk_full, none vanishes.
func TestStoppingOnAFullDiskCountsWhatItDrops(t *testing.T) {
	dir := disktest.Tmpfs(t, "256k")
	rcv := newReceiver(t) // never started
	bounds := func(c *agent.Config) { c.Buffer.SegmentBytes, c.Buffer.MaxBytes = 16<<10, 1<<30 }
	a := runAgent(t, dir, rcv.addr, bounds, func(a *agent.Agent) bool {
		return metricValue(a, "fleetwatch_agent_buffer_blocked", nil) == 1
	})
	samples, records := collected(a)
	buffered := metricValue(a, "fleetwatch_agent_items_buffered", nil)
	diskFull := metricValue(a, "fleetwatch_agent_items_dropped_total", map[string]string{"reason": "disk_full"})
	dropped := metricValue(a, "fleetwatch_agent_items_dropped_total", nil)
	if diskFull == 0 || dropped != diskFull || uint64(buffered+dropped) != samples+records {
		t.Fatalf("collected %d, buffered %v, dropped %v (disk_full %v): want collected = buffered + dropped, all as disk_full",
			samples+records, buffered, dropped, diskFull)
	}
	t.Logf("collected %d: %v on disk, %v dropped as disk_full at the stop", samples+records, buffered, diskFull)
}

// scenarioItems counts the samples and records the test scenario yields
// from start to end, by running it apart from any agent.
func scenarioItems(t *testing.T) (samples, records uint64) {
	t.Helper()
	r := newRunner(t, scenario)
	sc := r.Scenario
	for at := sc.Start.Add(sc.Interval); !at.After(sc.Start.Add(sc.Duration)); at = at.Add(sc.Interval) {
		for _, b := range r.Step(at) {
			samples += uint64(len(b.Samples))
			records += uint64(b.Len() - len(b.Samples))
		}
	}
	if samples == 0 || sc.Duration == 0 {
		t.Fatalf("the test scenario yields %d samples over %v", samples, sc.Duration)
	}
	return samples, records
}
