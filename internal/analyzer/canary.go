package analyzer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetwatch/fleetwatch/analytics/canary"
	"github.com/fleetwatch/fleetwatch/analytics/canary/action"
)

var descCanarySkipped = prometheus.NewDesc("fleetwatch_analyzer_canary_rules_skipped_total",
	"Canary-judge rules that could not run, per canary and look, by rule and reason: no_requests, no_outcomes, no_labels, no_latencies, no_predictions, no_features (neither version has the rule's data; each logged once); rule look: look_failed (a canary not judged at a look; each failure logged), no_baseline_version (no previous version named and no catalog last_known_good), no_baseline_traffic (the baseline version serves no requests).",
	[]string{"detector", "rule", "reason"}, nil)

// collectCanary exports the canary judge's skipped rules.
func (c collector) collectCanary(ch chan<- prometheus.Metric) {
	d := liveDetector[*canary.Detector](c.a)
	if d == nil {
		return
	}
	for k, n := range d.Skipped() {
		ch <- prometheus.MustNewConstMetric(descCanarySkipped, prometheus.CounterValue, float64(n), d.Name(), k.Rule, k.Reason)
	}
}

// CanaryConfig turns on the canary judge (issue 20): running canaries
// from model_deployments, judged every interval on inference_events, their
// verdicts served at /canary/v1/ (Argo Rollouts web metric, Flagger hooks)
// and, when Rollback.URL is set, one rollback request per failed canary.
type CanaryConfig struct {
	Enabled               bool `yaml:"enabled"`
	canary.DetectorConfig `yaml:",inline"`
	// Rollback is the rollback webhook; off while its url is empty.
	Rollback action.RollbackConfig `yaml:"rollback"`
	// Ledger is the file that remembers the rollbacks asked for, so a
	// restarted analyzer does not ask twice. Required with a rollback url
	// for an analyzer alone; analyzers sharing the fleet (coordination)
	// keep the ledger in ZooKeeper, under the group's records, so that the
	// one that judges a canary after a hand-over does not ask again, and
	// ignore this file.
	Ledger string `yaml:"ledger"`
}

// NewDefaultCanaryConfig returns the judge off (it needs model_deployments
// rows with change "canary"), looking every 10 s once on.
func NewDefaultCanaryConfig() CanaryConfig {
	return CanaryConfig{DetectorConfig: canary.NewDefaultDetectorConfig(), Rollback: action.NewDefaultRollbackConfig()}
}

// Validate reports every problem at once; shared tells whether the
// analyzer shares the fleet through ZooKeeper (which then keeps the
// ledger).
func (c CanaryConfig) Validate(shared bool) error {
	errs := []error{c.DetectorConfig.Validate()}
	if c.Rollback.URL != "" {
		errs = append(errs, c.Rollback.Validate())
		if c.Ledger == "" && !shared {
			errs = append(errs, errors.New("canary: rollback.url needs a ledger file (or coordination, which keeps the ledger in ZooKeeper)"))
		}
	}
	return errors.Join(errs...)
}

// canaryOpenAtOnce is the class of a failed canary: the judge reports it
// once (its decision, not a statistic each window), so alerting opens its
// incident at once rather than after lifecycle.open_after windows.
const canaryOpenAtOnce = "canary_regression"

// canaryActions is what the analyzer does with verdicts.
type canaryActions struct {
	board    *action.Board
	rollback *action.Rollbacker // nil: no webhook
	ledger   *action.FileLedger // nil: none, or the shared one
}

// recordStore is where analyzers sharing the fleet keep shared facts
// (a *coord.Member).
type recordStore interface {
	Record(kind, key string) ([]byte, bool, error)
	SetRecord(kind, key string, data []byte) error
}

// newCanaryActions builds the board and, with a rollback url, the
// rollbacker over the file ledger, or over records when the analyzer
// shares the fleet (records non-nil).
func (a *Analyzer) newCanaryActions(c CanaryConfig, records recordStore) (*canaryActions, error) {
	ca := &canaryActions{board: &action.Board{}}
	if c.Rollback.URL == "" {
		return ca, nil
	}
	var l action.Ledger
	if records != nil {
		l = sharedLedger{records}
	} else {
		fl, err := action.OpenFileLedger(c.Ledger)
		if err != nil {
			return nil, err
		}
		l, ca.ledger = fl, fl
	}
	rb, err := action.NewRollbacker(c.Rollback, l, a.log)
	if err != nil {
		ca.close()
		return nil, err
	}
	ca.rollback = rb
	return ca, nil
}

// rollbackRecords is the kind of the shared ledger's records.
const rollbackRecords = "rollbacks"

// sharedLedger is the rollback ledger of analyzers sharing the fleet: one
// ZooKeeper record per canary key, its state's word as data. Whichever
// analyzer judges a canary (its share moves on a hand-over) sees what the
// others asked for. Without a session it fails, and the rollback is tried
// again at the next look rather than sent unrecorded.
type sharedLedger struct{ r recordStore }

// State implements action.Ledger.
func (l sharedLedger) State(key string) (action.State, error) {
	data, ok, err := l.r.Record(rollbackRecords, key)
	if err != nil || !ok {
		return action.None, err
	}
	return action.ParseState(string(data))
}

// Set implements action.Ledger.
func (l sharedLedger) Set(key string, s action.State) error {
	return l.r.SetRecord(rollbackRecords, key, []byte(s.String()))
}

// onVerdict publishes a verdict and asks for the rollback of a failed
// canary (once: the ledger remembers).
func (ca *canaryActions) onVerdict(a *Analyzer) func(ctx context.Context, d canary.Deployment, v canary.Verdict) {
	return func(ctx context.Context, d canary.Deployment, v canary.Verdict) {
		now := a.clock.Now()
		ca.board.Set(d, v, now)
		if v.Outcome != canary.Fail || ca.rollback == nil {
			return
		}
		if sent, err := ca.rollback.Request(ctx, action.NewRequest(d, v, now)); err != nil {
			a.log.Error("canary rollback request failed; retried at the next look", "canary", d.Key(), "err", err)
		} else if sent {
			a.log.Info("canary rollback requested", "canary", d.Key(), "rules", v.Failed(), "after", v.Elapsed.Round(time.Second))
		}
	}
}

func (ca *canaryActions) close() error {
	if ca == nil || ca.ledger == nil {
		return nil
	}
	if err := ca.ledger.Close(); err != nil {
		return fmt.Errorf("canary ledger: %w", err)
	}
	return nil
}
