package chexporter

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
)

// Sample kinds, carried through the queue in the _kind column of
// gpu_samples rows and removed before the insert.
const (
	kindGauge      uint8 = iota // value only; delta 0
	kindCumulative              // a running total: delta is computed at write time
	kindDelta                   // the delta column already holds the increase
)

// Queue-only columns of gpu_samples rows.
const (
	colKind  = "_kind"
	colStart = "_start"
)

// staleState is how long a series' remembered latest point is trusted
// without a look at ClickHouse: after that, another collector may have
// written the series (an agent that failed over and came back).
const staleState = 2 * time.Minute

// recentPoints is how many of a series' latest point times are remembered
// to recognise a repeat without asking ClickHouse.
const recentPoints = 8

// pointState is what the drain loop knows of a series: its latest stored
// point, for counter increases and to recognise points written before.
type pointState struct {
	hasLast bool
	last    float64 // value of the latest point
	lastTS  int64   // its time, ns
	start   int64   // the counter's start time (ns) as sent, 0 if unknown
	recent  [recentPoints]int64
	next    int
	seen    time.Time
	// gen and batchLast are resolveSamples' scratch: the latest point
	// time of the series so far in the batch of pass gen.
	gen       uint64
	batchLast int64
}

// isRecent reports whether a point at ts was handled in this run.
func (p *pointState) isRecent(ts int64) bool {
	for _, r := range p.recent {
		if r == ts && ts != 0 {
			return true
		}
	}
	return false
}

func (p *pointState) remember(ts int64) {
	p.recent[p.next] = ts
	p.next = (p.next + 1) % recentPoints
}

// advance records a new latest point and returns its increase. A value
// below the last is a reset: the whole new value is the increase. A new
// start time with a value that did not go down is not taken for a reset:
// senders that stamp counters with their own start (a restarted agent, a
// Prometheus receiver after a collector restart) would otherwise count the
// counter's whole history again; the price is that a counter that really
// restarted and overtook its old value between two points is counted from
// its old value. The first point of a series never stored before counts
// none: what the counter held before is not known to have happened in this
// interval (GPU counters run since boot).
func (p *pointState) advance(kind uint8, value float64, start, ts int64, given float64) float64 {
	var d float64
	switch kind {
	case kindDelta:
		d = given
	case kindCumulative:
		switch {
		case !p.hasLast:
		case value < p.last:
			d = value // reset
		default:
			d = value - p.last
		}
	}
	p.hasLast, p.last, p.lastTS, p.start = true, value, ts, start
	p.remember(ts)
	return d
}

// pointStates is the drain loop's state, by series. Only the drain loop
// touches it.
type pointStates struct {
	m     map[uint64]*pointState
	swept time.Time
	gen   uint64 // resolveSamples' passes
	// ps and keep are resolveSamples' per-row scratch, reused.
	ps   []*pointState
	keep []bool
}

func newPointStates() *pointStates { return &pointStates{m: map[uint64]*pointState{}} }

// sweep forgets series not seen for a day, at most once an hour.
func (ps *pointStates) sweep(now time.Time) {
	if now.Sub(ps.swept) < time.Hour {
		return
	}
	ps.swept = now
	for id, p := range ps.m {
		if now.Sub(p.seen) > 24*time.Hour {
			delete(ps.m, id)
		}
	}
}

// samples gives typed access to a queued gpu_samples block.
type samples struct {
	ts     []int64
	tsNS   []uint32
	metric []string
	series []uint64
	value  []float64
	delta  []float64
	kind   []uint8
	start  []int64
}

func samplesOf(b storage.Block) (samples, error) {
	var s samples
	targets := map[string]any{"ts": &s.ts, "ts_ns": &s.tsNS, "metric": &s.metric, "series": &s.series,
		"value": &s.value, "delta": &s.delta, colKind: &s.kind, colStart: &s.start}
	for i, name := range b.Columns {
		dst, ok := targets[name]
		if !ok {
			continue
		}
		v := reflect.ValueOf(dst).Elem()
		src := reflect.ValueOf(b.Data[i])
		if src.Type() != v.Type() {
			return s, fmt.Errorf("gpu_samples column %s is %s, want %s", name, src.Type(), v.Type())
		}
		v.Set(src)
		delete(targets, name)
	}
	if len(targets) > 0 {
		return s, fmt.Errorf("queued gpu_samples rows lack %d column(s)", len(targets))
	}
	return s, nil
}

func (s *samples) at(i int) int64 { return s.ts[i]*1e9 + int64(s.tsNS[i]) }

// pointKey names one stored point.
type pointKey struct {
	series uint64
	ts     int64
}

