package correlate_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting/correlate"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/fixture"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func ptrs(ds []fleet.Detection) []*fleet.Detection {
	out := make([]*fleet.Detection, len(ds))
	for i := range ds {
		out[i] = &ds[i]
	}
	return out
}

// summary renders candidates as "key (evidence count)" lines.
func summary(cs []correlate.Candidate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Key+" ("+itoa(len(c.Evidence))+")")
	}
	return out
}

func itoa(n int) string {
	s := ""
	for {
		s = string(rune('0'+n%10)) + s
		n /= 10
		if n == 0 {
			return s
		}
	}
}

// hwCase is one hardware correlation case: detections and the
// candidates they should give, as summary lines.
type hwCase struct {
	name string
	dets []fleet.Detection
	want []string
}

// checkHardware correlates each case on fleet with the default config and
// checks the candidates and that team/oncall own every one.
func checkHardware(t *testing.T, testFleet fixture.Fleet, cases []hwCase, team, oncall string) {
	t.Helper()
	c, err := correlate.New(correlate.NewDefaultConfig(), testFleet.Inventory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cands := c.Correlate(ptrs(tc.dets))
			got := summary(cands)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			for _, cd := range cands {
				if cd.Team != team || cd.Oncall != oncall {
					t.Errorf("%s: owner %q/%q, want %s/%s", cd.Key, cd.Team, cd.Oncall, team, oncall)
				}
			}
		})
	}
}

func TestTopology(t *testing.T) {
	testFleet := fixture.Fleet{Datacenters: 2, Rows: 2, Racks: 4, Nodes: 4, GPUs: 8}
	hot := func(keep func(g fixture.GPU) bool) []fleet.Detection {
		return fixture.Thermal("health_thermal", "gpu_thermal", "warning", t0, testFleet.Select(keep))
	}
	cases := []hwCase{
		{"one GPU's fan", hot(func(g fixture.GPU) bool { return g.UUID == "GPU-005-3" }),
			[]string{"thermal/gpu/dc-0/row-0-0/rack-01/node-005/GPU-005-3 (1)"}},
		{"two GPUs in different racks stay apart", hot(func(g fixture.GPU) bool { return g.UUID == "GPU-005-3" || g.UUID == "GPU-009-1" }),
			[]string{"thermal/gpu/dc-0/row-0-0/rack-01/node-005/GPU-005-3 (1)", "thermal/gpu/dc-0/row-0-0/rack-02/node-009/GPU-009-1 (1)"}},
		{"three of eight GPUs is not yet the node", hot(func(g fixture.GPU) bool { return g.Node == "node-005" && g.UUID < "GPU-005-3" }),
			[]string{"thermal/gpu/dc-0/row-0-0/rack-01/node-005/GPU-005-0 (1)", "thermal/gpu/dc-0/row-0-0/rack-01/node-005/GPU-005-1 (1)", "thermal/gpu/dc-0/row-0-0/rack-01/node-005/GPU-005-2 (1)"}},
		{"a node's cooling", hot(func(g fixture.GPU) bool { return g.Node == "node-005" }),
			[]string{"thermal/node/dc-0/row-0-0/rack-01/node-005 (8)"}},
		{"a rack's CDU", hot(func(g fixture.GPU) bool { return g.Rack == "rack-03" }),
			[]string{"thermal/rack/dc-0/row-0-0/rack-03 (32)"}},
		{"a rack's CDU seen on some GPUs of most nodes, plus a fan elsewhere",
			append(hot(func(g fixture.GPU) bool {
				return g.Rack == "rack-03" && g.Node != "node-015" && g.UUID[len(g.UUID)-1] < '3'
			}),
				hot(func(g fixture.GPU) bool { return g.UUID == "GPU-040-0" })...),
			[]string{"thermal/gpu/dc-1/row-1-0/rack-10/node-040/GPU-040-0 (1)", "thermal/rack/dc-0/row-0-0/rack-03 (9)"}},
		{"two racks of one row", hot(func(g fixture.GPU) bool { return g.Rack == "rack-01" || g.Rack == "rack-02" }),
			[]string{"thermal/row/dc-0/row-0-0 (64)"}},
		{"racks in two rows: the facility's chillers", hot(func(g fixture.GPU) bool { return g.Rack == "rack-01" || g.Rack == "rack-05" }),
			[]string{"thermal/datacenter/dc-0 (64)"}},
		{"two datacenters: the fleet", hot(func(g fixture.GPU) bool {
			return g.Rack == "rack-01" || g.Rack == "rack-05" || (g.Datacenter == "dc-1" && (g.Row == "row-1-0" || g.Row == "row-1-1"))
		}), []string{"thermal/fleet/all (320)"}},
	}
	checkHardware(t, testFleet, cases, "infrastructure", "infrastructure-oncall")
}

