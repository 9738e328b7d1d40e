// Package analyzer wires the analytics engine with its detectors — PSI
// drift, SPC on model metrics, delayed-label accuracy and GPU series, fleet
// health, training jobs, SLO burn rates — and with alerting, over ClickHouse, and serves its
// counters on /metrics. It is the assembly layer (docs/ARCHITECTURE.md,
// "Layers"): the one place that knows both analytics and alerting.
// cmd/fleetwatch-analyzer is a thin main around Run; tests and fleetctl demo
// run the same code.
package analyzer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/fleetwatch/fleetwatch/analytics/drift"
	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/analytics/freshness"
	"github.com/fleetwatch/fleetwatch/analytics/spc"
	"github.com/fleetwatch/fleetwatch/analytics/upstream"
	"github.com/fleetwatch/fleetwatch/lib/netsec"
	"github.com/fleetwatch/fleetwatch/storage"
)

// Config is the analyzer section of a Fleetwatch YAML file (see
// deploy/analyzer.example.yaml).
type Config struct {
	// Listen is the address of /metrics and /healthz (default
	// 127.0.0.1:9465); empty turns them off. A non-loopback address needs
	// Web's TLS and authentication, or web.insecure.
	Listen string `yaml:"listen"`
	// Web secures /metrics: TLS (mutual optional) and a bearer token file.
	Web netsec.ServerConfig `yaml:"web"`
	// StateLookback is how far back /metrics looks for the latest drift
	// score and SPC state of each series (default 1h; older ones are gone
	// or stale).
	StateLookback time.Duration `yaml:"state_lookback"`
	Engine        engine.Config `yaml:"engine"`
	// Migrate applies the schema migrations at start (idempotent). Off by
	// default: the analyzer runs as a user without DDL rights, `fleetctl
	// migrate` applies the schema, and the analyzer checks it is there.
	Migrate   bool         `yaml:"migrate"`
	Drift     DriftConfig  `yaml:"drift"`
	SPCModels ModelsConfig `yaml:"spc_models"`
	SPCLabels LabelsConfig `yaml:"spc_labels"`
	SPCGPU    GPUConfig    `yaml:"spc_gpu"`
	Health    HealthConfig `yaml:"health"`
	// Jobs judges training jobs: step time against their own history,
	// stalled ranks, checkpoints, goodput (analytics/jobs).
	Jobs JobsConfig `yaml:"jobs"`
	// Canary judges running canaries against their baselines and asks for
	// rollbacks (analytics/canary; off by default).
	Canary CanaryConfig `yaml:"canary"`
	// Scaling exports per-model scaling signals and a recommended replica
	// count for KEDA or an HPA (analytics/scaling; off by default; needs
	// alerting.catalog).
	Scaling ScalingConfig `yaml:"scaling"`
	// Cost runs the daily cost detectors: anomalies with their cause,
	// budget forecasts, idle and zombie tickets (analytics/cost; off by
	// default: it needs a price book).
	Cost CostConfig `yaml:"cost"`
	// Freshness judges the catalog's pipeline features against the
	// freshness SLO of their type (analytics/freshness); it runs with
	// alerting when there is a catalog.
	Freshness freshness.Config `yaml:"freshness"`
	// Upstream alerts a model's downstream consumers when its deployment
	// row appears (analytics/upstream; off by default); it runs with
	// alerting when there is a catalog.
	Upstream UpstreamConfig `yaml:"upstream"`
	Alerting AlertingConfig `yaml:"alerting"`
	// Coordination lets several analyzers share the fleet through
	// ZooKeeper, one of them owning alerting at a time (off: this one
	// does everything).
	Coordination CoordinationConfig `yaml:"coordination"`
	ClickHouse   storage.Config     `yaml:"-"`
}

// UpstreamConfig turns on the upstream-update alerts (issue 20, item 4):
// each model_deployments row of a catalog model raises a detection for
// every model that depends on it, routed to that model's owner. It needs
// alerting with a catalog.
type UpstreamConfig struct {
	Enabled         bool `yaml:"enabled"`
	upstream.Config `yaml:",inline"`
}

// DriftConfig turns on the PSI drift detector.
type DriftConfig struct {
	Enabled      bool `yaml:"enabled"`
	drift.Config `yaml:",inline"`
}

// ModelsConfig charts per-model latency percentiles, error rate,
// throughput, cost and feature freshness.
type ModelsConfig struct {
	Enabled    bool `yaml:"enabled"`
	spc.Config `yaml:",inline"`
	// Freshness charts each feature's staleness: the age of its newest
	// update time, or of its newest event where no update times come.
	Freshness bool `yaml:"freshness"`
	// PricePerGPUHour turns serving GPUs into cost per window (0: no cost).
	PricePerGPUHour float64 `yaml:"price_per_gpu_hour"`
}

// LabelsConfig charts delayed-label accuracy and MAE per model.
type LabelsConfig struct {
	Enabled    bool `yaml:"enabled"`
	spc.Config `yaml:",inline"`
	// LabelDelay is how long after a window its labels are complete; the
	// detector's lateness.
	LabelDelay time.Duration `yaml:"label_delay"`
	// MinLabels is the fewest labelled predictions a window needs.
	MinLabels int `yaml:"min_labels"`
}

// GPUConfig charts GPU series of the listed DCGM fields.
type GPUConfig struct {
	Enabled    bool `yaml:"enabled"`
	spc.Config `yaml:",inline"`
	Metrics    []string `yaml:"metrics"`
}

