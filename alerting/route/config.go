// Package route sends incident notifications where YAML rules on their
// labels say: PagerDuty (Events API v2), Prometheus Alertmanager (API v2)
// and generic webhooks. Every notification to every receiver goes through
// an outbox (the notification_outbox table): it is recorded before its
// first attempt and retried — 429, 5xx, network errors and timeouts, with
// jittered exponential backoff honouring Retry-After — until it is
// delivered or expires, across restarts. Retries carry the same dedup key
// (PagerDuty's dedup_key, Alertmanager's label set, the webhook
// Idempotency-Key), so a receiver acts once per incident transition.
// PagerDuty events are limited per routing key, firing alerts are re-sent to
// Alertmanager while they fire, and every attempt is handed to a Recorder
// (the notifications table).
package route

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting/internal/labelmatch"
)

// Receiver types.
const (
	TypePagerDuty    = "pagerduty"
	TypeAlertmanager = "alertmanager"
	TypeWebhook      = "webhook"
)

// Config is the routing section: rules, then receivers.
type Config struct {
	// Routes are tried in order; the first that matches decides, unless
	// it sets continue. Nothing matching: Default.
	Routes    []Rule           `yaml:"routes"`
	Default   []string         `yaml:"default"`
	Receivers []ReceiverConfig `yaml:"receivers"`
	// ExternalURL is where on-call opens Fleetwatch from a notification:
	// Alertmanager's generatorURL and PagerDuty's client_url, unless a
	// receiver sets its own dashboard_url (default DefaultExternalURL).
	ExternalURL string `yaml:"external_url"`
}

// DefaultExternalURL is Grafana's default address with the provisioned
// investigation dashboard (dashboards/README.md).
const DefaultExternalURL = "http://localhost:3000/d/fleetwatch-investigation"

// NewDefaultConfig returns no routes and no receivers, with the default
// external URL.
func NewDefaultConfig() Config { return Config{ExternalURL: DefaultExternalURL} }

// externalURL is ExternalURL or its default.
func (c *Config) externalURL() string {
	if c.ExternalURL == "" {
		return DefaultExternalURL
	}
	return c.ExternalURL
}

// Rule sends incidents whose labels match to receivers. Match compares
// labels for equality, MatchRE with anchored regular expressions; labels
// are class, family, level, scope, severity, team, oncall, domain, key,
// datacenter, row, rack and node.
type Rule struct {
	Match     map[string]string `yaml:"match"`
	MatchRE   map[string]string `yaml:"match_re"`
	Receivers []string          `yaml:"receivers"`
	Continue  bool              `yaml:"continue"`
	re        map[string]*regexp.Regexp
}

// ReceiverConfig is one destination.
type ReceiverConfig struct {
	Name string `yaml:"name"`
	// Type is pagerduty, alertmanager or webhook.
	Type string `yaml:"type"`
	// URL: PagerDuty's events endpoint (default
	// https://events.pagerduty.com/v2/enqueue), Alertmanager's base URL
	// (…/api/v2/alerts is appended), or the webhook URL.
	URL string `yaml:"url"`
	// RoutingKey is the PagerDuty integration key.
	RoutingKey string `yaml:"routing_key"`
	// RatePerMinute caps PagerDuty events per routing key (default 120,
	// PagerDuty's documented limit); excess waits.
	RatePerMinute int `yaml:"rate_per_minute"`
	// ResendInterval: Alertmanager alerts are re-sent this often while
	// firing (default 1m); their endsAt is 4 intervals ahead, so they
	// resolve by themselves if Fleetwatch stops.
	ResendInterval time.Duration `yaml:"resend_interval"`
	// Timeout bounds one HTTP attempt (default 10s): a receiver that
	// hangs holds up no other delivery longer than this.
	Timeout time.Duration `yaml:"timeout"`
	// ExpireAfter: a notification still not delivered this long after it
	// was recorded in the outbox expires, counted and kept there as
	// expired (default 24h).
	ExpireAfter time.Duration `yaml:"expire_after"`
	// MaxAttempts, when above 0, gives a notification up (failed) after
	// that many attempts; 0 (the default) retries until ExpireAfter.
	// InitialBackoff and MaxBackoff bound the jittered exponential backoff
	// between attempts.
	MaxAttempts    int               `yaml:"max_attempts"`
	InitialBackoff time.Duration     `yaml:"initial_backoff"`
	MaxBackoff     time.Duration     `yaml:"max_backoff"`
	Headers        map[string]string `yaml:"headers"`
	// Source is PagerDuty's payload.source (default fleetwatch).
	Source string `yaml:"source"`
	// DashboardURL, when set, is linked from every event and replaces
	// the routing section's external_url for this receiver.
	DashboardURL string `yaml:"dashboard_url"`
}

