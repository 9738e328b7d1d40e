package spc

import (
	"errors"
	"fmt"
	"math"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/lib/kernels"
)

// Series describes one charted series.
type Series struct {
	// Key identifies the series within its detector, e.g.
	// "model=fraud/latency_p99"; it must be stable.
	Key    string
	Metric string
	// Class is the detection class: latency, error_rate, throughput,
	// freshness, cost, accuracy, thermal, ...
	Class                        string
	EntityType, Entity           string
	Model, ModelVersion, Feature string
	Topology                     fleet.Topology
	GPUUUID, GPUModel            string
	// Unit is shown in summaries (ms, s, req/s, ...).
	Unit string
}

// Observation is one window's value of one series.
type Observation struct {
	Series
	Value float64
}

// Absent says what a window without an observation means for a metric.
type Absent uint8

const (
	// AbsentNone: no data, no point; the series is stale.
	AbsentNone Absent = iota
	// AbsentZero: no data is a zero (no traffic is zero throughput).
	AbsentZero
	// AbsentAge: the value is an age that grows by the window length (no
	// new event means the newest event gets older).
	AbsentAge
)

// absentFor maps metrics to what their absence means.
var absentFor = map[string]Absent{"throughput": AbsentZero, "freshness": AbsentAge}

// SetConfig tunes a Set.
type SetConfig struct {
	// BaselinePoints is how many points a new series collects before it is
	// charted (Phase I).
	BaselinePoints int
	Params         kernels.ChartParams
	// ForgetAfter drops a series after this many windows without data.
	ForgetAfter int
}

