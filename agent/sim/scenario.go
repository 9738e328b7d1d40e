// Package sim is the fleet simulator used by tests, the demo and benchmarks:
// N nodes × G GPUs behind go-nvml's mock (so the agent's real NVML code reads
// them), with realistic baselines and noise, topology, training jobs whose
// ranks report step times, model-serving traffic producing inference events
// and delayed labels, and injectable faults. Scenarios are small YAML files,
// or drawn from a seed by Generate (generate.go: two GPU models, co-tenants,
// noisy telemetry, nested and intermittent faults); every run records its
// ground truth (which fault, where, from when to when) for scoring
// detectors.
package sim

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"gopkg.in/yaml.v3"
)

// Scenario is a simulation: a fleet, its workloads and the faults to inject.
type Scenario struct {
	Name string `yaml:"name"`
	Seed uint64 `yaml:"seed"`
	// Start is the simulated start time (default: now, truncated to the interval).
	Start time.Time `yaml:"start"`
	// Duration of the run (0 = until stopped).
	Duration time.Duration `yaml:"duration"`
	// Interval between GPU samples (default 1s).
	Interval time.Duration `yaml:"interval"`
	Fleet    FleetSpec     `yaml:"fleet"`
	Jobs     []JobSpec     `yaml:"jobs"`
	Models   []ModelSpec   `yaml:"models"`
	// Deployments change a model's version at a time offset.
	Deployments []DeploymentSpec `yaml:"deployments"`
	Faults      []FaultSpec      `yaml:"faults"`
	// CoTenants are neighbour workloads (not faults, cotenant.go).
	CoTenants []CoTenantSpec `yaml:"co_tenants"`
	// Noise is what the telemetry loses or garbles on its way (noise.go).
	Noise NoiseSpec `yaml:"noise"`
}

// FleetSpec lays out the hardware.
type FleetSpec struct {
	Datacenters  int    `yaml:"datacenters"`
	RowsPerDC    int    `yaml:"rows_per_datacenter"`
	RacksPerRow  int    `yaml:"racks_per_row"`
	NodesPerRack int    `yaml:"nodes_per_rack"`
	GPUsPerNode  int    `yaml:"gpus_per_node"`
	GPUModel     string `yaml:"gpu_model"`
	NVLinks      int    `yaml:"nvlinks"`
	Cluster      string `yaml:"cluster"`
	// InletC is the facility's cold-aisle temperature (default 24).
	InletC float64 `yaml:"inlet_c"`
	// IdleLoad is the load of GPUs without a job (default 0.05).
	IdleLoad float64 `yaml:"idle_load"`
	// ModelByRack gives racks another GPU model than GPUModel (models.go).
	ModelByRack map[string]string `yaml:"model_by_rack"`
}

// JobSpec is a synchronous training job spread over whole nodes.
type JobSpec struct {
	Name string `yaml:"name"`
	// FirstNode and Nodes select node indexes [FirstNode, FirstNode+Nodes).
	FirstNode int `yaml:"first_node"`
	Nodes     int `yaml:"nodes"`
	// StepSeconds is the healthy step time of every rank (default 1.0).
	StepSeconds float64 `yaml:"step_seconds"`
	// BatchPerRank is the samples per step and rank (default 32).
	BatchPerRank int `yaml:"batch_per_rank"`
	// Checkpoint is how often and how long the job checkpoints (jobs.go).
	Checkpoint CheckpointSpec `yaml:"checkpoint"`
}

// FeatureSpec is one model input.
type FeatureSpec struct {
	Name string `yaml:"name"`
	// Numeric features are normal(Mean, SD); categorical ones draw Values with Probs.
	Mean   float64   `yaml:"mean"`
	SD     float64   `yaml:"sd"`
	Values []string  `yaml:"values"`
	Probs  []float64 `yaml:"probs"`
	// MissingRate is the share of requests without this feature.
	MissingRate float64 `yaml:"missing_rate"`
}

// ModelSpec is a served model.
type ModelSpec struct {
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
	// Pipeline is the upstream feature pipeline the model reads from.
	Pipeline string        `yaml:"pipeline"`
	Features []FeatureSpec `yaml:"features"`
	// RPS is requests per second (default 10).
	RPS float64 `yaml:"rps"`
	// LatencyMs is the median latency (default 20); LatencySpread the
	// log-normal sigma (default 0.25).
	LatencyMs     float64 `yaml:"latency_ms"`
	LatencySpread float64 `yaml:"latency_spread"`
	ErrorRate     float64 `yaml:"error_rate"`
	// LabelDelay and LabelFraction control delayed ground truth.
	LabelDelay    time.Duration `yaml:"label_delay"`
	LabelFraction float64       `yaml:"label_fraction"`
	// Node serves the model (its host name); default the last node.
	Node string `yaml:"node"`
	// SampleRate is the share of requests the agent keeps (default 1).
	SampleRate float64 `yaml:"sample_rate"`
}

