package health

import (
	"errors"
	"fmt"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/fleet"
)

// Config tunes the fleet-health detector. The thresholds' defaults are the
// design documents' (throughput 90%, NVLink 85%, step time +10%); the rest
// are argued in analytics/README.md.
type Config struct {
	// Name is the detector's name in the ledger and detections (default
	// "fleet_health").
	Name string `yaml:"name"`
	// Interval is the window length (default 30s; 15s to 30s is the
	// intended range, longer works).
	Interval time.Duration `yaml:"interval"`
	// Lateness overrides the engine's lateness allowance (0: the engine's).
	Lateness time.Duration `yaml:"lateness"`

	// MinPeers is the smallest peer group compared (default 4): GPUs of
	// a job, of a node, nodes of a rack, racks of a datacenter.
	MinPeers int `yaml:"min_peers"`
	// LoadBucket is no longer used (issue 16: a GPU slowed into another
	// bucket lost its peers; load is now a covariate). Accepted and
	// ignored so that older configurations still load.
	LoadBucket float64 `yaml:"load_bucket"`
	// MinLoad is the median load (%) a group needs before activity and
	// bandwidth are compared: idle GPUs are all noise (default 50). A
	// GPU's load is the largest of whatever it reports: utilization, SM
	// or tensor activity (×100), power against its model's peak.
	MinLoad float64 `yaml:"min_load"`
	// IdleLoad: a GPU without a job whose load is below it (%) is idle,
	// not slow, and is left out of activity and bandwidth comparisons
	// (default 10).
	IdleLoad float64 `yaml:"idle_load"`
	// ThroughputRatio flags throughput below this share of the peer median
	// (default 0.90).
	ThroughputRatio float64 `yaml:"throughput_ratio"`
	// NVLinkRatio flags NVLink bandwidth below this share (default 0.85).
	NVLinkRatio float64 `yaml:"nvlink_ratio"`
	// StepTimeRatio flags ranks whose step time is at least this multiple
	// of the job median (default 1.10).
	StepTimeRatio float64 `yaml:"step_time_ratio"`
	// MinZ is how many robust standard deviations (1.4826·MAD) from the
	// peer median a flagged value must also be (default 4).
	MinZ float64 `yaml:"min_z"`
	// NameZ and NameRatio decide which other signals a detection names as
	// deviating: |z| ≥ NameZ and |value/median − 1| ≥ NameRatio (3, 0.05).
	NameZ     float64 `yaml:"name_z"`
	NameRatio float64 `yaml:"name_ratio"`
	// PersistK of the last PersistN windows must fire before a rule raises
	// a detection (default 2 of 3).
	PersistK int `yaml:"persist_k"`
	PersistN int `yaml:"persist_n"`

	// TempExcess flags a GPU this many °C hotter than its peers' median at
	// equal load (default 6).
	TempExcess float64 `yaml:"temp_excess"`
	// TempPersistK is the persistence of the temperature rule (default 1 of
	// the last PersistN): a window's mean temperature is smooth (σ ≈ 0.1 °C
	// against a 6 °C threshold), so one window over is not noise, and
	// waiting for a second only delays the warning by a window.
	TempPersistK int `yaml:"temp_persist_k"`
	// Error-rate prediction: a window's count is tested against a Poisson
	// with the largest of the GPU's own baseline rate, the fleet median
	// rate and this floor, per second (defaults 1e-4 ECC, 1e-3 NVLink,
	// 1e-3 PCIe); a count with tail probability below RateAlpha fires
	// (default 1e-6).
	ECCFloor    float64 `yaml:"ecc_floor_per_s"`
	NVLinkFloor float64 `yaml:"nvlink_floor_per_s"`
	PCIeFloor   float64 `yaml:"pcie_floor_per_s"`
	RateAlpha   float64 `yaml:"rate_alpha"`
	// EscalateAfter: a hardware degradation (correctable-ECC, NVLink or
	// PCIe error rate, temperature above peers) whose rule has stayed
	// flagged this long becomes an error (alerting pages) with a drain or
	// RMA action; before, it is a warning (default 5m). Gaps shorter than
	// EscalateAfter do not end the episode: an intermittent degradation
	// escalates too. NVLink errors with NVLink bandwidth below peers are
	// an error at once.
	EscalateAfter time.Duration `yaml:"escalate_after"`
	// BaselineWeight is the EWMA weight of a quiet window in a GPU's own
	// baseline error rate (default 0.05).
	BaselineWeight float64 `yaml:"baseline_weight"`

	// Heartbeat is the metric whose absence means a GPU stopped reporting
	// (default DCGM_FI_DEV_GPU_TEMP); LostAfter how far back a GPU must
	// have reported to be missed (default 5m).
	Heartbeat string        `yaml:"heartbeat"`
	LostAfter time.Duration `yaml:"lost_after"`
	// Warmup is how many windows before the last evaluated one a restart
	// replays to rebuild persistence and baselines (default 10).
	Warmup int `yaml:"warmup"`
	// Shard limits the detector to the GPUs of the datacenters in one
	// shard, when analyzers share the fleet (zero: every GPU). Every peer
	// group (job, node, rack, datacenter) lies within a datacenter, so the
	// comparisons are those of the whole fleet; the figures taken per GPU
	// model across the fleet (the median error rate under the Poisson
	// floors, a model's observed peak power for load) are the shard's.
	Shard fleet.Shard `yaml:"-"`
}

