package freshness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
)

// Config configures the freshness SLO detector.
type Config struct {
	Enabled  bool          `yaml:"enabled"`
	Name     string        `yaml:"name"`
	Interval time.Duration `yaml:"interval"`
	// SLO is the default freshness SLO of each feature type (catalog
	// feature types); a catalog feature's freshness_slo overrides it.
	SLO map[string]time.Duration `yaml:"slo"`
	// Lookback is how far back a restarted detector looks for the last
	// update of features that stopped arriving; at least the longest SLO.
	Lookback time.Duration `yaml:"lookback"`
	// Severity of a breach (default error: a ticket-grade incident paged
	// to the pipeline's owner once, however many models consume it).
	Severity string `yaml:"severity"`
}

// NewDefaultConfig returns the detector every minute with the SLOs of
// table 33's feature types, each about one missed update cycle past the
// cadence the type implies:
//
//   - static (days, batch): 48h, a daily batch that missed one run;
//   - slowly_changing (hours, batch): 6h, an hourly batch that missed
//     several runs;
//   - session (minutes, streaming): 15m;
//   - realtime (seconds, streaming or on demand): 60s, the detector's
//     window (a shorter override is judged at each window's end).
func NewDefaultConfig() Config {
	return Config{Enabled: true, Name: "feature_freshness", Interval: time.Minute, Lookback: 72 * time.Hour, Severity: "error",
		SLO: map[string]time.Duration{
			catalog.FeatureStatic:         48 * time.Hour,
			catalog.FeatureSlowlyChanging: 6 * time.Hour,
			catalog.FeatureSession:        15 * time.Minute,
			catalog.FeatureRealtime:       time.Minute,
		}}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("freshness: name is empty"))
	}
	if c.Interval < time.Second || c.Interval%time.Second != 0 {
		errs = append(errs, fmt.Errorf("freshness: interval %v must be a whole number of seconds", c.Interval))
	}
	longest := time.Duration(0)
	for _, t := range catalog.FeatureTypes {
		slo, ok := c.SLO[t]
		if !ok || slo <= 0 {
			errs = append(errs, fmt.Errorf("freshness: slo.%s %v must be positive", t, slo))
		}
		longest = max(longest, slo)
	}
	for t := range c.SLO {
		if !slices.Contains(catalog.FeatureTypes, t) {
			errs = append(errs, fmt.Errorf("freshness: slo.%s: unknown feature type, want %s", t, strings.Join(catalog.FeatureTypes, ", ")))
		}
	}
	if c.Lookback < longest {
		errs = append(errs, fmt.Errorf("freshness: lookback %v is shorter than the longest SLO %v", c.Lookback, longest))
	}
	if c.Severity != "critical" && c.Severity != "error" && c.Severity != "warning" {
		errs = append(errs, fmt.Errorf("freshness: severity %q, want critical, error or warning", c.Severity))
	}
	return errors.Join(errs...)
}

// SLOFor is a catalog feature's freshness SLO: its override, else its
// type's default.
func (c Config) SLOFor(f catalog.Feature) time.Duration {
	if f.FreshnessSLO > 0 {
		return f.FreshnessSLO
	}
	return c.SLO[f.Type]
}

// tracked is what the detector knows of one pipeline feature.
type tracked struct {
	pipeline string
	feature  catalog.Feature
	newest   Newest // Model unused; the newest over every consuming model
	models   map[string]bool
}

// Detector judges the freshness of the catalog's pipeline features. It
// keeps, per (pipeline, feature), the newest update and arrival seen, so
// staleness keeps growing across windows without events; a restart
// recovers them from the last Lookback of events.
type Detector struct {
	cfg    Config
	reader *Reader
	cat    *catalog.Catalog
	state  map[[2]string]*tracked
}

// NewDetector returns the detector over the catalog's feature pipelines,
// reading through r (shared with the SPC staleness chart).
func NewDetector(cfg Config, r *Reader, cat *catalog.Catalog) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cat == nil {
		return nil, errors.New("freshness: the detector needs a catalog")
	}
	return &Detector{cfg: cfg, reader: r, cat: cat, state: map[[2]string]*tracked{}}, nil
}

// Name implements fleet.Detector.
func (d *Detector) Name() string { return d.cfg.Name }

// Interval implements fleet.Detector.
func (d *Detector) Interval() time.Duration { return d.cfg.Interval }

// Restore implements fleet.Restorer: it reloads the newest update and
// arrival of each feature over the Lookback before the last window's end.
func (d *Detector) Restore(ctx context.Context, last fleet.Window) error {
	d.state = map[[2]string]*tracked{}
	if last.IsZero() {
		return nil
	}
	ns, err := ReadNewest(ctx, d.reader.client, last.End.Add(-d.cfg.Lookback), last.End)
	if err != nil {
		return err
	}
	d.merge(ns)
	return nil
}

// merge folds a span's newest times into the state, for the features a
// catalog pipeline of the model serves.
func (d *Detector) merge(ns []Newest) {
	for _, n := range ns {
		p, f, ok := d.cat.FeaturePipeline(n.Model, n.Feature)
		if !ok {
			continue
		}
		k := [2]string{p, n.Feature}
		t := d.state[k]
		if t == nil {
			t = &tracked{pipeline: p, feature: f, models: map[string]bool{}}
			d.state[k] = t
		}
		t.newest.Update = later(t.newest.Update, n.Update)
		t.newest.Arrival = later(t.newest.Arrival, n.Arrival)
		t.models[n.Model] = true
	}
}

// Evaluate implements fleet.Detector: one detection per pipeline feature
// whose staleness at the window's end exceeds its SLO.
func (d *Detector) Evaluate(ctx context.Context, w fleet.Window) ([]fleet.Detection, error) {
	ns, err := d.reader.Window(ctx, w)
	if err != nil {
		return nil, err
	}
	d.merge(ns)
	var out []fleet.Detection
	for _, k := range slices.SortedFunc(maps.Keys(d.state), func(a, b [2]string) int {
		return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1])
	}) {
		t := d.state[k]
		stale, measure := t.newest.Staleness(w.End)
		if slo := d.cfg.SLOFor(t.feature); stale > slo {
			out = append(out, d.detection(w, t, stale, slo, measure))
		}
	}
	return out, nil
}

func (d *Detector) detection(w fleet.Window, t *tracked, stale, slo time.Duration, measure string) fleet.Detection {
	last := t.newest.Update
	what := "last updated"
	if measure == MeasureArrival {
		last, what = t.newest.Arrival, "last seen in an event (no update times reported: arrival age)"
	}
	models := slices.Sorted(maps.Keys(t.models))
	ev, _ := json.Marshal(map[string]any{"pipeline": t.pipeline, "feature": t.feature.Name, "type": t.feature.Type,
		"staleness_s": stale.Seconds(), "slo_s": slo.Seconds(), "measure": measure, "last": last.UTC().Format(time.RFC3339), "models": models})
	return fleet.Detection{
		Time: w.End, WindowStart: w.Start, Detector: d.cfg.Name, Class: "freshness", Severity: d.cfg.Severity,
		EntityType: "pipeline", Entity: t.pipeline, Key: "freshness/" + t.pipeline + "/" + t.feature.Name, Feature: t.feature.Name,
		Value: stale.Seconds(), Threshold: slo.Seconds(), PValue: math.NaN(), Action: "investigate",
		Summary: fmt.Sprintf("%s feature %s (%s) %s %v ago, freshness SLO %v", t.pipeline, t.feature.Name, t.feature.Type,
			what, stale.Round(time.Second), slo),
		Evidence: string(ev),
	}
}
