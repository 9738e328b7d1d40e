package chexporter

import (
	"context"
	"time"

	"github.com/fleetwatch/fleetwatch/lib/profile"
	"github.com/fleetwatch/fleetwatch/storage"
	"go.uber.org/zap"
)

// prebinner returns the drift profiles to bin inference events into at
// ingest (drift_bins), reloaded from drift_profiles at most every
// DriftProfileRefresh; nil when ingest binning is off or no profile could be
// loaded yet. A failed reload keeps the profiles already loaded: the
// analyzer bins whatever drift_bins does not cover in SQL.
func (e *chExporter) prebinner(ctx context.Context) *profile.Prebinner {
	if e.cfg.DriftProfileRefresh <= 0 {
		return nil
	}
	e.prebinMu.Lock()
	defer e.prebinMu.Unlock()
	if !e.prebinLoaded.IsZero() && time.Since(e.prebinLoaded) < e.cfg.DriftProfileRefresh {
		return e.prebin
	}
	e.prebinLoaded = time.Now()
	if err := e.ensure(ctx); err != nil {
		return e.prebin
	}
	ps, err := storage.LoadDriftProfiles(ctx, e.client)
	if err == nil {
		var pb *profile.Prebinner
		if pb, err = profile.NewPrebinner(ps); err == nil {
			if pb.Profiles() != e.prebin.Profiles() {
				e.logger.Info("drift profiles loaded for ingest binning", zap.Int("profiles", pb.Profiles()))
			}
			e.prebin = pb
		}
	}
	if err != nil {
		e.logger.Warn("cannot load drift profiles; inference events are not binned at ingest until the next try", zap.Error(err))
	}
	return e.prebin
}
