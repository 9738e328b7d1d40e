package k8snode

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fleetwatch/fleetwatch/agent/kubeapi"
	"github.com/fleetwatch/fleetwatch/agent/kubeapi/kubeapitest"
	"github.com/fleetwatch/fleetwatch/lib/devcerts"
)

const node017 = `{"kind":"Node","apiVersion":"v1","metadata":{"name":"gpu-017","labels":{"topology.kubernetes.io/zone":"dc-east","example.com/rack":"rack-07"}},"status":{}}`

func TestLabels(t *testing.T) {
	s := kubeapitest.Start(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/nodes/gpu-017" || !kubeapitest.Authorized(r) {
			http.Error(w, `{"kind":"Status","reason":"Forbidden"}`, http.StatusForbidden)
			return
		}
		w.Write([]byte(node017))
	})
	got, err := Labels(context.Background(), s.Client, "gpu-017")
	if err != nil {
		t.Fatal(err)
	}
	if got["topology.kubernetes.io/zone"] != "dc-east" || got["example.com/rack"] != "rack-07" || len(got) != 2 {
		t.Errorf("labels %v", got)
	}
}

func TestLabelsErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    []int // answers in order; the last repeats
		want      string
		wantCalls int32
	}{
		{"forbidden is not retried", []int{403}, "RBAC get on nodes", 1},
		{"unknown node is not retried", []int{404}, "no such node", 1},
		{"server errors are retried, then given up", []int{503}, "503", 4},
		{"a transient error is retried", []int{503, 200}, "", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			s := kubeapitest.Start(t, func(w http.ResponseWriter, r *http.Request) {
				i := min(int(n.Add(1))-1, len(tc.status)-1)
				if tc.status[i] != 200 {
					http.Error(w, "nope", tc.status[i])
					return
				}
				w.Write([]byte(node017))
			})
			_, err := Labels(context.Background(), s.Client, "gpu-017")
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
			if s.Calls.Load() != tc.wantCalls {
				t.Errorf("%d requests, want %d", s.Calls.Load(), tc.wantCalls)
			}
		})
	}
}

func TestLabelsVerifiesTheServer(t *testing.T) {
	s := kubeapitest.Start(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(node017)) })
	other, err := devcerts.Ensure(t.TempDir(), nil) // another CA
	if err != nil {
		t.Fatal(err)
	}
	c := s.Client
	c.CAFile = other.CA
	c.Attempts = 1
	if _, err := Labels(context.Background(), c, "gpu-017"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a server signed by another CA: %v", err)
	}
	if s.Calls.Load() != 0 {
		t.Errorf("the handler ran %d times for an unverified server", s.Calls.Load())
	}
}

func TestInCluster(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	c, err := kubeapi.InCluster()
	if err != nil || c.Server != "https://10.0.0.1:443" || c.TokenFile != kubeapi.DefaultTokenFile || c.CAFile != kubeapi.DefaultCAFile {
		t.Errorf("InCluster() = %+v, %v", c, err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
	if c, _ := kubeapi.InCluster(); c.Server != "https://[fd00::1]:443" {
		t.Errorf("IPv6 API server: %s", c.Server)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := kubeapi.InCluster(); err == nil {
		t.Error("outside a pod: no error")
	}
	if _, err := Labels(context.Background(), kubeapi.Client{}, ""); err == nil || !strings.Contains(err.Error(), "NODE_NAME") {
		t.Errorf("no node name: %v", err)
	}
}
