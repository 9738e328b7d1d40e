package sim_test

import (
	"runtime"
	"testing"
	"time"
)

// liveHeap is the heap still reachable after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A long simulation keeps no growing state: after 3000 more steps of a node
// of 8 GPUs read through the agent's NVML source, the live heap is what it was
// after the first 300. (The go-nvml mock's methods recorded every NVML call,
// about 2 KiB per GPU and step: a --simulate agent grew from 42 to 68 MiB in
// ten minutes, issue 13.)
func TestLongRunKeepsTheHeapFlat(t *testing.T) {
	sc, r := newRunner(t, "seed: 1\ninterval: 1s\nfleet: {racks_per_row: 1, nodes_per_rack: 1, gpus_per_node: 8}\n"+
		"models: [{name: m, rps: 20, label_delay: 5s, label_fraction: 0.5, features: [{name: x, mean: 1, sd: 1}]}]\n", quiet)
	steps := func(from, n int) {
		for i := from; i < from+n; i++ {
			r.Step(sc.Start.Add(time.Duration(i) * sc.Interval))
		}
	}
	steps(1, 300)
	before := liveHeap()
	steps(301, 3000)
	after := liveHeap()
	const slack = 1 << 20
	if after > before+slack {
		t.Fatalf("live heap grew from %d KiB to %d KiB over 3000 steps (%d bytes per step)", before>>10, after>>10, (after-before)/3000)
	}
	t.Logf("live heap %d KiB after 300 steps, %d KiB after 3300", before>>10, after>>10)
}
