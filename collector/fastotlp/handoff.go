package fastotlp

import (
	"context"
	"sync/atomic"
)

// A Handoff carries a decoded request from the receiver to the exporter
// past the Collector's pipeline, which only moves pdata: the receiver puts
// it in the context of an empty pdata request, and the one exporter that
// writes the columns takes it. The receiver checks afterwards that it was
// taken; a pipeline that dropped the context (a processor that hands data
// on later) leaves it untaken, and the receiver sends the request again
// through pdata.
type Handoff struct {
	Columns *Columns
	taken   atomic.Bool
}

type handoffKey struct{}

// NewContext returns ctx carrying h.
func NewContext(ctx context.Context, h *Handoff) context.Context {
	return context.WithValue(ctx, handoffKey{}, h)
}

// FromContext returns the Handoff ctx carries, or nil.
func FromContext(ctx context.Context) *Handoff {
	h, _ := ctx.Value(handoffKey{}).(*Handoff)
	return h
}

// Take claims the columns; only the first caller gets true.
func (h *Handoff) Take() bool { return h.taken.CompareAndSwap(false, true) }

// Taken reports whether a consumer took the columns.
func (h *Handoff) Taken() bool { return h.taken.Load() }
