// Package fleet is the vocabulary every stage shares: where a row sits in the
// fleet (topology, GPU identity, Kubernetes workload, labels), the inference
// event a model server reports, the detection a detector raises, and the
// analyzer's contracts: the window a detector evaluates, the detector and the
// sink that receives its detections (alerting is one). It is the ground
// layer's leaf (docs/ARCHITECTURE.md, "Layers"): it imports only the standard
// library, so a stage that speaks these types links nothing else.
// The tables these records land in are storage's; their columns are in
// docs/SCHEMA.md.
package fleet

// Topology places a row in the fleet; it comes from OTLP resource attributes.
// The physical tree is datacenter > row > rack > node; Cluster is the logical
// compute cluster (Kubernetes or Slurm).
type Topology struct {
	Datacenter, Row, Rack, Node, Cluster string
}

// GPUIdentity names a GPU the way dcgm-exporter's labels do.
type GPUIdentity struct {
	Index, UUID, PCIBusID, Device, ModelName string
	// Instance and Profile identify a MIG GPU instance (GPU_I_ID, GPU_I_PROFILE).
	Instance, Profile string
}

// Kubernetes names the workload that used a GPU or served a request.
type Kubernetes struct {
	Namespace, Pod, Container string
}

// Labels are extra name/value pairs, sorted by name.
type Labels struct {
	Keys, Values []string
}