// Validate reports every problem at once.
func (c SetConfig) Validate() error {
	var errs []error
	if c.BaselinePoints < 3 {
		errs = append(errs, fmt.Errorf("baseline_points: %d, want at least 3", c.BaselinePoints))
	}
	if c.ForgetAfter < 1 {
		errs = append(errs, fmt.Errorf("forget_after: %d windows, want at least 1", c.ForgetAfter))
	}
	if err := c.Params.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Set charts many series at once. Each window, Observe takes the values of
// the series that had data, adds new series, and steps every chart in one
// vectorized pass (kernels.Charts.Step). Its slices are columns, written to
// and restored from the spc_state table as such.
type Set struct {
	cfg    SetConfig
	series []Series
	index  map[string]int
	charts kernels.Charts
	// Per series: Phase I points (nil once charted), this window's value
	// (NaN when none), rules fired, limits in force when the value came,
	// consecutive windows out of control and without data.
	phase1     [][]float64
	value      []float64
	rules      []kernels.Signal
	mean       []float64
	sigma      []float64
	outRun     []uint32
	stale      []uint32
	windowSecs float64
}

// NewSet returns an empty set; windowSecs is the window length, for ages.
func NewSet(cfg SetConfig, windowSecs float64) (*Set, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Set{cfg: cfg, index: map[string]int{}, windowSecs: windowSecs}, nil
}

// Len is the number of series.
func (s *Set) Len() int { return len(s.series) }

// Series returns series i's description.
func (s *Set) Series(i int) Series { return s.series[i] }

// add appends a new series and returns its index.
func (s *Set) add(sr Series) int {
	i := len(s.series)
	s.series = append(s.series, sr)
	s.index[sr.Key] = i
	s.charts.Resize(i + 1)
	s.phase1 = append(s.phase1, nil)
	s.value = append(s.value, math.NaN())
	s.rules = append(s.rules, 0)
	s.mean = append(s.mean, 0)
	s.sigma = append(s.sigma, 0)
	s.outRun = append(s.outRun, 0)
	s.stale = append(s.stale, 0)
	return i
}

// Observe applies one window's observations: series without one get their
// absent value (see Absent) or no point.
func (s *Set) Observe(obs []Observation) {
	prev := s.value
	s.value = make([]float64, len(prev), len(prev)+len(obs))
	for i := range s.value {
		s.value[i] = math.NaN()
		switch absentFor[s.series[i].Metric] {
		case AbsentZero:
			s.value[i] = 0
		case AbsentAge:
			if prev[i] == prev[i] {
				s.value[i] = prev[i] + s.windowSecs
			}
		}
	}
	for _, o := range obs {
		i, ok := s.index[o.Key]
		if !ok {
			i = s.add(o.Series)
		} else {
			s.series[i] = o.Series
		}
		s.value[i] = o.Value
	}
	copy(s.mean, s.charts.Mean)
	copy(s.sigma, s.charts.Sigma)
	s.charts.Step(&s.cfg.Params, s.value, s.rules)
	for i, v := range s.value {
		if v-v != 0 {
			s.stale[i]++
			continue
		}
		s.stale[i] = 0
		if s.rules[i] != 0 {
			s.outRun[i]++
		} else {
			s.outRun[i] = 0
		}
		if s.charts.Sigma[i] <= 0 {
			s.collect(i, v)
		}
	}
	s.forget()
}

// collect adds a Phase I point and starts charting once there are enough;
// a baseline that loses more than half its points to outliers is not
// trusted, and the older half is dropped to collect again.
func (s *Set) collect(i int, v float64) {
	s.phase1[i] = append(s.phase1[i], v)
	if len(s.phase1[i]) < s.cfg.BaselinePoints {
		return
	}
	b := EstimateBaseline(s.phase1[i])
	if b.Stats.N*2 < s.cfg.BaselinePoints {
		s.phase1[i] = append(s.phase1[i][:0], s.phase1[i][len(s.phase1[i])/2:]...)
		return
	}
	s.charts.Seed(i, b.Stats, b.Last)
	s.phase1[i] = nil
}

// forget drops series stale for ForgetAfter windows.
func (s *Set) forget() {
	keep := 0
	for i := range s.series {
		if int(s.stale[i]) < s.cfg.ForgetAfter {
			keep++
		}
	}
	if keep == len(s.series) {
		return
	}
	j := 0
	for i := range s.series {
		if int(s.stale[i]) >= s.cfg.ForgetAfter {
			delete(s.index, s.series[i].Key)
			continue
		}
		s.move(i, j)
		j++
	}
	s.truncate(j)
}

// move copies series i's state to slot j (j <= i).
func (s *Set) move(i, j int) {
	if i == j {
		return
	}
	s.series[j], s.phase1[j], s.value[j], s.rules[j] = s.series[i], s.phase1[i], s.value[i], s.rules[i]
	s.mean[j], s.sigma[j], s.outRun[j], s.stale[j] = s.mean[i], s.sigma[i], s.outRun[i], s.stale[i]
	s.index[s.series[j].Key] = j
	c := &s.charts
	c.Mean[j], c.Sigma[j], c.Zones[j], c.EWMA[j], c.EWMAF[j] = c.Mean[i], c.Sigma[i], c.Zones[i], c.EWMA[i], c.EWMAF[i]
	c.CusumHi[j], c.CusumLo[j], c.Last[j], c.LastZ[j] = c.CusumHi[i], c.CusumLo[i], c.Last[i], c.LastZ[i]
	c.LearnN[j], c.LearnSum[j], c.LearnMR[j], c.LearnMRN[j] = c.LearnN[i], c.LearnSum[i], c.LearnMR[i], c.LearnMRN[i]
}

func (s *Set) truncate(n int) {
	s.series, s.phase1, s.value, s.rules = s.series[:n], s.phase1[:n], s.value[:n], s.rules[:n]
	s.mean, s.sigma, s.outRun, s.stale = s.mean[:n], s.sigma[:n], s.outRun[:n], s.stale[:n]
	s.charts.Resize(n)
}

// Point is a series' state after the last Observe, for detections.
type Point struct {
	Series
	Value float64
	Rules kernels.Signal
	// Mean and Sigma are the baseline the value was judged against; Z is
	// its distance from Mean in Sigma as the rules read it, on the normal
	// scale of the prediction statistic (kernels.PredictionZ: a young
	// baseline's estimation error widens the limits).
	Mean, Sigma float64
	Z           float64
	EWMA        float64
	CusumHi     float64
	CusumLo     float64
	// OutRun counts consecutive windows with a rule fired.
	OutRun int
}

// Fired returns the series that fired rules in the last window.
func (s *Set) Fired() []Point {
	var out []Point
	for i, r := range s.rules {
		if r == 0 {
			continue
		}
		out = append(out, Point{Series: s.series[i], Value: s.value[i], Rules: r, Mean: s.mean[i], Sigma: s.sigma[i],
			Z: s.charts.LastZ[i], EWMA: s.charts.EWMA[i], CusumHi: s.charts.CusumHi[i],
			CusumLo: s.charts.CusumLo[i], OutRun: int(s.outRun[i])})
	}
	return out
}

// Charted reports whether series key has a baseline, and its mean and σ.
func (s *Set) Charted(key string) (mean, sigma float64, ok bool) {
	i, found := s.index[key]
	if !found || s.charts.Sigma[i] <= 0 {
		return 0, 0, false
	}
	return s.charts.Mean[i], s.charts.Sigma[i], true
}
