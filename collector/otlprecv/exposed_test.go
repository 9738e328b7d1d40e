package otlprecv

import (
	"net"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
)

// A listener on a non-loopback address without TLS or auth is logged as a
// warning at start, unless allow_insecure_public acknowledges it.
func TestExposedListenerWarns(t *testing.T) {
	public := func(c *Config) {
		for _, ep := range []*string{&c.Protocols.GRPC.Get().NetAddr.Endpoint, &c.Protocols.HTTP.Get().ServerConfig.NetAddr.Endpoint} {
			_, port, _ := net.SplitHostPort(*ep)
			*ep = "0.0.0.0:" + port
		}
	}
	warnings := func(h *harness) []string {
		var out []string
		for _, e := range h.logs.FilterMessageSnippet("non-loopback").All() {
			if e.Level == zapcore.WarnLevel {
				out = append(out, e.ContextMap()["protocol"].(string))
			}
		}
		return out
	}
	if got := warnings(start(t, nil)); len(got) != 0 {
		t.Errorf("loopback listeners warned: %v", got)
	}
	if got := strings.Join(warnings(start(t, public)), ","); got != "grpc,http" {
		t.Errorf("public plaintext listeners: warnings for %q, want grpc,http", got)
	}
	if got := warnings(start(t, func(c *Config) { public(c); c.AllowInsecurePublic = true })); len(got) != 0 {
		t.Errorf("allow_insecure_public: still warned for %v", got)
	}
}

// isLoopback decides the warning: loopback IPs only.
func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:1": true, "[::1]:1": true, "0.0.0.0:1": false, "[::]:1": false, "10.1.2.3:1": false} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := isLoopback(a); got != want {
			t.Errorf("isLoopback(%s) = %v", addr, got)
		}
	}
}
