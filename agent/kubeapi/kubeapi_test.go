package kubeapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/kubeapi"
	"github.com/fleetwatch/fleetwatch/agent/kubeapi/kubeapitest"
)

// Each failure has the reason the agent's error counters use.
func TestReasons(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter)
		want   string
		calls  int32
	}{
		{"ok", func(w http.ResponseWriter) { w.Write([]byte(`{"metadata":{"uid":"u-1"}}`)) }, "", 1},
		{"unauthorized", func(w http.ResponseWriter) { http.Error(w, "{}", http.StatusUnauthorized) }, kubeapi.ReasonUnauthorized, 1},
		{"forbidden", func(w http.ResponseWriter) { http.Error(w, "{}", http.StatusForbidden) }, kubeapi.ReasonForbidden, 1},
		{"not found", func(w http.ResponseWriter) { http.Error(w, "{}", http.StatusNotFound) }, kubeapi.ReasonNotFound, 1},
		{"gateway timeout", func(w http.ResponseWriter) { http.Error(w, "{}", http.StatusGatewayTimeout) }, kubeapi.ReasonTimeout, 2},
		{"server error", func(w http.ResponseWriter) { http.Error(w, "{}", http.StatusInternalServerError) }, kubeapi.ReasonServer, 2},
		{"not an object", func(w http.ResponseWriter) { w.Write([]byte(`[`)) }, kubeapi.ReasonDecode, 1},
		{"too slow", func(w http.ResponseWriter) { time.Sleep(300 * time.Millisecond) }, kubeapi.ReasonTimeout, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := kubeapitest.Start(t, func(w http.ResponseWriter, r *http.Request) { tc.answer(w) })
			c := s.Client
			c.Attempts, c.Timeout = 2, 100*time.Millisecond
			api, err := c.Connect()
			if err != nil {
				t.Fatal(err)
			}
			defer api.Close()
			var o kubeapi.Object
			err = api.Get(context.Background(), "/api/v1/namespaces/ns/pods/p", &o)
			if got := ""; err != nil {
				got = kubeapi.Reason(err)
				if got != tc.want {
					t.Errorf("reason %q (%v), want %q", got, err, tc.want)
				}
			} else if tc.want != "" || o.Metadata.UID != "u-1" {
				t.Errorf("no error, object %+v; want %q", o, tc.want)
			}
			if n := s.Calls.Load(); n != tc.calls {
				t.Errorf("%d requests, want %d (permanent failures are not retried)", n, tc.calls)
			}
		})
	}
	if _, err := (kubeapi.Client{CAFile: "/nonexistent"}).Connect(); kubeapi.Reason(err) != kubeapi.ReasonConfig {
		t.Errorf("no CA: %v", err)
	}
}
