// Package catalog reads the model catalog: one entry per model in the
// registry format of the design documents (model name, version, type,
// domain; dependencies.upstream/downstream; serving; ownership.team/oncall)
// plus SLOs, the canary judge's settings (canary), the autoscaling policy
// (scaling), the version's offline evaluation and last-known-good version
// (evaluation), and the non-model components models depend on (feature
// pipelines, feature stores) with their owners. From it alerting gets
// portfolios (domains), the dependency graph and who owns what, and the SLO
// detector its objectives. It is part of the ground layer's shared domain
// (docs/ARCHITECTURE.md, "Layers").
//
// A catalog file is a YAML stream. Each document is either one registry
// entry (a "model:" mapping at the top, as in the design documents) or a
// list document with "models:" and "components:" keys; see
// deploy/catalog.example.yaml.
package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Ownership says who owns a model or component, and which cost centre
// its spend is charged to (the design documents' tagging schema; issue 19
// fills a GPU holder's team and cost centre from its model's owner).
type Ownership struct {
	Team       string `yaml:"team"`
	Oncall     string `yaml:"oncall"`
	CostCenter string `yaml:"cost_center"`
}

// Target is one place a model is served: a node, or a single GPU.
type Target struct {
	Datacenter string `yaml:"datacenter"`
	Rack       string `yaml:"rack"`
	Node       string `yaml:"node"`
	GPUUUID    string `yaml:"gpu_uuid"`
}

// Serving is the registry's serving section plus where the model runs.
type Serving struct {
	MinReplicas        int      `yaml:"min_replicas"`
	MaxReplicas        int      `yaml:"max_replicas"`
	LatencyP99TargetMs float64  `yaml:"latency_p99_target_ms"`
	MemoryGB           float64  `yaml:"memory_gb"`
	Targets            []Target `yaml:"targets"`
}

// SLO kinds.
const (
	SLOLatency      = "latency"
	SLOAvailability = "availability"
)

// SLO is a service-level objective on a model's inference events: the share
// of good events over the SLO period is at least Objective. A latency SLO's
// bad events are those slower than LatencyMs; an availability SLO's those
// whose status is not ok.
type SLO struct {
	Name      string  `yaml:"name"`
	Kind      string  `yaml:"kind"`
	Objective float64 `yaml:"objective"`
	LatencyMs float64 `yaml:"latency_ms"`
}

// Canary is a model's own settings for the canary judge (issue 20,
// analytics/canary): a zero field keeps the default of the model's type
// (ModelType, else derived from Type and Domain). The judge validates the
// result; the catalog only rejects negative values.
type Canary struct {
	ModelType         string        `yaml:"model_type"`
	Alpha             float64       `yaml:"alpha"`
	ErrorRateIncrease float64       `yaml:"error_rate_increase"`
	EngagementDrop    float64       `yaml:"engagement_drop"`
	LatencyP99Ratio   float64       `yaml:"latency_p99_ratio"`
	GateP50Ms         float64       `yaml:"gate_p50_ms"`
	GateP99Ms         float64       `yaml:"gate_p99_ms"`
	ErrorRateWindow   time.Duration `yaml:"error_rate_window"`
	EngagementWindow  time.Duration `yaml:"engagement_window"`
	LatencyWindow     time.Duration `yaml:"latency_window"`
	// AccuracyDrop is the delayed-label accuracy drop, in points (0.02),
	// that fails a canary; AccuracyWindow the least time before that rule
	// may pass.
	AccuracyDrop   float64       `yaml:"accuracy_drop"`
	AccuracyWindow time.Duration `yaml:"accuracy_window"`
	// GateMinRequests is the evaluation gate's least canary requests
	// before the canary may widen (default 500).
	GateMinRequests     int  `yaml:"gate_min_requests"`
	DriftIsRollback     bool `yaml:"drift_is_rollback"`
	DisableEngagement   bool `yaml:"disable_engagement"`
	DisableLatencyRatio bool `yaml:"disable_latency_ratio"`
	DisableAccuracy     bool `yaml:"disable_accuracy"`
}

