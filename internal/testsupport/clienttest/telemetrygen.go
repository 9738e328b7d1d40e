// Package clienttest gives tests OTLP clients that nobody on this project
// wrote, built from their upstream sources: the Collector project's
// telemetrygen. Test support only (the assembly layer); production code never
// imports it.
package clienttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TelemetrygenModule is the load generator of the Collector project,
// installed with `go install` from the module proxy.
const TelemetrygenModule = "github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen@v0.161.0"

var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Telemetrygen returns the path of a telemetrygen binary, built once per test
// process with `go install` (the module and build caches make later runs
// quick). Only a missing Go toolchain skips. Call Cleanup from TestMain to
// remove it.
func Telemetrygen(t testing.TB) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no Go toolchain to build telemetrygen with")
	}
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "telemetrygen-"); built.err != nil {
			return
		}
		cmd := exec.Command(goCmd, "install", TelemetrygenModule)
		cmd.Env = append(os.Environ(), "GOBIN="+built.dir, "GOFLAGS=", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = &buildError{err: err, out: string(out)}
			return
		}
		built.path = filepath.Join(built.dir, "telemetrygen")
	})
	if built.err != nil {
		t.Fatalf("building telemetrygen: %v", built.err)
	}
	return built.path
}

// RunTelemetrygen runs telemetrygen with args and returns its output; a
// non-zero exit fails the test.
func RunTelemetrygen(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), Telemetrygen(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("telemetrygen %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Cleanup removes the binary Telemetrygen built.
func Cleanup() {
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }
