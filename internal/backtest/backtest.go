// Package backtest replays a stored time range through the analyzer: the
// detectors and alerting of internal/analyzer, assembled as the live
// analyzer assembles them, evaluate the windows of [From, To) back to back
// on a virtual clock that jumps from one due window to the next (no
// wall-clock waits), reading telemetry from one database and writing
// detections, the window ledger, SPC state and incidents to another.
// Notifications are recorded, never delivered. No window ending after To
// is evaluated: the run stops at To, so the end of the stored data pages
// "not reporting" only where To lies after it, as the live analyzer would.
//
// `fleetctl backtest` is the command around Run; with the simulator's
// ground truth, internal/scoring scores its result.
package backtest

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/internal/analyzer"
	"github.com/fleetwatch/fleetwatch/internal/scoring"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
)

// Config is one backtest.
type Config struct {
	// Analyzer is the analyzer's configuration (its detectors' settings).
	// Run turns alerting on and the web listener off,
	// and sets the engine's start and end.
	Analyzer analyzer.Config
	// From and To bound the replayed windows: [From, To).
	From, To time.Time
}

// Result is what a backtest produced.
type Result struct {
	From, To time.Time
	// DataEnd is the time of the newest stored GPU sample or inference
	// event in [From, To) (zero when there is none); windows after it
	// see no data.
	DataEnd time.Time
	// Windows counts each detector's evaluated and skipped windows.
	Windows engine.Stats
	// LastWindowEnd is the end of the last window any detector evaluated
	// (never after To).
	LastWindowEnd time.Time
	Detections    []fleet.Detection
	// Incidents are the incidents at the end of the run that paged, by key.
	Incidents []incident.Incident
	// Pages are the trigger notifications, in order; Notifications counts
	// every notification (triggers, acknowledgements, resolves).
	Pages         []scoring.Page
	Notifications int
	Elapsed       time.Duration
}

// Run replays cfg's range from source into target (a database of its own,
// created with the schema if missing, and holding no earlier backtest).
func Run(ctx context.Context, cfg Config, source, target *storage.Client, log *slog.Logger) (*Result, error) {
	began := time.Now()
	from, to := cfg.From.UTC(), cfg.To.UTC()
	if from.IsZero() || !to.After(from) {
		return nil, fmt.Errorf("backtest: want from < to, have [%v, %v)", from, to)
	}
	if s, t := source.Config(), target.Config(); s.Database == t.Database && fmt.Sprint(s.Addrs) == fmt.Sprint(t.Addrs) {
		return nil, fmt.Errorf("backtest: the target database %s is the source; pick another", t.Database)
	}
	if err := prepareTarget(ctx, target); err != nil {
		return nil, err
	}
	acfg := cfg.Analyzer
	acfg.Listen, acfg.Migrate = "", false
	acfg.Alerting.Enabled = true
	acfg.Engine.StartAt, acfg.Engine.EndAt = from, to
	acfg.ClickHouse = source.Config()

	clock := engine.NewManualClock(from)
	rec := &scoring.Recorder{}
	col := &collected{}
	a, err := analyzer.New(ctx, acfg, source, log, analyzer.WithClock(clock), analyzer.WithResults(target),
		analyzer.WithNotifier(rec), analyzer.WithSink(col))
	if err != nil {
		return nil, fmt.Errorf("backtest: %w", err)
	}
	if err := replay(ctx, a.Engine, clock, log); err != nil {
		return nil, err
	}
	res := &Result{From: from, To: to, Windows: a.Engine.Stats(), Detections: col.detections, Notifications: rec.Count()}
	for _, st := range res.Windows {
		if st.LastWindowEnd.After(res.LastWindowEnd) {
			res.LastWindowEnd = st.LastWindowEnd
		}
	}
	res.Pages, res.Incidents = rec.Pages(a.Incidents())
	if res.DataEnd, err = dataEnd(ctx, source, from, to); err != nil {
		return nil, err
	}
	res.Elapsed = time.Since(began)
	return res, nil
}

// replay steps the engine, moving the clock to each next due window, until
// every detector has evaluated its windows up to the end.
func replay(ctx context.Context, e *engine.Engine, clock *engine.ManualClock, log *slog.Logger) error {
	for {
		if _, err := e.Step(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// A failing window is retried after the retry backoff of
			// virtual time and skipped after max_attempts, as live.
			log.Warn("backtest: window failed", "err", err)
		}
		at, ok := e.NextDue()
		if !ok {
			return nil
		}
		if at.After(clock.Now()) {
			clock.Set(at)
		}
	}
}

// prepareTarget applies the schema to target and checks it holds no
// earlier run (its ledger would make this one resume instead).
func prepareTarget(ctx context.Context, target *storage.Client) error {
	if _, err := target.Migrate(ctx); err != nil {
		return fmt.Errorf("backtest: schema of the target database: %w", err)
	}
	var n uint64
	if err := target.QueryScalar(ctx, "SELECT count() FROM "+chsql.Ident(target.Config().Database, "analyzer_windows"), &n); err != nil {
		return fmt.Errorf("backtest: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("backtest: the target database %s already holds %d evaluated windows; drop it or pick another", target.Config().Database, n)
	}
	return nil
}

// dataEnd is the newest stored GPU sample or inference event in [from, to).
func dataEnd(ctx context.Context, c *storage.Client, from, to time.Time) (time.Time, error) {
	db := c.Config().Database
	var gpu, inf time.Time
	q := fmt.Sprintf("SELECT (SELECT max(ts) FROM %s WHERE %s), (SELECT max(ts) FROM %s WHERE %s)",
		chsql.Ident(db, "gpu_samples"), chsql.Between("ts", from, to), chsql.Ident(db, "inference_events"), chsql.Between("ts", from, to))
	if err := c.QueryScalar(ctx, q, &gpu, &inf); err != nil {
		return time.Time{}, fmt.Errorf("backtest: end of the stored data: %w", err)
	}
	end := gpu
	if inf.After(end) {
		end = inf
	}
	if end.Unix() <= 0 {
		return time.Time{}, nil
	}
	return end.UTC(), nil
}

// collected keeps every detection the engine hands its sinks.
type collected struct {
	mu         sync.Mutex
	detections []fleet.Detection
}

func (c *collected) Consume(_ context.Context, ev fleet.Evaluation) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.detections = append(c.detections, ev.Detections...)
	return nil
}