// DeploymentSpec changes a model's version: a deploy replaces it at once;
// a canary sends Share of the model's requests to the new version, which
// serves with its own latency and error rate, until the canary is
// promoted or rolled back (Serving.Promote, Serving.Rollback: a rollout
// controller's decisions, such as the demo's on the canary judge's
// verdicts).
type DeploymentSpec struct {
	Model   string        `yaml:"model"`
	Version string        `yaml:"version"`
	At      time.Duration `yaml:"at"`
	// Change is deploy (default) or canary.
	Change string `yaml:"change"`
	// Share is a canary's part of the model's requests (default 0.1).
	Share float64 `yaml:"share"`
	// LatencyMs and ErrorRate are the new version's median latency and
	// error rate; 0 keeps the model's (a version no worse than it).
	LatencyMs float64 `yaml:"latency_ms"`
	ErrorRate float64 `yaml:"error_rate"`
}

// Deployment changes.
const (
	ChangeDeploy   = "deploy"
	ChangeCanary   = "canary"
	ChangePromote  = "promote"
	ChangeRollback = "rollback"
)

// Fault types.
const (
	FaultGPUFan         = "gpu_fan"              // one GPU runs hot: its fan
	FaultNodeCooling    = "node_cooling"         // all GPUs of a node run hot
	FaultRackCDU        = "rack_cdu"             // every node of a rack runs hot: its coolant distribution unit
	FaultFacilityTemp   = "facility_temperature" // the whole datacenter's inlet rises: chillers
	FaultECCRamp        = "ecc_ramp"             // correctable ECC errors ramp up, ending in XID 48
	FaultNVLink         = "nvlink_degradation"   // rising CRC/replay errors, bandwidth falling to a fraction
	FaultStraggler      = "straggler"            // gray failure: slower with no error at all
	FaultXID79          = "xid79"                // fell off the bus
	FaultCovariateDrift = "covariate_drift"      // a feature's distribution shifts
	FaultLatency        = "latency_regression"   // a model's latency grows
	FaultErrorSpike     = "error_spike"          // a model's error rate spikes
	FaultStaleFeatures  = "stale_features"       // a feature pipeline stalls: values stop changing
)

// Target selects where a fault happens. Hardware faults name a node (and a
// GPU index), a rack, a row or a datacenter; model faults a model or a
// pipeline (and a feature).
type Target struct {
	Datacenter string `yaml:"datacenter"`
	Row        string `yaml:"row"`
	Rack       string `yaml:"rack"`
	Node       string `yaml:"node"`
	GPU        *int   `yaml:"gpu"`
	Model      string `yaml:"model"`
	Pipeline   string `yaml:"pipeline"`
	Feature    string `yaml:"feature"`
	// Job (and Rank) for training-job faults (jobs.go).
	Job  string `yaml:"job"`
	Rank *int   `yaml:"rank"`
}

// FaultSpec injects one fault from Start to End (offsets from the run's start).
type FaultSpec struct {
	Name   string        `yaml:"name"`
	Type   string        `yaml:"type"`
	Target Target        `yaml:"target"`
	Start  time.Duration `yaml:"start"`
	End    time.Duration `yaml:"end"`
	// Magnitude: °C for thermal faults (default 20, reached after Ramp),
	// the remaining throughput or bandwidth fraction for straggler (0.75) and
	// nvlink_degradation (0.5), the shift in SDs for covariate_drift (1.5),
	// the latency factor (3), the error rate (0.2), and for ecc_ramp the
	// correctable-error rate per second at the ramp's start (0.05; it grows
	// e⁴ ≈ 55-fold by the end).
	Magnitude float64 `yaml:"magnitude"`
	// Ramp is how long the fault takes to reach full strength (default 60s for
	// thermal faults and degradations, 0 otherwise).
	Ramp time.Duration `yaml:"ramp"`
	// Every and For make a fault intermittent: it acts for For at the
	// start of every Every (ramping up again each time), from Start to End.
	Every time.Duration `yaml:"every"`
	For   time.Duration `yaml:"for"`
}

