package cost

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fleetwatch/fleetwatch/storage/chsql"
)

// A Slurm or batch job has no deployment record: what configures it is
// how many GPUs it works on at once (a sweep's width, a training run's
// workers). The store derives a job's configuration changes from that: a
// day whose working width — GPUs at or above the idle SM activity, per
// hour the job held any — is WidthStep times the day before's or more, or
// as much less, is a change "working width 4 → 10 GPUs" of the job, which
// the anomaly classifier treats like a model's deployment change. GPUs the
// job holds idle do not widen it, so a leak (idle GPUs piling up) stays a
// leak.
const WidthStep = 1.25

// jobWidth is a job's working width on a day.
type jobWidth struct {
	day   time.Time
	job   string
	width float64
}

// widthChanges returns the changes in widths (sorted by job, then day):
// consecutive days whose widths differ by WidthStep or more.
func widthChanges(ws []jobWidth) []Change {
	var out []Change
	for i := 1; i < len(ws); i++ {
		prev, cur := ws[i-1], ws[i]
		if prev.job != cur.job || !cur.day.Equal(prev.day.AddDate(0, 0, 1)) || prev.width <= 0 || cur.width <= 0 {
			continue
		}
		if r := cur.width / prev.width; r >= WidthStep || r <= 1/WidthStep {
			out = append(out, Change{Day: cur.day, Job: cur.job, What: fmt.Sprintf("working width %.3g → %.3g GPUs", prev.width, cur.width)})
		}
	}
	return out
}

// jobWidthsOf computes the widths from held hours (Read's path).
func jobWidthsOf(hours []HeldHour) []Change {
	type jd struct {
		job string
		day int64
	}
	working, held := map[jd]float64{}, map[jd]map[int64]bool{}
	for _, h := range hours {
		if h.Job == "" || h.System {
			continue
		}
		k := jd{h.Job, h.Hour.Truncate(24 * time.Hour).Unix()}
		if held[k] == nil {
			held[k] = map[int64]bool{}
		}
		held[k][h.Hour.Unix()] = true
		if h.SMActive >= idleSM {
			share := 1.0
			if h.Fraction > 0 {
				share = h.Fraction
			}
			working[k] += share
		}
	}
	ws := make([]jobWidth, 0, len(held))
	for k, hs := range held {
		ws = append(ws, jobWidth{day: time.Unix(k.day, 0).UTC(), job: k.job, width: working[k] / float64(len(hs))})
	}
	slices.SortFunc(ws, func(a, b jobWidth) int { return cmp.Or(strings.Compare(a.job, b.job), a.day.Compare(b.day)) })
	return widthChanges(ws)
}

// JobWidthSQL returns the query of every job's working width per day in
// [from, to): from the hourly rollup (roll) or from the raw samples.
func JobWidthSQL(database string, roll bool, from, to time.Time, system []string) string {
	if roll {
		return fmt.Sprintf(`SELECT toDateTime(toStartOfDay(hour)) AS d, toString(job) AS jb, sum(gpu_hours - idle_gpu_hours) / uniqExact(hour) AS w
FROM %s
WHERE kind = %s AND job != '' AND %s
GROUP BY d, jb
ORDER BY jb, d`, chsql.Ident(database, "gpu_held_1h"), chsql.String(KindHeld), chsql.Between("hour", from, to))
	}
	notSystem := "1"
	if len(system) > 0 {
		notSystem = "ns NOT IN " + chsql.In(system)
	}
	return fmt.Sprintf(`SELECT toDateTime(toStartOfDay(h)) AS d, jb,
    sum(if(if(sm_n > 0, sm_s / sm_n, if(u_n > 0, u_s / u_n / 100, 0)) >= %v, 1, 0)) / uniqExact(h) AS w
FROM
(
%s
) AS q
WHERE jb != '' AND %s
GROUP BY d, jb
ORDER BY jb, d`, idleSM, heldRowsSQL(database, from, to), notSystem)
}

// jobChanges reads the jobs' working widths and returns their changes.
func (s *Store) jobChanges(ctx context.Context, roll bool, from, to time.Time) ([]Change, error) {
	var res chsql.Result
	d, jb, w := res.Time("d"), res.Str("jb"), res.F64("w")
	var ws []jobWidth
	err := res.ForRows(ctx, s.client, JobWidthSQL(s.client.Config().Database, roll, from, to, s.cfg.SystemNamespaces), func(r int) {
		ws = append(ws, jobWidth{day: time.Unix(d.Seconds(r), 0).UTC(), job: jb.At(r), width: w.At(r)})
	})
	if err != nil {
		return nil, fmt.Errorf("job widths: %w", err)
	}
	return widthChanges(ws), nil
}
