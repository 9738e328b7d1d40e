// Package podrestest is a stand-in kubelet for tests: it serves the
// pod-resources API's List (v1.PodResourcesLister) on a Unix socket, its
// answers encoded field by field from the kubelet's api.proto
// (k8s.io/kubelet/pkg/apis/podresources/v1), independently of the decoder in
// package podres.
package podrestest

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// Device is a ContainerDevices: a resource and its allocated device IDs.
type Device struct {
	Resource string
	IDs      []string
}

// Container is a ContainerResources; CPUs is a packed field decoders skip.
type Container struct {
	Name    string
	Devices []Device
	CPUs    []uint64
}

// Pod is a PodResources.
type Pod struct {
	Name, Namespace string
	Containers      []Container
}

func bytesField(b []byte, num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
}

// Encode returns the ListPodResourcesResponse for pods, with a topology on
// each device and an unknown varint field on each pod (a later API version).
func Encode(pods []Pod) []byte {
	var out []byte
	for _, p := range pods {
		var pb []byte
		pb = bytesField(pb, 1, []byte(p.Name))
		pb = bytesField(pb, 2, []byte(p.Namespace))
		for _, c := range p.Containers {
			var cb []byte
			cb = bytesField(cb, 1, []byte(c.Name))
			for _, d := range c.Devices {
				var db []byte
				db = bytesField(db, 1, []byte(d.Resource))
				for _, id := range d.IDs {
					db = bytesField(db, 2, []byte(id))
				}
				numa := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 0)
				db = bytesField(db, 3, bytesField(nil, 1, numa)) // topology {nodes {id: 0}}
				cb = bytesField(cb, 2, db)
			}
			var packed []byte
			for _, cpu := range c.CPUs {
				packed = protowire.AppendVarint(packed, cpu)
			}
			cb = bytesField(cb, 3, packed)
			pb = bytesField(pb, 3, cb)
		}
		pb = protowire.AppendVarint(protowire.AppendTag(pb, 9, protowire.VarintType), 7)
		out = bytesField(out, 1, pb)
	}
	return out
}

// Kubelet serves List on a Unix socket until the test ends.
type Kubelet struct {
	// Socket is the socket's path.
	Socket string

	mu   sync.Mutex
	pods []Pod
	fail bool
}

// Start serves pods.
func Start(t testing.TB, pods []Pod) *Kubelet {
	t.Helper()
	dir, err := os.MkdirTemp("", "kubelet") // short: a socket path has at most 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	k := &Kubelet{Socket: filepath.Join(dir, "kubelet.sock"), pods: pods}
	l, err := net.Listen("unix", k.Socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ForceServerCodecV2(codec{}))
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "v1.PodResourcesLister",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "List", Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var req []byte
			if err := dec(&req); err != nil {
				return nil, err
			}
			k.mu.Lock()
			defer k.mu.Unlock()
			if k.fail {
				return nil, errors.New("kubelet: failing on purpose")
			}
			return Encode(k.pods), nil
		}}},
	}, struct{}{})
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return k
}

// Set replaces the allocations served.
func (k *Kubelet) Set(pods []Pod) {
	k.mu.Lock()
	k.pods = pods
	k.mu.Unlock()
}

// Fail makes List fail (true) or answer again (false).
func (k *Kubelet) Fail(fail bool) {
	k.mu.Lock()
	k.fail = fail
	k.mu.Unlock()
}

type codec struct{}

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (codec) Name() string { return "proto" }
