package scoring

import (
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/fleet"
)

// A page matches a fault by its evidence's place and time; its level is
// right when it is the fault's; a page about nothing injected is listed.
func TestPages(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	truths := []sim.Truth{
		{Fault: "fan", Type: sim.FaultGPUFan, Level: "gpu", Node: "n1", GPU: "G1", Start: t0.Add(time.Minute), End: t0.Add(5 * time.Minute)},
		{Fault: "cdu", Type: sim.FaultRackCDU, Level: "rack", Rack: "r2", Start: t0.Add(time.Minute), End: t0.Add(5 * time.Minute)},
		{Fault: "quiet", Type: sim.FaultStraggler, Level: "gpu", Node: "n3", GPU: "G3", Start: t0.Add(time.Minute), End: t0.Add(5 * time.Minute)},
	}
	page := func(at time.Duration, key string, level incident.Level, topo fleet.Topology, gpu string) Page {
		ev := incident.Evidence{Topology: topo, GPUUUID: gpu, FirstSeen: t0.Add(at - time.Minute), LastSeen: t0.Add(at)}
		return Page{Time: t0.Add(at), Incident: incident.Incident{Key: key, Level: level, Evidence: []incident.Evidence{ev}}}
	}
	pages := []Page{
		page(2*time.Minute, "thermal/gpu/G1", incident.LevelGPU, fleet.Topology{Node: "n1"}, "G1"),
		page(3*time.Minute, "thermal/node/n4", incident.LevelNode, fleet.Topology{Node: "n4", Rack: "r2"}, "G4"), // the CDU, one level low
		page(3*time.Minute, "thermal/gpu/G9", incident.LevelGPU, fleet.Topology{Node: "n9", Rack: "r9"}, "G9"),   // nothing injected
		page(40*time.Minute, "thermal/gpu/G1", incident.LevelGPU, fleet.Topology{Node: "n1"}, "G1"),              // long after the fan
	}
	rep := Pages(truths, pages, Options{Interval: 30 * time.Second, Grace: time.Minute, RunEnd: t0.Add(time.Hour)})
	want := []struct {
		pages int
		ok    bool
		delay time.Duration
	}{{1, true, time.Minute}, {1, false, 2 * time.Minute}, {0, false, 0}}
	for i, w := range want {
		c := rep.Causes[i]
		if c.Pages != w.pages || c.LevelOK != w.ok || c.Delay != w.delay {
			t.Errorf("%s: %d pages, level ok %v, delay %v; want %d, %v, %v", c.Fault, c.Pages, c.LevelOK, c.Delay, w.pages, w.ok, w.delay)
		}
	}
	if rep.Pages != 4 || rep.Explained != 2 || rep.Paged != 2 || rep.LevelOK != 1 || len(rep.Unexplained) != 2 {
		t.Errorf("report %+v", rep)
	}
	if md := rep.Markdown(); !strings.Contains(md, "| cdu | rack_cdu | rack | 1 | node | no | 120 s |") {
		t.Errorf("markdown:\n%s", md)
	}
}

// A job fault is matched by the job a detection or a page's evidence is
// about, wherever its ranks run.
func TestJobFaultsMatchTheirJob(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	truths := []sim.Truth{{Fault: "hang", Type: sim.FaultRankHang, Level: "job", Job: "llm", Node: "n1", Start: t0.Add(time.Minute), End: t0.Add(10 * time.Minute)}}
	det := func(job string, at time.Duration) fleet.Detection {
		return fleet.Detection{Key: "training_jobs/" + job + "/stall", Job: job, Feature: "stall", EntityType: "job", Entity: job,
			WindowStart: t0.Add(at - time.Minute), Time: t0.Add(at)}
	}
	o := Options{Interval: time.Minute, Grace: time.Minute, RunEnd: t0.Add(time.Hour)}
	rep := Score(truths, []fleet.Detection{det("llm", 4*time.Minute), det("vision", 4*time.Minute)}, o)
	if rep.Total.Detected != 1 || rep.Total.TrueAlarms != 1 || len(rep.FalseAlarms) != 1 || rep.Total.MaxWindows != 3 {
		t.Errorf("report %+v", rep)
	}
	ev := incident.Evidence{EntityType: "job", Entity: "llm", FirstSeen: t0.Add(4 * time.Minute), LastSeen: t0.Add(5 * time.Minute)}
	pages := []Page{{Time: t0.Add(5 * time.Minute), Incident: incident.Incident{Key: "training_job/job/llm", Level: incident.LevelJob, Evidence: []incident.Evidence{ev}}}}
	if pr := Pages(truths, pages, o); pr.Paged != 1 || pr.LevelOK != 1 {
		t.Errorf("page report %+v", pr)
	}
}