// NewDefaultConfig returns the defaults.
func NewDefaultConfig() Config {
	return Config{
		Name: "fleet_health", Interval: 30 * time.Second,
		MinPeers: 4, MinLoad: 50, IdleLoad: 10, EscalateAfter: 5 * time.Minute,
		ThroughputRatio: 0.90, NVLinkRatio: 0.85, StepTimeRatio: 1.10,
		MinZ: 4, NameZ: 3, NameRatio: 0.05, PersistK: 2, PersistN: 3,
		TempExcess: 6, TempPersistK: 1, ECCFloor: 1e-4, NVLinkFloor: 1e-3, PCIeFloor: 1e-3, RateAlpha: 1e-6, BaselineWeight: 0.05,
		Heartbeat: "DCGM_FI_DEV_GPU_TEMP", LostAfter: 5 * time.Minute, Warmup: 10,
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	errs := engine.CheckSchedule(c.Name, c.Interval, c.Lateness)
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.MinPeers < 3 {
		bad("min_peers %d: a median of fewer than 3 peers is no comparison", c.MinPeers)
	}
	if c.MinLoad < 0 || c.MinLoad > 100 || c.IdleLoad < 0 || c.IdleLoad > c.MinLoad {
		bad("min_load %v and idle_load %v: want 0 ≤ idle_load ≤ min_load ≤ 100", c.MinLoad, c.IdleLoad)
	}
	if c.EscalateAfter < c.Interval {
		bad("escalate_after %v is shorter than the interval %v", c.EscalateAfter, c.Interval)
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"throughput_ratio", c.ThroughputRatio}, {"nvlink_ratio", c.NVLinkRatio}} {
		if r.v <= 0 || r.v >= 1 {
			bad("%s %v: want (0, 1)", r.name, r.v)
		}
	}
	if c.StepTimeRatio <= 1 {
		bad("step_time_ratio %v: want > 1", c.StepTimeRatio)
	}
	if c.MinZ <= 0 || c.NameZ <= 0 || c.NameRatio < 0 {
		bad("min_z %v and name_z %v must be positive, name_ratio %v not negative", c.MinZ, c.NameZ, c.NameRatio)
	}
	if c.PersistN < 1 || c.PersistN > 8 || c.PersistK < 1 || c.PersistK > c.PersistN {
		bad("persist_k %d of persist_n %d: want 1 ≤ k ≤ n ≤ 8", c.PersistK, c.PersistN)
	}
	if c.TempPersistK < 1 || c.TempPersistK > c.PersistN {
		bad("temp_persist_k %d: want 1 ≤ k ≤ persist_n %d", c.TempPersistK, c.PersistN)
	}
	if c.TempExcess <= 0 {
		bad("temp_excess %v must be positive", c.TempExcess)
	}
	if c.ECCFloor <= 0 || c.NVLinkFloor <= 0 || c.PCIeFloor <= 0 {
		bad("ecc, nvlink and pcie floors must be positive")
	}
	if c.RateAlpha <= 0 || c.RateAlpha >= 0.5 {
		bad("rate_alpha %v: want (0, 0.5)", c.RateAlpha)
	}
	if c.BaselineWeight <= 0 || c.BaselineWeight > 1 {
		bad("baseline_weight %v: want (0, 1]", c.BaselineWeight)
	}
	if c.Heartbeat == "" {
		bad("heartbeat metric is empty")
	}
	if c.LostAfter < c.Interval {
		bad("lost_after %v is shorter than the interval %v", c.LostAfter, c.Interval)
	}
	if c.Warmup < 0 {
		bad("warmup %d is negative", c.Warmup)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("health: %w", err)
	}
	return nil
}