// NewDefaultConfig returns drift every 5 minutes, model SPC every minute,
// label SPC every 5 minutes an hour late, GPU SPC off, fleet health every
// 30 seconds, training jobs every minute, feature freshness SLOs every
// minute (with a catalog).
func NewDefaultConfig() Config {
	labels := spc.NewDefaultConfig("spc_labels")
	labels.Interval = 5 * time.Minute
	labels.Lateness = time.Hour
	gpu := spc.NewDefaultConfig("spc_gpu")
	return Config{
		Listen:        "127.0.0.1:9465",
		StateLookback: time.Hour,
		Engine:        engine.NewDefaultConfig(),
		Migrate:       false,
		Drift:         DriftConfig{Enabled: true, Config: drift.NewDefaultConfig()},
		SPCModels:     ModelsConfig{Enabled: true, Config: spc.NewDefaultConfig("spc_models"), Freshness: true},
		SPCLabels:     LabelsConfig{Enabled: true, Config: labels, LabelDelay: time.Hour, MinLabels: 30},
		SPCGPU:        GPUConfig{Config: gpu, Metrics: []string{"DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE"}},
		Alerting:      NewDefaultAlertingConfig(),
		Health:        NewDefaultHealthConfig(),
		Jobs:          NewDefaultJobsConfig(),
		Canary:        NewDefaultCanaryConfig(),
		Scaling:       NewDefaultScalingConfig(),
		Cost:          NewDefaultCostConfig(),
		Freshness:     freshness.NewDefaultConfig(),
		Upstream:      UpstreamConfig{Config: upstream.NewDefaultConfig()},
		Coordination:  NewDefaultCoordinationConfig(),
		ClickHouse:    storage.NewDefaultConfig(),
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if err := c.ClickHouse.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Engine.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Listen != "" {
		if err := c.Web.Validate("analyzer.web", c.Listen); err != nil {
			errs = append(errs, err)
		}
	}
	if c.StateLookback <= 0 {
		errs = append(errs, fmt.Errorf("analyzer: state_lookback %v must be positive", c.StateLookback))
	}
	if !c.Drift.Enabled && !c.SPCModels.Enabled && !c.SPCLabels.Enabled && !c.SPCGPU.Enabled && !c.Health.Enabled && !c.Jobs.Enabled && !c.Canary.Enabled && !c.Scaling.Enabled && !c.Upstream.Enabled && !c.Cost.Enabled {
		errs = append(errs, errors.New("analyzer: every detector is disabled"))
	}
	if c.Drift.Enabled {
		errs = append(errs, c.Drift.Validate())
	}
	if c.SPCModels.Enabled {
		errs = append(errs, c.SPCModels.Validate())
		if c.SPCModels.PricePerGPUHour < 0 {
			errs = append(errs, fmt.Errorf("spc_models: price_per_gpu_hour %v is negative", c.SPCModels.PricePerGPUHour))
		}
	}
	if c.SPCLabels.Enabled {
		errs = append(errs, c.SPCLabels.Validate())
		if c.SPCLabels.LabelDelay <= 0 || c.SPCLabels.MinLabels < 1 {
			errs = append(errs, fmt.Errorf("spc_labels: want label_delay > 0 and min_labels >= 1"))
		}
	}
	if c.SPCGPU.Enabled {
		errs = append(errs, c.SPCGPU.Validate())
		if len(c.SPCGPU.Metrics) == 0 {
			errs = append(errs, errors.New("spc_gpu: no metrics"))
		}
	}
	if c.Health.Enabled {
		errs = append(errs, c.Health.Validate())
	}
	if c.Jobs.Enabled {
		errs = append(errs, c.Jobs.Validate())
	}
	if c.Canary.Enabled {
		errs = append(errs, c.Canary.Validate(c.Coordination.Enabled))
	}
	if c.Scaling.Enabled {
		errs = append(errs, c.Scaling.Validate())
		if c.Alerting.Catalog == "" {
			errs = append(errs, errors.New("scaling: needs the catalog (alerting.catalog) for the models' scaling policies"))
		}
	}
	if c.Cost.Enabled {
		errs = append(errs, c.Cost.Validate())
	}
	errs = append(errs, c.Alerting.Validate())
	errs = append(errs, c.Coordination.Validate())
	if c.Upstream.Enabled {
		errs = append(errs, c.Upstream.Validate())
	}
	if c.Freshness.Enabled {
		errs = append(errs, c.Freshness.Validate())
	}
	names := map[string]bool{}
	for _, n := range []struct {
		on   bool
		name string
	}{{c.Drift.Enabled, c.Drift.Name}, {c.SPCModels.Enabled, c.SPCModels.Name}, {c.SPCLabels.Enabled, c.SPCLabels.Name}, {c.SPCGPU.Enabled, c.SPCGPU.Name}, {c.Health.Enabled, c.Health.Name}, {c.Jobs.Enabled, c.Jobs.Name}, {c.Canary.Enabled, c.Canary.Name}, {c.Scaling.Enabled, c.Scaling.Name}, {c.Freshness.Enabled, c.Freshness.Name}, {c.Upstream.Enabled, c.Upstream.Name}, {c.Cost.Enabled, "cost"}, {c.Cost.Enabled && c.Cost.Waste.Enabled, "cost_waste"}} {
		if n.on && names[n.name] {
			errs = append(errs, fmt.Errorf("detector name %q is used twice", n.name))
		}
		names[n.name] = true
	}
	return errors.Join(errs...)
}

// LoadConfig reads the clickhouse and analyzer sections of a YAML file
// over the defaults. Unknown keys in them are errors; other sections belong
// to other programs.
func LoadConfig(path string) (Config, error) {
	cfg := NewDefaultConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(data, &top); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if err := section(top, "clickhouse", &cfg.ClickHouse); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if err := section(top, "analyzer", &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// section decodes top[name], if present, strictly into dst.
func section(top map[string]yaml.Node, name string, dst any) error {
	node, ok := top[name]
	if !ok {
		return nil
	}
	raw, err := yaml.Marshal(&node)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
