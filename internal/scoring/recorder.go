package scoring

import (
	"context"
	"sync"

	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/alerting/route"
)

// Recorder is alerting's notifier in a backtest or a scored run: it keeps
// the notifications and delivers nothing.
type Recorder struct {
	mu  sync.Mutex
	all []route.Notification
}

func (r *Recorder) Notify(_ context.Context, ns []route.Notification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range ns {
		r.all = append(r.all, route.Notification{Action: n.Action, Incident: n.Incident.Clone()})
	}
	return nil
}

func (r *Recorder) Enqueue(ctx context.Context, ns []route.Notification) error {
	return r.Notify(ctx, ns)
}

func (r *Recorder) Refresh(context.Context, []incident.Incident) error { return nil }

// Pages returns the triggers of unsilenced incidents as pages, and the
// incidents that paged in their latest state (final, the manager's
// incidents at the end, else their last notification).
func (r *Recorder) Pages(final []incident.Incident) ([]Page, []incident.Incident) {
	r.mu.Lock()
	defer r.mu.Unlock()
	latest := map[string]incident.Incident{}
	var keys []string
	var pages []Page
	for _, n := range r.all {
		if _, ok := latest[n.Incident.Key]; !ok {
			keys = append(keys, n.Incident.Key)
		}
		latest[n.Incident.Key] = n.Incident
		if n.Action == incident.ActionTrigger && !n.Incident.Silenced {
			at := n.Incident.UpdatedAt
			if at.IsZero() {
				at = n.Incident.OpenedAt
			}
			pages = append(pages, Page{Time: at, Incident: n.Incident})
		}
	}
	for _, inc := range final {
		if _, ok := latest[inc.Key]; ok {
			latest[inc.Key] = inc
		}
	}
	incs := make([]incident.Incident, 0, len(keys))
	for _, k := range keys {
		incs = append(incs, latest[k])
	}
	return pages, incs
}

// Count is the number of notifications recorded.
func (r *Recorder) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.all)
}
