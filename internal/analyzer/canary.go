package analyzer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/canary"
	"github.com/fleetwatch/fleetwatch/analytics/canary/action"
)

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
	// restarted analyzer does not ask twice (required with a rollback url).
	Ledger string `yaml:"ledger"`
}

// NewDefaultCanaryConfig returns the judge off (it needs model_deployments
// rows with change "canary"), looking every 10 s once on.
func NewDefaultCanaryConfig() CanaryConfig {
	return CanaryConfig{DetectorConfig: canary.NewDefaultDetectorConfig(), Rollback: action.NewDefaultRollbackConfig()}
}

// Validate reports every problem at once.
func (c CanaryConfig) Validate() error {
	errs := []error{c.DetectorConfig.Validate()}
	if c.Rollback.URL != "" {
		errs = append(errs, c.Rollback.Validate())
		if c.Ledger == "" {
			errs = append(errs, errors.New("canary: rollback.url needs a ledger file"))
		}
	}
	return errors.Join(errs...)
}

// canaryActions is what the analyzer does with verdicts.
type canaryActions struct {
	board    *action.Board
	rollback *action.Rollbacker // nil: no webhook
	ledger   *action.FileLedger
}

func (a *Analyzer) newCanaryActions(c CanaryConfig) (*canaryActions, error) {
	ca := &canaryActions{board: &action.Board{}}
	if c.Rollback.URL == "" {
		return ca, nil
	}
	l, err := action.OpenFileLedger(c.Ledger)
	if err != nil {
		return nil, err
	}
	rb, err := action.NewRollbacker(c.Rollback, l, a.log)
	if err != nil {
		l.Close()
		return nil, err
	}
	ca.rollback, ca.ledger = rb, l
	return ca, nil
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
