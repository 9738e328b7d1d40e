package health

import (
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
)

// GPU is a GPU's identity and place, as gpu_series and gpu_events record it.
type GPU struct {
	UUID, Model, Index string
	fleet.Topology
	// Job and Rank are set while the GPU runs a training job's rank.
	Job, Rank string
}

// merge fills g's empty fields from o.
func (g *GPU) merge(o *GPU) {
	set := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	set(&g.Model, o.Model)
	set(&g.Index, o.Index)
	set(&g.Datacenter, o.Datacenter)
	set(&g.Row, o.Row)
	set(&g.Rack, o.Rack)
	set(&g.Node, o.Node)
	set(&g.Cluster, o.Cluster)
	set(&g.Job, o.Job)
	set(&g.Rank, o.Rank)
}

// Row is one GPU metric aggregated over a window (all of a GPU's series of
// the metric without a link label; for a per-link family, its links).
type Row struct {
	GPU    GPU
	Metric string
	// Mean and Max of the samples' values (for a per-link family, Mean
	// sums the links' means); Delta the sum of their counter increases;
	// Samples their number.
	Mean, Max, Delta float64
	Samples          int
}

// Event is one GPU event of the window (gpu_events, same GPU, kind and
// code folded together).
type Event struct {
	Time    time.Time
	Kind    string // telemetry.GPUEvent*
	Code    int64
	Count   uint32
	Message string
	GPU     GPU
}

// Input is everything one window's evaluation reads.
type Input struct {
	Window fleet.Window
	Rows   []Row
	Events []Event
	// Missing are GPUs whose heartbeat metric reported within LostAfter
	// before the window but not in it.
	Missing []GPU
}
