package jobs

import (
	"math"

	"github.com/fleetwatch/fleetwatch/lib/kernels"
)

// madScale turns a median absolute deviation into a normal σ.
const madScale = 1.4826

// baseline is a job's own history of one value (step time, checkpoint
// write time): the latest values that were not out of it, and the run of
// values out of it since the last one that was not. A run that lasts adapt
// values replaces the history: the job's new normal.
type baseline struct {
	vals []float64
	run  []float64
}

// stats returns the history's median and robust σ (1.4826·MAD), σ at
// least relFloor of the median so that a very steady history's spread
// cannot collapse and turn noise into a large z.
func (b *baseline) stats(relFloor float64, scratch []float64) (med, sigma float64) {
	s := append(scratch[:0], b.vals...)
	med = kernels.Median(s)
	for i, v := range b.vals {
		s[i] = math.Abs(v - med)
	}
	return med, max(madScale*kernels.Median(s[:len(b.vals)]), relFloor*math.Abs(med))
}

// add records x, out of the baseline or not, keeping at most size values.
func (b *baseline) add(x float64, out bool, size, adapt int) {
	if !out {
		b.vals = keepLast(append(b.vals, x), size)
		b.run = b.run[:0]
		return
	}
	b.run = append(b.run, x)
	if len(b.run) >= adapt {
		b.vals = keepLast(append(b.vals[:0], b.run...), size)
		b.run = b.run[:0]
	}
}

// longest is the largest value of the history and the run.
func (b *baseline) longest() float64 {
	m := 0.0
	for _, v := range b.vals {
		m = max(m, v)
	}
	for _, v := range b.run {
		m = max(m, v)
	}
	return m
}

func (b *baseline) clone() baseline {
	return baseline{vals: append([]float64(nil), b.vals...), run: append([]float64(nil), b.run...)}
}

// keepLast drops all but the last n values, in place.
func keepLast(xs []float64, n int) []float64 {
	if len(xs) <= n {
		return xs
	}
	return xs[:copy(xs, xs[len(xs)-n:])]
}

// judgement is a value judged against a baseline.
type judgement struct {
	med, z float64
	out    bool
	ready  bool // the baseline held enough values to judge
}

// judge decides whether x is out of b: at least ratio times the median and
// minZ σ above it, once b holds minN values; then adds x to b.
func (b *baseline) judge(x float64, minN int, ratio, minZ, relFloor float64, size, adapt int, scratch []float64) judgement {
	j := judgement{med: math.NaN(), z: math.NaN()}
	if len(b.vals) >= minN {
		med, sigma := b.stats(relFloor, scratch)
		j = judgement{med: med, z: (x - med) / sigma, ready: true}
		j.out = x >= ratio*med && j.z >= minZ
	}
	b.add(x, j.out, size, adapt)
	return j
}
