// Package heldrows builds the rows of a stored fleet whose GPUs workloads
// hold — GPU series with their holder's labels (namespace, pod, Slurm job,
// the workload labels of telemetry), hourly samples of SM activity and
// framebuffer, sampled inference events and deployment markers — and
// writes them through storage's writer as the collector does. The cost
// tests and simulations read them back through analytics/cost.Store, and
// `fleetctl demo` backfills weeks of history with them.
//
// Layer: ground (docs/ARCHITECTURE.md, "Layers").
package heldrows

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Holder is a GPU series' workload labels as the agent sends them: the
// Kubernetes pod (or the Slurm job) and the pod labels cost reads.
type Holder struct {
	Namespace, Pod, Job, Team, Model, CostCenter string
	ModelVersion                                 string
	// User and Account are a Slurm job's (hpc_user, hpc_account).
	User, Account string
}

// Device is a GPU, or a MIG instance of one, as its series name it.
type Device struct {
	UUID, Instance, Profile, Cluster, GPUModel string
	// Purchase is the series' purchase label (empty: none).
	Purchase string
}

// Rows are GPU series and hourly samples, inference events and deployment
// markers, written to ClickHouse through storage's writer as the collector
// writes them.
type Rows struct {
	next    uint64
	series  storage.GPUSeriesBlock
	samples storage.GPUSampleBlock
	events  storage.InferenceEventBlock
	deploys storage.ModelDeploymentBlock
}

// GPU adds the series of one device and holder (an empty Holder: nobody
// holds it) and, in each of hours, one sample of SM activity sm and of
// framebuffer used and free (MiB), 7 minutes into the hour.
func (r *Rows) GPU(d Device, h Holder, hours []time.Time, sm, used, free float64) {
	var labels fleet.Labels
	for _, kv := range [][2]string{{telemetry.LabelCostCenter, h.CostCenter}, {telemetry.LabelHPCAccount, h.Account}, {telemetry.LabelHPCUser, h.User},
		{telemetry.LabelModel, h.Model}, {telemetry.LabelModelVersion, h.ModelVersion}, {telemetry.LabelPurchase, d.Purchase}, {telemetry.LabelTeam, h.Team}} {
		if kv[1] != "" { // sorted by name
			labels.Keys, labels.Values = append(labels.Keys, kv[0]), append(labels.Values, kv[1])
		}
	}
	for _, m := range []struct {
		name string
		v    float64
	}{{telemetry.SMActive, sm}, {telemetry.FBUsed, used}, {telemetry.FBFree, free}} {
		r.next++
		r.series.Append(&storage.GPUSeries{Series: r.next, Metric: m.name, Topology: fleet.Topology{Cluster: d.Cluster, Node: "node-" + d.UUID},
			GPU: fleet.GPUIdentity{UUID: d.UUID, Instance: d.Instance, Profile: d.Profile, ModelName: d.GPUModel},
			K8s: fleet.Kubernetes{Namespace: h.Namespace, Pod: h.Pod}, Job: h.Job, Labels: labels,
			FirstSeen: hours[0], LastSeen: hours[len(hours)-1]})
		for _, t := range hours {
			r.samples.Append(&storage.GPUSample{Time: t.Add(7 * time.Minute), Metric: m.name, Series: r.next, Value: m.v})
		}
	}
}

// Server adds one model server's series of metric, labelled with model,
// and its samples: values[i] at times[i].
func (r *Rows) Server(host, model, metric string, times []time.Time, values []float64) {
	r.next++
	r.series.Append(&storage.GPUSeries{Series: r.next, Metric: metric, Topology: fleet.Topology{Cluster: "c1", Node: host},
		Labels: fleet.Labels{Keys: []string{telemetry.LabelModel}, Values: []string{model}}, FirstSeen: times[0], LastSeen: times[len(times)-1]})
	for i, t := range times {
		r.samples.Append(&storage.GPUSample{Time: t, Metric: metric, Series: r.next, Value: values[i]})
	}
}

// Requests adds n inference rows of model version v1 on day at sampleRate
// (each standing for 1/sampleRate requests), the i-th a minute after the
// previous with latency (i+1)·10 ms.
func (r *Rows) Requests(model string, day time.Time, n int, sampleRate float64) {
	for i := range n {
		r.events.Append(&fleet.InferenceEvent{Time: day.Add(time.Duration(i) * time.Minute), Model: model, ModelVersion: "v1",
			RequestID: fmt.Sprintf("%s-%d-%d", model, day.Unix(), i), LatencyMs: float64(i+1) * 10, Status: "ok", SampleRate: sampleRate})
	}
}

// Deploy adds a deployment marker.
func (r *Rows) Deploy(model, change, prev, version string, at time.Time) {
	r.deploys.Append(&storage.ModelDeployment{Time: at, Model: model, ModelVersion: version, PreviousVersion: prev, Change: change})
}

// Len returns how many GPU series, samples and inference events the rows
// hold.
func (r *Rows) Len() (series, samples, events int) {
	return r.series.Len(), r.samples.Len(), r.events.Len()
}

// Write writes the rows to c.
func (r *Rows) Write(ctx context.Context, c *storage.Client) error {
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		return err
	}
	type block interface {
		Len() int
		Block() storage.Block
	}
	for _, b := range []block{&r.series, &r.samples, &r.events, &r.deploys} {
		if b.Len() == 0 {
			continue
		}
		if err := w.Write(ctx, b.Block()); err != nil {
			return fmt.Errorf("held rows: %w", err)
		}
	}
	return nil
}

// Hours returns n hours from start.
func Hours(start time.Time, n int) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = start.Add(time.Duration(i) * time.Hour)
	}
	return out
}
