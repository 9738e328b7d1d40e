package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/lib/devcerts"
)

func TestHelpAndVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, &errOut); code != 0 || !strings.Contains(errOut.String(), "--simulate") {
		t.Fatalf("--help: %d\n%s", code, errOut.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"--version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "fleetwatch-agent ") {
		t.Fatalf("--version: %d %q", code, out.String())
	}
	if code := run(context.Background(), []string{"--bogus"}, &out, &errOut); code != 2 {
		t.Fatalf("bad flag: %d", code)
	}
}

func TestShippedConfigsLoad(t *testing.T) {
	cfg := agent.NewDefaultConfig()
	if err := loadConfig("../../deploy/agent.yaml", &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Resolve()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Resource.Rack != "rack-07" || cfg.Ship.Endpoint != "127.0.0.1:4317" {
		t.Fatalf("loaded %+v", cfg.Resource)
	}
	if l := cfg.PodResources.Labels; len(l.Labels) != 4 || l.Labels[0] != "team" || l.Refresh != 5*time.Minute || l.MaxPods != 1024 {
		t.Fatalf("pod labels %+v", l)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("nvml:\n  intervall: 1s\n"), 0o644)
	if err := loadConfig(bad, &cfg); err == nil || !strings.Contains(err.Error(), "intervall") {
		t.Fatalf("unknown key: %v", err)
	}
	entries, _ := filepath.Glob("../../deploy/scenarios/*.yaml")
	if len(entries) == 0 {
		t.Fatal("no scenarios")
	}
	for _, p := range entries {
		if _, err := sim.Load(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// The shipped configuration starts with TLS and a token on /metrics and to
// the collector, given the files `fleetctl certs` makes.
func TestShippedConfigRunsWithTLS(t *testing.T) {
	dir := t.TempDir()
	f, err := devcerts.Ensure(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../../deploy/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("/etc/fleetwatch/tls/")) {
		t.Fatal("deploy/agent.yaml names no certificate files")
	}
	path := filepath.Join(dir, "agent.yaml")
	os.WriteFile(path, bytes.ReplaceAll(data, []byte("/etc/fleetwatch/tls"), []byte(dir)), 0o644)
	cfg := agent.NewDefaultConfig()
	if err := loadConfig(path, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Ship.Plaintext() || cfg.Ship.TokenFile != f.Token || !cfg.Web.Secure() {
		t.Fatalf("shipped config: ship %+v, web %+v", cfg.Ship, cfg.Web)
	}
	cfg.DataDir, cfg.NVML.Enabled, cfg.Listen = t.TempDir(), false, "127.0.0.1:0"
	a, err := agent.New(cfg, agent.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for a.Addr() == "" {
		time.Sleep(10 * time.Millisecond)
	}
	ca, _ := os.ReadFile(f.CA)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	token, _ := os.ReadFile(f.Token)
	req, _ := http.NewRequest(http.MethodGet, "https://"+a.Addr()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics with the token: %s", resp.Status)
	}
}

func TestCheckConfigAndNodeLabelsOutsideAPod(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("data_dir: "+dir+"\nresource:\n  node_labels: {rack: example.com/rack}\nlisten: \"off\"\n"), 0o644)
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--config", good, "--check-config", "--listen", "off"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "configuration is valid") {
		t.Fatalf("--check-config on a valid file: %d\n%s%s", code, out.String(), errOut.String())
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("data_dir: \"\"\n"), 0o644)
	if code := run(context.Background(), []string{"--config", bad, "--check-config"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "data_dir is required") {
		t.Fatalf("--check-config on an invalid file: %d\n%s", code, errOut.String())
	}
	// Told to place itself by its node's labels, outside Kubernetes the
	// agent stops instead of shipping data without its topology.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	errOut.Reset()
	if code := run(context.Background(), []string{"--config", good, "--listen", "off"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "not in a Kubernetes pod") {
		t.Fatalf("node_labels outside a pod: %d\n%s", code, errOut.String())
	}
}
