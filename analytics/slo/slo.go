// Package slo raises multi-window, multi-burn-rate alerts on the latency
// and availability SLOs the model catalog declares, computed from
// inference_events in ClickHouse (Google SRE workbook, "Alerting on SLOs"):
// page when the error budget burns 14.4× too fast over 1 h and 5 min, or
// 6× over 6 h and 30 min; open a ticket at 1× over 3 days and 6 h. The
// long window makes an alert significant, the short one makes it stop soon
// after the problem does.
package slo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
)

// Rule is one burn-rate condition: the burn rate over both windows is at
// least Factor.
type Rule struct {
	Long   time.Duration `yaml:"long"`
	Short  time.Duration `yaml:"short"`
	Factor float64       `yaml:"factor"`
	// Severity of the detection: critical pages, error opens a ticket.
	Severity string `yaml:"severity"`
}

// Config configures the SLO detector.
type Config struct {
	Enabled  bool          `yaml:"enabled"`
	Name     string        `yaml:"name"`
	Interval time.Duration `yaml:"interval"`
	// Rules, strongest first; the first that holds is reported.
	Rules []Rule `yaml:"rules"`
	// MinEvents: fewer events (weighted by 1/sample_rate) in a short
	// window and the rule is not judged (default 10).
	MinEvents float64 `yaml:"min_events"`
}

// NewDefaultConfig returns the SRE workbook's three rules, evaluated
// every minute.
func NewDefaultConfig() Config {
	return Config{Enabled: true, Name: "slo_burn", Interval: time.Minute, MinEvents: 10, Rules: []Rule{
		{Long: time.Hour, Short: 5 * time.Minute, Factor: 14.4, Severity: "critical"},
		{Long: 6 * time.Hour, Short: 30 * time.Minute, Factor: 6, Severity: "critical"},
		{Long: 72 * time.Hour, Short: 6 * time.Hour, Factor: 1, Severity: "error"},
	}}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("slo: name is empty"))
	}
	if c.Interval < time.Second || c.Interval%time.Second != 0 {
		errs = append(errs, fmt.Errorf("slo: interval %v must be a whole number of seconds", c.Interval))
	}
	if len(c.Rules) == 0 {
		errs = append(errs, errors.New("slo: no rules"))
	}
	for i, r := range c.Rules {
		if r.Short <= 0 || r.Long <= r.Short || r.Factor <= 0 || r.Long%time.Second != 0 || r.Short%time.Second != 0 {
			errs = append(errs, fmt.Errorf("slo: rule %d: want 0 < short < long (whole seconds), factor > 0", i+1))
		}
		if r.Severity != "critical" && r.Severity != "error" && r.Severity != "warning" {
			errs = append(errs, fmt.Errorf("slo: rule %d: severity %q, want critical, error or warning", i+1, r.Severity))
		}
	}
	if c.MinEvents < 0 {
		errs = append(errs, errors.New("slo: min_events is negative"))
	}
	return errors.Join(errs...)
}

// windows lists the distinct window lengths of the rules, sorted.
func (c Config) windows() []time.Duration {
	var ws []time.Duration
	for _, r := range c.Rules {
		for _, w := range []time.Duration{r.Long, r.Short} {
			if !slices.Contains(ws, w) {
				ws = append(ws, w)
			}
		}
	}
	slices.Sort(ws)
	return ws
}

// Counts are the weighted total and bad events per window length.
type Counts map[time.Duration]struct{ Total, Bad float64 }

// BurnRate is the bad share over the window divided by the error budget
// (1 − objective); NaN without events.
func BurnRate(total, bad, objective float64) float64 {
	if total <= 0 {
		return math.NaN()
	}
	return bad / total / (1 - objective)
}

// Decision is which rule fired and every window's burn rate.
type Decision struct {
	Rule  int // index into Config.Rules; -1 when none fired
	Burns map[time.Duration]float64
}

// Assess applies the rules to one SLO's counts.
func (c Config) Assess(objective float64, counts Counts) Decision {
	d := Decision{Rule: -1, Burns: map[time.Duration]float64{}}
	for w, n := range counts {
		d.Burns[w] = BurnRate(n.Total, n.Bad, objective)
	}
	for i, r := range c.Rules {
		if counts[r.Short].Total < c.MinEvents {
			continue
		}
		if d.Burns[r.Long] >= r.Factor && d.Burns[r.Short] >= r.Factor {
			d.Rule = i
			return d
		}
	}
	return d
}

// Detector is the SLO engine detector: every interval, one query counts
// each catalog model's events, errors and slow events over every window.
type Detector struct {
	cfg    Config
	client *storage.Client
	cat    *catalog.Catalog
	models []string
	// latencyMs is each model's latency threshold (+inf without a
	// latency SLO); windows are the rules' window lengths, sorted.
	latencyMs []float64
	windows   []time.Duration
}

