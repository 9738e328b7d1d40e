package analyzer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/cost"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
	"github.com/fleetwatch/fleetwatch/storage"
)

// CostConfig turns on the daily cost detectors (issue 19): cost anomalies
// per model, team and job classified into the five causes, budget
// forecasts, and the idle / idle-held / zombie waste lists, all read from
// ClickHouse (analytics/cost.Store: held GPU-hours from gpu_samples_1m and
// gpu_series, traffic from inference_events, changes from
// model_deployments) and priced by the price book.
type CostConfig struct {
	Enabled bool `yaml:"enabled"`
	// PriceBook is the price book file (YAML: currency, prices).
	PriceBook string `yaml:"price_book"`
	// Lateness is how long after midnight UTC a day is judged (its
	// rollups and traffic complete).
	Lateness time.Duration    `yaml:"lateness"`
	Store    cost.StoreConfig `yaml:",inline"`
	// Anomaly: the Z and Δ% rules and the per-scope overrides.
	Anomaly cost.AnomalyConfig `yaml:"anomaly"`
	// Waste: the idle, idle-held and zombie thresholds; Waste.Enabled
	// off leaves only anomalies and budgets.
	Waste CostWasteConfig `yaml:"waste"`
	// Budgets are monthly budgets per scope (model/NAME, team/NAME,
	// job/NAME).
	Budgets []cost.BudgetConfig `yaml:"budgets"`
	// Rollup is the hourly pass that fills gpu_held_1h (cost_rollup),
	// what the daily detectors read at fleet scale.
	Rollup CostRollupConfig `yaml:"rollup_pass"`
}

// CostRollupConfig turns on the hourly cost rollup pass: each hour,
// Lateness after it ends, its held GPU-hours are rolled up into
// gpu_held_1h (analytics/cost.Store.RollUp). It runs only where the
// analyzer writes to the database it reads (not in a backtest, whose
// cost detectors read raw samples).
type CostRollupConfig struct {
	Enabled  bool          `yaml:"enabled"`
	Lateness time.Duration `yaml:"lateness"`
}

// CostWasteConfig turns on the waste tickets.
type CostWasteConfig struct {
	Enabled          bool `yaml:"enabled"`
	cost.WasteConfig `yaml:",inline"`
}

// NewDefaultCostConfig returns the detectors off (they need a price book),
// judging each day an hour after it ends with the documents' rules, and
// rolling each hour up 10 minutes after it ends.
func NewDefaultCostConfig() CostConfig {
	return CostConfig{Lateness: time.Hour, Store: cost.NewDefaultStoreConfig(), Anomaly: cost.NewDefaultAnomalyConfig(),
		Waste:  CostWasteConfig{Enabled: true, WasteConfig: cost.NewDefaultWasteConfig()},
		Rollup: CostRollupConfig{Enabled: true, Lateness: 10 * time.Minute}}
}

// Validate reports every problem at once.
func (c CostConfig) Validate() error {
	errs := []error{c.Store.Validate(), c.Anomaly.Validate()}
	if c.PriceBook == "" {
		errs = append(errs, errors.New("cost: price_book is required"))
	}
	if c.Lateness < 0 || c.Lateness >= 24*time.Hour {
		errs = append(errs, fmt.Errorf("cost: lateness %v is not in [0, 24h)", c.Lateness))
	}
	if c.Waste.Enabled {
		errs = append(errs, c.Waste.Validate())
	}
	if c.Rollup.Enabled && (c.Rollup.Lateness < 0 || c.Rollup.Lateness >= time.Hour) {
		errs = append(errs, fmt.Errorf("cost: rollup_pass lateness %v is not in [0, 1h)", c.Rollup.Lateness))
	}
	for _, b := range c.Budgets {
		if _, err := cost.ParseScope(b.Scope); err != nil {
			errs = append(errs, fmt.Errorf("cost: budget: %w", err))
		}
		if !(b.Monthly > 0) {
			errs = append(errs, fmt.Errorf("cost: budget %s: monthly %v is not positive", b.Scope, b.Monthly))
		}
	}
	return errors.Join(errs...)
}

