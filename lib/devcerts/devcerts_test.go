package devcerts

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

// The files make a working mutual-TLS pair: a server with server.pem that
// requires client certificates signed by ca.pem accepts a client with
// client.pem, and refuses one without; a second Ensure keeps every file.
func TestEnsureMakesAWorkingMutualTLSPair(t *testing.T) {
	dir := t.TempDir()
	f, err := Ensure(dir, []string{"collector.example", "10.0.0.7"})
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(f.CA)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem holds no certificate")
	}
	srvCert, err := tls.LoadX509KeyPair(f.ServerCert, f.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()

	cliCert, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	get := func(certs []tls.Certificate) (string, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}}
		resp, err := c.Get(srv.URL)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if who, err := get([]tls.Certificate{cliCert}); err != nil || who != "fleetwatch-agent" {
		t.Fatalf("with the client certificate: %q, %v", who, err)
	}
	if _, err := get(nil); err == nil {
		t.Fatal("a client without a certificate got in")
	}
	leaf, _ := x509.ParseCertificate(srvCert.Certificate[0])
	if err := leaf.VerifyHostname("collector.example"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("10.0.0.7"); err != nil {
		t.Error(err)
	}
	for _, p := range []string{f.CAKey, f.ServerKey, f.ClientKey, f.Token} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", p, fi.Mode(), err)
		}
	}
	tok, _ := os.ReadFile(f.Token)
	if len(tok) != 65 {
		t.Errorf("token %q", tok)
	}
	again, err := Ensure(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok2, _ := os.ReadFile(again.Token)
	srv2, _ := os.ReadFile(again.ServerCert)
	srv1, _ := os.ReadFile(f.ServerCert)
	if string(tok2) != string(tok) || string(srv2) != string(srv1) {
		t.Error("a second Ensure replaced existing files")
	}
}