// resolveSamples turns a batch of queued gpu_samples rows into the rows to
// insert: each cumulative counter's increase computed against the series'
// previous point (looked up in ClickHouse for a series not seen in this
// run), and points already stored left out. It changes no state unless it
// succeeds, so a failed lookup can simply be retried.
func (e *chExporter) resolveSamples(ctx context.Context, b storage.Block) (storage.Block, error) {
	s, err := samplesOf(b)
	if err != nil {
		return b, err
	}
	n := len(s.ts)
	now := time.Now()
	// Each row's series state is looked up in the run's map once (it holds
	// a series per GPU metric of the fleet, so every lookup is a cache
	// miss): ps[i] is the state row i is judged against.
	ps := slices.Grow(e.points.ps[:0], n)[:n]
	e.points.ps = ps
	// Series this run has not seen, or not lately: their latest stored
	// point; recheck lists their rows.
	unknown := map[uint64]string{}
	var recheck []int
	var minTS int64 = math.MaxInt64
	for i := 0; i < n; i++ {
		p, ok := e.points.m[s.series[i]]
		if !ok || now.Sub(p.seen) > staleState {
			unknown[s.series[i]] = s.metric[i]
			recheck = append(recheck, i)
		}
		ps[i] = p
		minTS = min(minTS, s.ts[i])
	}
	found := map[uint64]*pointState{}
	if len(unknown) > 0 {
		if found, err = e.lastStored(ctx, unknown, time.Unix(minTS, 0).Add(-e.cfg.MaxAge)); err != nil {
			return b, err
		}
	}
	// Where this run's memory of a series is older than what ClickHouse
	// has (another collector wrote it meanwhile), ClickHouse's is taken.
	for id, f := range found {
		if p, ok := e.points.m[id]; ok && (!p.hasLast || f.lastTS > p.lastTS) {
			delete(e.points.m, id)
		} else if ok {
			delete(found, id)
		}
	}
	// The rows of series looked up: the run's state, else the stored
	// point, else a new state (entered into the run's map only on commit).
	fresh := map[uint64]*pointState{}
	for _, i := range recheck {
		id := s.series[i]
		if p, ok := e.points.m[id]; ok {
			ps[i] = p
		} else if p = found[id]; p != nil {
			ps[i] = p
		} else {
			if p = fresh[id]; p == nil {
				p = &pointState{}
				fresh[id] = p
			}
			ps[i] = p
		}
	}
	// Points at or before their series' latest that this run has not seen:
	// ask ClickHouse whether they are stored. A series' latest so far in
	// this batch is kept on its state, tagged with this pass's generation.
	e.points.gen++
	gen := e.points.gen
	var candidates []int
	for i := 0; i < n; i++ {
		t, p := s.at(i), ps[i]
		var last int64
		switch {
		case p.gen == gen:
			last = p.batchLast
		case p.hasLast:
			last = p.lastTS
		default:
			last = math.MinInt64
		}
		p.gen = gen
		if t <= last {
			if !p.isRecent(t) {
				candidates = append(candidates, i)
			}
		} else {
			last = t
		}
		p.batchLast = last
	}
	var stored map[pointKey]bool
	if len(candidates) > 0 {
		if stored, err = e.storedPoints(ctx, &s, candidates); err != nil {
			return b, err
		}
	}
	// Commit: compute increases and drop repeats.
	keep := slices.Grow(e.points.keep[:0], n)[:n]
	clear(keep)
	e.points.keep = keep
	var kept map[pointKey]bool // points kept in this batch, when repeats are possible
	if len(candidates) > 0 {
		kept = map[pointKey]bool{}
	}
	dup := 0
	for i := 0; i < n; i++ {
		id, t := s.series[i], s.at(i)
		p := ps[i]
		p.seen = now
		k := pointKey{id, t}
		if p.hasLast && t <= p.lastTS {
			if p.isRecent(t) || stored[k] || kept[k] {
				dup++
				continue
			}
			// A late point never stored: its increase was counted by the
			// later point already, unless the sender gave the increase.
			if s.kind[i] != kindDelta {
				s.delta[i] = 0
			}
			p.remember(t)
		} else {
			s.delta[i] = p.advance(s.kind[i], s.value[i], s.start[i], t, s.delta[i])
		}
		keep[i] = true
		if kept != nil {
			kept[k] = true
		}
	}
	for _, i := range recheck {
		e.points.m[s.series[i]] = ps[i]
	}
	e.points.sweep(now)
	if dup > 0 {
		e.tel.ExporterDuplicateRows.Add(ctx, int64(dup), metric.WithAttributes(attribute.String("table", "gpu_samples")))
	}
	// The queue-only columns go no further.
	out := storage.Block{Table: b.Table}
	for i, c := range b.Columns {
		if c != colKind && c != colStart {
			out.Columns = append(out.Columns, c)
			out.Data = append(out.Data, b.Data[i])
		}
	}
	return e.sorter.sortSamples(keepRows(out, keep)), nil
}

// dropStored removes from b (gpu_samples rows ready to insert) the points
// ClickHouse already has: after an insert whose outcome is unknown.
func (e *chExporter) dropStored(ctx context.Context, b storage.Block) (storage.Block, error) {
	s, err := samplesOf(withQueueColumns(b))
	if err != nil {
		return b, err
	}
	all := make([]int, len(s.ts))
	for i := range all {
		all[i] = i
	}
	stored, err := e.storedPoints(ctx, &s, all)
	if err != nil {
		return b, err
	}
	keep := make([]bool, len(s.ts))
	dup := 0
	for i := range keep {
		keep[i] = !stored[pointKey{s.series[i], s.at(i)}]
		if !keep[i] {
			dup++
		}
	}
	if dup > 0 {
		e.tel.ExporterDuplicateRows.Add(ctx, int64(dup), metric.WithAttributes(attribute.String("table", "gpu_samples")))
	}
	return keepRows(b, keep), nil
}

