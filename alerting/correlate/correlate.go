// Package correlate groups active detections into incident candidates at
// the level that explains them: up the physical tree GPU ⊂ node ⊂ rack ⊂
// row ⊂ datacenter ⊂ fleet for hardware, and up the dependency graph model
// ⊂ shared upstream ⊂ portfolio ⊂ fleet for models, as the design documents
// describe (k of a node's GPUs → node; a share of a rack's nodes → rack;
// racks in several rows → datacenter; more than 0.6 of the models → fleet).
//
// Correlation is a pure function of the active detections, the inventory
// and the catalog: the same detections always give the same candidates with
// the same keys, so a restarted analyzer finds the incidents it left.
package correlate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
)

// Config holds the correlation thresholds.
type Config struct {
	// NodeMinGPUs and NodeFraction: a node explains its GPUs' detections
	// when at least max(NodeMinGPUs, NodeFraction × its GPUs) are affected.
	NodeMinGPUs  int     `yaml:"node_min_gpus"`
	NodeFraction float64 `yaml:"node_fraction"`
	// RackMinNodes and RackFraction: a rack explains its nodes' when at
	// least max(RackMinNodes, RackFraction × its nodes) are affected (each
	// node explains its own GPUs, see NodeMinGPUs) or, for a spanning
	// family, merely have detections.
	RackMinNodes int     `yaml:"rack_min_nodes"`
	RackFraction float64 `yaml:"rack_fraction"`
	// RowMinRacks and RowFraction: the same for a row and its racks.
	RowMinRacks int     `yaml:"row_min_racks"`
	RowFraction float64 `yaml:"row_fraction"`
	// DatacenterMinRacks: affected racks in at least two rows of one
	// datacenter (or two affected rows) make a facility incident when they
	// are at least this many.
	DatacenterMinRacks int `yaml:"datacenter_min_racks"`
	// FleetMinDatacenters affected datacenters make one fleet incident.
	FleetMinDatacenters int `yaml:"fleet_min_datacenters"`
	// FleetThreshold: when more than this share of the catalog's models is
	// anomalous in one family, one fleet-wide incident (design documents:
	// fraction > 0.6). PortfolioThreshold: at least this share within a
	// domain.
	FleetThreshold     float64 `yaml:"fleet_threshold"`
	PortfolioThreshold float64 `yaml:"portfolio_threshold"`
	// UpstreamMinModels anomalous consumers, being at least
	// UpstreamFraction of the upstream's consumers, attribute them to it.
	UpstreamMinModels int     `yaml:"upstream_min_models"`
	UpstreamFraction  float64 `yaml:"upstream_fraction"`
	// Families groups detection classes that one cause produces, e.g. a
	// failing CDU shows as gpu_thermal on some GPUs and cooling on others.
	// A class in no family is a family of its own.
	Families map[string][]string `yaml:"families"`
	// SpanningFamilies are the families whose cause is shared
	// infrastructure that shows on some GPUs of many nodes without taking
	// a whole node (a rack's CDU heats the top GPUs of each node): a rack
	// explains them when enough of its nodes have any detection. Every
	// other family needs evidence that the rack explains its nodes: enough
	// of them affected as whole nodes, or a detection about the rack
	// itself. Two unrelated GPU faults on two nodes of a rack stay two GPU
	// incidents.
	SpanningFamilies []string `yaml:"spanning_families"`
	// HardwareTeam and HardwareOncall own hardware incidents (GPU up to
	// fleet); the catalog owns model incidents.
	HardwareTeam   string `yaml:"hardware_team"`
	HardwareOncall string `yaml:"hardware_oncall"`
	// PipelineFamilies are about the telemetry pipeline, not the hardware:
	// whole nodes that stopped reporting (telemetry_gap). They correlate up
	// the topology like a spanning family, but their candidates are at
	// level pipeline, scoped to the part of the fleet that went silent
	// (one incident however many GPUs it covers), and owned by
	// PipelineTeam and PipelineOncall, who run the agents, the collector
	// and ClickHouse.
	PipelineFamilies []string `yaml:"pipeline_families"`
	PipelineTeam     string   `yaml:"pipeline_team"`
	PipelineOncall   string   `yaml:"pipeline_oncall"`
	// JobTeam and JobOncall own training-job incidents (detections about a
	// job as a whole, entity type job): one incident per job, level job,
	// scoped by the job's name.
	JobTeam   string `yaml:"job_team"`
	JobOncall string `yaml:"job_oncall"`
	// PerModelFamilies are model families never attributed to a shared
	// upstream, portfolio or the fleet: each model's detections are its own
	// incident, owned by the model's owner. An upstream model's update
	// (upstream_update, analytics/upstream) alerts each consumer's team,
	// not the upstream's once.
	PerModelFamilies []string `yaml:"per_model_families"`
}

