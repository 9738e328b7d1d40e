// Package partial carries OTLP partial success from the component that
// rejects items back to the receiver that answers the sender.
//
// OTLP lets a server accept a request while rejecting some of its items,
// with a count and a message in the response's partial_success field. The
// Collector's consumer API has no way to say so: a consumer returns one
// error for the whole request. Fleetwatch's receiver therefore puts a Tally
// into the request's context before it hands the data on; every component
// that runs synchronously in that call (the ClickHouse exporter validates
// items before it queues them) adds what it rejects, with a reason; the
// receiver reads the tally after the call and answers with it. A context
// without a tally (another receiver, a test) makes Reject a no-op.
package partial

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

type ctxKey struct{}

// Tally counts the items of one request rejected downstream, by reason.
// It is safe for concurrent use (a pipeline may fan out to several exporters).
type Tally struct {
	mu       sync.Mutex
	rejected int64
	reasons  map[string]int64
}

// NewContext returns ctx carrying a new, empty tally.
func NewContext(ctx context.Context) (context.Context, *Tally) {
	t := &Tally{}
	return context.WithValue(ctx, ctxKey{}, t), t
}

// FromContext returns the tally ctx carries, or nil.
func FromContext(ctx context.Context) *Tally {
	t, _ := ctx.Value(ctxKey{}).(*Tally)
	return t
}

// Reject records n items rejected for reason in ctx's tally, if it has one.
func Reject(ctx context.Context, reason string, n int) {
	if n <= 0 {
		return
	}
	if t := FromContext(ctx); t != nil {
		t.Add(reason, int64(n))
	}
}

// Add records n items rejected for reason.
func (t *Tally) Add(reason string, n int64) {
	if n <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.reasons == nil {
		t.reasons = map[string]int64{}
	}
	t.rejected += n
	t.reasons[reason] += n
}

// Rejected is the number of items rejected so far.
func (t *Tally) Rejected() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rejected
}

// Reasons returns a copy of the counts by reason.
func (t *Tally) Reasons() map[string]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int64, len(t.reasons))
	for r, n := range t.reasons {
		out[r] = n
	}
	return out
}

// Message is the partial-success error message for a sender: the counts by
// reason, largest first, e.g. "rejected 3 of the request's items: 2
// non_finite, 1 timestamp_out_of_range (see docs/TELEMETRY.md)". It is empty
// when nothing was rejected.
func (t *Tally) Message() string {
	reasons := t.Reasons()
	if len(reasons) == 0 {
		return ""
	}
	names := make([]string, 0, len(reasons))
	var total int64
	for r, n := range reasons {
		names = append(names, r)
		total += n
	}
	sort.Slice(names, func(i, j int) bool {
		if reasons[names[i]] != reasons[names[j]] {
			return reasons[names[i]] > reasons[names[j]]
		}
		return names[i] < names[j]
	})
	parts := make([]string, len(names))
	for i, r := range names {
		parts[i] = fmt.Sprintf("%d %s", reasons[r], r)
	}
	return fmt.Sprintf("rejected %d of the request's items: %s (reasons: Fleetwatch docs/TELEMETRY.md, \"What lands where\")",
		total, strings.Join(parts, ", "))
}