// NewDetector returns the detector for the catalog's models with SLOs.
func NewDetector(cfg Config, c *storage.Client, cat *catalog.Catalog) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Detector{cfg: cfg, client: c, cat: cat, windows: cfg.windows()}
	for _, m := range cat.Models() {
		slos := cat.Model(m).SLOs
		if len(slos) == 0 {
			continue
		}
		lat := math.Inf(1)
		for _, s := range slos {
			if s.Kind == catalog.SLOLatency {
				lat = s.LatencyMs
			}
		}
		d.models = append(d.models, m)
		d.latencyMs = append(d.latencyMs, lat)
	}
	return d, nil
}

// Name implements fleet.Detector.
func (d *Detector) Name() string { return d.cfg.Name }

// Interval implements fleet.Detector.
func (d *Detector) Interval() time.Duration { return d.cfg.Interval }

// thresholds is the per-model latency threshold as a SQL expression
// (+inf for models without a latency SLO).
func thresholds(models []string, ms []float64) string {
	return fmt.Sprintf("transform(model, %s, %s, inf)", chsql.Strings(models), chsql.Floats(ms))
}

// CountsSQL returns the query counting, per model, weighted events, errors
// and events slower than the model's latency threshold in each window
// ending at end. Columns: model, then per window i total_i, errors_i,
// slow_i.
func CountsSQL(database string, models []string, latencyMs []float64, windows []time.Duration, end time.Time) string {
	var cols []string
	for _, w := range windows {
		cond := "ts >= " + chsql.Time(end.Add(-w))
		cols = append(cols,
			fmt.Sprintf("sumIf(1 / sample_rate, %s) AS total_%d", cond, len(cols)/3),
			fmt.Sprintf("sumIf(1 / sample_rate, %s AND status != 'ok') AS errors_%d", cond, len(cols)/3),
			fmt.Sprintf("sumIf(1 / sample_rate, %s AND slow) AS slow_%d", cond, len(cols)/3))
	}
	return fmt.Sprintf("WITH latency_ms > %s AS slow SELECT toString(model) AS m, %s FROM %s WHERE %s AND model IN %s GROUP BY model ORDER BY model",
		thresholds(models, latencyMs), strings.Join(cols, ", "), chsql.Ident(database, "inference_events"), chsql.Between("ts", end.Add(-windows[len(windows)-1]), end), chsql.In(models))
}

// Evaluate implements fleet.Detector.
func (d *Detector) Evaluate(ctx context.Context, w fleet.Window) ([]fleet.Detection, error) {
	if len(d.models) == 0 {
		return nil, nil
	}
	ws := d.windows
	var res chsql.Result
	model := res.Str("m")
	total, errs, slow := make([]*chsql.F64Col, len(ws)), make([]*chsql.F64Col, len(ws)), make([]*chsql.F64Col, len(ws))
	for i := range ws {
		total[i], errs[i], slow[i] = res.F64(fmt.Sprint("total_", i)), res.F64(fmt.Sprint("errors_", i)), res.F64(fmt.Sprint("slow_", i))
	}
	var out []fleet.Detection
	err := res.ForRows(ctx, d.client, CountsSQL(d.client.Config().Database, d.models, d.latencyMs, ws, w.End), func(r int) {
		m := model.At(r)
		for _, s := range d.cat.Model(m).SLOs {
			counts := Counts{}
			for i, win := range ws {
				bad := errs[i]
				if s.Kind == catalog.SLOLatency {
					bad = slow[i]
				}
				counts[win] = struct{ Total, Bad float64 }{total[i].At(r), bad.At(r)}
			}
			if dec := d.cfg.Assess(s.Objective, counts); dec.Rule >= 0 {
				out = append(out, d.detection(w, m, s, dec))
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("slo counts: %w", err)
	}
	return out, nil
}

func (d *Detector) detection(w fleet.Window, model string, s catalog.SLO, dec Decision) fleet.Detection {
	r := d.cfg.Rules[dec.Rule]
	class := "latency"
	if s.Kind == catalog.SLOAvailability {
		class = "error_rate"
	}
	burns := map[string]float64{}
	for win, b := range dec.Burns {
		if !math.IsNaN(b) {
			burns[win.String()] = b
		}
	}
	ev, _ := json.Marshal(map[string]any{"slo": s.Name, "kind": s.Kind, "objective": s.Objective, "latency_ms": s.LatencyMs,
		"rule": map[string]any{"long": r.Long.String(), "short": r.Short.String(), "factor": r.Factor}, "burn_rates": burns})
	return fleet.Detection{
		Time: w.End, WindowStart: w.Start, Detector: d.cfg.Name, Class: class, Severity: r.Severity,
		EntityType: "model", Entity: model, Key: "slo/" + model + "/" + s.Name, Model: model,
		Value: dec.Burns[r.Short], Threshold: r.Factor, PValue: math.NaN(), Action: "investigate",
		Summary: fmt.Sprintf("%s SLO %s (%.4g%%) burning %.1f× over %v and %.1f× over %v (threshold %.1f×)",
			model, s.Name, 100*s.Objective, dec.Burns[r.Long], r.Long, dec.Burns[r.Short], r.Short, r.Factor),
		Evidence: string(ev),
	}
}
