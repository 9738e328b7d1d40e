package sim

// GPU models the simulator can lay out. A fleet may mix two or more
// (FleetSpec.ModelByRack): racks are bought in batches, so a rack holds one
// model. Each model has its own power envelope and thermal resistance, so
// its GPUs run at their own temperatures and powers: peer comparison must
// compare a GPU with GPUs of its own model.
const (
	ModelH100 = "NVIDIA H100 80GB HBM3"
	ModelA100 = "NVIDIA A100-SXM4-80GB"
)

// physics is a GPU model's power envelope and thermal resistance.
type physics struct {
	tdpW, idleW float64
	thermalCW   float64 // °C per W above inlet
}

// modelPhysics are the models the simulator knows; any other name gets
// the H100's.
var modelPhysics = map[string]physics{
	ModelH100: {tdpW: 700, idleW: 70, thermalCW: 0.055},
	ModelA100: {tdpW: 400, idleW: 55, thermalCW: 0.085},
}

func physicsOf(model string) physics {
	if p, ok := modelPhysics[model]; ok {
		return p
	}
	return modelPhysics[ModelH100]
}

// modelOf is the GPU model of a node in rack.
func (f *FleetSpec) modelOf(rack string) string {
	if m := f.ModelByRack[rack]; m != "" {
		return m
	}
	return f.GPUModel
}