var faultTypes = map[string]bool{
	FaultGPUFan: true, FaultNodeCooling: true, FaultRackCDU: true, FaultFacilityTemp: true, FaultECCRamp: true,
	FaultNVLink: true, FaultStraggler: true, FaultXID79: true, FaultCovariateDrift: true, FaultLatency: true,
	FaultErrorSpike: true, FaultStaleFeatures: true,
}

// Load reads a scenario file.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	sc, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	return sc, nil
}

// Parse reads a scenario from YAML; unknown keys are errors.
func Parse(data []byte) (*Scenario, error) {
	var sc Scenario
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&sc); err != nil {
		return nil, err
	}
	sc.setDefaults()
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	return &sc, nil
}

func (sc *Scenario) setDefaults() {
	if sc.Name == "" {
		sc.Name = "scenario"
	}
	if sc.Seed == 0 {
		sc.Seed = 1
	}
	if sc.Interval == 0 {
		sc.Interval = time.Second
	}
	if sc.Start.IsZero() {
		sc.Start = time.Now().UTC().Truncate(sc.Interval)
	}
	f := &sc.Fleet
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setInt(&f.Datacenters, 1)
	setInt(&f.RowsPerDC, 1)
	setInt(&f.RacksPerRow, 1)
	setInt(&f.NodesPerRack, 2)
	setInt(&f.GPUsPerNode, 8)
	setInt(&f.NVLinks, 18)
	if f.GPUModel == "" {
		f.GPUModel = "NVIDIA H100 80GB HBM3"
	}
	if f.Cluster == "" {
		f.Cluster = "sim"
	}
	if f.InletC == 0 {
		f.InletC = 24
	}
	if f.IdleLoad == 0 {
		f.IdleLoad = 0.05
	}
	for i := range sc.Jobs {
		j := &sc.Jobs[i]
		if j.StepSeconds == 0 {
			j.StepSeconds = 1
		}
		if j.BatchPerRank == 0 {
			j.BatchPerRank = 32
		}
	}
	for i := range sc.Models {
		m := &sc.Models[i]
		if m.Version == "" {
			m.Version = "v1"
		}
		if m.RPS == 0 {
			m.RPS = 10
		}
		if m.LatencyMs == 0 {
			m.LatencyMs = 20
		}
		if m.LatencySpread == 0 {
			m.LatencySpread = 0.25
		}
		if m.SampleRate == 0 {
			m.SampleRate = 1
		}
	}
	for i := range sc.Deployments {
		d := &sc.Deployments[i]
		if d.Change == "" {
			d.Change = ChangeDeploy
		}
		if d.Change == ChangeCanary && d.Share == 0 {
			d.Share = 0.1
		}
	}
	for i := range sc.Faults {
		ft := &sc.Faults[i]
		if ft.Name == "" {
			ft.Name = fmt.Sprintf("%s-%d", ft.Type, i+1)
		}
		if ft.Magnitude == 0 {
			ft.Magnitude = map[string]float64{FaultGPUFan: 25, FaultNodeCooling: 22, FaultRackCDU: 20, FaultFacilityTemp: 15,
				FaultStraggler: 0.75, FaultNVLink: 0.5, FaultCovariateDrift: 1.5, FaultLatency: 3, FaultErrorSpike: 0.2,
				FaultECCRamp: 0.05}[ft.Type]
		}
		if ft.Ramp == 0 {
			switch ft.Type {
			case FaultGPUFan, FaultNodeCooling, FaultRackCDU, FaultFacilityTemp, FaultNVLink:
				ft.Ramp = 60 * time.Second
			}
		}
		if ft.End == 0 {
			ft.End = sc.Duration
		}
	}
	sc.setJobDefaults()
}

// Nodes is the fleet's node count.
func (f FleetSpec) Nodes() int { return f.Datacenters * f.RowsPerDC * f.RacksPerRow * f.NodesPerRack }

