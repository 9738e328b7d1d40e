// Package scaling computes per-model scaling signals and a recommended
// replica count (issue 20, item 6): request rate, queue depth, SM activity
// of the model's GPUs, p99 latency, and Little's law's replicas.
//
// Little's law: the requests in flight are L = λW, the request rate times
// the mean time a request spends in the server (queueing included). A
// replica holds PerReplicaConcurrency requests at its latency target, so
// the model needs ceil(L / PerReplicaConcurrency) replicas. When traffic
// rises, λ is the rate forecast LoadTime ahead (the trend over the window
// extrapolated linearly), so a replica started now is serving when the
// traffic arrives; a falling trend never scales down early. The count is
// rounded up to a multiple of Step (1, 2 or 4 GPUs) and clamped to the
// catalog's min_replicas and max_replicas.
//
// The analyzer exports the signals on /metrics as fleetwatch_scaling_*
// gauges labelled by model, for a KEDA Prometheus scaler or an HPA external
// metric (docs/DEPLOY.md, "Autoscaling").
package scaling
