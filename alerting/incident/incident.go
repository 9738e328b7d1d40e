// Package incident defines what alerting hands from correlation to the
// lifecycle, the store and the notifiers: an incident with its level,
// scope, owner, severity, status and the detections attached as evidence.
package incident

import (
	"maps"
	"slices"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
)

// Level is where in a hierarchy an incident sits.
type Level string

// Hardware levels, GPU ⊂ node ⊂ rack ⊂ row ⊂ datacenter ⊂ fleet, and model
// levels, model ⊂ upstream (a shared feature pipeline or embedding model) ⊂
// portfolio (a domain) ⊂ fleet. Pipeline is the telemetry pipeline (agents,
// collector, ClickHouse) of the part of the fleet its scope names: what a
// fleet that stops reporting at once points at.
const (
	LevelGPU        Level = "gpu"
	LevelNode       Level = "node"
	LevelRack       Level = "rack"
	LevelRow        Level = "row"
	LevelDatacenter Level = "datacenter"
	LevelFleet      Level = "fleet"
	LevelModel      Level = "model"
	LevelUpstream   Level = "upstream"
	LevelPortfolio  Level = "portfolio"
	LevelPipeline   Level = "pipeline"
	// LevelJob is a training job as a whole: its progress, not one of its
	// GPUs (a straggling rank stays a GPU incident).
	LevelJob Level = "job"
)

// Rank orders levels by breadth within their hierarchy: 0 for a GPU, a
// model or a training job, up to 3 for a datacenter or the fleet; the telemetry pipeline, a
// shared dependency of the GPUs as an upstream is of its models, is 1.
func (l Level) Rank() int {
	switch l {
	case LevelNode, LevelUpstream, LevelPipeline:
		return 1
	case LevelRack, LevelRow, LevelPortfolio:
		return 2
	case LevelDatacenter, LevelFleet:
		return 3
	}
	return 0
}

// Status is where an incident is in its lifecycle.
type Status string

// Lifecycle: pending (seen, not yet persistent enough to page; kept in
// memory only) → open (paged) → acknowledged (a human took it) → resolved
// (clear for N windows). A resolved incident that comes back within the
// flap window reopens under the same key.
const (
	StatusPending      Status = "pending"
	StatusOpen         Status = "open"
	StatusAcknowledged Status = "acknowledged"
	StatusResolved     Status = "resolved"
)

// Active reports whether s is open or acknowledged.
func (s Status) Active() bool { return s == StatusOpen || s == StatusAcknowledged }

// Severities, lowest first; PagerDuty's four.
var severities = []string{"info", "warning", "error", "critical"}

// SeverityRank maps info, warning, error, critical to 0..3; unknown is 0.
func SeverityRank(s string) int { return max(0, slices.Index(severities, s)) }

// SeverityName is the inverse of SeverityRank, clamped to 0..3.
func SeverityName(r int) string { return severities[min(max(r, 0), 3)] }