// Validate reports every problem at once.
func (sc *Scenario) Validate() error {
	var errs []error
	f := sc.Fleet
	if f.Datacenters < 0 || f.RowsPerDC < 0 || f.RacksPerRow < 0 || f.NodesPerRack < 0 || f.GPUsPerNode < 0 {
		errs = append(errs, errors.New("fleet: counts must not be negative"))
	}
	if f.GPUsPerNode > 16 {
		errs = append(errs, fmt.Errorf("fleet.gpus_per_node %d: at most 16", f.GPUsPerNode))
	}
	if f.NVLinks > 18 || f.NVLinks < 0 {
		errs = append(errs, fmt.Errorf("fleet.nvlinks %d: 0 to 18", f.NVLinks))
	}
	if sc.Interval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("interval %v is below 10ms", sc.Interval))
	}
	nodes := f.Nodes()
	for _, j := range sc.Jobs {
		if j.Name == "" || j.Nodes <= 0 || j.FirstNode < 0 || j.FirstNode+j.Nodes > nodes {
			errs = append(errs, fmt.Errorf("job %q: needs a name and nodes within 0..%d", j.Name, nodes-1))
		}
	}
	models := map[string]bool{}
	pipelines := map[string]bool{}
	for _, m := range sc.Models {
		if m.Name == "" || models[m.Name] {
			errs = append(errs, fmt.Errorf("model %q: names must be set and unique", m.Name))
		}
		models[m.Name] = true
		if m.Pipeline != "" {
			pipelines[m.Pipeline] = true
		}
		if m.SampleRate <= 0 || m.SampleRate > 1 {
			errs = append(errs, fmt.Errorf("model %s: sample_rate %v must be in (0, 1]", m.Name, m.SampleRate))
		}
		for _, ft := range m.Features {
			if len(ft.Values) != len(ft.Probs) {
				errs = append(errs, fmt.Errorf("model %s feature %s: values and probs differ in length", m.Name, ft.Name))
			}
		}
	}
	errs = append(errs, sc.validateMix()...)
	for _, d := range sc.Deployments {
		if !models[d.Model] {
			errs = append(errs, fmt.Errorf("deployment of unknown model %q", d.Model))
		}
		if d.Change != ChangeDeploy && d.Change != ChangeCanary {
			errs = append(errs, fmt.Errorf("deployment of %s %s: change %q, want deploy or canary", d.Model, d.Version, d.Change))
		}
		if d.Change == ChangeCanary && !(d.Share > 0 && d.Share < 1) {
			errs = append(errs, fmt.Errorf("canary of %s %s: share %v must be in (0, 1)", d.Model, d.Version, d.Share))
		}
		if d.LatencyMs < 0 || d.ErrorRate < 0 || d.ErrorRate > 1 {
			errs = append(errs, fmt.Errorf("deployment of %s %s: latency_ms %v and error_rate %v must not be negative (error_rate at most 1)", d.Model, d.Version, d.LatencyMs, d.ErrorRate))
		}
	}
	for _, ft := range sc.Faults {
		if !faultTypes[ft.Type] && !jobFaultTypes[ft.Type] {
			errs = append(errs, fmt.Errorf("fault %s: unknown type %q", ft.Name, ft.Type))
			continue
		}
		if ft.End != 0 && ft.End <= ft.Start {
			errs = append(errs, fmt.Errorf("fault %s: end %v is not after start %v", ft.Name, ft.End, ft.Start))
		}
		if ft.Every < 0 || ft.For < 0 || (ft.Every > 0 && ft.For >= ft.Every) || (ft.Every == 0 && ft.For > 0) {
			errs = append(errs, fmt.Errorf("fault %s: an intermittent fault needs 0 < for (%v) < every (%v)", ft.Name, ft.For, ft.Every))
		}
		t := ft.Target
		switch ft.Type {
		case FaultGPUFan, FaultECCRamp, FaultNVLink, FaultStraggler, FaultXID79:
			if t.Node == "" || t.GPU == nil || *t.GPU < 0 || *t.GPU >= f.GPUsPerNode {
				errs = append(errs, fmt.Errorf("fault %s: needs target.node and target.gpu (0..%d)", ft.Name, f.GPUsPerNode-1))
			}
		case FaultNodeCooling:
			if t.Node == "" {
				errs = append(errs, fmt.Errorf("fault %s: needs target.node", ft.Name))
			}
		case FaultRackCDU:
			if t.Rack == "" {
				errs = append(errs, fmt.Errorf("fault %s: needs target.rack", ft.Name))
			}
		case FaultFacilityTemp:
			if t.Datacenter == "" {
				errs = append(errs, fmt.Errorf("fault %s: needs target.datacenter", ft.Name))
			}
		case FaultCovariateDrift, FaultStaleFeatures:
			if (t.Model == "" || !models[t.Model]) && (t.Pipeline == "" || !pipelines[t.Pipeline]) {
				errs = append(errs, fmt.Errorf("fault %s: needs a known target.model or target.pipeline", ft.Name))
			}
		case FaultLatency, FaultErrorSpike:
			if !models[t.Model] {
				errs = append(errs, fmt.Errorf("fault %s: needs a known target.model", ft.Name))
			}
		}
	}
	errs = append(errs, sc.validateJobs()...)
	return errors.Join(errs...)
}
