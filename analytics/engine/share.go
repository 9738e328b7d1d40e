package engine

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// Share returns d evaluated as one share (unit) of a detector's work, named
// fleet.ShareName(d.Name(), unit): its windows have their own rows in the
// ledger, and it resumes after the later of its own last window and the
// whole detector's (an analyzer that evaluated everything before the fleet
// was shared). d must already be limited to its share (a shard in its
// configuration); its detections keep d's own names.
func Share(d fleet.Detector, unit string) fleet.Detector {
	return &share{d: d, name: fleet.ShareName(d.Name(), unit)}
}

type share struct {
	d    fleet.Detector
	name string
}

func (s *share) Name() string            { return s.name }
func (s *share) Interval() time.Duration { return s.d.Interval() }

func (s *share) Evaluate(ctx context.Context, w fleet.Window) ([]fleet.Detection, error) {
	return s.d.Evaluate(ctx, w)
}

// Restore implements fleet.Restorer for a detector that is one.
func (s *share) Restore(ctx context.Context, last fleet.Window) error {
	if r, ok := s.d.(fleet.Restorer); ok {
		return r.Restore(ctx, last)
	}
	return nil
}

// Lateness implements fleet.LatenessOverride for a detector that has one.
func (s *share) Lateness() time.Duration {
	if lo, ok := s.d.(fleet.LatenessOverride); ok {
		return lo.Lateness()
	}
	return 0
}

// Primer is a sink that can take over the state another process built
// from earlier evaluations: Prime hands it each source's last evaluation it
// consumed, before the first Consume (alerting's active detections).
type Primer interface {
	Prime(ctx context.Context, evs []fleet.Evaluation) error
}

// feedSep joins a feed's consumer and a share in the ledger rows where the
// feed records the windows it consumed: "alerting>fleet_health@dc0of4".
const feedSep = ">"

// FeedConfig tunes a Feed.
type FeedConfig struct {
	// Consumer names the feed's own rows in the ledger (alerting).
	Consumer string
	// Lookback bounds what is read (default 24h): a share with no consumed
	// window yet starts at its first window ending within it, only shares
	// whose last consumed window ends within it are primed, and a share
	// that stopped being evaluated longer ago is no longer waited for.
	Lookback time.Duration
	// Poll is how often the ledger is read for new windows (default 1s).
	Poll time.Duration
}

// Feed hands a sink, in order, the evaluations that analyzers sharing the
// fleet recorded: for every share (a ledger row whose detector name holds
// fleet.ShareSep) each window evaluated ok, after the last one the feed
// consumed, with the detections that window raised (read back from the
// detections table by their source). It records each consumed window in
// the ledger under its own name, so that whoever runs the feed next — the
// next alerting owner — resumes there: a window is handed over again only
// when a feed stopped between consuming it and recording it, as the engine
// hands a window to its sinks again after a crash.
type Feed struct {
	cfg    FeedConfig
	client *storage.Client
	writer *storage.Writer
	sink   fleet.Sink
	clock  Clock
	log    *slog.Logger
	// cursor is each share's last consumed window end.
	cursor   map[string]time.Time
	consumed atomic.Uint64
}

