package demo

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/analytics/cost"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/heldrows"
)

// The cost part of the demo (issue 19). The cost detectors judge whole
// UTC days and need weeks of history, and the demo runs minutes, so before
// the live part the demo writes Config.CostDays days of hourly history
// into its ClickHouse, the rows the collector would have written: GPU
// series with their holders (namespace, pod, pod labels) and one
// SM-activity and framebuffer sample per GPU and hour (the gpu_samples_1m
// rollup follows), sampled inference events per model and day. The last
// day carries two faults: a traffic surge on one model (twice its GPUs
// and requests) and a notebook holding a GPU idle for ten hours. The
// analyzer's cost detectors (`cost`, `cost_waste`), started with the live
// part, judge that day at once — it is their latest complete day — and
// the demo prints what they found from the on-call view
// oncall_cost_findings.

// costModel is one backfilled model server.
type costModel struct {
	name, namespace string
	gpus, rows      int // GPUs held and sampled inference rows per day
}

// Backfilled fleet: models of the demo's catalog (their teams come from
// it), on the simulator's GPU model in the demo's cluster.
var (
	costModels = []costModel{
		{name: "similar-items", namespace: "recsys", gpus: 4, rows: 480},
		{name: "ltr-ranker", namespace: "search", gpus: 3, rows: 360},
		{name: "fraud-detector", namespace: "payments", gpus: 2, rows: 240},
	}
	// surge is the model whose traffic doubles on the last day.
	surge = "similar-items"
)

const (
	costCluster    = "demo"
	costSampleRate = 0.01 // each inference row stands for 100 requests
	idleGPU        = "GPU-demo-notebook-7"
	idleHolder     = "notebook-7"
)

// costDay is the last day the backfill covers: the latest day the cost
// detectors judge at now, a day complete lateness after its midnight.
func costDay(now time.Time, lateness time.Duration) time.Time {
	return now.UTC().Add(-lateness).Truncate(24*time.Hour).AddDate(0, 0, -1)
}

// backfillCost writes days of history ending with the day the cost
// detectors judge first, and returns that day.
func (d *Demo) backfillCost(ctx context.Context, days int, lateness time.Duration) (time.Time, error) {
	last := costDay(time.Now(), lateness)
	var r heldrows.Rows
	// gpu adds one GPU held all its hours by a pod, SM activity sm and the
	// H100's 81,000 MiB used in proportion.
	gpu := func(uuid, namespace, pod, team, model string, hours []time.Time, sm float64) {
		r.GPU(heldrows.Device{UUID: uuid, Cluster: costCluster, GPUModel: sim.ModelH100},
			heldrows.Holder{Namespace: namespace, Pod: pod, Team: team, Model: model}, hours, sm, 60000*sm, 81000-60000*sm)
	}
	for day := last.AddDate(0, 0, 1-days); !day.After(last); day = day.AddDate(0, 0, 1) {
		for _, m := range costModels {
			gpus, rows := m.gpus, m.rows
			if m.name == surge && day.Equal(last) {
				gpus, rows = 2*gpus, 2*rows
			}
			for i := range gpus {
				gpu(fmt.Sprintf("GPU-demo-%s-%d", m.name, i), m.namespace, fmt.Sprintf("%s-%d", m.name, i), "", m.name, heldrows.Hours(day, 24), 0.6)
			}
			r.Requests(m.name, day, rows, costSampleRate)
		}
	}
	// A notebook holds a GPU idle from 08:00 to 18:00 on the last day.
	gpu(idleGPU, "research", idleHolder, "research", "", heldrows.Hours(last.Add(8*time.Hour), 10), 0.01)
	if err := r.Write(ctx, d.client); err != nil {
		return last, fmt.Errorf("cost backfill: %w", err)
	}
	series, samples, events := r.Len()
	d.say("cost: backfilled %d days of hourly GPU history to %s (%d GPU series, %d samples, %d inference rows at 1/%.0f): %s's traffic doubles on the last day, and %s holds %s idle for 10 h",
		days, last.Format(time.DateOnly), series, samples, events, 1/costSampleRate, surge, idleHolder, idleGPU)
	return last, nil
}

// costFinding is one row of oncall_cost_findings.
type costFinding struct {
	Detector, Class, EntityType, Entity, GPU, Summary, Evidence string
	Cost                                                        float64
}

// costFindings reads the cost detectors' findings of the last week.
func (d *Demo) costFindings(ctx context.Context) ([]costFinding, error) {
	var out []costFinding
	var res chsql.Result
	det, class, et, ent, gpu, sum, ev, c := res.Str("detector"), res.Str("class"), res.Str("entity_type"), res.Str("entity"), res.Str("gpu_uuid"),
		res.Str("summary"), res.Str("evidence"), res.F64("cost")
	q := "SELECT detector, class, entity_type, entity, gpu_uuid, summary, evidence, cost FROM " + chsql.Ident(d.client.Config().Database, "oncall_cost_findings") +
		" ORDER BY detector, class, entity"
	err := res.ForRows(ctx, d.client, q, func(r int) {
		out = append(out, costFinding{Detector: det.At(r), Class: class.At(r), EntityType: et.At(r), Entity: ent.At(r), GPU: gpu.At(r),
			Summary: sum.At(r), Evidence: ev.At(r), Cost: c.At(r)})
	})
	if err != nil {
		return nil, fmt.Errorf("cost findings: %w", err)
	}
	return out, nil
}

// wasteSummary is the waste detector's summary: GPU, kind, hours, holder.
var wasteSummary = regexp.MustCompile(`^GPU (\S+) (\S+) for (\d+) h by (\S+) \(team ([^)]*)\)`)

// line is how the demo prints a finding.
func (f costFinding) line() string {
	switch f.Detector {
	case "cost":
		return fmt.Sprintf("cost anomaly: %s/%s %s: $%.2f; %s", f.EntityType, f.Entity, f.Class, f.Cost, f.Evidence)
	case "cost_budget":
		return fmt.Sprintf("cost budget: %s/%s forecast $%.2f: %s", f.EntityType, f.Entity, f.Cost, f.Summary)
	}
	if m := wasteSummary.FindStringSubmatch(f.Summary); m != nil && (f.Class == string(cost.Idle) || f.Class == string(cost.IdleHeld)) {
		h, _ := strconv.Atoi(m[3])
		return fmt.Sprintf("idle GPU: %s held by %s (team %s) for %d h (%s, $%.2f; %s)", m[1], m[4], m[5], h, f.Class, f.Cost, f.Evidence)
	}
	return fmt.Sprintf("cost waste: %s %s: %s", f.Class, f.Entity, f.Summary)
}

// costWatch prints each cost finding once, as it appears.
type costWatch struct {
	d    *Demo
	seen map[string]bool
}

func (w *costWatch) poll(ctx context.Context) {
	fs, err := w.d.costFindings(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.d.log.Warn("cost findings", "err", err)
		}
		return
	}
	for _, f := range fs {
		k := f.Detector + "/" + f.Class + "/" + f.EntityType + "/" + f.Entity
		if w.seen[k] {
			continue
		}
		w.seen[k] = true
		w.d.say("  %s", f.line())
	}
}
