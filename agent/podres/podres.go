// Package podres maps GPUs to the Kubernetes pods that hold them, from the
// kubelet's pod-resources API (v1 PodResourcesLister.List on the socket
// /var/lib/kubelet/pod-resources/kubelet.sock): the device plugin's device
// IDs of an NVIDIA resource are GPU (or MIG) UUIDs, so each UUID gets the
// namespace, pod and container it was allocated to. A GPU shared by
// time-slicing (the device plugin's replicas UUID::n) or MPS is allocated
// to several containers: it gets them all, in the kubelet's order
// (Holders), and the NVML source sends its usage once per holder so that
// cost splits it among them. It implements nvmlsrc.SharedWorkloads for the
// agent's NVML source.
//
// The messages are decoded with protowire against the field numbers of the
// kubelet's api.proto (k8s.io/kubelet/pkg/apis/podresources/v1), so the
// agent does not link Kubernetes' modules.
//
// Layer: stage (the agent's).
package podres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/fleetwatch/fleetwatch/agent/record"
)

// DefaultSocket is where the kubelet serves the pod-resources API.
const DefaultSocket = "/var/lib/kubelet/pod-resources/kubelet.sock"

// listMethod is the API's List call.
const listMethod = "/v1.PodResourcesLister/List"

// Config says where the kubelet is and how often to ask it.
type Config struct {
	// Socket is the kubelet's pod-resources Unix socket.
	Socket string `yaml:"socket"`
	// Interval between two reads of the allocations.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one read.
	Timeout time.Duration `yaml:"timeout"`
	// Resources are the prefixes of the extended resources that are GPUs
	// (their device IDs are UUIDs), e.g. nvidia.com/ for nvidia.com/gpu and
	// the MIG profiles nvidia.com/mig-1g.10gb.
	Resources []string `yaml:"resources"`
}

// NewDefaultConfig returns the defaults: the kubelet's socket, every 10s,
// NVIDIA's resources.
func NewDefaultConfig() Config {
	return Config{Socket: DefaultSocket, Interval: 10 * time.Second, Timeout: 5 * time.Second, Resources: []string{"nvidia.com/"}}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Socket == "" {
		errs = append(errs, errors.New("pod_resources.socket is empty"))
	}
	if c.Interval < time.Second {
		errs = append(errs, fmt.Errorf("pod_resources.interval %v is below 1s", c.Interval))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("pod_resources.timeout %v must be positive", c.Timeout))
	}
	if len(c.Resources) == 0 {
		errs = append(errs, errors.New("pod_resources.resources is empty: no resource would count as a GPU"))
	}
	return errors.Join(errs...)
}

// Mapper keeps the latest GPU → workload map.
type Mapper struct {
	cfg  Config
	log  *slog.Logger
	conn *grpc.ClientConn

	mu     sync.RWMutex
	byUUID map[string][]record.Workload

	// failures counts reads that failed, and shared the further holders
	// of GPUs allocated to more than one container (time-slicing, MPS).
	failures, shared atomic.Uint64
	failing          atomic.Bool
}

// New prepares a mapper; it connects lazily, so a kubelet that is not up
// yet is retried by Run.
func New(cfg Config, log *slog.Logger) (*Mapper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("unix://"+cfg.Socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(bytesCodec{})))
	if err != nil {
		return nil, fmt.Errorf("pod-resources socket %s: %w", cfg.Socket, err)
	}
	return &Mapper{cfg: cfg, log: log, conn: conn, byUUID: map[string][]record.Workload{}}, nil
}

// Workload returns the (first) workload holding the GPU (zero when none or
// not known).
func (m *Mapper) Workload(uuid string) record.Workload {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if hs := m.byUUID[uuid]; len(hs) > 0 {
		return hs[0]
	}
	return record.Workload{}
}

// Holders returns every workload holding the GPU, Workload's first; more
// than one for a shared GPU. The caller must not modify it.
func (m *Mapper) Holders(uuid string) []record.Workload {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.byUUID[uuid]
}

// Pods returns the pods holding a GPU (Namespace, Pod and Container of one
// of each pod's GPUs), each once, in no particular order.
func (m *Mapper) Pods() []record.Workload {
	m.mu.RLock()
	defer m.mu.RUnlock()
	seen := make(map[[2]string]bool, len(m.byUUID))
	out := make([]record.Workload, 0, len(m.byUUID))
	for _, hs := range m.byUUID {
		for _, w := range hs {
			if k := [2]string{w.Namespace, w.Pod}; !seen[k] {
				seen[k] = true
				out = append(out, w)
			}
		}
	}
	return out
}

