package analyzer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
	"github.com/fleetwatch/fleetwatch/lib/devcerts"
	"github.com/fleetwatch/fleetwatch/lib/netsec"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestListenSecurityValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string // "" for valid
	}{
		{"loopback default", func(*Config) {}, ""},
		{"off", func(c *Config) { c.Listen = "" }, ""},
		{"every interface in plaintext", func(c *Config) { c.Listen = ":9465" }, "analyzer.web.insecure: true"},
		{"explicitly insecure", func(c *Config) { c.Listen, c.Web.Insecure = ":9465", true }, ""},
		{"TLS and token", func(c *Config) {
			c.Listen, c.Web = ":9465", netsec.ServerConfig{TLS: netsec.ServerTLS{CertFile: "c", KeyFile: "k"}, TokenFile: "t"}
		}, ""},
		{"token without TLS", func(c *Config) { c.Listen, c.Web.TokenFile = "10.1.2.3:9465", "t" }, "not a loopback address"},
	} {
		cfg := NewDefaultConfig()
		tc.change(&cfg)
		err := cfg.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if NewDefaultConfig().Listen != "127.0.0.1:9465" {
		t.Fatal("the default listen address is not loopback")
	}
}

// The analyzer's /metrics over TLS with a bearer token: 401 without it,
// Debian's Prometheus scrapes it with the token and the CA.
func TestMetricsOverTLSWithToken(t *testing.T) {
	f, err := devcerts.Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := chtest.NewDB(t)
	cfg := NewDefaultConfig()
	cfg.ClickHouse = c.Config()
	cfg.Listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(promtest.FreePort(t)))
	cfg.Web = netsec.ServerConfig{TLS: netsec.ServerTLS{CertFile: f.ServerCert, KeyFile: f.ServerKey}, TokenFile: f.Token}
	a, err := New(context.Background(), cfg, c, chtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	ca, _ := os.ReadFile(f.CA)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	token, _ := os.ReadFile(f.Token)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	get := func(path, tok string) (int, error) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+cfg.Listen+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := get("/healthz", ""); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, tc := range []struct {
		path, token string
		want        int
	}{{"/metrics", "", 401}, {"/metrics", "wrong", 401}, {"/metrics", strings.TrimSpace(string(token)), 200}, {"/healthz", "", 200}} {
		if code, err := get(tc.path, tc.token); err != nil || code != tc.want {
			t.Errorf("GET %s with token %q: %d, %v; want %d", tc.path, tc.token, code, err, tc.want)
		}
	}
	prom := promtest.PrometheusConfig(t, time.Second, fmt.Sprintf(`  - job_name: fleetwatch-analyzer
    scheme: https
    authorization:
      credentials_file: %s
    tls_config:
      ca_file: %s
    static_configs:
      - targets: [%q]
`, f.Token, f.CA, cfg.Listen))
	prom.WaitQuery(t, `up{job="fleetwatch-analyzer"}`, 30*time.Second, func(s []promtest.Sample) bool {
		return len(s) == 1 && s[0].Value == 1
	})
}