// withQueueColumns adds empty-valued queue-only columns so samplesOf can
// read a block that lost them.
func withQueueColumns(b storage.Block) storage.Block {
	n := rowsOf(b)
	out := storage.Block{Table: b.Table, Columns: append(slices.Clone(b.Columns), colKind, colStart),
		Data: append(slices.Clone(b.Data), make([]uint8, n), make([]int64, n))}
	return out
}

// keepRows returns b with only the rows where keep is true.
func keepRows(b storage.Block, keep []bool) storage.Block {
	all := true
	for _, k := range keep {
		all = all && k
	}
	if all {
		return b
	}
	out := storage.Block{Table: b.Table, Columns: b.Columns, Data: make([]any, len(b.Data))}
	for c, d := range b.Data {
		v := reflect.ValueOf(d)
		w := reflect.MakeSlice(v.Type(), 0, v.Len())
		for i := 0; i < v.Len(); i++ {
			if keep[i] {
				w = reflect.Append(w, v.Index(i))
			}
		}
		out.Data[c] = w.Interface()
	}
	return out
}

// nsExpr is a gpu_samples point's time in nanoseconds.
const nsExpr = "toUInt64(ts) * 1000000000 + ts_ns"

// lookupChunk is how many series one lookup names: each id takes up to 21
// bytes of SQL, and ClickHouse refuses queries over max_query_size (256 KiB
// by default), so a collector restarted under a large fleet (10⁵ series in
// its first batch) splits its lookups.
const lookupChunk = 4096

// forChunks calls f with the series (metric by id) in chunks of at most
// lookupChunk, each as an id list and its metrics, in id order.
func forChunks(series map[uint64]string, f func(ids string, metrics []string) error) error {
	all := make([]uint64, 0, len(series))
	for id := range series {
		all = append(all, id)
	}
	slices.Sort(all)
	for len(all) > 0 {
		n := min(len(all), lookupChunk)
		var b strings.Builder
		seen := map[string]bool{}
		var metrics []string
		for i, id := range all[:n] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatUint(id, 10))
			if m := series[id]; !seen[m] {
				seen[m] = true
				metrics = append(metrics, m)
			}
		}
		slices.Sort(metrics)
		if err := f(b.String(), metrics); err != nil {
			return err
		}
		all = all[n:]
	}
	return nil
}

// lastStored returns the latest stored point of each series (metric by
// series id) since from.
func (e *chExporter) lastStored(ctx context.Context, series map[uint64]string, from time.Time) (map[uint64]*pointState, error) {
	out := map[uint64]*pointState{}
	err := forChunks(series, func(ids string, metrics []string) error {
		q := fmt.Sprintf(`SELECT series, max(%[1]s) AS t, argMax(value, %[1]s) AS v
FROM %[2]s
WHERE metric IN %[3]s AND series IN (%[4]s) AND ts >= %[5]s
GROUP BY series`, nsExpr, e.table("gpu_samples"), chsql.In(metrics), ids, chsql.Time(from))
		var res chsql.Result
		idCol, tCol, vCol := res.Int("series"), res.Int("t"), res.F64("v")
		return res.ForRows(ctx, e.client, q, func(r int) {
			t := tCol.At(r)
			p := &pointState{hasLast: true, last: vCol.At(r), lastTS: t}
			p.remember(t)
			out[uint64(idCol.At(r))] = p
		})
	})
	return out, err
}

// storedPoints returns which of the rows of s at idx ClickHouse has.
func (e *chExporter) storedPoints(ctx context.Context, s *samples, idx []int) (map[pointKey]bool, error) {
	series := map[uint64]string{}
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	want := make(map[pointKey]bool, len(idx))
	for _, i := range idx {
		series[s.series[i]] = s.metric[i]
		lo, hi = min(lo, s.ts[i]), max(hi, s.ts[i])
		want[pointKey{s.series[i], s.at(i)}] = true
	}
	stored := map[pointKey]bool{}
	err := forChunks(series, func(ids string, metrics []string) error {
		q := fmt.Sprintf(`SELECT series, %[1]s AS t FROM %[2]s
WHERE metric IN %[3]s AND series IN (%[4]s) AND %[5]s`, nsExpr, e.table("gpu_samples"), chsql.In(metrics), ids,
			chsql.Between("ts", time.Unix(lo, 0), time.Unix(hi+1, 0)))
		var res chsql.Result
		idCol, tCol := res.Int("series"), res.Int("t")
		return res.ForRows(ctx, e.client, q, func(r int) {
			if k := (pointKey{uint64(idCol.At(r)), tCol.At(r)}); want[k] {
				stored[k] = true
			}
		})
	})
	return stored, err
}

func (e *chExporter) table(name string) string {
	return chsql.Ident(e.client.Config().Database, name)
}
