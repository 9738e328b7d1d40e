// Package upstream alerts a model's downstream consumers when it changes
// (issue 20, item 4): each model_deployments row of a catalog model (a
// deploy, canary, promote or rollback) raises one detection per model
// that depends on it, about the consumer and routed to the consumer's
// owner: warning for a direct consumer, info for one further down the
// dependency graph. The consumer's owner learns that its inputs changed
// before its own drift and accuracy charts show it. A change keeps raising
// its detections (same key) in every window for Notice after it, so that
// alerting's lifecycle (open_after consecutive windows) can open the
// consumer's incident, and resolve it once the notice is over; the
// detector keeps no state.
package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
)

// Class is the detections' class; alerting keeps one incident per
// consumer for it (correlate.Config.PerModelFamilies).
const Class = "upstream_update"

// Severities by distance in the dependency graph.
const (
	SeverityDirect   = "warning"
	SeverityIndirect = "info"
)

// Config tunes the Detector.
type Config struct {
	Name string `yaml:"name"`
	// Interval is the window: how often deployment rows are read.
	Interval time.Duration `yaml:"interval"`
	// Notice is how long after a change its consumers' detections are
	// raised.
	Notice time.Duration `yaml:"notice"`
}

// NewDefaultConfig returns a look every 30 s, each change announced for
// 30 minutes.
func NewDefaultConfig() Config {
	return Config{Name: "upstream_updates", Interval: 30 * time.Second, Notice: 30 * time.Minute}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("upstream detector name is empty"))
	}
	if c.Interval <= 0 || c.Interval%time.Second != 0 {
		errs = append(errs, fmt.Errorf("upstream interval %v: want a positive whole number of seconds", c.Interval))
	}
	if c.Notice < c.Interval {
		errs = append(errs, fmt.Errorf("upstream notice %v: want at least the interval %v", c.Notice, c.Interval))
	}
	return errors.Join(errs...)
}

// Detector is the fleet.Detector.
type Detector struct {
	cfg    Config
	client *storage.Client
	cat    *catalog.Catalog
}

// NewDetector returns the detector over cat's dependency graph.
func NewDetector(cfg Config, c *storage.Client, cat *catalog.Catalog) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cat == nil {
		return nil, errors.New("upstream detector: needs the catalog")
	}
	return &Detector{cfg: cfg, client: c, cat: cat}, nil
}

// Name implements fleet.Detector.
func (d *Detector) Name() string { return d.cfg.Name }

// Interval implements fleet.Detector.
func (d *Detector) Interval() time.Duration { return d.cfg.Interval }

// Change is one model_deployments row.
type Change struct {
	Time                                       time.Time
	Model, Version, PreviousVersion, Kind, Env string
	Actor                                      string
}

// ChangesSQL returns the rows of the given models in [start, end).
func ChangesSQL(db string, models []string, start, end time.Time) string {
	return fmt.Sprintf(`SELECT ts, toString(model) AS m, toString(model_version) AS v, toString(previous_version) AS pv,
    toString(change) AS ch, toString(environment) AS env, actor
FROM %s WHERE model IN %s AND %s ORDER BY ts, m, v`,
		chsql.Ident(db, "model_deployments"), chsql.In(models), chsql.Between("ts", start, end))
}

// Evaluate implements fleet.Detector: the changes in [w.End-Notice,
// w.End).
func (d *Detector) Evaluate(ctx context.Context, w fleet.Window) ([]fleet.Detection, error) {
	var ups []string
	for _, u := range d.cat.Upstreams() {
		if d.cat.Model(u) != nil {
			ups = append(ups, u)
		}
	}
	if len(ups) == 0 {
		return nil, nil
	}
	var res chsql.Result
	ts, m, v, pv, ch, env, actor := res.Time("ts"), res.Str("m"), res.Str("v"), res.Str("pv"), res.Str("ch"), res.Str("env"), res.Str("actor")
	var out []fleet.Detection
	err := res.ForRows(ctx, d.client, ChangesSQL(d.client.Config().Database, ups, w.End.Add(-d.cfg.Notice), w.End), func(r int) {
		c := Change{Time: time.Unix(ts.Seconds(r), 0).UTC(), Model: m.At(r), Version: v.At(r), PreviousVersion: pv.At(r), Kind: ch.At(r), Env: env.At(r), Actor: actor.At(r)}
		out = append(out, d.Detections(w, c)...)
	})
	if err != nil {
		return nil, fmt.Errorf("upstream changes: %w", err)
	}
	return out, nil
}

// Detections returns change c's detections: one per consumer of its
// model.
func (d *Detector) Detections(w fleet.Window, c Change) []fleet.Detection {
	cons := d.cat.Consumers(c.Model)
	out := make([]fleet.Detection, 0, len(cons))
	upOwner, _, _ := d.cat.Owner(c.Model)
	for _, consumer := range cons {
		direct := d.direct(c.Model, consumer)
		sev, rel := SeverityIndirect, "indirectly (through other models)"
		if direct {
			sev, rel = SeverityDirect, "directly"
		}
		ev, _ := json.Marshal(map[string]any{"upstream": c.Model, "version": c.Version, "previous_version": c.PreviousVersion,
			"change": c.Kind, "environment": c.Env, "actor": c.Actor, "at": c.Time, "direct": direct, "upstream_team": upOwner.Team})
		out = append(out, fleet.Detection{
			Time: w.End, WindowStart: w.Start, Detector: d.cfg.Name, Class: Class, Severity: sev,
			EntityType: "model", Entity: consumer, Model: consumer,
			Key:     fmt.Sprintf("upstream/%s/%s@%d/%s", c.Model, c.Version, c.Time.Unix(), consumer),
			PValue:  math.NaN(),
			Summary: fmt.Sprintf("upstream model %s changed (%s %s → %s); %s depends on it %s", c.Model, c.Kind, orNone(c.PreviousVersion), c.Version, consumer, rel),
			Action: fmt.Sprintf("watch %s's drift, latency and accuracy against the change at %s; %s's owner (%s) can roll it back",
				consumer, c.Time.Format(time.RFC3339), c.Model, orNone(upOwner.Team)),
			Evidence: string(ev),
		})
	}
	return out
}

// direct reports whether consumer depends on up without a model between.
func (d *Detector) direct(up, consumer string) bool {
	if m := d.cat.Model(consumer); m != nil && slices.Contains(m.Upstream, up) {
		return true
	}
	if m := d.cat.Model(up); m != nil && slices.Contains(m.Downstream, consumer) {
		return true
	}
	return false
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