func (c Canary) validate() error {
	var errs []error
	for name, v := range map[string]float64{"alpha": c.Alpha, "error_rate_increase": c.ErrorRateIncrease, "engagement_drop": c.EngagementDrop, "accuracy_drop": c.AccuracyDrop,
		"latency_p99_ratio": c.LatencyP99Ratio, "gate_p50_ms": c.GateP50Ms, "gate_p99_ms": c.GateP99Ms} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("canary.%s %v is negative", name, v))
		}
	}
	if c.GateMinRequests < 0 {
		errs = append(errs, fmt.Errorf("canary.gate_min_requests %d is negative", c.GateMinRequests))
	}
	for name, v := range map[string]time.Duration{"error_rate_window": c.ErrorRateWindow, "engagement_window": c.EngagementWindow, "accuracy_window": c.AccuracyWindow, "latency_window": c.LatencyWindow} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("canary.%s %v is negative", name, v))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// Scaling is a model's autoscaling policy (issue 20, analytics/scaling):
// the replica count the analyzer recommends is Little's law's concurrency
// (request rate × mean latency) over PerReplicaConcurrency, rounded up to
// a multiple of Step and clamped to the serving section's min_replicas and
// max_replicas. LoadTime is how long a new replica takes to load the model
// and serve: the recommendation uses the rate forecast that far ahead. A
// model without a per_replica_concurrency gets no recommendation.
type Scaling struct {
	// PerReplicaConcurrency is the requests one replica serves at once at
	// its latency target (in flight, queued ones included).
	PerReplicaConcurrency float64 `yaml:"per_replica_concurrency"`
	// Step is the replica granularity in GPUs: 1, 2 or 4 (default 1).
	Step int `yaml:"step"`
	// LoadTime is a new replica's time from start to serving.
	LoadTime time.Duration `yaml:"load_time"`
}

// ScalingSteps are the allowed Scaling.Step values.
var ScalingSteps = []int{1, 2, 4}

// Enabled reports whether the model asks for replica recommendations.
func (s Scaling) Enabled() bool { return s.PerReplicaConcurrency > 0 }

func (s Scaling) validate(sv Serving) error {
	var errs []error
	if s.PerReplicaConcurrency < 0 {
		errs = append(errs, fmt.Errorf("scaling.per_replica_concurrency %v is negative", s.PerReplicaConcurrency))
	}
	if s.Step != 0 && !slices.Contains(ScalingSteps, s.Step) {
		errs = append(errs, fmt.Errorf("scaling.step %d, want 1, 2 or 4", s.Step))
	}
	if s.LoadTime < 0 {
		errs = append(errs, fmt.Errorf("scaling.load_time %v is negative", s.LoadTime))
	}
	if sv.MinReplicas < 0 || sv.MaxReplicas < 0 {
		errs = append(errs, fmt.Errorf("serving: min_replicas %d and max_replicas %d must not be negative", sv.MinReplicas, sv.MaxReplicas))
	} else if sv.MaxReplicas > 0 && sv.MinReplicas > sv.MaxReplicas {
		errs = append(errs, fmt.Errorf("serving: min_replicas %d is above max_replicas %d", sv.MinReplicas, sv.MaxReplicas))
	}
	return errors.Join(errs...)
}

// Evaluation is the registry's evaluation section (issue 20, item 4):
// what the version was evaluated on offline, from which data and code,
// and the version to roll back to. The canary judge's verdicts carry it,
// so a rollback names LastKnownGood.
type Evaluation struct {
	// OfflineMetrics are the offline evaluation's results, name → value
	// (e.g. auc: 0.94).
	OfflineMetrics map[string]float64 `yaml:"offline_metrics" json:"offline_metrics,omitempty"`
	DataVersion    string             `yaml:"data_version" json:"data_version,omitempty"`
	CodeCommit     string             `yaml:"code_commit" json:"code_commit,omitempty"`
	// LastKnownGood is the version a failed rollout returns to.
	LastKnownGood string `yaml:"last_known_good" json:"last_known_good,omitempty"`
}

