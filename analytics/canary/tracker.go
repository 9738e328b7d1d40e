package canary

import (
	"fmt"
	"math"
	"time"
)

// Tracker judges a canary whose regression may begin after the canary
// does (a leak, a cache that goes cold, a dependency that changes). The
// judge's test on everything since the start dilutes such a regression
// with the good minutes before it; the Tracker also restarts the test at
// fixed times — every Epoch after the start — and fails the canary if any
// restarted test fails. Each restart is a test of its own, valid at every
// look; restart k (k = 0 is the start) gets α·6/(π²(k+1)²) of the
// family's α, a series that sums to α, so the family's false-fail rate
// stays at most Config.Alpha however many restarts there are. Pass and the
// time left come from the test since the start.
//
// A Tracker keeps the cumulative counts at each restart time (the last
// MaxSegments of them); it is not safe for concurrent use. After an
// analyzer restart, the counts at those times can be read back from
// storage like any other counts.
type Tracker struct {
	cfg    Config
	epoch  time.Duration
	judges []*Judge // judges[k] tests the counts since k·epoch
	// snaps[k] holds the counts at k·epoch (k ≥ 1), taken at the first
	// look at or after it; nil until then or once dropped.
	snaps   []*Observation
	maxSegs int
	seg     Observation
	segV    Verdict
}

// Tracker defaults: a restart every 2.5 minutes, the last hour of them.
// Half the documents' shortest window: a regression that begins between
// restarts is tested from the next one, at most 2.5 minutes later (5
// minutes delayed detection more: docs/BENCHMARKS.md).
const (
	DefaultEpoch    = 150 * time.Second
	DefaultSegments = 24
)

// NewDefaultTracker returns a Tracker with DefaultEpoch and
// DefaultSegments.
func NewDefaultTracker(cfg Config) (*Tracker, error) {
	return NewTracker(cfg, DefaultEpoch, DefaultSegments)
}

// NewTracker returns a Tracker restarting every epoch and keeping the last
// maxSegments restarts.
func NewTracker(cfg Config, epoch time.Duration, maxSegments int) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("canary config: %w", err)
	}
	if epoch <= 0 || maxSegments < 1 {
		return nil, fmt.Errorf("canary tracker: epoch %v, segments %d: want > 0 and >= 1", epoch, maxSegments)
	}
	return &Tracker{cfg: cfg, epoch: epoch, maxSegs: maxSegments,
		seg: newObservation()}, nil
}

// alphaShare is restart k's share of α: 6/(π²(k+1)²).
func alphaShare(k int) float64 { return 6 / (math.Pi * math.Pi * float64((k+1)*(k+1))) }

// judge returns the judge of restart k, made on first use.
func (t *Tracker) judge(k int) *Judge {
	for len(t.judges) <= k {
		cfg := t.cfg
		cfg.Alpha = t.cfg.Alpha * alphaShare(len(t.judges))
		j, err := New(cfg)
		if err != nil {
			panic(err) // cfg was validated and a smaller α stays valid
		}
		t.judges = append(t.judges, j)
	}
	return t.judges[k]
}

// Evaluate writes the verdict on o (cumulative counts since the start)
// into v. Looks must come in order of Elapsed.
func (t *Tracker) Evaluate(o *Observation, v *Verdict) {
	t.judge(0).Evaluate(o, v)
	if v.Outcome != Fail {
		for k := len(t.snaps) - 1; k >= 1; k-- {
			s := t.snaps[k]
			if s == nil {
				break
			}
			since := time.Duration(k) * t.epoch
			t.seg.Elapsed, t.seg.Features = o.Elapsed-since, o.Features
			diffCounts(&t.seg.Canary, &o.Canary, &s.Canary)
			diffCounts(&t.seg.Baseline, &o.Baseline, &s.Baseline)
			t.judge(k).Evaluate(&t.seg, &t.segV)
			if t.segV.Outcome == Fail {
				v.Outcome, v.TimeLeft = Fail, 0
				v.Gate.Outcome, v.Gate.Reason = Fail, GateRuleFailed
				v.Evidence = append(v.Evidence[:0], t.segV.Evidence...)
				for i := range v.Evidence {
					v.Evidence[i].Since = since
				}
				break
			}
		}
	}
	for k := max(len(t.snaps), 1); time.Duration(k)*t.epoch <= o.Elapsed; k++ {
		for len(t.snaps) <= k {
			t.snaps = append(t.snaps, nil)
		}
		t.snaps[k] = snapshot(o, t.snapBuf(k))
		if k-t.maxSegs >= 1 {
			t.snaps[k-t.maxSegs] = nil
		}
	}
}

// snapBuf returns a dropped snapshot's memory for reuse, or new memory.
func (t *Tracker) snapBuf(k int) *Observation {
	if k-t.maxSegs >= 1 && t.snaps[k-t.maxSegs] != nil {
		return t.snaps[k-t.maxSegs]
	}
	o := newObservation()
	return &o
}

// newObservation returns an empty observation, with both latency
// histograms.
func newObservation() Observation {
	return Observation{Canary: Counts{Latency: &Histogram{}}, Baseline: Counts{Latency: &Histogram{}}}
}

// snapshot copies o's counts into dst.
func snapshot(o *Observation, dst *Observation) *Observation {
	dst.Elapsed, dst.Features = o.Elapsed, o.Features
	copyInto(&dst.Canary, &o.Canary)
	copyInto(&dst.Baseline, &o.Baseline)
	return dst
}

func copyInto(dst, src *Counts) {
	h := dst.Latency
	h.Reset()
	h.Merge(src.Latency)
	p, f := copyBins(dst.Predictions, src.Predictions), copyBins(dst.Features, src.Features)
	*dst = *src
	dst.Latency, dst.Predictions, dst.Features = h, p, f
}

// copyBins returns src's counts in dst's memory; nil when src is nil.
func copyBins(dst, src []float64) []float64 {
	if src == nil {
		return nil
	}
	return append(dst[:0], src...)
}

// diffBins returns a − b in dst's memory; nil unless both are there with
// the same bins.
func diffBins(dst, a, b []float64) []float64 {
	if a == nil || len(a) != len(b) {
		return nil
	}
	dst = dst[:0]
	for i, x := range a {
		dst = append(dst, x-b[i])
	}
	return dst
}

// diffCounts sets dst to a − b, b being earlier cumulative counts of the
// same version.
func diffCounts(dst, a, b *Counts) {
	h, p, f := dst.Latency, diffBins(dst.Predictions, a.Predictions, b.Predictions), diffBins(dst.Features, a.Features, b.Features)
	*dst = Counts{Requests: a.Requests - b.Requests, Errors: a.Errors - b.Errors, Trials: a.Trials - b.Trials, Successes: a.Successes - b.Successes,
		Labelled: a.Labelled - b.Labelled, Correct: a.Correct - b.Correct, Predictions: p, Features: f}
	h.Reset()
	h.Merge(a.Latency)
	h.subtract(b.Latency)
	dst.Latency = h
}
