package analyzer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetwatch/fleetwatch/analytics/drift"
	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/analytics/health"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/lib/coord"
)

// CoordinationConfig lets several analyzers share the fleet (issue 17):
// each detector's work is split into shares — fleet health by datacenter,
// drift and SPC on model metrics and labels by model, the other detectors
// whole — which the analyzers divide among themselves through ZooKeeper
// (lib/coord: membership, rendezvous hashing, one lock per share), and one
// of them at a time owns alerting. Off by default: one analyzer does
// everything and needs no ZooKeeper. docs/ARCHITECTURE.md, "Analyzers
// sharing the fleet".
type CoordinationConfig struct {
	Enabled bool `yaml:"enabled"`
	// The ZooKeeper ensemble (ClickHouse Keeper will do), the root path,
	// this analyzer's member id, the session timeout and the poll.
	coord.Config `yaml:",inline"`
	// DatacenterShards splits fleet health into this many shares, each the
	// GPUs of the datacenters whose name hashes into it (default 4). A
	// datacenter is never split: its peer groups (jobs, nodes, racks, the
	// datacenter) are compared whole.
	DatacenterShards int `yaml:"datacenter_shards"`
	// ModelShards splits drift, spc_models and spc_labels into this many
	// shares each, by model name (default 8).
	ModelShards int `yaml:"model_shards"`
}

// maxShards bounds the shares per detector: each is a ZooKeeper lock, a
// ledger series and a set of queries per window.
const maxShards = 256

// NewDefaultCoordinationConfig returns coordination off, with lib/coord's
// defaults, 4 datacenter shares and 8 model shares.
func NewDefaultCoordinationConfig() CoordinationConfig {
	return CoordinationConfig{Config: coord.NewDefaultConfig(), DatacenterShards: 4, ModelShards: 8}
}

// Validate checks the section when coordination is on.
func (c CoordinationConfig) Validate() error {
	if !c.Enabled {
		return nil
	}
	errs := []error{c.Config.Validate()}
	if c.DatacenterShards < 1 || c.DatacenterShards > maxShards {
		errs = append(errs, fmt.Errorf("datacenter_shards: %d, want 1 to %d", c.DatacenterShards, maxShards))
	}
	if c.ModelShards < 1 || c.ModelShards > maxShards {
		errs = append(errs, fmt.Errorf("model_shards: %d, want 1 to %d", c.ModelShards, maxShards))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("coordination: %w", err)
	}
	return nil
}

// Share keys: what a detector's work is split by.
const (
	byDatacenter = "dc"
	byModel      = "model"
	whole        = "" // not split: one share, "all"
)

// factory builds a detector limited to a shard of its work.
type factory struct {
	name  string // the detector's own name
	by    string // byDatacenter, byModel or whole
	build func(fleet.Shard) (fleet.Detector, error)
}

// shares lists every share of the factories' work, in the coordination's
// shares, by share name (fleet_health@dc0of4, slo@all).
func (c CoordinationConfig) shares(fs []factory) map[string]shareSpec {
	out := map[string]shareSpec{}
	for i := range fs {
		f := &fs[i]
		n := 1
		switch f.by {
		case byDatacenter:
			n = c.DatacenterShards
		case byModel:
			n = c.ModelShards
		}
		for k := range n {
			sh := fleet.Shard{Index: k, Of: n}
			unit := f.by + sh.String()
			if n == 1 {
				unit, sh = "all", fleet.Shard{}
			}
			out[fleet.ShareName(f.name, unit)] = shareSpec{f: f, unit: unit, shard: sh}
		}
	}
	return out
}

type shareSpec struct {
	f     *factory
	unit  string
	shard fleet.Shard
}

// sharing is the analyzer's side of coordination: the coord.Handler that
// adds the shares it holds to the engine and removes them, and leads
// alerting while it holds the lease.
type sharing struct {
	a      *Analyzer
	specs  map[string]shareSpec
	member *coord.Member

	mu sync.Mutex
	// live are the detectors of the shares held now; retired sums the
	// counters of those handed over, so that /metrics' counters never go
	// back.
	live           map[string]fleet.Detector
	retiredDrift   map[string]uint64
	retiredSkipped map[health.SkipKey]uint64
	// consumed counts the evaluations earlier leaderships' feeds handed
	// alerting; feed is the current one's.
	consumed uint64
	feed     *engine.Feed
}

