package cost

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
)

// WasteDetector turns each UTC day's waste lists into tickets, once a
// day: every idle and idle-held run (detector "cost_waste", class idle or
// idle_held, the GPU and its holder) and every zombie model (class
// zombie_model). Unallocated capacity is nobody's ticket: it shows on the
// FinOps dashboard. A run that crosses midnight is judged within each day.
type WasteDetector struct {
	cfg   WasteConfig
	store *Store
	book  *PriceBook
}

// NewWasteDetector validates cfg.
func NewWasteDetector(cfg WasteConfig, store *Store, book *PriceBook) (*WasteDetector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &WasteDetector{cfg: cfg, store: store, book: book}, nil
}

// Name implements fleet.Detector.
func (d *WasteDetector) Name() string { return "cost_waste" }

// Interval implements fleet.Detector: a day.
func (d *WasteDetector) Interval() time.Duration { return 24 * time.Hour }

// Evaluate implements fleet.Detector.
func (d *WasteDetector) Evaluate(ctx context.Context, w fleet.Window) ([]fleet.Detection, error) {
	p, err := d.store.Read(ctx, w.Start.UTC(), w.End.UTC())
	if err != nil {
		return nil, err
	}
	r, err := p.Waste(d.book, d.cfg)
	if err != nil {
		return nil, fmt.Errorf("cost waste %s: %w", w, err)
	}
	return r.Detections(w), nil
}

// Detections are the report's idle and idle-held runs and zombie models
// as tickets dated w.
func (r WasteReport) Detections(w fleet.Window) []fleet.Detection {
	var out []fleet.Detection
	for _, f := range r.Findings {
		if f.Kind == Unallocated {
			continue
		}
		holder := f.Tags.Pod
		if holder == "" {
			holder = f.Tags.Job
		}
		out = append(out, fleet.Detection{
			Time: w.End, WindowStart: w.Start, Detector: "cost_waste", Class: string(f.Kind), Severity: SeverityTicket,
			EntityType: "gpu", Entity: f.GPU, Key: string(f.Kind) + "/" + f.GPU,
			GPUUUID: physical(f.GPU), Model: f.Tags.Model, Job: f.Tags.Job, Value: f.Cost,
			Summary: fmt.Sprintf("GPU %s %s for %.0f h by %s (team %s): $%.2f", f.GPU, f.Kind, f.Hours(), orNone(holder), orNone(f.Tags.Team), f.Cost),
			Evidence: fmt.Sprintf("mean SM activity %.3f, memory %.2f from %s to %s", f.MeanSM, f.MeanMem,
				f.From.UTC().Format(time.RFC3339), f.To.UTC().Format(time.RFC3339)),
			Action: "ticket to the owning team: release the GPU or scale the workload down",
		})
	}
	for _, z := range r.Zombies {
		out = append(out, fleet.Detection{
			Time: w.End, WindowStart: w.Start, Detector: "cost_waste", Class: "zombie_model", Severity: SeverityTicket,
			EntityType: string(ScopeModel), Entity: z.Model, Key: "zombie_model/" + z.Model, Model: z.Model, Value: z.Cost,
			Summary:  fmt.Sprintf("model %s (team %s) holds %d GPUs for %.1f GPU-hours with %.0f requests: $%.2f", z.Model, orNone(z.Team), len(z.GPUs), z.GPUHours, z.Requests, z.Cost),
			Evidence: fmt.Sprintf("GPUs %v", z.GPUs),
			Action:   "ticket to the owning team: retire the model or scale it to zero",
		})
	}
	return out
}

// physical is a GPU ID's physical GPU: a MIG instance's UUID/instance
// without the instance.
func physical(id string) string {
	u, _, _ := strings.Cut(id, "/")
	return u
}

func orNone(s string) string {
	if s == "" {
		return UnlabelledValue
	}
	return s
}