// DefaultPagerDutyURL is PagerDuty's Events API v2 endpoint.
const DefaultPagerDutyURL = "https://events.pagerduty.com/v2/enqueue"

// withDefaults fills unset fields.
func (r ReceiverConfig) withDefaults() ReceiverConfig {
	if r.Type == TypePagerDuty && r.URL == "" {
		r.URL = DefaultPagerDutyURL
	}
	if r.RatePerMinute == 0 {
		r.RatePerMinute = 120
	}
	if r.ResendInterval == 0 {
		r.ResendInterval = time.Minute
	}
	if r.Timeout == 0 {
		r.Timeout = 10 * time.Second
	}
	if r.ExpireAfter == 0 {
		r.ExpireAfter = 24 * time.Hour
	}
	if r.InitialBackoff == 0 {
		r.InitialBackoff = 500 * time.Millisecond
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = 30 * time.Second
	}
	if r.Source == "" {
		r.Source = "fleetwatch"
	}
	return r
}

// Validate reports every problem at once and compiles the rules' regular
// expressions.
func (c *Config) Validate() error {
	var errs []error
	names := map[string]bool{}
	for i := range c.Receivers {
		r := c.Receivers[i].withDefaults()
		switch {
		case r.Name == "":
			errs = append(errs, fmt.Errorf("receiver %d has no name", i+1))
		case names[r.Name]:
			errs = append(errs, fmt.Errorf("receiver %s is defined twice", r.Name))
		}
		names[r.Name] = true
		switch r.Type {
		case TypePagerDuty:
			if r.RoutingKey == "" {
				errs = append(errs, fmt.Errorf("receiver %s: pagerduty needs routing_key", r.Name))
			}
		case TypeAlertmanager, TypeWebhook:
			if r.URL == "" {
				errs = append(errs, fmt.Errorf("receiver %s: %s needs url", r.Name, r.Type))
			}
		default:
			errs = append(errs, fmt.Errorf("receiver %s: type %q, want pagerduty, alertmanager or webhook", r.Name, r.Type))
		}
		if r.RatePerMinute < 1 || r.MaxAttempts < 0 || r.Timeout <= 0 || r.ExpireAfter <= 0 || r.InitialBackoff <= 0 || r.MaxBackoff < r.InitialBackoff || r.ResendInterval <= 0 {
			errs = append(errs, fmt.Errorf("receiver %s: want rate_per_minute >= 1, max_attempts >= 0, timeout, expire_after, resend_interval > 0, 0 < initial_backoff <= max_backoff", r.Name))
		}
	}
	check := func(where string, rs []string) {
		for _, n := range rs {
			if !names[n] {
				errs = append(errs, fmt.Errorf("%s: unknown receiver %q", where, n))
			}
		}
	}
	for i := range c.Routes {
		rule := &c.Routes[i]
		check(fmt.Sprintf("route %d", i+1), rule.Receivers)
		rule.re = map[string]*regexp.Regexp{}
		for k, expr := range rule.MatchRE {
			re, err := labelmatch.Anchored(expr)
			if err != nil {
				errs = append(errs, fmt.Errorf("route %d: match_re %s: %w", i+1, k, err))
				continue
			}
			rule.re[k] = re
		}
	}
	check("default", c.Default)
	if u, err := url.Parse(c.externalURL()); err != nil || !u.IsAbs() {
		errs = append(errs, fmt.Errorf("external_url %q: want an absolute URL", c.ExternalURL))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("routing: %w", err)
	}
	return nil
}

// matches reports whether labels satisfy the rule.
func (r *Rule) matches(labels map[string]string) bool {
	for k, v := range r.Match {
		if labels[k] != v {
			return false
		}
	}
	for k, re := range r.re {
		if !re.MatchString(labels[k]) {
			return false
		}
	}
	return true
}

// Receivers returns the receiver names labels route to, in rule order,
// each once.
func (c *Config) route(labels map[string]string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(ns []string) {
		for _, n := range ns {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		if !r.matches(labels) {
			continue
		}
		add(r.Receivers)
		if !r.Continue {
			return out
		}
	}
	if len(out) == 0 {
		add(c.Default)
	}
	return out
}