// A detector that compares each level with its siblings (fleet health's
// temperature tiers) raises the node or rack itself: each such entity is
// a cause of its own, and explains only itself.
func TestEntityDetectionsAreCausesOfTheirOwn(t *testing.T) {
	testFleet := fixture.Fleet{Datacenters: 1, Rows: 1, Racks: 4, Nodes: 4, GPUs: 8}
	one := func(uuid string) []fixture.GPU {
		return testFleet.Select(func(g fixture.GPU) bool { return g.UUID == uuid })
	}
	about := func(level string, g fixture.GPU) fleet.Detection {
		d := fixture.Thermal("fleet_health", "thermal", "error", t0, []fixture.GPU{g})[0]
		d.GPUUUID, d.EntityType = "", level
		if level == "rack" {
			d.Topology = fleet.Topology{Datacenter: g.Datacenter, Row: g.Row, Rack: g.Rack}
		}
		d.Entity, d.Key = level+"/"+g.Rack+"/"+d.Topology.Node, "fleet_health/"+level+"/"+g.Rack+"/"+d.Topology.Node
		return d
	}
	nodeOf := one("GPU-009-0")[0] // node-009 of rack-02
	fan := fixture.Thermal("fleet_health", "thermal", "error", t0, one("GPU-010-4"))
	checkHardware(t, testFleet, []hwCase{
		{"a hot node inside a hot rack, and a fan on another node of it",
			append([]fleet.Detection{about("rack", nodeOf), about("node", nodeOf)}, fan...),
			[]string{"thermal/gpu/dc-0/row-0-0/rack-02/node-010/GPU-010-4 (1)", "thermal/node/dc-0/row-0-0/rack-02/node-009 (1)",
				"thermal/rack/dc-0/row-0-0/rack-02 (1)"}},
		{"a hot node and a hot GPU on another node of its rack are not the rack",
			append([]fleet.Detection{about("node", nodeOf)}, fan...),
			[]string{"thermal/gpu/dc-0/row-0-0/rack-02/node-010/GPU-010-4 (1)", "thermal/node/dc-0/row-0-0/rack-02/node-009 (1)"}},
		{"hot GPUs on half the nodes of a rack are still the rack's",
			fixture.Thermal("fleet_health", "thermal", "error", t0, append(one("GPU-008-0"), one("GPU-010-4")...)),
			[]string{"thermal/rack/dc-0/row-0-0/rack-02 (2)"}},
	}, "infrastructure", "infrastructure-oncall")
}