// costInputs loads the price book and opens the store; with a catalog, a
// holder's missing team and cost centre come from its model's owner.
func costInputs(cfg CostConfig, c *storage.Client, cat *catalog.Catalog) (*cost.Store, *cost.PriceBook, error) {
	book, err := cost.LoadPriceBook(cfg.PriceBook)
	if err != nil {
		return nil, nil, fmt.Errorf("cost: %w", err)
	}
	store, err := cost.NewStore(c, cfg.Store)
	if err != nil {
		return nil, nil, err
	}
	if cat != nil {
		store.Owners = func(model string) (string, string, bool) {
			o, _, ok := cat.Owner(model)
			return o.Team, o.CostCenter, ok
		}
	}
	return store, book, nil
}

// costFactories are the enabled cost detectors, each whole: the anomaly
// and budget detector ("cost", reading c and writing cost_daily to out),
// the hourly rollup pass ("cost_rollup", only where out is c) and the
// waste tickets ("cost_waste").
func costFactories(cfg CostConfig, c, out *storage.Client, cat *catalog.Catalog) []factory {
	if !cfg.Enabled {
		return nil
	}
	fs := []factory{{name: "cost", by: whole, build: func(fleet.Shard) (fleet.Detector, error) {
		store, book, err := costInputs(cfg, c, cat)
		if err != nil {
			return nil, err
		}
		src, err := cost.NewStoreSource(store, book, cfg.Anomaly.BaselineDays, cfg.Budgets)
		if err != nil {
			return nil, err
		}
		det, err := cost.NewDetector(cfg.Anomaly, src, book)
		if err != nil {
			return nil, err
		}
		w, err := out.NewWriter(storage.NewDefaultWriterConfig())
		if err != nil {
			return nil, err
		}
		det.RecordTo(w)
		return costAlerting{det, cfg.Lateness}, nil
	}}}
	if cfg.Rollup.Enabled && out == c {
		fs = append(fs, factory{name: "cost_rollup", by: whole, build: func(fleet.Shard) (fleet.Detector, error) {
			store, _, err := costInputs(cfg, c, cat)
			if err != nil {
				return nil, err
			}
			return costAlerting{cost.NewRollupDetector(store), cfg.Rollup.Lateness}, nil
		}})
	}
	if cfg.Waste.Enabled {
		fs = append(fs, factory{name: "cost_waste", by: whole, build: func(fleet.Shard) (fleet.Detector, error) {
			store, book, err := costInputs(cfg, c, cat)
			if err != nil {
				return nil, err
			}
			w, err := cost.NewWasteDetector(cfg.Waste.WasteConfig, store, book)
			if err != nil {
				return nil, err
			}
			return costAlerting{w, cfg.Lateness}, nil
		}})
	}
	return fs
}

// costAlerting runs a daily cost detector for alerting: each day waits
// lateness after midnight, and the cost severities become alerting's — a
// ticket is a warning (an incident recorded for the owning team, below
// the severity that pages), a page is critical (the budget class opens at
// once: it is in alerting's open_at_once, see costOpenAtOnce).
type costAlerting struct {
	fleet.Detector
	lateness time.Duration
}

// Lateness implements fleet.LatenessOverride.
func (d costAlerting) Lateness() time.Duration { return d.lateness }

// Evaluate implements fleet.Detector.
func (d costAlerting) Evaluate(ctx context.Context, w fleet.Window) ([]fleet.Detection, error) {
	ds, err := d.Detector.Evaluate(ctx, w)
	for i := range ds {
		ds[i].Severity = costSeverity(ds[i].Severity)
	}
	return ds, err
}

// costSeverity maps the cost severity policy onto alerting's severities.
func costSeverity(s string) string {
	if s == cost.SeverityPage {
		return "critical"
	}
	return "warning"
}

// costOpenAtOnce is the cost class that pages at its first (daily)
// window instead of waiting for open_after windows: a budget forecast over.
const costOpenAtOnce = "budget_forecast_over"