func newSharing(a *Analyzer, cfg CoordinationConfig, fs []factory) (*sharing, error) {
	s := &sharing{a: a, specs: cfg.shares(fs), live: map[string]fleet.Detector{}, retiredDrift: map[string]uint64{},
		retiredSkipped: map[health.SkipKey]uint64{}}
	m, err := coord.NewMember(cfg.Config, a.client.Config().Database, slices.Collect(maps.Keys(s.specs)), s, a.log)
	if err != nil {
		return nil, err
	}
	s.member = m
	return s, nil
}

// Start implements coord.Handler: it builds the share's detector and adds
// it to the engine, which resumes it after the last window in the ledger.
func (s *sharing) Start(name string) error {
	spec, ok := s.specs[name]
	if !ok {
		return fmt.Errorf("unknown share %s", name)
	}
	d, err := spec.f.build(spec.shard)
	if err != nil {
		return err
	}
	if err := s.a.Engine.Add(engine.Share(d, spec.unit)); err != nil {
		return err
	}
	s.mu.Lock()
	s.live[name] = d
	s.mu.Unlock()
	return nil
}

// Stop implements coord.Handler: the engine stops the share after its
// window in flight (abandoned when ctx ends).
func (s *sharing) Stop(ctx context.Context, name string) {
	if err := s.a.Engine.Remove(ctx, name); err != nil {
		s.a.log.Warn("coordination: remove share", "share", name, "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	addCounts(s.retiredDrift, driftCounts(s.live[name]))
	addCounts(s.retiredSkipped, healthCounts(s.live[name]))
	delete(s.live, name)
}

// Lead implements coord.Handler: while this analyzer holds the alerting
// lease it restores the incidents and the notification outbox, delivers
// the outbox, and feeds alerting every evaluation the shares recorded,
// resuming after the last one the previous owner consumed.
func (s *sharing) Lead(ctx context.Context) {
	a := s.a
	for ctx.Err() == nil {
		err := s.lead(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		a.log.Warn("alerting owner: cannot start alerting; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(a.cfg.Coordination.Poll):
		}
	}
}

func (s *sharing) lead(ctx context.Context) error {
	a := s.a
	st, err := newAlerting(ctx, a.cfg.Alerting, a.cat, a.stores(), a.log)
	if err != nil {
		return err
	}
	feed, err := engine.NewFeed(engine.FeedConfig{Consumer: "alerting", Lookback: a.cfg.Alerting.Lifecycle.RestoreLookback, Poll: a.cfg.Coordination.Poll},
		a.out, st.manager, a.clock, a.log)
	if err != nil {
		return err
	}
	a.setAlerting(st)
	s.mu.Lock()
	s.feed = feed
	s.mu.Unlock()
	defer a.setAlerting(nil)
	var wg sync.WaitGroup
	if st.router != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = st.router.Run(ctx)
		}()
	}
	a.log.Info("alerting owner: consuming the shares' evaluations")
	_ = feed.Run(ctx)
	wg.Wait()
	s.mu.Lock()
	s.consumed += feed.Consumed()
	s.feed = nil
	s.mu.Unlock()
	a.log.Info("alerting owner: stopped", "evaluations", feed.Consumed())
	return nil
}

// counts sums a counter of one kind of detector over dets, on top of
// base (the counts of shares handed over).
func counts[K comparable](base map[K]uint64, dets []fleet.Detector, of func(fleet.Detector) map[K]uint64) map[K]uint64 {
	out := map[K]uint64{}
	addCounts(out, base)
	for _, d := range dets {
		addCounts(out, of(d))
	}
	return out
}

func addCounts[K comparable](dst, src map[K]uint64) {
	for k, n := range src {
		dst[k] += n
	}
}

// driftCounts are a drift detector's counters; nil for another detector.
func driftCounts(d fleet.Detector) map[string]uint64 {
	if dd, ok := d.(*drift.Detector); ok {
		return dd.Stats()
	}
	return nil
}

// healthCounts are a fleet-health detector's skipped rules; nil for
// another detector.
func healthCounts(d fleet.Detector) map[health.SkipKey]uint64 {
	if hd, ok := d.(*health.Detector); ok {
		return hd.Skipped()
	}
	return nil
}

// driftStats sums the drift detectors' counters: every share's, live or
// handed over.
func (a *Analyzer) driftStats() map[string]uint64 {
	if a.share == nil {
		return counts(nil, a.dets, driftCounts)
	}
	s := a.share
	s.mu.Lock()
	defer s.mu.Unlock()
	return counts(s.retiredDrift, slices.Collect(maps.Values(s.live)), driftCounts)
}

// healthSkipped sums the fleet-health detectors' skipped rules: every
// share's, live or handed over.
func (a *Analyzer) healthSkipped() map[health.SkipKey]uint64 {
	if a.share == nil {
		return counts(nil, a.dets, healthCounts)
	}
	s := a.share
	s.mu.Lock()
	defer s.mu.Unlock()
	return counts(s.retiredSkipped, slices.Collect(maps.Values(s.live)), healthCounts)
}

// Coordination as /metrics shows it.
var (
	descShares = prometheus.NewDesc("fleetwatch_analyzer_shares_owned",
		"Shares of the detectors' work this analyzer evaluates now (analyzers sharing the fleet).", nil, nil)
	descShareMoves = prometheus.NewDesc("fleetwatch_analyzer_share_changes_total",
		"Shares this analyzer took (taken), handed to their new owner after the window in flight (released), or dropped at once because its ZooKeeper connection or session was lost (lost).",
		[]string{"change"}, nil)
	descOwner = prometheus.NewDesc("fleetwatch_analyzer_alerting_owner",
		"1 while this analyzer holds the alerting lease (correlation, incidents, notifications), else 0.", nil, nil)
	descLeads = prometheus.NewDesc("fleetwatch_analyzer_alerting_leases_total",
		"Times this analyzer took the alerting lease.", nil, nil)
	descSession = prometheus.NewDesc("fleetwatch_analyzer_coordination_session",
		"1 while this analyzer holds a ZooKeeper session, else 0 (then it evaluates nothing).", nil, nil)
	descMembers = prometheus.NewDesc("fleetwatch_analyzer_coordination_members",
		"Analyzers sharing the fleet, as this one last read the membership.", nil, nil)
	descFed = prometheus.NewDesc("fleetwatch_analyzer_alerting_evaluations_total",
		"Evaluations of shares the alerting owner read back from the ledger and correlated, while this analyzer owned alerting.", nil, nil)
)

var sharingDescs = []*prometheus.Desc{descShares, descShareMoves, descOwner, descLeads, descSession, descMembers, descFed}

// collect exports the coordination state.
func (s *sharing) collect(ch chan<- prometheus.Metric) {
	st := s.member.Status()
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	ch <- prometheus.MustNewConstMetric(descShares, prometheus.GaugeValue, float64(len(st.Units)))
	ch <- prometheus.MustNewConstMetric(descShareMoves, prometheus.CounterValue, float64(st.Taken), "taken")
	ch <- prometheus.MustNewConstMetric(descShareMoves, prometheus.CounterValue, float64(st.Released), "released")
	ch <- prometheus.MustNewConstMetric(descShareMoves, prometheus.CounterValue, float64(st.Lost), "lost")
	ch <- prometheus.MustNewConstMetric(descOwner, prometheus.GaugeValue, b(st.Leader))
	ch <- prometheus.MustNewConstMetric(descLeads, prometheus.CounterValue, float64(st.LeaderTaken))
	ch <- prometheus.MustNewConstMetric(descSession, prometheus.GaugeValue, b(st.Session))
	ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(len(st.Members)))
	s.mu.Lock()
	fed := s.consumed
	if s.feed != nil {
		fed += s.feed.Consumed()
	}
	s.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descFed, prometheus.CounterValue, float64(fed))
}

// Coordination returns this analyzer's view of the analyzers sharing the
// fleet; ok is false when coordination is off.
func (a *Analyzer) Coordination() (st coord.Status, ok bool) {
	if a.share == nil {
		return st, false
	}
	return a.share.member.Status(), true
}