func TestFamiliesKeepClassesOfOneCauseTogether(t *testing.T) {
	testFleet := fixture.Fleet{Datacenters: 1, Rows: 1, Racks: 2, Nodes: 4, GPUs: 8}
	in := func(g fixture.GPU) bool { return g.Rack == "rack-00" }
	gpus := testFleet.Select(in)
	dets := append(fixture.Thermal("health_thermal", "gpu_thermal", "warning", t0, gpus[:16]),
		fixture.Thermal("spc_gpu", "cooling", "warning", t0, gpus[16:])...)
	dets = append(dets, fixture.Thermal("health_ecc", "ecc", "critical", t0, gpus[:1])...)
	c, err := correlate.New(correlate.NewDefaultConfig(), testFleet.Inventory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := summary(c.Correlate(ptrs(dets)))
	want := []string{"ecc/gpu/dc-0/row-0-0/rack-00/node-000/GPU-000-0 (1)", "thermal/rack/dc-0/row-0-0/rack-00 (32)"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestModels(t *testing.T) {
	cat, err := catalog.Parse([]byte(fixture.PipelineCatalog()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := correlate.New(correlate.NewDefaultConfig(), nil, cat)
	if err != nil {
		t.Fatal(err)
	}
	drift := func(models ...[]string) []fleet.Detection {
		var all []string
		for _, m := range models {
			all = append(all, m...)
		}
		return fixture.Models("psi", "covariate_drift", "warning", t0, all)
	}
	stale := func(pipeline string, features ...string) []fleet.Detection {
		var out []fleet.Detection
		for _, f := range features {
			out = append(out, fleet.Detection{Time: t0, Detector: "feature_freshness", Class: "freshness", Severity: "error",
				EntityType: "pipeline", Entity: pipeline, Key: "freshness/" + pipeline + "/" + f, Feature: f})
		}
		return out
	}
	cases := []struct {
		name      string
		dets      []fleet.Detection
		want      []string
		wantOwner string
	}{
		{"12 models on one pipeline", drift(fixture.Names("recsys", 0, 12)), []string{"drift/upstream/feature_store/user_features_v2 (12)"}, "feature-platform-oncall"},
		{"8 of its 12 consumers still point at the pipeline", drift(fixture.Names("recsys", 0, 8)), []string{"drift/upstream/feature_store/user_features_v2 (8)"}, "feature-platform-oncall"},
		{"one model alone goes to its owner", drift([]string{"fraud-03"}), []string{"drift/model/fraud-03 (1)"}, "fraud-oncall"},
		{"most of a portfolio without a shared upstream", drift(fixture.Names("fraud", 0, 6)), []string{"drift/portfolio/fraud (6)"}, ""},
		{"two unrelated models stay apart", drift([]string{"fraud-01", "vision-02"}), []string{"drift/model/fraud-01 (1)", "drift/model/vision-02 (1)"}, "fraud-oncall"},
		// Fleet-wide takes more than 60% of the catalog's 30 models (the
		// design documents' fraction > 0.6): 18 are exactly 60%, 19 more.
		{"exactly 60% of the fleet is not fleet-wide", drift(fixture.Names("recsys", 0, 15), fixture.Names("vision", 0, 3)), []string{"drift/model/vision-00 (1)", "drift/model/vision-01 (1)", "drift/model/vision-02 (1)", "drift/portfolio/recsys (3)", "drift/upstream/feature_store/user_features_v2 (12)"}, "vision-oncall"},
		{"more than 60% of the fleet", drift(fixture.Names("recsys", 0, 15), fixture.Names("vision", 0, 4)), []string{"drift/fleet/models (19)"}, ""},
		// A pipeline's own detections (stale features) make one incident
		// for the pipeline's owner, with its drifting consumers, however few.
		{"stale pipeline features and one drifting consumer", append(drift([]string{"recsys-01"}), stale("feature_store/user_features_v2", "f1", "f2")...),
			[]string{"drift/upstream/feature_store/user_features_v2 (3)"}, "feature-platform-oncall"},
		{"stale pipeline beside an unrelated model", append(drift([]string{"fraud-03"}), stale("feature_store/user_features_v2", "f1")...),
			[]string{"drift/model/fraud-03 (1)", "drift/upstream/feature_store/user_features_v2 (1)"}, "fraud-oncall"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cs := c.Correlate(ptrs(tc.dets))
			got := summary(cs)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if cs[0].Oncall != tc.wantOwner {
				t.Errorf("owner %q, want %q", cs[0].Oncall, tc.wantOwner)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := correlate.NewDefaultConfig()
	cfg.NodeFraction = 0
	cfg.RackMinNodes = 1
	cfg.Families["other"] = []string{"cooling"}
	err := cfg.Validate()
	for _, want := range []string{"node_fraction", "rack_min_nodes", "class cooling"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
}

// A rack explains its nodes' detections only with evidence that it is the
// cause: for a family that is not spanning (performance), whole nodes
// affected, not one GPU fault on each of two nodes (deploy/scenarios/
// small.yaml: a straggler on node-001 and an NVLink fault on node-002).
func TestRackNeedsEvidenceThatItExplainsItsNodes(t *testing.T) {
	testFleet := fixture.Fleet{Datacenters: 1, Rows: 1, Racks: 2, Nodes: 4, GPUs: 8}
	gpus := func(keep func(g fixture.GPU) bool) []fixture.GPU { return testFleet.Select(keep) }
	one := func(uuid string) func(g fixture.GPU) bool { return func(g fixture.GPU) bool { return g.UUID == uuid } }
	gray := func(keep func(g fixture.GPU) bool) []fleet.Detection {
		return fixture.Thermal("health", "gpu_gray_failure", "error", t0, gpus(keep))
	}
	// The straggler's rank, as fleet health reports it: a rank entity on
	// the GPU's UUID.
	straggler := fixture.Thermal("health", "gpu_straggler", "error", t0, gpus(one("GPU-001-6")))
	straggler[0].EntityType, straggler[0].Entity, straggler[0].Key = "rank", "llm-pretrain/6", "health/GPU-001-6/straggler"
	checkHardware(t, testFleet, []hwCase{
		{"a straggler and an NVLink fault on two nodes of one rack",
			append(append(gray(one("GPU-001-6")), straggler...), gray(one("GPU-002-1"))...),
			[]string{"performance/gpu/dc-0/row-0-0/rack-00/node-001/GPU-001-6 (2)", "performance/gpu/dc-0/row-0-0/rack-00/node-002/GPU-002-1 (1)"}},
		{"every GPU of two nodes slow together: the rack",
			gray(func(g fixture.GPU) bool { return g.Node == "node-001" || g.Node == "node-002" }),
			[]string{"performance/rack/dc-0/row-0-0/rack-00 (16)"}},
		{"a spanning family still counts nodes with any detection (a CDU heats the top GPUs)",
			fixture.Thermal("health", "gpu_thermal", "warning", t0, gpus(func(g fixture.GPU) bool { return g.UUID == "GPU-001-7" || g.UUID == "GPU-002-7" })),
			[]string{"thermal/rack/dc-0/row-0-0/rack-00 (2)"}},
	}, "infrastructure", "infrastructure-oncall")
}

// Whole nodes that stop reporting are a telemetry gap: one pipeline
// candidate scoped to what went silent, owned by the pipeline's owner.
func TestTelemetryGapsArePipelineCandidates(t *testing.T) {
	testFleet := fixture.Fleet{Datacenters: 2, Rows: 2, Racks: 4, Nodes: 4, GPUs: 8}
	silent := func(keep func(g fixture.GPU) bool) []fleet.Detection {
		return fixture.Thermal("fleet_health", "telemetry_gap", "warning", t0, testFleet.Select(keep))
	}
	checkHardware(t, testFleet, []hwCase{
		{"one node", silent(func(g fixture.GPU) bool { return g.Node == "node-005" }),
			[]string{"telemetry_gap/pipeline/dc-0/row-0-0/rack-01/node-005 (8)"}},
		{"a row", silent(func(g fixture.GPU) bool { return g.Row == "row-1-0" }),
			[]string{"telemetry_gap/pipeline/dc-1/row-1-0 (128)"}},
		{"the whole fleet", silent(func(fixture.GPU) bool { return true }),
			[]string{"telemetry_gap/pipeline/all (512)"}},
	}, "observability", "observability-oncall")
}

// A training job's detections, of any of its rules and with or without a
// rank's place, are one incident about the job, owned by the job's team;
// a straggling rank of the same job stays a GPU incident.
func TestJobs(t *testing.T) {
	testFleet := fixture.Fleet{Datacenters: 1, Rows: 1, Racks: 2, Nodes: 4, GPUs: 8}
	job := func(name, class string, where fleet.Topology) fleet.Detection {
		return fleet.Detection{Time: t0, WindowStart: t0.Add(-time.Minute), Detector: "training_jobs", Class: class, Severity: "error",
			EntityType: "job", Entity: name, Job: name, Key: "training_jobs/" + name + "/" + class, Topology: where}
	}
	rank := fleet.Topology{Datacenter: "dc-0", Row: "row-0-0", Rack: "rack-00", Node: "node-001"}
	dets := []fleet.Detection{
		job("llm", "job_step_regression", fleet.Topology{}), job("llm", "checkpoint_failed", fleet.Topology{}),
		job("llm", "job_stalled", rank), job("vision", "checkpoint_slow", fleet.Topology{}),
	}
	straggler := fixture.Thermal("fleet_health", "gpu_straggler", "error", t0, testFleet.Select(func(g fixture.GPU) bool { return g.UUID == "GPU-001-2" }))
	c, err := correlate.New(correlate.NewDefaultConfig(), testFleet.Inventory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cands := c.Correlate(ptrs(append(dets, straggler...)))
	got := summary(cands)
	want := []string{"performance/gpu/dc-0/row-0-0/rack-00/node-001/GPU-001-2 (1)", "training_job/job/llm (3)", "training_job/job/vision (1)"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, cd := range cands[1:] {
		if cd.Level != "job" || cd.Team != "ml-platform" || cd.Oncall != "ml-platform-oncall" {
			t.Errorf("%s: level %s, owner %s/%s", cd.Key, cd.Level, cd.Team, cd.Oncall)
		}
	}
}

// TestUpstreamUpdatesGoToEachConsumer: an upstream model's update raises
// one detection per consumer (analytics/upstream); each is its consumer's
// incident for the consumer's owner, not one incident for the upstream's
// owner, nor a fleet-wide one, which is what the grouping of anomalous
// models would make of them.
func TestUpstreamUpdatesGoToEachConsumer(t *testing.T) {
	cat, err := catalog.Parse([]byte(`
models:
  - model: {name: embed}
    dependencies: {downstream: [models/retrieval]}
    ownership: {team: embeddings, oncall: emb-oncall}
  - model: {name: retrieval}
    ownership: {team: retrieval-team, oncall: ret-oncall}
  - model: {name: ranker}
    dependencies: {upstream: [models/retrieval]}
    ownership: {team: ranking, oncall: rank-oncall}
`))
	if err != nil {
		t.Fatal(err)
	}
	dets := []fleet.Detection{
		{Time: t0, Detector: "upstream_updates", Class: "upstream_update", Severity: "info", EntityType: "model", Entity: "ranker", Model: "ranker", Key: "upstream/embed/2@1/ranker"},
		{Time: t0, Detector: "upstream_updates", Class: "upstream_update", Severity: "warning", EntityType: "model", Entity: "retrieval", Model: "retrieval", Key: "upstream/embed/2@1/retrieval"},
	}
	for _, tc := range []struct {
		name     string
		perModel []string
		want     []string
		oncalls  []string
	}{
		{"per model (default)", correlate.NewDefaultConfig().PerModelFamilies,
			[]string{"upstream_update/model/ranker (1)", "upstream_update/model/retrieval (1)"}, []string{"rank-oncall", "ret-oncall"}},
		// Without: two of the catalog's three models are "most of the
		// fleet", an incident nobody owns.
		{"grouped", nil, []string{"upstream_update/fleet/models (2)"}, []string{""}},
	} {
		cfg := correlate.NewDefaultConfig()
		cfg.PerModelFamilies = tc.perModel
		c, err := correlate.New(cfg, nil, cat)
		if err != nil {
			t.Fatal(err)
		}
		cs := c.Correlate(ptrs(slices.Clone(dets)))
		var oncalls []string
		for _, cd := range cs {
			oncalls = append(oncalls, cd.Oncall)
		}
		if got := summary(cs); !slices.Equal(got, tc.want) || !slices.Equal(oncalls, tc.oncalls) {
			t.Errorf("%s: %v owned by %v, want %v owned by %v", tc.name, got, oncalls, tc.want, tc.oncalls)
		}
	}
}