// NewDefaultConfig returns the thresholds of the design documents.
func NewDefaultConfig() Config {
	return Config{
		NodeMinGPUs: 2, NodeFraction: 0.5,
		RackMinNodes: 2, RackFraction: 0.5,
		RowMinRacks: 2, RowFraction: 0.5,
		DatacenterMinRacks: 2, FleetMinDatacenters: 2,
		FleetThreshold: 0.6, PortfolioThreshold: 0.6,
		UpstreamMinModels: 2, UpstreamFraction: 0.5,
		HardwareTeam: "infrastructure", HardwareOncall: "infrastructure-oncall",
		PipelineFamilies: []string{"telemetry_gap"}, PipelineTeam: "observability", PipelineOncall: "observability-oncall",
		JobTeam: "ml-platform", JobOncall: "ml-platform-oncall",
		PerModelFamilies: []string{"upstream_update"},
		Families: map[string][]string{
			"thermal": {"thermal", "gpu_thermal", "cooling", "temperature", "power_thermal"},
			"drift":   {"drift", "covariate_drift", "prediction_drift", "feature_drift", "stale_features", "freshness"},
			// A slow GPU shows as a gray failure (below its peers) and, in a
			// training job, as its rank's straggling step time.
			"performance": {"gpu_gray_failure", "gpu_straggler"},
			// A failing GPU is one problem with one action (drain, reset,
			// RMA) whether its evidence is a definitive event (an
			// uncorrectable ECC error, an NVLink XID) or rising error
			// rates; one incident per GPU, not one per kind of evidence.
			"gpu_failure": {"gpu_hard_fault", "gpu_failure_predicted"},
			// A training job that regresses, stalls or cannot checkpoint is
			// one incident about the job (analytics/jobs).
			"training_job": {"job_step_regression", "job_stalled", "checkpoint_slow", "checkpoint_failed"},
		},
		SpanningFamilies: []string{"thermal"},
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    float64
	}{{"node_fraction", c.NodeFraction}, {"rack_fraction", c.RackFraction}, {"row_fraction", c.RowFraction},
		{"fleet_threshold", c.FleetThreshold}, {"portfolio_threshold", c.PortfolioThreshold}, {"upstream_fraction", c.UpstreamFraction}} {
		if !(f.v > 0 && f.v <= 1) {
			errs = append(errs, fmt.Errorf("%s: %v, want 0 < x <= 1", f.name, f.v))
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"node_min_gpus", c.NodeMinGPUs}, {"rack_min_nodes", c.RackMinNodes}, {"row_min_racks", c.RowMinRacks},
		{"datacenter_min_racks", c.DatacenterMinRacks}, {"fleet_min_datacenters", c.FleetMinDatacenters}, {"upstream_min_models", c.UpstreamMinModels}} {
		if n.v < 2 {
			errs = append(errs, fmt.Errorf("%s: %d, want at least 2 (one child explains itself)", n.name, n.v))
		}
	}
	seen := map[string]string{}
	for fam, classes := range c.Families {
		for _, cl := range classes {
			if other, dup := seen[cl]; dup {
				errs = append(errs, fmt.Errorf("families: class %s is in %s and %s", cl, other, fam))
			}
			seen[cl] = fam
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("correlation: %w", err)
	}
	return nil
}

// Candidate is an incident as correlation sees it now: key, level, scope,
// owner and evidence. The lifecycle turns candidates into incidents.
type Candidate struct {
	Key    string
	Level  incident.Level
	Scope  string
	Family string
	// Topology is the scope's place, for hardware candidates.
	Topology fleet.Topology
	// Models are the models involved, for model candidates, sorted.
	Models   []string
	Team     string
	Oncall   string
	Domain   string
	Runbook  string
	Evidence []*fleet.Detection
}

// Correlator turns active detections into candidates.
type Correlator struct {
	cfg    Config
	family map[string]string
	inv    *Inventory
	cat    *catalog.Catalog
}

// New returns a correlator; inv and cat may be nil (no inventory: only the
// affected children are counted; no catalog: every model stands alone).
func New(cfg Config, inv *Inventory, cat *catalog.Catalog) (*Correlator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Correlator{cfg: cfg, family: map[string]string{}, inv: inv, cat: cat}
	for fam, classes := range cfg.Families {
		for _, cl := range classes {
			c.family[cl] = fam
		}
	}
	if c.inv == nil {
		c.inv = NewInventory()
	}
	return c, nil
}

// Family returns the correlation family of a detection class.
func (c *Correlator) Family(class string) string {
	if f, ok := c.family[class]; ok {
		return f
	}
	return class
}

// isModel reports whether d is about a model rather than hardware.
func isModel(d *fleet.Detection) bool {
	switch d.EntityType {
	case "gpu", "node", "rack", "row", "datacenter":
		return false
	case "model", "feature", "pipeline":
		return true
	}
	return d.Model != "" && d.Node == "" && d.GPUUUID == ""
}

// Correlate groups dets by family and returns the candidates, sorted by key.
func (c *Correlator) Correlate(dets []*fleet.Detection) []Candidate {
	hw := map[string][]*fleet.Detection{}
	models := map[string][]*fleet.Detection{}
	jobs := map[string][]*fleet.Detection{}
	for _, d := range dets {
		f := c.Family(d.Class)
		if isJob(d) {
			jobs[f] = append(jobs[f], d)
		} else if isModel(d) {
			models[f] = append(models[f], d)
		} else {
			hw[f] = append(hw[f], d)
		}
	}
	var out []Candidate
	for f, ds := range hw {
		out = append(out, c.hardware(f, ds)...)
	}
	for f, ds := range models {
		out = append(out, c.models(f, ds)...)
	}
	for f, ds := range jobs {
		out = append(out, c.jobs(f, ds)...)
	}
	slices.SortFunc(out, func(a, b Candidate) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// atLeast is max(minimum, ceil(frac × total)).
func atLeast(minimum int, frac float64, total int) int {
	return max(minimum, int(math.Ceil(frac*float64(total)-1e-9)))
}

func key(family string, level incident.Level, scope string) string {
	return family + "/" + string(level) + "/" + scope
}
