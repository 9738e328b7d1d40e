package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetwatch/fleetwatch/storage/chsql"
)

// counts are the demo's running totals, read from ClickHouse: what the
// live part ingested (the cost history written before it is not counted).
type counts struct {
	samples, events, inferences, detections uint64
}

func (d *Demo) counts(ctx context.Context) (counts, error) {
	var c counts
	db := d.client.Config().Database
	since := chsql.Time(d.start)
	err := d.client.QueryScalar(ctx, fmt.Sprintf(`SELECT
		(SELECT count() FROM %[1]s.gpu_samples WHERE ts >= %[2]s),
		(SELECT count() FROM %[1]s.gpu_events),
		(SELECT count() FROM %[1]s.inference_events WHERE ts >= %[2]s),
		(SELECT count() FROM %[1]s.detections)`, db, since), &c.samples, &c.events, &c.inferences, &c.detections)
	return c, err
}

// watch prints a progress line every cfg.Progress and the incidents as they
// open and resolve, until ctx ends.
func (d *Demo) watch(ctx context.Context) {
	tick := time.NewTicker(d.cfg.Progress)
	defer tick.Stop()
	began := time.Now()
	var last counts
	lastAt := began
	inc := newIncidentWatch(d)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			// Its own deadline: the run's may fall mid-query.
			qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			c, err := d.counts(qctx)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					d.log.Warn("progress query", "err", err)
				}
				continue
			}
			secs := now.Sub(lastAt).Seconds()
			phase := "scenario"
			if el := now.Sub(began); d.scripted > 0 && el > d.scripted {
				phase = "grace: evaluating the last windows"
			}
			d.say("[%s] %s | samples %d (%.0f/s) | inference events %d (%.0f/s) | GPU events %d | detections %d | open incidents %d",
				now.Sub(began).Round(time.Second), phase, c.samples, float64(c.samples-last.samples)/secs,
				c.inferences, float64(c.inferences-last.inferences)/secs, c.events, c.detections, inc.open())
			last, lastAt = c, now
			qctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			inc.poll(qctx)
			if d.costs != nil {
				d.costs.poll(qctx)
			}
			cancel()
		}
	}
}
