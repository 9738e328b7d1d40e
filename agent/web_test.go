package agent_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
	"github.com/fleetwatch/fleetwatch/lib/devcerts"
	"github.com/fleetwatch/fleetwatch/lib/netsec"
)

// Debian's Prometheus scrapes the agent's /metrics over TLS with a bearer
// token from a file, the way deploy/agent.yaml ships it; a request without
// the token gets 401, /healthz answers without one.
func TestPrometheusScrapesOverTLSWithToken(t *testing.T) {
	f, err := devcerts.Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	runner := newRunner(t, "interval: 1s\nfleet: {nodes_per_rack: 1, gpus_per_node: 2, nvlinks: 2}\n")
	rcv := newReceiver(t)
	rcv.start(t)
	cfg := agent.NewDefaultConfig()
	cfg.DataDir, cfg.NVML.Enabled = t.TempDir(), false
	cfg.Ship.Endpoint = rcv.addr
	cfg.Listen = "127.0.0.1:0"
	cfg.Web = netsec.ServerConfig{TLS: netsec.ServerTLS{CertFile: f.ServerCert, KeyFile: f.ServerKey}, TokenFile: f.Token}
	a, err := agent.New(cfg, agent.WithLogger(quiet), agent.WithSource(sim.Source{Runner: runner, Realtime: true}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	for a.Addr() == "" {
		time.Sleep(10 * time.Millisecond)
	}
	base := "https://" + a.Addr()

	ca, _ := os.ReadFile(f.CA)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	get := func(path, auth string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	if code := get("/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics without a token: %d, want 401", code)
	}
	if code := get("/metrics", "Bearer not-the-token"); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics with a wrong token: %d, want 401", code)
	}
	if code := get("/healthz", ""); code != http.StatusOK {
		t.Errorf("GET /healthz: %d, want 200", code)
	}
	// Plaintext HTTP to the TLS listener gets Go's 400, never the metrics.
	if resp, err := http.Get("http://" + a.Addr() + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plaintext GET /metrics answered 200")
		}
	}

	prom := promtest.PrometheusConfig(t, time.Second, fmt.Sprintf(`  - job_name: fleetwatch-agent
    scheme: https
    authorization:
      credentials_file: %s
    tls_config:
      ca_file: %s
      server_name: localhost
    static_configs:
      - targets: [%q]
`, f.Token, f.CA, a.Addr()))
	prom.WaitQuery(t, `up{job="fleetwatch-agent"}`, 30*time.Second, func(s []promtest.Sample) bool {
		return len(s) == 1 && s[0].Value == 1
	})
	prom.WaitQuery(t, `count(DCGM_FI_DEV_GPU_TEMP)`, 10*time.Second, func(s []promtest.Sample) bool {
		return len(s) == 1 && s[0].Value == 2
	})
	prom.WaitQuery(t, `fleetwatch_agent_http_unauthorized_total`, 10*time.Second, func(s []promtest.Sample) bool {
		return len(s) == 1 && s[0].Value == 2
	})
}

// A non-loopback listener without TLS and authentication needs web.insecure.
func TestNonLoopbackListenNeedsSecurityOrInsecure(t *testing.T) {
	cfg := agent.NewDefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Resolve()
	if cfg.Listen != "127.0.0.1:9401" {
		t.Fatalf("default listen %q, want loopback", cfg.Listen)
	}
	cfg.Listen = ":9401"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "web.insecure: true") {
		t.Fatalf("plaintext on every interface: %v", err)
	}
	cfg.Web.Insecure = true
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.Web = netsec.ServerConfig{TLS: netsec.ServerTLS{CertFile: "c", KeyFile: "k"}, TokenFile: "t"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
