package correlate

import (
	"maps"
	"slices"
	"strings"

	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/fleet"
)

// Inventory is what the fleet holds: GPUs per node, nodes per rack, racks
// per row, rows per datacenter. It gives the correlation its denominators
// ("half of the rack's nodes"); without it only affected children count.
// Build it once per analyzer start from gpu_series (see alerting/store).
type Inventory struct {
	children map[string]map[string]bool // parent path → child names
}

// NewInventory returns an empty inventory.
func NewInventory() *Inventory { return &Inventory{children: map[string]map[string]bool{}} }

func part(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// path joins topology parts: datacenter, row, rack, node.
func path(parts ...string) string {
	for i := range parts {
		parts[i] = part(parts[i])
	}
	return strings.Join(parts, "/")
}

// Add records one GPU (uuid may be empty to record only the node).
func (inv *Inventory) Add(t fleet.Topology, uuid string) {
	add := func(parent, child string) {
		if inv.children[parent] == nil {
			inv.children[parent] = map[string]bool{}
		}
		inv.children[parent][child] = true
	}
	add("", part(t.Datacenter))
	add(path(t.Datacenter), part(t.Row))
	add(path(t.Datacenter, t.Row), part(t.Rack))
	add(path(t.Datacenter, t.Row, t.Rack), part(t.Node))
	if uuid != "" {
		add(path(t.Datacenter, t.Row, t.Rack, t.Node), uuid)
	}
}

// count is how many children the inventory knows under parent.
func (inv *Inventory) count(parent string) int { return len(inv.children[parent]) }

// tree is one level of the detection tree of a family.
type tree struct {
	name  string
	path  string
	topo  fleet.Topology
	own   []*fleet.Detection // detections about this entity itself
	kids  map[string]*tree
	order int // 0 fleet, 1 datacenter, 2 row, 3 rack, 4 node, 5 gpu
	// affected and touched are computed bottom-up; explains says the
	// entity is affected through its children (enough of them affected or
	// touched), so it explains what is under it.
	affected, touched, explains bool
	// gpuTouched: a GPU under it has a detection (a node's own detection
	// does not count: a node hot on its own is its own cause, not some
	// GPUs of a rack's worth of nodes).
	gpuTouched bool
}

var hwLevels = []incident.Level{incident.LevelFleet, incident.LevelDatacenter, incident.LevelRow, incident.LevelRack, incident.LevelNode, incident.LevelGPU}

func (t *tree) child(name string, topo fleet.Topology) *tree {
	if t.kids == nil {
		t.kids = map[string]*tree{}
	}
	k := t.kids[name]
	if k == nil {
		p := name
		if t.path != "" {
			p = t.path + "/" + name
		}
		k = &tree{name: name, path: p, topo: topo, order: t.order + 1}
		t.kids[name] = k
	}
	return k
}

// depth is how deep a detection sits: 1 datacenter … 5 GPU.
func depth(d *fleet.Detection) int {
	switch d.EntityType {
	case "datacenter":
		return 1
	case "row":
		return 2
	case "rack":
		return 3
	case "node":
		return 4
	}
	if d.GPUUUID == "" && d.EntityType != "gpu" {
		return 4
	}
	return 5
}

// place puts d at its place in the tree.
func (t *tree) place(d *fleet.Detection) {
	names := []string{part(d.Datacenter), part(d.Row), part(d.Rack), part(d.Node)}
	topos := []fleet.Topology{
		{Datacenter: d.Datacenter},
		{Datacenter: d.Datacenter, Row: d.Row},
		{Datacenter: d.Datacenter, Row: d.Row, Rack: d.Rack},
		{Datacenter: d.Datacenter, Row: d.Row, Rack: d.Rack, Node: d.Node, Cluster: d.Cluster},
	}
	n := t
	dep := depth(d)
	for i := 0; i < min(dep, 4); i++ {
		n = n.child(names[i], topos[i])
	}
	if dep == 5 {
		gpu := d.GPUUUID
		if gpu == "" {
			gpu = d.Entity
		}
		n = n.child(gpu, topos[3])
	}
	n.own = append(n.own, d)
}

// judge computes affected and touched bottom-up; spanning says whether a
// rack counts its nodes with any detection (a spanning family) or only
// those affected as whole nodes.
func (c *Correlator) judge(t *tree, spanning bool) {
	kidsAffected, kidsTouched, kidsGPUTouched := 0, 0, 0
	rowsWithAffectedRacks := map[string]bool{}
	affectedRacks := 0
	for _, k := range t.kids {
		c.judge(k, spanning)
		if k.affected {
			kidsAffected++
		}
		if k.touched {
			kidsTouched++
		}
		if k.gpuTouched {
			kidsGPUTouched++
		}
		if t.order == 1 { // datacenter: look at the racks of each row
			for _, rack := range k.kids {
				if rack.affected {
					affectedRacks++
					rowsWithAffectedRacks[k.name] = true
				}
			}
		}
	}
	t.touched = len(t.own) > 0 || kidsTouched > 0
	t.gpuTouched = (t.order == 5 && len(t.own) > 0) || kidsGPUTouched > 0
	total := c.inv.count(t.path)
	cfg := &c.cfg
	switch t.order {
	case 0: // fleet
		t.explains = kidsAffected >= cfg.FleetMinDatacenters
	case 1: // datacenter
		t.explains = kidsAffected >= 2 || (affectedRacks >= cfg.DatacenterMinRacks && len(rowsWithAffectedRacks) >= 2)
	case 2: // row: racks affected
		t.explains = kidsAffected >= atLeast(cfg.RowMinRacks, cfg.RowFraction, max(total, kidsAffected))
	case 3: // rack: nodes affected, or with a GPU detection for a spanning family
		nodes := kidsAffected
		if spanning {
			nodes = kidsGPUTouched
		}
		t.explains = nodes >= atLeast(cfg.RackMinNodes, cfg.RackFraction, max(total, kidsTouched))
	case 4: // node: GPUs with detections
		t.explains = kidsTouched >= atLeast(cfg.NodeMinGPUs, cfg.NodeFraction, max(total, kidsTouched))
	case 5:
		t.explains = len(t.own) > 0
	}
	// A detection about the entity itself makes it affected too; alone, it
	// explains only itself (a node hotter than the other nodes of its hot
	// rack is a cause of its own).
	t.affected = t.explains || (len(t.own) > 0 && t.order > 0)
}

// all appends every detection under t.
func (t *tree) all(dst []*fleet.Detection) []*fleet.Detection {
	dst = append(dst, t.own...)
	for _, name := range slices.Sorted(maps.Keys(t.kids)) {
		dst = t.kids[name].all(dst)
	}
	return dst
}

// owner is who a hardware-tree candidate goes to: a level, a team and an
// on-call rotation.
type owner struct {
	level        incident.Level // "" for the subtree's hardware level
	team, oncall string
}

// emit returns one candidate per highest affected subtree. A subtree
// affected through its children explains every detection under it; one
// affected only by detections about itself explains those, and what is
// under it is judged on its own.
func (c *Correlator) emit(family string, own owner, t *tree, out []Candidate) []Candidate {
	if t.affected {
		scope := t.path
		if t.order == 0 {
			scope = "all"
		}
		level := own.level
		if level == "" {
			level = hwLevels[t.order]
		}
		ev := t.own
		if t.explains {
			ev = t.all(nil)
		}
		out = append(out, Candidate{Key: key(family, level, scope), Level: level, Scope: scope,
			Family: family, Topology: t.topo, Evidence: ev, Team: own.team, Oncall: own.oncall})
		if t.explains {
			return out
		}
	}
	for _, name := range slices.Sorted(maps.Keys(t.kids)) {
		out = c.emit(family, own, t.kids[name], out)
	}
	return out
}

func (c *Correlator) hardware(family string, dets []*fleet.Detection) []Candidate {
	root := &tree{}
	for _, d := range dets {
		root.place(d)
	}
	own := owner{team: c.cfg.HardwareTeam, oncall: c.cfg.HardwareOncall}
	pipeline := slices.Contains(c.cfg.PipelineFamilies, family)
	if pipeline {
		own = owner{level: incident.LevelPipeline, team: c.cfg.PipelineTeam, oncall: c.cfg.PipelineOncall}
	}
	c.judge(root, pipeline || slices.Contains(c.cfg.SpanningFamilies, family))
	return c.emit(family, own, root, nil)
}
