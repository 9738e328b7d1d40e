package demo

import (
	"context"
	"fmt"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"strings"
	"time"
)

// summary prints what was ingested, what was detected, and the incidents
// against the injected ground truth, then the SQL to explore.
func (d *Demo) summary(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := d.counts(ctx)
	if err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	d.say("\n== summary ==")
	d.say("ingested: %d GPU samples, %d GPU events, %d inference events", c.samples, c.events, c.inferences)
	db := d.client.Config().Database
	d.say("detections: %d", c.detections)
	var res chsql.Result
	det, class, keys, n := res.Str("detector"), res.Str("class"), res.Int("keys"), res.Int("n")
	err = res.ForRows(ctx, d.client, fmt.Sprintf(`SELECT toString(detector) AS detector, toString(class) AS class, uniqExact(key) AS keys,
		count() AS n FROM %s GROUP BY detector, class ORDER BY detector, class`, chsql.Ident(db, "detections")), func(r int) {
		d.say("  %-14s %-22s %4d distinct, %5d windows", det.At(r), class.At(r), keys.At(r), n.At(r))
	})
	if err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	// Events binned at ingest: per minute and model version, the largest
	// tally of any of its profiles.
	var binned uint64
	if err := d.client.QueryScalar(ctx, fmt.Sprintf(`SELECT sum(n) FROM (SELECT max(c) AS n FROM (
		SELECT ts, model, model_version, feature, sum(count) AS c FROM %s WHERE bin = -1 GROUP BY ts, model, model_version, feature
	) GROUP BY ts, model, model_version)`, chsql.Ident(db, "drift_bins")), &binned); err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	d.say("drift: %d of %d inference events binned into their profiles at ingest (drift_bins; the others belong to versions that had no profile yet when they arrived)", binned, c.inferences)

	if d.rollouts != nil {
		d.say("\ncanaries (judged by the analyzer's canary judge; rolled back through its webhook, promoted on its verdict):")
		lines := d.rollouts.summary()
		if len(lines) == 0 {
			d.say("  none in the scenario")
		}
		for _, l := range lines {
			d.say("  %s", l)
		}
	}
	if d.costs != nil {
		d.say("\ncost findings of the judged day (oncall_cost_findings; the analyzer's daily cost detectors on the backfilled history):")
		fs, err := d.costFindings(ctx)
		if err != nil {
			return fmt.Errorf("summary: %w", err)
		}
		if len(fs) == 0 {
			d.say("  none yet (the cost detectors judge the day once the analyzer has run a few seconds)")
		}
		for _, f := range fs {
			d.say("  %s", f.line())
		}
	}

	incs, err := d.incidents(ctx)
	if err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	matched, extra := score(d.truth, incs)
	extra, canaried := explainedByCanaries(d.sc.Deployments, d.sc.Models, extra)
	d.say("\nincidents vs the injected faults:")
	ok := 0
	for _, t := range d.truth {
		rs := matched[t.Fault]
		verdict := "MISSED"
		switch {
		case len(rs) == 1:
			verdict = "reported once at the " + wantLevel(t) + " level"
			ok++
		case len(rs) > 1:
			verdict = fmt.Sprintf("reported %d times", len(rs))
		}
		d.say("  %-16s %-20s %-28s %s", t.Fault, t.Type, where(t), verdict)
		for _, r := range rs {
			d.say("      %s %s %s (owner %s)", r.Status, r.Level, r.Scope, orNone(r.Team))
		}
	}
	d.say("  %d of %d faults reported exactly once at the right level; %d other incident(s)", ok, len(d.truth), len(extra))
	if d.pager != nil {
		d.say("  notifications received by the demo's pager (webhook): %d", d.pager.count.Load())
	}
	for _, r := range canaried {
		d.say("      explained by a bad canary: %s %s %s — %s", r.Status, r.Level, r.Scope, r.Title)
	}
	for _, r := range extra {
		d.say("      other: %s %s %s — %s", r.Status, r.Level, r.Scope, r.Title)
	}
	addr := d.client.Config().Addrs[0]
	host, port, _ := strings.Cut(addr, ":")
	d.say("\nexplore (while the demo runs, or after `fleetctl demo --keep`):")
	d.say("  clickhouse-client --host %s --port %s -d %s", host, port, db)
	d.say("  SELECT * FROM %s.detections ORDER BY ts DESC LIMIT 20", db)
	d.say("  SELECT key, argMax(status, version) AS status, argMax(title, version) AS title FROM %s.incidents GROUP BY key", db)
	d.say("  fleetctl incidents --dsn clickhouse://%s/%s", addr, db)
	return nil
}

// explainedByCanaries splits off the incidents about a model while a
// worse version of it was canaried (its errors burn the model's SLO, its
// latency too): the scenario caused them on purpose, and the canary
// section reports what the judge did about it.
func explainedByCanaries(deps []sim.DeploymentSpec, models []sim.ModelSpec, rows []incidentRow) (rest, canaried []incidentRow) {
	bad := map[string]bool{}
	for _, d := range deps {
		for _, m := range models {
			if d.Change == sim.ChangeCanary && m.Name == d.Model && (d.LatencyMs > m.LatencyMs || d.ErrorRate > m.ErrorRate) {
				bad[d.Model] = true
			}
		}
	}
	for _, r := range rows {
		hit := false
		for m := range bad {
			if r.Level == "model" && strings.Contains(r.Scope+" "+r.Key, m) {
				hit = true
			}
		}
		if hit {
			canaried = append(canaried, r)
		} else {
			rest = append(rest, r)
		}
	}
	return rest, canaried
}
