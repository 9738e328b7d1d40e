package alerting

import (
	"errors"
	"fmt"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting/correlate"
	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/alerting/route"
)

// Config is the alerting section of the analyzer's configuration (see
// deploy/alerting.example.yaml).
type Config struct {
	// Catalog is the model catalog file (deploy/catalog.example.yaml);
	// empty: no catalog, every model incident stands alone.
	Catalog     string           `yaml:"catalog"`
	Correlation correlate.Config `yaml:"correlation"`
	Lifecycle   LifecycleConfig  `yaml:"lifecycle"`
	Routing     route.Config     `yaml:",inline"`
	Silences    []Silence        `yaml:"silences"`
}

// LifecycleConfig tunes how candidates become incidents and go away.
type LifecycleConfig struct {
	// MinSeverity: detections below it are ignored (default warning).
	MinSeverity string `yaml:"min_severity"`
	// OpenSeverity: an incident opens (pages) only at this severity or
	// above (default error); below, it stays pending and unseen.
	OpenSeverity string `yaml:"open_severity"`
	// OpenAfter is how many consecutive windows of its detectors a
	// candidate must be at open severity before it opens (default 2):
	// one-window blips never page.
	OpenAfter int `yaml:"open_after"`
	// OpenAtOnce lists the detection classes that report definitive events
	// rather than statistics (an uncorrectable ECC error, a GPU off the
	// bus): a candidate with a critical detection of one of them opens in
	// its first window, without waiting OpenAfter windows (default
	// gpu_hard_fault).
	OpenAtOnce []string `yaml:"open_at_once"`
	// ResolveAfter is how many windows of its detectors an open incident
	// must be clear before it resolves (default 3).
	ResolveAfter int `yaml:"resolve_after"`
	// KeepFiringFor: an open incident also stays open until its evidence
	// has been gone this long (default 10m, Prometheus's keep_firing_for).
	// A fault that comes and goes (a flapping link, a fan that stalls now
	// and then) is one incident and one page, not a page per return; the
	// resolve is sent this much later.
	KeepFiringFor time.Duration `yaml:"keep_firing_for"`
	// FlapWindow: an incident that comes back within this long after
	// resolving reopens under the same key and counts a flap; each flap
	// doubles its ResolveAfter, up to MaxResolveAfter (default 1h, 24).
	FlapWindow      time.Duration `yaml:"flap_window"`
	MaxResolveAfter int           `yaml:"max_resolve_after"`
	// SuspectLookback is how far back deployments count as suspects
	// (default 24h).
	SuspectLookback time.Duration `yaml:"suspect_lookback"`
	// AckPoll is how often acknowledgements written by fleetctl are read
	// back (default 1m).
	AckPoll time.Duration `yaml:"ack_poll"`
	// RestoreLookback: a restart reloads incidents open now or resolved
	// within this long (default 24h).
	RestoreLookback time.Duration `yaml:"restore_lookback"`
	// CrossLayerFamilies are the model families a hardware incident on
	// the serving GPUs can explain (default latency, error_rate,
	// throughput).
	CrossLayerFamilies []string `yaml:"cross_layer_families"`
}

// NewDefaultConfig returns the defaults: the design documents'
// correlation thresholds, open after 2 windows at severity error, resolve
// after 3 clear windows.
func NewDefaultConfig() Config {
	return Config{
		Correlation: correlate.NewDefaultConfig(),
		Routing:     route.NewDefaultConfig(),
		Lifecycle: LifecycleConfig{MinSeverity: "warning", OpenSeverity: "error", OpenAfter: 2, OpenAtOnce: []string{"gpu_hard_fault"}, ResolveAfter: 3, KeepFiringFor: 10 * time.Minute,
			FlapWindow: time.Hour, MaxResolveAfter: 24, SuspectLookback: 24 * time.Hour, AckPoll: time.Minute,
			RestoreLookback: 24 * time.Hour, CrossLayerFamilies: []string{"latency", "error_rate", "throughput"}},
	}
}

func validSeverity(s string) bool {
	return s == "info" || s == "warning" || s == "error" || s == "critical"
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	errs = append(errs, c.Correlation.Validate(), c.Routing.Validate())
	l := c.Lifecycle
	if !validSeverity(l.MinSeverity) || !validSeverity(l.OpenSeverity) {
		errs = append(errs, fmt.Errorf("lifecycle: min_severity %q and open_severity %q must be info, warning, error or critical", l.MinSeverity, l.OpenSeverity))
	} else if incident.SeverityRank(l.OpenSeverity) < incident.SeverityRank(l.MinSeverity) {
		errs = append(errs, errors.New("lifecycle: open_severity is below min_severity"))
	}
	if l.OpenAfter < 1 || l.ResolveAfter < 1 || l.MaxResolveAfter < l.ResolveAfter {
		errs = append(errs, fmt.Errorf("lifecycle: want open_after >= 1, resolve_after >= 1, max_resolve_after >= resolve_after"))
	}
	if l.FlapWindow < 0 || l.SuspectLookback < 0 || l.KeepFiringFor < 0 || l.AckPoll <= 0 || l.RestoreLookback <= 0 {
		errs = append(errs, errors.New("lifecycle: flap_window, keep_firing_for and suspect_lookback must not be negative, ack_poll and restore_lookback positive"))
	}
	for i := range c.Silences {
		if err := c.Silences[i].compile(); err != nil {
			errs = append(errs, fmt.Errorf("silence %d: %w", i+1, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("alerting: %w", err)
	}
	return nil
}
