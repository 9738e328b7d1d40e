//go:build !simulator

package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
)

// The shipped build answers --simulate with a usage error that says where
// the simulator lives, and does not link it.
func TestSimulateNeedsTheSimulatorBuild(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"--simulate", "x.yaml", "--listen", "off"}, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "fleetctl simulate") || !strings.Contains(errOut.String(), "-tags simulator") {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	deps, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(deps), "/agent/sim\n") {
		t.Fatal("fleetwatch-agent links agent/sim without the simulator tag")
	}
}
