package analyzer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetwatch/fleetwatch/alerting"
	"github.com/fleetwatch/fleetwatch/alerting/route"
	"github.com/fleetwatch/fleetwatch/alerting/store"
	"github.com/fleetwatch/fleetwatch/analytics/slo"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
	"github.com/fleetwatch/fleetwatch/storage"
)

// AlertingConfig turns on alerting: detections are correlated into
// incidents, kept in ClickHouse and routed to PagerDuty, Alertmanager and
// webhooks (see deploy/alerting.example.yaml).
type AlertingConfig struct {
	Enabled         bool `yaml:"enabled"`
	alerting.Config `yaml:",inline"`
	// SLO is the burn-rate detector on the catalog's SLOs (analytics/slo),
	// which runs with alerting when there is a catalog.
	SLO slo.Config `yaml:"slo"`
}

// NewDefaultAlertingConfig returns alerting off, with alerting's defaults
// and SLO burn-rate paging every minute.
func NewDefaultAlertingConfig() AlertingConfig {
	return AlertingConfig{Config: alerting.NewDefaultConfig(), SLO: slo.NewDefaultConfig()}
}

// Validate checks the section when alerting is on.
func (c *AlertingConfig) Validate() error {
	if !c.Enabled {
		return nil
	}
	err := c.Config.Validate()
	if sloErr := c.SLO.Validate(); sloErr != nil {
		err = errors.Join(err, fmt.Errorf("alerting: %w", sloErr))
	}
	return err
}

// alertingStage is alerting as the analyzer runs it: the manager (an
// engine sink when the analyzer is alone, fed from the ledger by the
// alerting owner when analyzers share the fleet) and the router's
// delivery loop over the notification outbox (none when a notifier
// replaces it). The catalog's SLO burn-rate and feature-freshness
// detectors are ordinary detectors (Analyzer.factories).
type alertingStage struct {
	manager *alerting.Manager
	router  *route.Router
}

// stores are where alerting reads and writes: the inventory, deployments
// and SLO counts come from in, incident state goes to out (the same
// database except in a backtest). A notifier replaces the router and its
// outbox; now is the time incidents are restored as of.
type stores struct {
	in, out  *storage.Client
	notifier alerting.Notifier
	now      time.Time
}

// newAlerting builds the alerting stage over ClickHouse, resumes the
// notifications a previous run (or alerting owner) left pending in the
// outbox and restores the open incidents.
func newAlerting(ctx context.Context, cfg AlertingConfig, cat *catalog.Catalog, db stores, log *slog.Logger) (*alertingStage, error) {
	in, err := store.New(db.in)
	if err != nil {
		return nil, err
	}
	st := in
	if db.out != db.in {
		if st, err = store.New(db.out); err != nil {
			return nil, err
		}
	}
	inv, err := in.Inventory(ctx, db.now.Add(-24*time.Hour))
	if err != nil {
		return nil, fmt.Errorf("alerting: %w", err)
	}
	stage := &alertingStage{}
	notifier := db.notifier
	if notifier == nil {
		stage.router, err = route.New(cfg.Routing, route.WithRecorder(st), route.WithOutbox(st), route.WithLogger(log))
		if err != nil {
			return nil, err
		}
		if _, err := stage.router.Resume(ctx); err != nil {
			return nil, fmt.Errorf("alerting: %w", err)
		}
		notifier = stage.router
	}
	m, err := alerting.NewManager(cfg.Config, alerting.Deps{Catalog: cat, Inventory: inv, Store: st, Notifier: notifier, Deployments: in, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := m.Restore(ctx, db.now); err != nil {
		return nil, err
	}
	stage.manager = m
	log.Info("alerting on", "catalog_models", catalogLen(cat), "receivers", len(cfg.Routing.Receivers), "router", stage.router != nil)
	return stage, nil
}

func catalogLen(c *catalog.Catalog) int {
	if c == nil {
		return 0
	}
	return c.Len()
}

// Notification delivery as /metrics shows it (the router's counters).
var (
	descNotifyAttempts = prometheus.NewDesc("fleetwatch_alerting_notification_attempts_total",
		"Notification delivery attempts by receiver and outcome: sent, retry (429, 5xx, network, timeout: tried again), failed (max_attempts reached), dropped (permanent 4xx) or silenced.",
		[]string{"receiver", "outcome"}, nil)
	descNotifyFailures = prometheus.NewDesc("fleetwatch_alerting_notification_failures_total",
		"Notification attempts that did not deliver, by receiver and reason: timeout, network, http_429, http_5xx, http_4xx or encode.",
		[]string{"receiver", "reason"}, nil)
	descNotifyExpired = prometheus.NewDesc("fleetwatch_alerting_notifications_expired_total",
		"Notifications not delivered within the receiver's expire_after (state expired in notification_outbox).",
		[]string{"receiver"}, nil)
	descOutboxPending = prometheus.NewDesc("fleetwatch_alerting_outbox_pending",
		"Notifications recorded in the outbox and not delivered yet, by receiver.", []string{"receiver"}, nil)
	descOutboxErrors = prometheus.NewDesc("fleetwatch_alerting_outbox_write_errors_total",
		"Failed writes to notification_outbox (retried; nothing is sent before it is recorded).", nil, nil)
)

var alertingDescs = []*prometheus.Desc{descNotifyAttempts, descNotifyFailures, descNotifyExpired, descOutboxPending, descOutboxErrors}

// collect exports the router's delivery counters.
func (s *alertingStage) collect(ch chan<- prometheus.Metric) {
	if s.router == nil {
		return
	}
	st := s.router.Stats()
	for k, n := range st.Attempts {
		ch <- prometheus.MustNewConstMetric(descNotifyAttempts, prometheus.CounterValue, float64(n), k.Receiver, k.Label)
	}
	for k, n := range st.Failures {
		ch <- prometheus.MustNewConstMetric(descNotifyFailures, prometheus.CounterValue, float64(n), k.Receiver, k.Label)
	}
	for name, n := range st.Pending {
		ch <- prometheus.MustNewConstMetric(descOutboxPending, prometheus.GaugeValue, float64(n), name)
		ch <- prometheus.MustNewConstMetric(descNotifyExpired, prometheus.CounterValue, float64(st.Expired[name]), name)
	}
	ch <- prometheus.MustNewConstMetric(descOutboxErrors, prometheus.CounterValue, float64(st.OutboxErrors))
}
