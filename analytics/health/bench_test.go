package health

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// benchFrame is a fleet of n GPUs: 80% in training jobs of 512 GPUs, the
// rest without a job, in 10 groups; nodes of 8 GPUs in racks of 8 nodes
// of one model each; every signal filled.
func benchFrame(n int) (*Frame, *Config) {
	cfg := NewDefaultConfig()
	rng := rand.New(rand.NewPCG(1, 2))
	f := &Frame{Seconds: 30}
	f.Resize(n)
	jobs := n * 8 / 10 / 512
	for j := 0; j < jobs; j++ {
		f.PeerNames = append(f.PeerNames, fmt.Sprintf("job=j%d", j))
	}
	for b := 0; b < 10; b++ {
		f.PeerNames = append(f.PeerNames, fmt.Sprintf("model=m%d/load=%d%%", b%2, b/2*20))
	}
	f.FleetNames = []string{"model=m0", "model=m1"}
	// Nodes of 8 GPUs, racks of 8 nodes, one model per rack, one
	// datacenter: the temperature tiers' topology.
	nodes := (n + 7) / 8
	racks := (nodes + 7) / 8
	for nd := range nodes {
		f.NodeNames = append(f.NodeNames, fmt.Sprintf("node-%d", nd))
		f.NodeParent, f.NodeModel = append(f.NodeParent, int32(nd/8)), append(f.NodeModel, int32(nd/8%2))
	}
	for r := range racks {
		f.RackNames = append(f.RackNames, fmt.Sprintf("rack-%d", r))
		f.RackParent, f.RackModel, f.RackDC = append(f.RackParent, int32(r%2)), append(f.RackModel, int32(r%2)), append(f.RackDC, 0)
	}
	f.NodeParents, f.RackParents, f.RackDCs = racks, 2, 1
	for i := 0; i < n; i++ {
		if j := i / 512; j < jobs {
			f.Peer[i] = int32(j)
		} else {
			f.Peer[i] = int32(jobs + rng.IntN(10))
		}
		f.Node[i], f.Rack[i] = int32(i/8), int32(i/64)
		f.Fleet[i] = int32(i / 64 % 2)
		for s := range f.Vals {
			f.Vals[s][i] = 100 * (1 + 0.02*rng.NormFloat64())
		}
		f.Vals[SigECCCorrectable][i] = float64(rng.IntN(2))
		f.Vals[SigNVLinkErrors][i] = 0
	}
	return f, &cfg
}

// BenchmarkTick is one evaluation tick of 100,000 GPUs × 20 signals: the
// grouped medians and MADs of the 18 compared signals (by selection), the
// rules, and persistence. docs/BENCHMARKS.md records it beside NumPy
// (testdata/tick_numpy.py).
func BenchmarkTick(b *testing.B) {
	f, cfg := benchFrame(100_000)
	t := NewTicker(cfg)
	t.Tick(f) // size the state
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t.Tick(f)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/tick")
	var flagged int
	for _, x := range t.Flagged {
		flagged += int(x)
	}
	sink = flagged
}

// BenchmarkGroupStatsSort is the alternative to selection: sorting every
// group of every signal (what a sort-based median does), for comparison.
func BenchmarkGroupStatsSort(b *testing.B) {
	f, _ := benchFrame(100_000)
	var g Grouping
	g.Build(f.Peer, len(f.PeerNames))
	var buf []float64
	b.ReportAllocs()
	for b.Loop() {
		for s := range f.Vals {
			for gi := 0; gi < g.Groups(); gi++ {
				buf = buf[:0]
				for _, r := range g.Order[g.Start[gi]:g.Start[gi+1]] {
					buf = append(buf, f.Vals[s][r])
				}
				slices.Sort(buf)
				sinkF = buf[len(buf)/2]
			}
		}
	}
}

var (
	sink  int
	sinkF float64
)
