package storage_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/lib/devcerts"

	"go.opentelemetry.io/collector/config/configtls"
	"gopkg.in/yaml.v3"

	"github.com/fleetwatch/fleetwatch/storage"
)

func TestTLSFromYAML(t *testing.T) {
	var cfg storage.Config
	err := yaml.Unmarshal([]byte(`
tls:
  enabled: true
  ca_file: /etc/ca.pem
  insecure_skip_verify: true
  server_name: ch.internal
  min_version: "1.3"
`), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	tc := cfg.TLS
	if !tc.Enabled || tc.CAFile != "/etc/ca.pem" || !tc.InsecureSkipVerify || tc.ServerName != "ch.internal" || tc.MinVersion != "1.3" {
		t.Fatalf("decoded %+v", tc)
	}
	out, err := yaml.Marshal(cfg.TLS)
	if err != nil {
		t.Fatal(err)
	}
	var back storage.TLSConfig
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatalf("read back %s: %v", out, err)
	}
	if back.Enabled != tc.Enabled || back.CAFile != tc.CAFile || back.ServerName != tc.ServerName || back.MinVersion != tc.MinVersion {
		t.Fatalf("round trip through\n%s\ngave %+v", out, back)
	}
	for doc, want := range map[string]string{
		"tls: {enabled: yes please}":                                     "not a boolean",
		"tls: {ca_fil: /x}":                                              "ca_fil",
		"tls: {server_name: a, server_name_override: b}":                 "give one",
		"tls: {enabled: true, min_version: \"0.9\", ca_file: /dev/null}": "",
	} {
		var c storage.Config
		err := yaml.Unmarshal([]byte(doc), &c)
		if want == "" {
			if err != nil {
				t.Errorf("%s: %v", doc, err)
			} else if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "min_version") {
				t.Errorf("%s: validates: %v", doc, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one mentioning %q", doc, err, want)
		}
	}
}

// TestTLSHandshake dials a TLS server that asks for a client certificate
// through storage's own dialing, and checks what the server saw: the
// configtls settings reach the handshake.
func TestTLSHandshake(t *testing.T) {
	pki := newTestPKI(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{pki.server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pki.pool,
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan tls.ConnectionState, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if tc.Handshake() == nil {
				seen <- tc.ConnectionState()
			}
			c.Close()
		}
	}()

	cfg := storage.NewDefaultConfig()
	cfg.Addrs, cfg.DialTimeout = []string{ln.Addr().String()}, 2*time.Second
	cfg.TLS = tlsConfig(true, func(c *configtls.ClientConfig) {
		c.CAFile, c.CertFile, c.KeyFile, c.ServerName = pki.caFile, pki.certFile, pki.keyFile, "ch.test"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = storage.Open(ctx, cfg) // the server is no ClickHouse: only the handshake matters
	select {
	case st := <-seen:
		if st.ServerName != "ch.test" || len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "fleetwatch-agent" {
			t.Fatalf("server saw SNI %q and client certificates %d", st.ServerName, len(st.PeerCertificates))
		}
	case <-ctx.Done():
		t.Fatal("no TLS handshake completed")
	}

	cfg.TLS.ServerName = "someone-else"
	if _, err := storage.Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a certificate for another name was accepted: %v", err)
	}
}

// testPKI is lib/devcerts' CA, server certificate (valid for ch.test)
// and client certificate, as the test's server and configtls read them.
type testPKI struct {
	pool                      *x509.CertPool
	server                    tls.Certificate
	caFile, certFile, keyFile string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	f, err := devcerts.Ensure(t.TempDir(), []string{"ch.test"})
	if err != nil {
		t.Fatal(err)
	}
	server, err := tls.LoadX509KeyPair(f.ServerCert, f.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem holds no certificate")
	}
	return testPKI{pool: pool, server: server, caFile: f.CA, certFile: f.ClientCert, keyFile: f.ClientKey}
}