// Evidence is one detection attached to an incident.
type Evidence struct {
	Key        string `json:"key"`
	Detector   string `json:"detector"`
	Class      string `json:"class"`
	Severity   string `json:"severity"`
	EntityType string `json:"entity_type"`
	Entity     string `json:"entity"`
	fleet.Topology
	GPUUUID string `json:"gpu_uuid,omitempty"`
	Model   string `json:"model,omitempty"`
	Feature string `json:"feature,omitempty"`
	// ModelVersion is the version the detection is about (a canary's).
	ModelVersion string  `json:"model_version,omitempty"`
	Value        float64 `json:"value"`
	Summary      string  `json:"summary"`
	// Action is what the detector did or asks for (a canary's rollback);
	// Detail is the detection's own evidence (JSON for most detectors: a
	// canary's per-rule effect, interval, samples and rule), kept when it
	// is at most MaxDetail bytes, so notifications carry it.
	Action    string    `json:"action,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// MaxDetail is the largest detection evidence an incident keeps (a
// notification carries up to 20 evidence items; PagerDuty takes 512 KB).
const MaxDetail = 8 << 10

// FromDetection makes evidence of d, seen at its window's end.
func FromDetection(d *fleet.Detection) Evidence {
	return Evidence{Key: d.Key, Detector: d.Detector, Class: d.Class, Severity: d.Severity, EntityType: d.EntityType,
		Entity: d.Entity, Topology: d.Topology, GPUUUID: d.GPUUUID, Model: d.Model, Feature: d.Feature,
		ModelVersion: d.ModelVersion, Value: d.Value, Summary: d.Summary, Action: d.Action, Detail: detail(d.Evidence),
		FirstSeen: d.Time, LastSeen: d.Time}
}

// detail is the detection's evidence when it is small enough to keep.
func detail(ev string) string {
	if len(ev) > MaxDetail {
		return ""
	}
	return ev
}

// Suspect is a recent deployment that may have caused a model incident.
type Suspect struct {
	Time     time.Time `json:"time"`
	Model    string    `json:"model"`
	Version  string    `json:"version"`
	Previous string    `json:"previous,omitempty"`
	Change   string    `json:"change,omitempty"`
	Actor    string    `json:"actor,omitempty"`
}

// Incident is one problem, at the level that explains its evidence.
type Incident struct {
	// Key is stable for one problem: it is derived from family, level and
	// scope only, never from the evidence, so the same problem never
	// opens twice. It is also the PagerDuty dedup_key.
	Key    string `json:"key"`
	Title  string `json:"title"`
	Level  Level  `json:"level"`
	Scope  string `json:"scope"`
	Family string `json:"family"`
	Class  string `json:"class"`
	// Severity is info, warning, error or critical.
	Severity string `json:"severity"`
	Status   Status `json:"status"`
	Team     string `json:"team,omitempty"`
	Oncall   string `json:"oncall,omitempty"`
	Domain   string `json:"domain,omitempty"`
	Runbook  string `json:"runbook,omitempty"`
	// Topology is the scope's place in the fleet, for hardware incidents.
	Topology fleet.Topology `json:"topology"`
	// Models are the models involved, for model incidents.
	Models []string `json:"models,omitempty"`
	// Labels are what routing rules and silences match on: class, family,
	// level, scope, severity, team, oncall, domain, key and the topology.
	Labels map[string]string `json:"labels"`
	// PageLabels are Labels as they were when the incident opened. Class
	// and severity change during an incident; routing and Alertmanager's
	// alert identity use these for the incident's life, so that its
	// acknowledgement, re-sends and resolve reach the receivers, and match
	// the alert, that its trigger did.
	PageLabels map[string]string `json:"page_labels,omitempty"`

	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	OpenedAt   time.Time `json:"opened_at"`
	AckedAt    time.Time `json:"acked_at"`
	AckedBy    string    `json:"acked_by,omitempty"`
	ResolvedAt time.Time `json:"resolved_at"`
	UpdatedAt  time.Time `json:"updated_at"`

	// Seen counts consecutive windows of its detectors in which it was at
	// open severity; Clear counts windows of its detectors without it.
	Seen  int `json:"seen"`
	Clear int `json:"clear"`
	// Flaps counts reopenings within the flap window.
	Flaps int `json:"flaps"`
	// Transitions counts the notifications the incident asked for (its
	// triggers, acknowledgements and resolves); each notification carries
	// its number, which makes its idempotency key, the same on every retry.
	Transitions int `json:"transitions"`
	// Detectors are the engine detectors whose windows count for Seen and
	// Clear.
	Detectors []string `json:"detectors"`

	Evidence []Evidence `json:"evidence"`
	Suspects []Suspect  `json:"suspects,omitempty"`
	// Cause is the key of an incident linked as the probable cause (a
	// hardware incident on a model's serving GPUs) or, for a resolved
	// incident, the one it was merged into.
	Cause    string `json:"cause,omitempty"`
	Resolved string `json:"resolved_reason,omitempty"`
	Silenced bool   `json:"silenced"`
	// Version orders the stored states of the incident.
	Version uint64 `json:"version"`
}

// RouteLabels are the labels notifications of inc route on: PageLabels
// once it has opened, Labels before (and for states stored without them).
func (inc *Incident) RouteLabels() map[string]string {
	if len(inc.PageLabels) > 0 {
		return inc.PageLabels
	}
	return inc.Labels
}

// Clone returns a deep copy of inc.
func (inc *Incident) Clone() Incident {
	out := *inc
	out.Labels = maps.Clone(inc.Labels)
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	out.PageLabels = maps.Clone(inc.PageLabels)
	out.Models = slices.Clone(inc.Models)
	out.Detectors = slices.Clone(inc.Detectors)
	out.Evidence = slices.Clone(inc.Evidence)
	out.Suspects = slices.Clone(inc.Suspects)
	return out
}

// Action is what a notification asks a receiver to do.
type Action string

// Notification actions: PagerDuty's three, plus refresh, the re-send of a
// firing alert to Alertmanager.
const (
	ActionTrigger     Action = "trigger"
	ActionAcknowledge Action = "acknowledge"
	ActionResolve     Action = "resolve"
	ActionRefresh     Action = "refresh"
)
