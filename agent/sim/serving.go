package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/record"
)

// Serving generates model-serving traffic: inference events with features
// and predictions, delayed labels, and deployment markers, with the
// scenario's model faults applied.
type Serving struct {
	sc      *Scenario
	fl      *Fleet
	rng     *rand.Rand
	models  []*modelState
	pending []pendingLabel
	seq     uint64
	deploys []DeploymentSpec
	// decisions are promotions and rollbacks asked for by a rollout
	// controller from another goroutine, applied at the next batch.
	mu        sync.Mutex
	decisions []decision
}

// decision is a rollout controller's promotion or rollback of a canary.
type decision struct {
	model, version, change string
}

type modelState struct {
	spec    ModelSpec
	version string
	weights []float64
	// canary is the model's running canary, nil when none.
	canary *DeploymentSpec
	frozen []record.Feature // the last features seen, for a stalled pipeline
	node   *Node
	accrue float64
}

type pendingLabel struct {
	at    time.Time
	label record.DelayedLabel
}

// NewServing prepares sc's models.
func NewServing(sc *Scenario, fl *Fleet) *Serving {
	s := &Serving{sc: sc, fl: fl, rng: rand.New(rand.NewPCG(sc.Seed+7, 11)), deploys: slices.Clone(sc.Deployments)}
	slices.SortStableFunc(s.deploys, func(a, b DeploymentSpec) int { return int(a.At - b.At) })
	for i, m := range sc.Models {
		ms := &modelState{spec: m, version: m.Version}
		for range m.Features {
			ms.weights = append(ms.weights, s.rng.NormFloat64())
		}
		if n := fl.Node(m.Node); n != nil {
			ms.node = n
		} else if len(fl.Nodes) > 0 {
			ms.node = fl.Nodes[(len(fl.Nodes)-1-i%len(fl.Nodes)+len(fl.Nodes))%len(fl.Nodes)]
		}
		s.models = append(s.models, ms)
	}
	return s
}

// modelFault returns the strength and fault of type typ acting on m (by
// model or by its pipeline), optionally for one feature.
func (s *Serving) modelFault(m *modelState, typ, feature string, t time.Time) (float64, *activeFault) {
	for _, f := range s.fl.faults {
		if f.spec.Type != typ {
			continue
		}
		tg := f.spec.Target
		if tg.Model != m.spec.Name && (tg.Pipeline == "" || tg.Pipeline != m.spec.Pipeline) {
			continue
		}
		if feature != "" && tg.Feature != "" && tg.Feature != feature {
			continue
		}
		if st := f.strength(t); st > 0 {
			return st, f
		}
	}
	return 0, nil
}

// Batch generates the traffic of the interval ending at t, one batch per
// serving node.
func (s *Serving) Batch(t time.Time, dt time.Duration) []*record.Batch {
	byNode := map[*Node]*record.Batch{}
	get := func(n *Node) *record.Batch {
		if b, ok := byNode[n]; ok {
			return b
		}
		b := &record.Batch{Source: "serving", Resource: &record.Resource{Host: n.Name, Datacenter: n.Resource.Datacenter,
			Row: n.Resource.Row, Rack: n.Resource.Rack, Cluster: n.Resource.Cluster, Service: "model-server"}, Time: t}
		byNode[n] = b
		return b
	}
	for len(s.deploys) > 0 && !t.Before(s.sc.Start.Add(s.deploys[0].At)) {
		d := s.deploys[0]
		s.deploys = s.deploys[1:]
		for _, m := range s.models {
			if m.spec.Name == d.Model && m.node != nil {
				b := get(m.node)
				b.Deployments = append(b.Deployments, record.Deployment{Time: t, Model: d.Model, ModelVersion: d.Version,
					PreviousVersion: m.version, Change: d.Change, Environment: "prod", Actor: "sim"})
				if d.Change == ChangeCanary {
					m.canary = &d
				} else {
					m.version, m.canary = d.Version, nil
				}
			}
		}
	}
	s.mu.Lock()
	decided := s.decisions
	s.decisions = nil
	s.mu.Unlock()
	for _, d := range decided {
		for _, m := range s.models {
			if m.spec.Name != d.model || m.canary == nil || m.canary.Version != d.version || m.node == nil {
				continue
			}
			// A promotion moves all traffic to the canary's version (its
			// behaviour becomes the model's); a rollback back to the baseline.
			prev, version := m.version, m.version
			if d.change == ChangePromote {
				prev, version = m.version, m.canary.Version
				if m.canary.LatencyMs > 0 {
					m.spec.LatencyMs = m.canary.LatencyMs
				}
				if m.canary.ErrorRate > 0 {
					m.spec.ErrorRate = m.canary.ErrorRate
				}
			} else {
				prev = m.canary.Version
			}
			b := get(m.node)
			b.Deployments = append(b.Deployments, record.Deployment{Time: t, Model: m.spec.Name, ModelVersion: version,
				PreviousVersion: prev, Change: d.change, Environment: "prod", Actor: "rollout"})
			m.version, m.canary = version, nil
		}
	}
	for _, m := range s.models {
		if m.node == nil {
			continue
		}
		m.accrue += m.spec.RPS * dt.Seconds()
		n := int(m.accrue)
		m.accrue -= float64(n)
		for i := 0; i < n; i++ {
			ts := t.Add(-dt + time.Duration(float64(dt)*(float64(i)+0.5)/float64(n)))
			in, label, ok := s.request(m, ts)
			if !record.Keep(in.RequestID, m.spec.SampleRate) {
				continue
			}
			b := get(m.node)
			b.Inferences = append(b.Inferences, in)
			if ok {
				s.pending = append(s.pending, pendingLabel{at: ts.Add(m.spec.LabelDelay), label: label})
			}
		}
	}
	keep := s.pending[:0]
	for _, p := range s.pending {
		if p.at.After(t) {
			keep = append(keep, p)
			continue
		}
		for _, m := range s.models {
			if m.spec.Name == p.label.Model && m.node != nil {
				l := p.label
				l.Time = p.at
				b := get(m.node)
				b.Labels = append(b.Labels, l)
			}
		}
	}
	s.pending = keep
	out := make([]*record.Batch, 0, len(byNode))
	for _, n := range s.fl.Nodes {
		if b, ok := byNode[n]; ok {
			out = append(out, b)
		}
	}
	return out
}

