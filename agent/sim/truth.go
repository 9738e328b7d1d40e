package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// Truth is one injected fault as a detector should see it: what, at which
// level of the topology or model graph, where, and when.
type Truth struct {
	Fault string `json:"fault"`
	Type  string `json:"type"`
	// Level is gpu, node, rack, row, datacenter, model, pipeline or job.
	Level string    `json:"level"`
	Start time.Time `json:"start"`
	// End is zero for a fault that lasts to the end of the run.
	End time.Time `json:"end,omitempty"`

	Datacenter string `json:"datacenter,omitempty"`
	Row        string `json:"row,omitempty"`
	Rack       string `json:"rack,omitempty"`
	Node       string `json:"node,omitempty"`
	GPU        string `json:"gpu,omitempty"` // UUID
	GPUIndex   *int   `json:"gpu_index,omitempty"`
	Job        string `json:"job,omitempty"`
	Rank       *int   `json:"rank,omitempty"`
	Model      string `json:"model,omitempty"`
	Pipeline   string `json:"pipeline,omitempty"`
	Feature    string `json:"feature,omitempty"`
	// Models lists every model the fault affects (pipelines fan out).
	Models []string `json:"models,omitempty"`
	// Magnitude is the fault's (FaultSpec.Magnitude); Intermittent says
	// it comes and goes (FaultSpec.Every).
	Magnitude    float64 `json:"magnitude,omitempty"`
	Intermittent bool    `json:"intermittent,omitempty"`
}

// GroundTruth returns the scenario's faults resolved against the fleet.
func (fl *Fleet) GroundTruth() []Truth {
	var out []Truth
	for _, f := range fl.faults {
		if jobFaultTypes[f.spec.Type] {
			out = append(out, fl.jobTruth(f))
			continue
		}
		t := Truth{Fault: f.spec.Name, Type: f.spec.Type, Start: f.start, End: f.end, Magnitude: f.spec.Magnitude, Intermittent: f.spec.Every > 0}
		tg := f.spec.Target
		switch f.spec.Type {
		case FaultGPUFan, FaultECCRamp, FaultNVLink, FaultStraggler, FaultXID79:
			t.Level = "gpu"
			if n := fl.Node(tg.Node); n != nil && tg.GPU != nil && *tg.GPU < len(n.GPUs) {
				g := n.GPUs[*tg.GPU]
				t.fillNode(n)
				t.GPU, t.GPUIndex = g.UUID, tg.GPU
				if g.job != nil {
					r := g.rank
					t.Job, t.Rank = g.job.spec.Name, &r
				}
			}
		case FaultNodeCooling:
			t.Level = "node"
			if n := fl.Node(tg.Node); n != nil {
				t.fillNode(n)
			}
		case FaultRackCDU:
			t.Level, t.Rack = "rack", tg.Rack
			for _, n := range fl.Nodes {
				if n.Resource.Rack == tg.Rack {
					t.Datacenter, t.Row = n.Resource.Datacenter, n.Resource.Row
				}
			}
		case FaultFacilityTemp:
			t.Level, t.Datacenter = "datacenter", tg.Datacenter
		default:
			t.Level, t.Model, t.Pipeline, t.Feature = "model", tg.Model, tg.Pipeline, tg.Feature
			if tg.Pipeline != "" {
				t.Level = "pipeline"
			}
			for _, m := range fl.sc.Models {
				if m.Name == tg.Model || (tg.Pipeline != "" && m.Pipeline == tg.Pipeline) {
					t.Models = append(t.Models, m.Name)
				}
			}
		}
		out = append(out, t)
	}
	return out
}

func (t *Truth) fillNode(n *Node) {
	t.Datacenter, t.Row, t.Rack, t.Node = n.Resource.Datacenter, n.Resource.Row, n.Resource.Rack, n.Name
}

// WriteTruth writes truths as JSON lines.
func WriteTruth(w io.Writer, truths []Truth) error {
	enc := json.NewEncoder(w)
	for _, t := range truths {
		if err := enc.Encode(t); err != nil {
			return fmt.Errorf("write ground truth: %w", err)
		}
	}
	return nil
}

// WriteTruthFile writes truths to path.
func WriteTruthFile(path string, truths []Truth) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write ground truth: %w", err)
	}
	if err := WriteTruth(f, truths); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadTruth reads ground truth written by WriteTruth.
func ReadTruth(r io.Reader) ([]Truth, error) {
	var out []Truth
	dec := json.NewDecoder(r)
	for dec.More() {
		var t Truth
		if err := dec.Decode(&t); err != nil {
			return out, fmt.Errorf("read ground truth: %w", err)
		}
		out = append(out, t)
	}
	return out, nil
}
