package otlprecv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The OpenTelemetry JS SDK from npm. These are the last releases that run on
// Node 20 (the 3.x / 0.300 line needs Node >= 22.15).
var nodePackages = []string{
	"@opentelemetry/api@1.9.0",
	"@opentelemetry/sdk-metrics@2.12.0",
	"@opentelemetry/exporter-metrics-otlp-http@0.223.0",
	"@opentelemetry/exporter-metrics-otlp-proto@0.223.0",
}

// nodeSDK installs nodePackages into $FLEETWATCH_NPM_CACHE, by default
// .cache/npm-otel at the repository root (once; a stamp file names what is
// installed), puts the script next to them, and returns that directory.
// Only a missing node or npm skips.
func nodeSDK(t *testing.T) string {
	t.Helper()
	_, err1 := exec.LookPath("node")
	npm, err2 := exec.LookPath("npm")
	if err1 != nil || err2 != nil {
		t.Skip("node or npm is not installed")
	}
	dir := os.Getenv("FLEETWATCH_NPM_CACHE")
	if dir == "" {
		root, err := filepath.Abs("../..")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
			t.Fatalf("%s is not the repository root: %v", root, err)
		}
		dir = filepath.Join(root, ".cache", "npm-otel")
	}
	stamp := filepath.Join(dir, "installed.txt")
	want := strings.Join(nodePackages, "\n")
	if have, err := os.ReadFile(stamp); err != nil || string(have) != want {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		args := append([]string{"install", "--no-audit", "--no-fund", "--no-save", "--prefix", dir}, nodePackages...)
		if out, err := exec.CommandContext(t.Context(), npm, args...).CombinedOutput(); err != nil {
			t.Fatalf("npm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script, err := os.ReadFile("testdata/node/send-metrics.js")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "send-metrics.js"), script, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestNodeSDKSeesPartialSuccess(t *testing.T) {
	dir := nodeSDK(t)
	h := start(t, nil)
	for _, protocol := range []string{"json", "proto"} {
		t.Run(protocol, func(t *testing.T) {
			kept := h.sink.keptOf(signalMetrics)
			cmd := exec.CommandContext(t.Context(), "node", "send-metrics.js", h.httpURL+DefaultMetricsURLPath, protocol)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "DONE") {
				t.Fatalf("node: %v\n%s", err, out)
			}
			// The JS SDK logs a partial success as a diag warning with the
			// response's partialSuccess object.
			if !strings.Contains(string(out), "Received Partial Success response") || !strings.Contains(string(out), `"rejectedDataPoints":"2"`) &&
				!strings.Contains(string(out), `"rejectedDataPoints":2`) || !strings.Contains(string(out), "1 non_finite, 1 timestamp_out_of_range") {
				t.Errorf("the Node SDK did not report 2 rejected points:\n%s", out)
			}
			if got := h.sink.keptOf(signalMetrics) - kept; got != 2 {
				t.Errorf("the pipeline kept %d points, want 2\n%s", got, out)
			}
		})
	}
}