// Promote asks that model's canary of version take all its traffic, and
// Rollback that it be ended with all traffic back on the baseline: a
// rollout controller's decisions, safe to call from any goroutine, applied
// (and recorded as a deployment change) at the next batch. A decision on
// a canary that is not running is ignored.
func (s *Serving) Promote(model, version string) { s.decide(model, version, ChangePromote) }

// Rollback: see Promote.
func (s *Serving) Rollback(model, version string) { s.decide(model, version, ChangeRollback) }

func (s *Serving) decide(model, version, change string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.decisions = append(s.decisions, decision{model: model, version: version, change: change})
}

// request makes one inference event and, maybe, its delayed label.
func (s *Serving) request(m *modelState, ts time.Time) (record.Inference, record.DelayedLabel, bool) {
	s.seq++
	rng := s.rng
	version, latencyMs, baseErr := m.version, m.spec.LatencyMs, m.spec.ErrorRate
	if c := m.canary; c != nil && rng.Float64() < c.Share {
		version = c.Version
		if c.LatencyMs > 0 {
			latencyMs = c.LatencyMs
		}
		if c.ErrorRate > 0 {
			baseErr = c.ErrorRate
		}
	}
	in := record.Inference{Time: ts, Model: m.spec.Name, ModelVersion: version,
		RequestID: fmt.Sprintf("%s-%d-%d", m.spec.Name, s.sc.Seed, s.seq), Status: "ok", SampleRate: m.spec.SampleRate}
	if len(m.node.GPUs) > 0 {
		in.GPUUUID = m.node.GPUs[int(s.seq)%len(m.node.GPUs)].UUID
	}
	stale, _ := s.modelFault(m, FaultStaleFeatures, "", ts)
	if stale > 0 && m.frozen != nil {
		in.Features = append([]record.Feature(nil), m.frozen...)
	} else {
		for _, fs := range m.spec.Features {
			f := record.Feature{Name: fs.Name}
			switch {
			case rng.Float64() < fs.MissingRate:
				f.Missing = true
			case len(fs.Values) > 0:
				f.IsCat, f.Str = true, fs.Values[pick(rng, fs.Probs)]
			default:
				sd := fs.SD
				if sd == 0 {
					sd = 1
				}
				mean := fs.Mean
				if d, f := s.modelFault(m, FaultCovariateDrift, fs.Name, ts); d > 0 {
					mean += d * f.spec.Magnitude * sd
				}
				f.Num = mean + rng.NormFloat64()*sd
			}
			in.Features = append(in.Features, f)
		}
		m.frozen = in.Features
	}
	// A logistic model over the standardized numeric features.
	z := 0.0
	for i, f := range in.Features {
		if !f.IsCat && !f.Missing {
			fs := m.spec.Features[i]
			sd := fs.SD
			if sd == 0 {
				sd = 1
			}
			z += m.weights[i] * (f.Num - fs.Mean) / sd
		}
	}
	p := 1 / (1 + math.Exp(-z))
	in.Prediction, in.HasPrediction = p, true
	in.PredictionClass = "negative"
	if p >= 0.5 {
		in.PredictionClass = "positive"
	}
	lat := latencyMs * math.Exp(rng.NormFloat64()*m.spec.LatencySpread)
	if f, fl := s.modelFault(m, FaultLatency, "", ts); f > 0 {
		lat *= 1 + f*(fl.spec.Magnitude-1)
	}
	in.LatencyMs = lat
	errRate := baseErr
	if f, fl := s.modelFault(m, FaultErrorSpike, "", ts); f > 0 {
		errRate = math.Max(errRate, f*fl.spec.Magnitude)
	}
	if rng.Float64() < errRate {
		in.Status, in.HasPrediction, in.PredictionClass = "error", false, ""
		return in, record.DelayedLabel{}, false
	}
	if m.spec.LabelFraction <= 0 || rng.Float64() >= m.spec.LabelFraction {
		return in, record.DelayedLabel{}, false
	}
	truth := "negative"
	if rng.Float64() < p {
		truth = "positive"
	}
	return in, record.DelayedLabel{Model: m.spec.Name, RequestID: in.RequestID, Label: truth}, true
}

func pick(rng *rand.Rand, probs []float64) int {
	u := rng.Float64()
	acc := 0.0
	for i, p := range probs {
		acc += p
		if u < acc {
			return i
		}
	}
	return len(probs) - 1
}
