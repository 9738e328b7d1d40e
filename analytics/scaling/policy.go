package scaling

import (
	"math"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet/catalog"
)

// Policy is a model's scaling policy.
type Policy struct {
	// PerReplicaConcurrency is the requests one replica holds in flight.
	PerReplicaConcurrency float64
	// Step is the replica granularity (1, 2 or 4); 0 means 1.
	Step int
	// MinReplicas and MaxReplicas clamp the recommendation; MinReplicas 0
	// means 1 (scaling to zero is the autoscaler's activation, not ours),
	// MaxReplicas 0 means no upper bound.
	MinReplicas, MaxReplicas int
	// LoadTime is how far ahead a rising rate is forecast.
	LoadTime time.Duration
}

// PolicyOf returns m's policy; ok is false when m asks for no
// recommendation (no scaling.per_replica_concurrency).
func PolicyOf(m *catalog.Model) (p Policy, ok bool) {
	if m == nil || !m.Scaling.Enabled() {
		return Policy{}, false
	}
	return Policy{PerReplicaConcurrency: m.Scaling.PerReplicaConcurrency, Step: m.Scaling.Step,
		MinReplicas: m.Serving.MinReplicas, MaxReplicas: m.Serving.MaxReplicas, LoadTime: m.Scaling.LoadTime}, true
}

// Signals are one model's measured load over a window.
type Signals struct {
	// RequestRate is requests per second at the window's end (the trend
	// line's value there; the mean rate when the window has one minute).
	RequestRate float64
	// RateSlope is the trend: requests per second gained per second.
	RateSlope float64
	// MeanLatency is the mean end-to-end latency, in seconds: Little's W.
	MeanLatency float64
	// P99Latency is the 99th percentile latency, in seconds.
	P99Latency float64
	// QueueDepth is the requests waiting in the model's servers (the sum
	// of the last fleetwatch_model_queue_depth of each series; NaN when
	// none reports it).
	QueueDepth float64
	// SMActive is the mean DCGM_FI_PROF_SM_ACTIVE of the GPUs that served
	// the model (NaN when none reports it).
	SMActive float64
	// GPUs is the number of GPUs that served the model in the window.
	GPUs int
	// Requests is the number of sampled requests the rates come from.
	Requests int
}

// Clamp says which bound, if any, set a recommendation.
type Clamp string

// Clamps.
const (
	ClampNone Clamp = ""
	ClampMin  Clamp = "min"
	ClampMax  Clamp = "max"
)

// Recommendation is Little's law applied to Signals under a Policy.
type Recommendation struct {
	// ForecastRate is the rate the recommendation is for: the rate
	// LoadTime ahead when rising, else the current rate (requests/s).
	ForecastRate float64
	// Concurrency is L = ForecastRate × MeanLatency.
	Concurrency float64
	// Needed is L / PerReplicaConcurrency, before rounding.
	Needed float64
	// Replicas is the recommendation: Needed rounded up to a multiple of
	// Step, then clamped.
	Replicas int
	Clamped  Clamp
}

// eps absorbs floating-point noise before rounding up, so that 12 / 4
// computed as 3.0000000000000004 asks for 3 replicas, not 4.
const eps = 1e-9

// Recommend applies Little's law.
func Recommend(s Signals, p Policy) Recommendation {
	rate := math.Max(s.RequestRate, 0)
	if s.RateSlope > 0 && p.LoadTime > 0 {
		rate += s.RateSlope * p.LoadTime.Seconds()
	}
	r := Recommendation{ForecastRate: rate, Concurrency: rate * math.Max(s.MeanLatency, 0)}
	if p.PerReplicaConcurrency > 0 {
		r.Needed = r.Concurrency / p.PerReplicaConcurrency
	}
	step := max(p.Step, 1)
	r.Replicas = int(math.Ceil(r.Needed/float64(step)-eps)) * step
	lo := max(p.MinReplicas, 1)
	switch {
	case r.Replicas < lo:
		r.Replicas, r.Clamped = lo, ClampMin
	case p.MaxReplicas > 0 && r.Replicas > p.MaxReplicas:
		r.Replicas, r.Clamped = p.MaxReplicas, ClampMax
	}
	return r
}
