package correlate

import (
	"maps"
	"slices"

	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/fleet"
)

// isJob reports whether d is about a training job as a whole (the
// training-job detector's detections): neither one GPU's hardware nor a
// model.
func isJob(d *fleet.Detection) bool { return d.EntityType == "job" }

// jobs makes one candidate per job of one family's job detections: a job
// that regresses, stalls and fails to checkpoint is one problem for its
// owners, whatever ranks and nodes it spans; it is not climbed up the
// hardware tree, which explains GPUs, not a job's progress.
func (c *Correlator) jobs(family string, dets []*fleet.Detection) []Candidate {
	byJob := map[string][]*fleet.Detection{}
	for _, d := range dets {
		byJob[d.Entity] = append(byJob[d.Entity], d)
	}
	var out []Candidate
	for _, job := range slices.Sorted(maps.Keys(byJob)) {
		out = append(out, Candidate{Key: key(family, incident.LevelJob, job), Level: incident.LevelJob, Scope: job, Family: family,
			Team: c.cfg.JobTeam, Oncall: c.cfg.JobOncall, Evidence: byJob[job]})
	}
	return out
}