// Errors returns the counts for the agent's error metric.
func (m *Mapper) Errors() map[string]uint64 {
	return map[string]uint64{"pod_resources_read_failed": m.failures.Load(), "pod_resources_gpu_shared": m.shared.Load()}
}

// Run reads the allocations every Interval until ctx ends, then closes the
// connection. A failed read keeps the previous map, is counted, and is logged
// when reads start failing and when they recover.
func (m *Mapper) Run(ctx context.Context) error {
	defer m.conn.Close()
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		if err := m.Refresh(ctx); err != nil && ctx.Err() == nil {
			m.failures.Add(1)
			if !m.failing.Swap(true) {
				m.log.Warn("cannot read the kubelet's pod-resources API: GPU series lack namespace/pod/container until it answers (mount the socket read-only; the agent needs root to connect)",
					"socket", m.cfg.Socket, "err", err)
			}
		} else if err == nil && m.failing.Swap(false) {
			m.log.Info("reading the kubelet's pod-resources API again", "socket", m.cfg.Socket)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Refresh reads the allocations once and replaces the map.
func (m *Mapper) Refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	var resp []byte
	if err := m.conn.Invoke(ctx, listMethod, []byte{}, &resp); err != nil {
		return err
	}
	by, shared, err := decodeList(resp, m.cfg.Resources)
	if err != nil {
		return fmt.Errorf("decoding the List answer: %w", err)
	}
	m.shared.Add(uint64(shared))
	m.mu.Lock()
	m.byUUID = by
	m.mu.Unlock()
	return nil
}

// Field numbers of api.proto (k8s.io/kubelet/pkg/apis/podresources/v1).
const (
	listPodResources = 1 // ListPodResourcesResponse.pod_resources
	podName          = 1 // PodResources.name
	podNamespace     = 2 // PodResources.namespace
	podContainers    = 3 // PodResources.containers
	containerName    = 1 // ContainerResources.name
	containerDevices = 2 // ContainerResources.devices
	devicesResource  = 1 // ContainerDevices.resource_name
	devicesIDs       = 2 // ContainerDevices.device_ids
	replicaSeparator = "::"
)

// decodeList maps each GPU UUID of the answer to its workloads, in the
// answer's order; shared is how many further holders of an already mapped
// GPU were seen (a container holding two replicas of one GPU holds it once).
func decodeList(b []byte, resources []string) (map[string][]record.Workload, int, error) {
	by := map[string][]record.Workload{}
	shared := 0
	err := fields(b, func(num protowire.Number, v []byte) error {
		if num != listPodResources {
			return nil
		}
		var w record.Workload
		var containers [][]byte
		if err := fields(v, func(num protowire.Number, v []byte) error {
			switch num {
			case podName:
				w.Pod = string(v)
			case podNamespace:
				w.Namespace = string(v)
			case podContainers:
				containers = append(containers, v)
			}
			return nil
		}); err != nil {
			return err
		}
		for _, c := range containers {
			cw := w
			var devices [][]byte
			if err := fields(c, func(num protowire.Number, v []byte) error {
				switch num {
				case containerName:
					cw.Container = string(v)
				case containerDevices:
					devices = append(devices, v)
				}
				return nil
			}); err != nil {
				return err
			}
			for _, d := range devices {
				var resource string
				var ids []string
				if err := fields(d, func(num protowire.Number, v []byte) error {
					switch num {
					case devicesResource:
						resource = string(v)
					case devicesIDs:
						ids = append(ids, string(v))
					}
					return nil
				}); err != nil {
					return err
				}
				if !isGPU(resource, resources) {
					continue
				}
				for _, id := range ids {
					// Time-slicing replicas are named UUID::n.
					id, _, _ = strings.Cut(id, replicaSeparator)
					if slices.Contains(by[id], cw) {
						continue
					}
					if len(by[id]) > 0 {
						shared++
					}
					by[id] = append(by[id], cw)
				}
			}
		}
		return nil
	})
	return by, shared, err
}

func isGPU(resource string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(resource, p) {
			return true
		}
	}
	return false
}

// fields calls f for every length-delimited field of a message and skips
// the others (varints, packed numbers).
func fields(b []byte, f func(num protowire.Number, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, v); err != nil {
			return err
		}
	}
	return nil
}

// bytesCodec sends and receives raw protobuf bytes.
type bytesCodec struct{}

func (bytesCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("pod-resources codec cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (bytesCodec) Unmarshal(data mem.BufferSlice, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("pod-resources codec cannot unmarshal into %T", v)
	}
	*p = data.Materialize()
	return nil
}

func (bytesCodec) Name() string { return "proto" }