func (e Evaluation) validate(version string) error {
	var errs []error
	for name, v := range e.OfflineMetrics {
		if name == "" {
			errs = append(errs, errors.New("evaluation.offline_metrics has an empty name"))
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			errs = append(errs, fmt.Errorf("evaluation.offline_metrics.%s is %v", name, v))
		}
	}
	if e.CodeCommit != "" && !isHex(e.CodeCommit) {
		errs = append(errs, fmt.Errorf("evaluation.code_commit %q is not a hex commit id", e.CodeCommit))
	}
	if e.LastKnownGood != "" && e.LastKnownGood == version {
		errs = append(errs, fmt.Errorf("evaluation.last_known_good %q is the model's own version", e.LastKnownGood))
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// isHex reports whether s is 7 to 64 hex digits (a short or full git or
// sha256 commit id).
func isHex(s string) bool {
	if len(s) < 7 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

// Model is one catalog entry.
type Model struct {
	Name    string
	Version string
	Type    string
	// Domain is the model's portfolio.
	Domain string
	// Upstream and Downstream are the dependency edges as written, with
	// a "models/" prefix removed so that they name catalog models.
	Upstream, Downstream []string
	Serving              Serving
	Ownership            Ownership
	SLOs                 []SLO
	Runbook              string
	// Canary overrides the canary judge's defaults for this model.
	Canary Canary
	// Scaling is the model's autoscaling policy.
	Scaling Scaling
	// Evaluation is the version's offline evaluation and last-known-good
	// version.
	Evaluation Evaluation
}

// Component is something models depend on that is not a model itself.
type Component struct {
	Name      string    `yaml:"name"`
	Type      string    `yaml:"type"`
	Ownership Ownership `yaml:"ownership"`
	Runbook   string    `yaml:"runbook"`
	// Features are the features a feature pipeline serves, each with its
	// freshness type (and SLO).
	Features []Feature `yaml:"features"`
}

// Feature types by how often their values must be updated (design document
// 003, "Freshness SLOs", table 33): each has its own freshness SLO.
const (
	FeatureStatic         = "static"          // days, batch
	FeatureSlowlyChanging = "slowly_changing" // hours, batch
	FeatureSession        = "session"         // minutes, streaming
	FeatureRealtime       = "realtime"        // seconds, streaming or on demand
)

// FeatureTypes lists the feature types, slowest first.
var FeatureTypes = []string{FeatureStatic, FeatureSlowlyChanging, FeatureSession, FeatureRealtime}

// ComponentFeaturePipeline is the component type of a feature pipeline.
const ComponentFeaturePipeline = "feature_pipeline"

// Feature is one feature a pipeline serves. FreshnessSLO, when set,
// overrides the default SLO of its type: the longest a served value may go
// without an update.
type Feature struct {
	Name         string        `yaml:"name"`
	Type         string        `yaml:"type"`
	FreshnessSLO time.Duration `yaml:"freshness_slo"`
}

// entry is one model in the registry's YAML shape.
type entry struct {
	Model struct {
		Name    string `yaml:"name"`
		Version string `yaml:"version"`
		Type    string `yaml:"type"`
		Domain  string `yaml:"domain"`
	} `yaml:"model"`
	Dependencies struct {
		Upstream   []string `yaml:"upstream"`
		Downstream []string `yaml:"downstream"`
	} `yaml:"dependencies"`
	Serving    Serving    `yaml:"serving"`
	Ownership  Ownership  `yaml:"ownership"`
	SLOs       []SLO      `yaml:"slos"`
	Runbook    string     `yaml:"runbook"`
	Canary     Canary     `yaml:"canary"`
	Scaling    Scaling    `yaml:"scaling"`
	Evaluation Evaluation `yaml:"evaluation"`
	// The registry's other sections, accepted and ignored.
	Artifact yaml.Node `yaml:"artifact"`
	Training yaml.Node `yaml:"training"`
}

type listDoc struct {
	Models     []entry     `yaml:"models"`
	Components []Component `yaml:"components"`
}

// Catalog is the parsed, validated catalog. It is read-only after Parse.
type Catalog struct {
	models     map[string]*Model
	components map[string]*Component
	// consumers maps an upstream to every model that depends on it,
	// directly or through other models, sorted.
	consumers map[string][]string
	upstreams []string // consumers' keys, sorted
	domains   map[string][]string
}

// Load reads and parses the catalog file at path.
func Load(path string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	return c, nil
}

// Parse parses a catalog YAML stream and validates it, reporting every
// problem at once.
func Parse(data []byte) (*Catalog, error) {
	var entries []entry
	var comps []Component
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for doc := 1; ; doc++ {
		var n yaml.Node
		if err := dec.Decode(&n); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		raw, err := yaml.Marshal(&n)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		var probe map[string]yaml.Node
		if err := n.Decode(&probe); err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		strict := yaml.NewDecoder(bytes.NewReader(raw))
		strict.KnownFields(true)
		if _, single := probe["model"]; single {
			var e entry
			if err := strict.Decode(&e); err != nil {
				return nil, fmt.Errorf("document %d: %w", doc, err)
			}
			entries = append(entries, e)
			continue
		}
		var l listDoc
		if err := strict.Decode(&l); err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		entries = append(entries, l.Models...)
		comps = append(comps, l.Components...)
	}
	return build(entries, comps)
}

func modelRef(s string) string { return strings.TrimPrefix(strings.TrimSpace(s), "models/") }

func build(entries []entry, comps []Component) (*Catalog, error) {
	c := &Catalog{models: map[string]*Model{}, components: map[string]*Component{}, consumers: map[string][]string{}, domains: map[string][]string{}}
	var errs []error
	for i := range entries {
		e := &entries[i]
		m := &Model{Name: e.Model.Name, Version: e.Model.Version, Type: e.Model.Type, Domain: e.Model.Domain,
			Serving: e.Serving, Ownership: e.Ownership, SLOs: e.SLOs, Runbook: e.Runbook, Canary: e.Canary,
			Scaling: e.Scaling, Evaluation: e.Evaluation}
		for _, u := range e.Dependencies.Upstream {
			m.Upstream = append(m.Upstream, modelRef(u))
		}
		for _, d := range e.Dependencies.Downstream {
			m.Downstream = append(m.Downstream, modelRef(d))
		}
		if len(m.SLOs) == 0 && m.Serving.LatencyP99TargetMs > 0 {
			m.SLOs = []SLO{{Name: "latency_p99", Kind: SLOLatency, Objective: 0.99, LatencyMs: m.Serving.LatencyP99TargetMs}}
		}
		if err := m.validate(); err != nil {
			errs = append(errs, fmt.Errorf("model %d (%s): %w", i+1, m.Name, err))
			continue
		}
		if c.models[m.Name] != nil {
			errs = append(errs, fmt.Errorf("model %s is listed twice", m.Name))
			continue
		}
		c.models[m.Name] = m
	}
	for i := range comps {
		comp := &comps[i]
		switch {
		case comp.Name == "":
			errs = append(errs, fmt.Errorf("component %d has no name", i+1))
		case c.components[comp.Name] != nil || c.models[comp.Name] != nil:
			errs = append(errs, fmt.Errorf("component %s is listed twice or is also a model", comp.Name))
		default:
			if err := comp.validate(); err != nil {
				errs = append(errs, fmt.Errorf("component %s: %w", comp.Name, err))
			}
			c.components[comp.Name] = comp
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.link()
	return c, nil
}

// validate checks a component's features: named once each, of a known
// type, with a non-negative SLO, on a feature pipeline.
func (comp *Component) validate() error {
	var errs []error
	if len(comp.Features) > 0 && comp.Type != ComponentFeaturePipeline {
		errs = append(errs, fmt.Errorf("features listed on a component of type %q, want %s", comp.Type, ComponentFeaturePipeline))
	}
	seen := map[string]bool{}
	for i, f := range comp.Features {
		if f.Name == "" {
			errs = append(errs, fmt.Errorf("feature %d has no name", i+1))
		} else if seen[f.Name] {
			errs = append(errs, fmt.Errorf("feature %s is listed twice", f.Name))
		}
		seen[f.Name] = true
		if !slices.Contains(FeatureTypes, f.Type) {
			errs = append(errs, fmt.Errorf("feature %s: type %q, want one of %s", f.Name, f.Type, strings.Join(FeatureTypes, ", ")))
		}
		if f.FreshnessSLO < 0 {
			errs = append(errs, fmt.Errorf("feature %s: freshness_slo %v is negative", f.Name, f.FreshnessSLO))
		}
	}
	return errors.Join(errs...)
}

func (m *Model) validate() error {
	var errs []error
	if m.Name == "" {
		errs = append(errs, errors.New("model.name is empty"))
	}
	if err := m.Canary.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := m.Scaling.validate(m.Serving); err != nil {
		errs = append(errs, err)
	}
	if err := m.Evaluation.validate(m.Version); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for i := range m.SLOs {
		s := &m.SLOs[i]
		if s.Kind == "" {
			s.Kind = SLOLatency
			if s.LatencyMs == 0 {
				s.Kind = SLOAvailability
			}
		}
		if s.Name == "" {
			s.Name = s.Kind
		}
		if seen[s.Name] {
			errs = append(errs, fmt.Errorf("slo %s is listed twice", s.Name))
		}
		seen[s.Name] = true
		if !(s.Objective > 0 && s.Objective < 1) {
			errs = append(errs, fmt.Errorf("slo %s: objective %v, want 0 < objective < 1", s.Name, s.Objective))
		}
		switch s.Kind {
		case SLOLatency:
			if s.LatencyMs <= 0 {
				errs = append(errs, fmt.Errorf("slo %s: latency_ms must be positive", s.Name))
			}
		case SLOAvailability:
		default:
			errs = append(errs, fmt.Errorf("slo %s: kind %q, want latency or availability", s.Name, s.Kind))
		}
	}
	return errors.Join(errs...)
}

// link builds the reverse edges, transitive consumers and portfolios.
func (c *Catalog) link() {
	direct := map[string]map[string]bool{}
	add := func(up, down string) {
		if direct[up] == nil {
			direct[up] = map[string]bool{}
		}
		direct[up][down] = true
	}
	for _, m := range c.models {
		for _, u := range m.Upstream {
			add(u, m.Name)
		}
		for _, d := range m.Downstream {
			if c.models[d] != nil {
				add(m.Name, d)
			}
		}
		c.domains[m.Domain] = append(c.domains[m.Domain], m.Name)
	}
	for _, names := range c.domains {
		slices.Sort(names)
	}
	for up := range direct {
		seen := map[string]bool{}
		stack := []string{up}
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for d := range direct[n] {
				if !seen[d] && d != up {
					seen[d] = true
					stack = append(stack, d)
				}
			}
		}
		var out []string
		for d := range seen {
			if c.models[d] != nil {
				out = append(out, d)
			}
		}
		slices.Sort(out)
		c.consumers[up] = out
	}
	c.upstreams = slices.Sorted(maps.Keys(c.consumers))
}

// Len is the number of models.
func (c *Catalog) Len() int { return len(c.models) }

// Model returns the named model, or nil.
func (c *Catalog) Model(name string) *Model { return c.models[name] }

// Models lists the model names, sorted.
func (c *Catalog) Models() []string {
	out := make([]string, 0, len(c.models))
	for n := range c.models {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Upstreams lists everything at least one model depends on, sorted. Do
// not modify the result.
func (c *Catalog) Upstreams() []string { return c.upstreams }

// Consumers lists the models that depend on upstream, directly or through
// other models, sorted. Do not modify the result.
func (c *Catalog) Consumers(upstream string) []string { return c.consumers[upstream] }

// Portfolio lists the models of a domain, sorted. Do not modify the result.
func (c *Catalog) Portfolio(domain string) []string { return c.domains[domain] }

// Owner returns the ownership and runbook of a model or component; ok is
// false when the name is in neither list.
func (c *Catalog) Owner(name string) (o Ownership, runbook string, ok bool) {
	if m := c.models[name]; m != nil {
		return m.Ownership, m.Runbook, true
	}
	if comp := c.components[name]; comp != nil {
		return comp.Ownership, comp.Runbook, true
	}
	return Ownership{}, "", false
}

// Component returns the named component, or nil. Do not modify it.
func (c *Catalog) Component(name string) *Component { return c.components[name] }

// FeaturePipeline finds the feature pipeline that serves feature to model:
// the first of the model's direct upstreams, in catalog order, that lists
// the feature. ok is false when none does.
func (c *Catalog) FeaturePipeline(model, feature string) (pipeline string, f Feature, ok bool) {
	m := c.models[model]
	if m == nil {
		return "", Feature{}, false
	}
	for _, u := range m.Upstream {
		comp := c.components[u]
		if comp == nil {
			continue
		}
		for _, cf := range comp.Features {
			if cf.Name == feature {
				return comp.Name, cf, true
			}
		}
	}
	return "", Feature{}, false
}
