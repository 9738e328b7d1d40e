package scaling

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
	"github.com/fleetwatch/fleetwatch/storage"
)

// Config tunes the Detector.
type Config struct {
	Name string `yaml:"name"`
	// Interval is how often the signals are recomputed (the engine's
	// window).
	Interval time.Duration `yaml:"interval"`
	// Window is how far back rates, latencies and the trend are measured;
	// a whole number of minutes.
	Window time.Duration `yaml:"window"`
}

// NewDefaultConfig returns signals every 15 s over the last 5 minutes.
func NewDefaultConfig() Config {
	return Config{Name: "scaling", Interval: 15 * time.Second, Window: 5 * time.Minute}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("scaling detector name is empty"))
	}
	if c.Interval <= 0 || c.Interval%time.Second != 0 {
		errs = append(errs, fmt.Errorf("scaling interval %v: want a positive whole number of seconds", c.Interval))
	}
	if c.Window < time.Minute || c.Window%time.Minute != 0 {
		errs = append(errs, fmt.Errorf("scaling window %v: want a positive whole number of minutes", c.Window))
	}
	return errors.Join(errs...)
}

// Model is one model's latest signals and recommendation.
type Model struct {
	Signals
	Recommendation
	Policy Policy
	// At is the end of the window they were measured over.
	At time.Time
}

// Detector is a fleet.Detector that raises nothing: each window it reads
// the Signals of the catalog's models with a scaling policy and keeps
// their recommendations for Latest (the analyzer's /metrics).
type Detector struct {
	cfg      Config
	reader   *Reader
	policies map[string]Policy
	models   []string

	mu     sync.Mutex
	latest map[string]Model
}

// NewDetector returns the detector for cat's models with a scaling
// section.
func NewDetector(cfg Config, c *storage.Client, cat *catalog.Catalog) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Detector{cfg: cfg, reader: NewReader(c), policies: map[string]Policy{}, latest: map[string]Model{}}
	if cat != nil {
		for _, name := range cat.Models() {
			if p, ok := PolicyOf(cat.Model(name)); ok {
				d.policies[name] = p
			}
		}
	}
	d.models = slices.Sorted(maps.Keys(d.policies))
	return d, nil
}

// Name implements fleet.Detector.
func (d *Detector) Name() string { return d.cfg.Name }

// Interval implements fleet.Detector.
func (d *Detector) Interval() time.Duration { return d.cfg.Interval }

// Evaluate implements fleet.Detector: it recomputes every model's
// recommendation as of w.End. A model without requests in the window gets
// its minimum.
func (d *Detector) Evaluate(ctx context.Context, w fleet.Window) ([]fleet.Detection, error) {
	sig, err := d.reader.Read(ctx, d.models, w.End, d.cfg.Window)
	if err != nil {
		return nil, err
	}
	next := make(map[string]Model, len(d.models))
	for _, name := range d.models {
		s, ok := sig[name]
		if !ok {
			s = idle()
		}
		p := d.policies[name]
		next[name] = Model{Signals: s, Recommendation: Recommend(s, p), Policy: p, At: w.End}
	}
	d.mu.Lock()
	d.latest = next
	d.mu.Unlock()
	return nil, nil
}

// Latest returns the last evaluated window's models; do not modify it.
func (d *Detector) Latest() map[string]Model {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.latest
}
