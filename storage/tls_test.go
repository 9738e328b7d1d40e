package storage_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
		if st.ServerName != "ch.test" || len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "fleetwatch-client" {
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

// testPKI is a CA with a server certificate for ch.test and a client
// certificate, written to files where configtls reads them.
type testPKI struct {
	pool                      *x509.CertPool
	server                    tls.Certificate
	caFile, certFile, keyFile string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fleetwatch-test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, dns []string) ([]byte, *ecdsa.PrivateKey) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	srvDER, srvKey := issue(2, "ch.test", x509.ExtKeyUsageServerAuth, []string{"ch.test"})
	cliDER, cliKey := issue(3, "fleetwatch-client", x509.ExtKeyUsageClientAuth, nil)
	marshal := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return testPKI{
		pool:     pool,
		server:   tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey},
		caFile:   write("ca.pem", "CERTIFICATE", caDER),
		certFile: write("client.pem", "CERTIFICATE", cliDER),
		keyFile:  write("client-key.pem", "PRIVATE KEY", marshal(cliKey)),
	}
}
