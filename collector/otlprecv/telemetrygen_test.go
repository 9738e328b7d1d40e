package otlprecv

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/fleetwatch/fleetwatch/internal/testsupport/clienttest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clienttest.Cleanup()
	os.Exit(code)
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
				out := clienttest.RunTelemetrygen(t, args...)
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
				out = clienttest.RunTelemetrygen(t, append(args, "--allow-export-failures", "--telemetry-attributes", rejectKey+`="filtered"`)...)
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