// NewFeed returns a feed over client's ledger and detections; clock (nil:
// the system clock) places the lookback.
func NewFeed(cfg FeedConfig, client *storage.Client, sink fleet.Sink, clock Clock, log *slog.Logger) (*Feed, error) {
	if cfg.Consumer == "" || strings.Contains(cfg.Consumer, feedSep) || strings.Contains(cfg.Consumer, fleet.ShareSep) {
		return nil, fmt.Errorf("feed: bad consumer name %q", cfg.Consumer)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Lookback <= 0 {
		cfg.Lookback = 24 * time.Hour
	}
	if clock == nil {
		clock = SystemClock{}
	}
	w, err := client.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Feed{cfg: cfg, client: client, writer: w, sink: sink, clock: clock, log: log}, nil
}

// Consumed returns how many evaluations the feed handed to its sink.
func (f *Feed) Consumed() uint64 { return f.consumed.Load() }

// since is the start of the lookback now.
func (f *Feed) since() time.Time { return f.clock.Now().Add(-f.cfg.Lookback) }

// Run reads the consumer's cursors, primes the sink (a Primer) with each
// share's last consumed evaluation, then hands it new evaluations until ctx
// ends. A failing read or sink is retried at the next poll.
func (f *Feed) Run(ctx context.Context) error {
	for {
		err := f.start(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		f.log.Warn("feed: cannot read where the last consumer stopped; retrying", "consumer", f.cfg.Consumer, "err", err)
		if !sleep(ctx, f.cfg.Poll) {
			return nil
		}
	}
	for {
		if _, err := f.Step(ctx); err != nil && ctx.Err() == nil {
			f.log.Warn("feed: evaluations not consumed yet; retrying", "consumer", f.cfg.Consumer, "err", err)
		}
		if !sleep(ctx, f.cfg.Poll) {
			return nil
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// FeedCursorsSQL returns, per share, the end of the last window consumer
// consumed.
func FeedCursorsSQL(database, consumer string) string {
	return fmt.Sprintf("SELECT substring(detector, %d) AS share, max(window_end) AS consumed FROM %s WHERE detector LIKE %s GROUP BY detector",
		len(consumer+feedSep)+1, chsql.Ident(database, schema.AnalyzerWindows.Name), chsql.String(consumer+feedSep+"%"))
}

// start reads the cursors and primes the sink.
func (f *Feed) start(ctx context.Context) error {
	cursor := map[string]time.Time{}
	var res chsql.Result
	shareCol, consumed := res.Str("share"), res.Time("consumed")
	err := res.ForRows(ctx, f.client, FeedCursorsSQL(f.client.Config().Database, f.cfg.Consumer), func(r int) {
		cursor[shareCol.At(r)] = time.Unix(consumed.Seconds(r), 0).UTC()
	})
	if err != nil {
		return fmt.Errorf("feed: read cursors: %w", err)
	}
	f.cursor = cursor
	p, ok := f.sink.(Primer)
	if !ok {
		return nil
	}
	var last []windowRow
	since := f.since()
	for _, s := range slices.Sorted(maps.Keys(cursor)) {
		if cursor[s].After(since) {
			last = append(last, windowRow{source: s, end: cursor[s]})
		}
	}
	evs, err := f.evaluations(ctx, last, true)
	if err != nil {
		return err
	}
	if err := p.Prime(ctx, evs); err != nil {
		return fmt.Errorf("feed: prime %s: %w", f.cfg.Consumer, err)
	}
	f.log.Info("feed: resuming", "consumer", f.cfg.Consumer, "shares", len(cursor), "primed", len(evs))
	return nil
}

// windowRow is one share's window in the ledger.
type windowRow struct {
	source     string
	start, end time.Time
}

// NewWindowsSQL lists the windows of shares evaluated ok and ending after
// since, in the order a feed consumes them, once each. Of the shares in
// known only the windows ending after after are listed (the feed's
// cursors are at or after it); of the others, all.
func NewWindowsSQL(database string, since time.Time, known []string, after time.Time) string {
	cond := ""
	if len(known) > 0 {
		cond = fmt.Sprintf(" AND (window_end > %s OR detector NOT IN %s)", chsql.Time(after), chsql.In(known))
	}
	return fmt.Sprintf(`SELECT detector, window_end, any(window_start) AS start FROM %s
WHERE status = 'ok' AND window_end > %s AND detector LIKE %s AND detector NOT LIKE %s%s
GROUP BY detector, window_end ORDER BY window_end, detector`,
		chsql.Ident(database, schema.AnalyzerWindows.Name), chsql.Time(since), chsql.String("%"+fleet.ShareSep+"%"),
		chsql.String("%"+feedSep+"%"), cond)
}

// Step hands the sink every evaluation recorded since the last step, in
// window order, and records them; it returns how many it handed over.
func (f *Feed) Step(ctx context.Context) (int, error) {
	if f.cursor == nil {
		if err := f.start(ctx); err != nil {
			return 0, err
		}
	}
	// Shares with a cursor are read from the oldest cursor within the
	// lookback (a share that stopped longer ago holds nobody back), new
	// ones from the start of the lookback.
	since := f.since()
	var known []string
	after := f.clock.Now()
	for s, t := range f.cursor {
		if t.After(since) {
			known = append(known, s)
			after = minTime(after, t)
		}
	}
	slices.Sort(known)
	var rows []windowRow
	var res chsql.Result
	det, end, start := res.Str("detector"), res.Time("window_end"), res.Time("start")
	err := res.ForRows(ctx, f.client, NewWindowsSQL(f.client.Config().Database, since, known, after), func(r int) {
		w := windowRow{source: det.At(r), start: time.Unix(start.Seconds(r), 0).UTC(), end: time.Unix(end.Seconds(r), 0).UTC()}
		if c, ok := f.cursor[w.source]; !ok || w.end.After(c) {
			rows = append(rows, w)
		}
	})
	if err != nil {
		return 0, fmt.Errorf("feed: read the ledger: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	evs, err := f.evaluations(ctx, rows, false)
	if err != nil {
		return 0, err
	}
	var done storage.AnalyzerWindowBlock
	defer func() {
		if done.Len() > 0 {
			// What was consumed is recorded even when a later one failed.
			if err := f.writer.Write(context.WithoutCancel(ctx), done.Block()); err != nil {
				f.log.Warn("feed: record consumed windows (they will be consumed again)", "consumer", f.cfg.Consumer, "err", err)
			}
		}
	}()
	now := time.Now().UTC()
	for i, ev := range evs {
		if ctx.Err() != nil {
			return i, ctx.Err()
		}
		if err := f.sink.Consume(ctx, ev); err != nil {
			return i, fmt.Errorf("feed: %s window %v: %w", ev.Detector, ev.Window, err)
		}
		f.cursor[ev.Detector] = ev.Window.End
		f.consumed.Add(1)
		done.WindowEnd = append(done.WindowEnd, ev.Window.End.Unix())
		done.WindowStart = append(done.WindowStart, ev.Window.Start.Unix())
		done.Detector = append(done.Detector, f.cfg.Consumer+feedSep+ev.Detector)
		done.Status = append(done.Status, statusOK)
		done.Detections = append(done.Detections, uint32(len(ev.Detections)))
		done.Attempts = append(done.Attempts, 1)
		done.DurationMs = append(done.DurationMs, 0)
		done.EvaluatedAt = append(done.EvaluatedAt, now.Unix())
		done.Error = append(done.Error, "")
	}
	return len(evs), nil
}

// DetectionsSQL reads the detections of some shares' windows ending in
// [from, to], with their source.
func DetectionsSQL(database string, sources []string, from, to time.Time) string {
	return fmt.Sprintf(`SELECT * FROM %s WHERE source IN %s AND ts >= %s AND ts <= %s ORDER BY source, ts, key`,
		chsql.Ident(database, schema.Detections.Name), chsql.In(sources), chsql.Time(from), chsql.Time(to))
}

// evaluations reads the detections of rows and returns their evaluations
// in rows' order; with ledger, the windows' starts are read from the ledger
// first (rows carry only their ends).
func (f *Feed) evaluations(ctx context.Context, rows []windowRow, ledger bool) ([]fleet.Evaluation, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	db := f.client.Config().Database
	sources := map[string]bool{}
	from, to := rows[0].end, rows[0].end
	for _, r := range rows {
		sources[r.source] = true
		from, to = minTime(from, r.end), maxTime(to, r.end)
	}
	names := slices.Sorted(maps.Keys(sources))
	if ledger {
		starts := map[[2]string]time.Time{}
		var res chsql.Result
		det, end, start := res.Str("detector"), res.Time("window_end"), res.Time("window_start")
		q := fmt.Sprintf("SELECT detector, window_end, window_start FROM %s WHERE detector IN %s AND window_end >= %s AND window_end <= %s",
			chsql.Ident(db, schema.AnalyzerWindows.Name), chsql.In(names), chsql.Time(from), chsql.Time(to))
		if err := res.ForRows(ctx, f.client, q, func(r int) {
			starts[[2]string{det.At(r), fmt.Sprint(end.Seconds(r))}] = time.Unix(start.Seconds(r), 0).UTC()
		}); err != nil {
			return nil, fmt.Errorf("feed: read the ledger: %w", err)
		}
		for i := range rows {
			rows[i].start = starts[[2]string{rows[i].source, fmt.Sprint(rows[i].end.Unix())}]
		}
	}
	type at struct {
		source string
		end    int64
	}
	found := map[at][]fleet.Detection{}
	seen := map[at]map[string]bool{}
	var res chsql.Result
	read := readDetections(&res)
	err := res.ForRows(ctx, f.client, DetectionsSQL(db, names, from, to), func(r int) {
		d, src := read(r)
		k := at{src, d.Time.Unix()}
		if seen[k] == nil {
			seen[k] = map[string]bool{}
		}
		if seen[k][d.Key] {
			return // a window written twice, not merged yet
		}
		seen[k][d.Key] = true
		found[k] = append(found[k], d)
	})
	if err != nil {
		return nil, fmt.Errorf("feed: read detections: %w", err)
	}
	evs := make([]fleet.Evaluation, 0, len(rows))
	for _, r := range rows {
		evs = append(evs, fleet.Evaluation{Detector: r.source, Window: fleet.Window{Start: r.start, End: r.end},
			Detections: found[at{r.source, r.end.Unix()}]})
	}
	return evs, nil
}

// readDetections declares the detections table's columns on res and
// returns a reader of row r.
func readDetections(res *chsql.Result) func(r int) (fleet.Detection, string) {
	ts, ws := res.Time("ts"), res.Time("window_start")
	str := func(name string) *chsql.StrCol { return res.Str(name) }
	detector, class, severity, etype, entity, key := str("detector"), str("class"), str("severity"), str("entity_type"), str("entity"), str("key")
	dc, row, rack, node, cluster := str("datacenter"), str("row"), str("rack"), str("node"), str("cluster")
	gpu, gpuModel, job, model, version, feature := str("gpu_uuid"), str("gpu_model"), str("job"), str("model"), str("model_version"), str("feature")
	value, threshold, pval := res.F64("value"), res.F64("threshold"), res.F64("p_value")
	action, summary, evidence, source := str("action"), str("summary"), str("evidence"), str("source")
	return func(r int) (fleet.Detection, string) {
		return fleet.Detection{
			Time: time.Unix(ts.Seconds(r), 0).UTC(), WindowStart: time.Unix(ws.Seconds(r), 0).UTC(),
			Detector: detector.At(r), Class: class.At(r), Severity: severity.At(r),
			EntityType: etype.At(r), Entity: entity.At(r), Key: key.At(r),
			Topology: fleet.Topology{Datacenter: dc.At(r), Row: row.At(r), Rack: rack.At(r), Node: node.At(r), Cluster: cluster.At(r)},
			GPUUUID:  gpu.At(r), GPUModel: gpuModel.At(r), Job: job.At(r), Model: model.At(r), ModelVersion: version.At(r), Feature: feature.At(r),
			Value: value.At(r), Threshold: threshold.At(r), PValue: pval.At(r),
			Action: action.At(r), Summary: summary.At(r), Evidence: evidence.At(r),
		}, source.At(r)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
