package analyzer

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting"
	"github.com/fleetwatch/fleetwatch/alerting/catalog"
	"github.com/fleetwatch/fleetwatch/alerting/route"
	"github.com/fleetwatch/fleetwatch/alerting/slo"
	"github.com/fleetwatch/fleetwatch/alerting/store"
	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/storage"
)

// AlertingConfig turns on alerting: detections are correlated into
// incidents, kept in ClickHouse and routed to PagerDuty, Alertmanager and
// webhooks (see deploy/alerting.example.yaml).
type AlertingConfig struct {
	Enabled         bool `yaml:"enabled"`
	alerting.Config `yaml:",inline"`
}

// NewDefaultAlertingConfig returns alerting off, with alerting's defaults.
func NewDefaultAlertingConfig() AlertingConfig {
	return AlertingConfig{Config: alerting.NewDefaultConfig()}
}

// Validate checks the section when alerting is on.
func (c *AlertingConfig) Validate() error {
	if !c.Enabled {
		return nil
	}
	return c.Config.Validate()
}

// alertingStage is alerting as the analyzer runs it: the manager as an
// engine sink and, with a catalog, the SLO burn-rate detector.
type alertingStage struct {
	manager *alerting.Manager
	slo     engine.Detector
}

// newAlerting builds the alerting stage over ClickHouse and restores its
// open incidents; nil when alerting is off.
func newAlerting(ctx context.Context, cfg AlertingConfig, c *storage.Client, log *slog.Logger) (*alertingStage, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	var cat *catalog.Catalog
	if cfg.Catalog != "" {
		var err error
		if cat, err = catalog.Load(cfg.Catalog); err != nil {
			return nil, err
		}
	}
	st, err := store.New(c)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	inv, err := st.Inventory(ctx, now.Add(-24*time.Hour))
	if err != nil {
		return nil, fmt.Errorf("alerting: %w", err)
	}
	router, err := route.New(cfg.Routing, route.WithRecorder(st), route.WithLogger(log))
	if err != nil {
		return nil, err
	}
	m, err := alerting.NewManager(cfg.Config, alerting.Deps{Catalog: cat, Inventory: inv, Store: st, Notifier: router, Deployments: st, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := m.Restore(ctx, now); err != nil {
		return nil, err
	}
	stage := &alertingStage{manager: m}
	if cat != nil && cfg.SLO.Enabled {
		d, err := slo.NewDetector(cfg.SLO, c, cat)
		if err != nil {
			return nil, err
		}
		stage.slo = d
	}
	log.Info("alerting on", "catalog_models", catalogLen(cat), "receivers", len(cfg.Routing.Receivers), "slo", stage.slo != nil)
	return stage, nil
}

func catalogLen(c *catalog.Catalog) int {
	if c == nil {
		return 0
	}
	return c.Len()
}
