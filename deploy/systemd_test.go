// Package deploy_test checks the shipped deployment files: the systemd
// units with systemd-analyze (verify, and the offline security score).
package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var units = []string{"fleetwatch-agent.service", "fleetwatch-collector.service", "fleetwatch-analyzer.service"}

// maxExposure is the highest systemd-analyze security exposure a unit may
// have: "OK" is below 4.0 on its 0–10 scale (10 is no sandboxing at all).
const maxExposure = 2.5

// installed copies the units to a directory with ExecStart pointing at
// stand-in executables (verify checks that the program exists; it does not
// run it), as an installation would have them.
func installed(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze not found: install Debian's systemd package (make setup does)")
	}
	dir, bin := t.TempDir(), t.TempDir()
	for _, u := range units {
		data, err := os.ReadFile(filepath.Join("systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		prog := strings.TrimSuffix(u, ".service")
		if err := os.WriteFile(filepath.Join(bin, prog), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(data), "/usr/local/bin/"+prog, filepath.Join(bin, prog))
		if text == string(data) {
			t.Fatalf("%s: ExecStart does not run /usr/local/bin/%s", u, prog)
		}
		if err := os.WriteFile(filepath.Join(dir, u), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSystemdUnitsVerify(t *testing.T) {
	dir := installed(t)
	args := []string{"verify"}
	for _, u := range units {
		args = append(args, filepath.Join(dir, u))
	}
	cmd := exec.Command("systemd-analyze", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestSystemdUnitsAreSandboxed(t *testing.T) {
	dir := installed(t)
	level := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)
	for _, u := range units {
		out, err := exec.Command("systemd-analyze", "security", "--offline=true", filepath.Join(dir, u)).CombinedOutput()
		m := level.FindSubmatch(out)
		if m == nil {
			t.Fatalf("%s: no exposure level (%v):\n%s", u, err, out)
		}
		exposure, _ := strconv.ParseFloat(string(m[1]), 64)
		t.Logf("%s: exposure %.1f", u, exposure)
		if exposure > maxExposure {
			t.Errorf("%s: exposure %.1f, want at most %.1f:\n%s", u, exposure, maxExposure, out)
		}
		for _, want := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "CapabilityBoundingSet=\n"} {
			data, _ := os.ReadFile(filepath.Join(dir, u))
			if !strings.Contains(string(data), want) {
				t.Errorf("%s lacks %s", u, strings.TrimSpace(want))
			}
		}
	}
}
