package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetwatch/fleetwatch/agent"
	"github.com/fleetwatch/fleetwatch/agent/sim"
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
