package otlprecv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// telemetrygen is the Collector project's load generator, built from its
// module: a client nobody here wrote.
const telemetrygenModule = "github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen@v0.161.0"

var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// telemetrygen returns the path of a telemetrygen binary, built once per
// test run with `go install` (the module cache and build cache make later
// runs quick). Only a missing Go toolchain skips.
func telemetrygen(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no Go toolchain to build telemetrygen with")
	}
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "telemetrygen-"); built.err != nil {
			return
		}
		cmd := exec.Command(goCmd, "install", telemetrygenModule)
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

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// runTelemetrygen runs telemetrygen and returns its output.
func runTelemetrygen(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), telemetrygen(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("telemetrygen %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestTelemetrygen(t *testing.T) {
	h := start(t, nil)
	for _, tc := range []struct {
		signal string
		args   []string
		items  int    // items telemetrygen sends
		kind   string // what the OTel SDK calls them when it reports a partial success
	}{
		{signalMetrics, []string{"metrics", "--metrics", "40"}, 40, "metric data points"},
		{signalLogs, []string{"logs", "--logs", "30"}, 30, "logs"},
		{signalTraces, []string{"traces", "--traces", "10"}, 20, "spans"}, // a root and a child span each
	} {
		for _, transport := range []string{"grpc", "http"} {
			t.Run(tc.signal+"/"+transport, func(t *testing.T) {
				args := append(tc.args, "--rate", "0", "--otlp-insecure")
				if transport == "grpc" {
					args = append(args, "--otlp-endpoint", h.grpcAddr)
				} else {
					args = append(args, "--otlp-http", "--otlp-endpoint", strings.TrimPrefix(h.httpURL, "http://"))
				}
				kept := h.sink.keptOf(tc.signal)
				out := runTelemetrygen(t, args...)
				if got := h.sink.keptOf(tc.signal) - kept; got != tc.items {
					t.Errorf("kept %d items, want %d\n%s", got, tc.items, out)
				}
				if strings.Contains(out, "partial success") {
					t.Errorf("nothing was rejected, yet telemetrygen says\n%s", out)
				}

				// The same with every item rejected. telemetrygen, like the
				// OTel SDK it is built on, treats a partial success as a
				// failed export: without --allow-export-failures it exits 1
				// on metrics and logs.
				want := map[string]string{"signal": tc.signal, "reason": "filtered"}
				rejected := h.counter(t, "fleetwatch_receiver_partial_rejected_items", want)
				out = runTelemetrygen(t, append(args, "--allow-export-failures", "--telemetry-attributes", rejectKey+`="filtered"`)...)
				told := fmt.Sprintf("OTLP partial success: rejected %d of the request's items: %d filtered", tc.items, tc.items)
				if !strings.Contains(out, told) || !strings.Contains(out, fmt.Sprintf("(%d %s rejected)", tc.items, tc.kind)) {
					t.Errorf("telemetrygen's output does not say %q ... (%d %s rejected):\n%s", told, tc.items, tc.kind, out)
				}
				if got := h.counter(t, "fleetwatch_receiver_partial_rejected_items", want) - rejected; got != int64(tc.items) {
					t.Errorf("fleetwatch_receiver_partial_rejected_items rose by %d, want %d", got, tc.items)
				}
			})
		}
	}
}
