package canary

import (
	"fmt"
	"math"
)

// Histogram buckets: bucket 0 holds latencies ≤ histMin, bucket i ≥ 1 those
// in (histMin·γ^(i−1), histMin·γ^i], and the last one everything above
// histMin·γ^(Buckets−2). With γ = 1.02 a quantile read at a bucket's upper
// edge is at most 2% high, from 1 µs to about 17 minutes.
const (
	histMin = 1e-3 // ms
	gamma   = 1.02
	// Buckets is the number of latency buckets.
	Buckets = 1050
)

var lnGamma = math.Log(gamma)

// Histogram is a version's latency distribution in milliseconds: counts
// in fixed logarithmic buckets, so histograms of the same minutes add up
// (mergeable, like the collector's per-minute aggregates). The zero value
// is empty and ready to use.
type Histogram struct {
	counts []uint64
	total  uint64
}

// BucketOf returns the bucket of a latency in milliseconds.
func BucketOf(ms float64) int {
	if !(ms > histMin) { // also NaN
		return 0
	}
	i := int(math.Ceil(math.Log(ms/histMin) / lnGamma))
	// Guard the edge against rounding: ms must be ≤ UpperEdge(i).
	if i >= 1 && i < Buckets-1 && ms > UpperEdge(i) {
		i++
	}
	return min(max(i, 1), Buckets-1)
}

// UpperEdge returns the largest latency of bucket i, in milliseconds (+Inf
// for the last bucket).
func UpperEdge(i int) float64 {
	if i >= Buckets-1 {
		return math.Inf(1)
	}
	return histMin * math.Pow(gamma, float64(i))
}

// Add counts one latency.
func (h *Histogram) Add(ms float64) { h.AddN(BucketOf(ms), 1) }

// AddN counts n latencies in bucket i.
func (h *Histogram) AddN(i int, n uint64) {
	if i < 0 || i >= Buckets {
		panic(fmt.Sprintf("canary: bucket %d out of range [0, %d)", i, Buckets))
	}
	if h.counts == nil {
		h.counts = make([]uint64, Buckets)
	}
	h.counts[i] += n
	h.total += n
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.total == 0 {
		return
	}
	for i, n := range o.counts {
		if n != 0 {
			h.AddN(i, n)
		}
	}
}

// Reset empties h, keeping its memory.
func (h *Histogram) Reset() {
	clear(h.counts)
	h.total = 0
}

// Count returns the number of latencies.
func (h *Histogram) Count() uint64 {
	if h == nil {
		return 0
	}
	return h.total
}

// QuantileBucket returns the bucket of the q-quantile: the first bucket
// whose cumulative count reaches ⌈q·n⌉; −1 when h is empty.
func (h *Histogram) QuantileBucket(q float64) int {
	if h.Count() == 0 {
		return -1
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = min(max(rank, 1), h.total)
	var cum uint64
	for i, n := range h.counts {
		cum += n
		if cum >= rank {
			return i
		}
	}
	return Buckets - 1
}

// Quantile returns the q-quantile in milliseconds, read at its bucket's
// upper edge (at most 2% high); NaN when h is empty.
func (h *Histogram) Quantile(q float64) float64 {
	i := h.QuantileBucket(q)
	if i < 0 {
		return math.NaN()
	}
	return UpperEdge(i)
}

// Above returns the number of latencies in buckets after bucket i, all of
// them slower than UpperEdge(i).
func (h *Histogram) Above(i int) uint64 {
	if h.Count() == 0 {
		return 0
	}
	var n uint64
	for _, c := range h.counts[min(max(i+1, 0), Buckets):] {
		n += c
	}
	return n
}

// subtract removes o's counts from h; o must be an earlier state of the
// same counts (every bucket at most h's).
func (h *Histogram) subtract(o *Histogram) {
	if o.Count() == 0 {
		return
	}
	for i, n := range o.counts {
		h.counts[i] -= n
	}
	h.total -= o.total
}
