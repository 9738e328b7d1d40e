package netsec_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/lib/devcerts"
	"github.com/fleetwatch/fleetwatch/lib/netsec"
)

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9401": true, "[::1]:9401": true, "localhost:4317": true, "LOCALHOST": true, "127.1.2.3:1": true,
		":9401": false, "0.0.0.0:9401": false, "[::]:9401": false, "10.0.0.1:9401": false, "collector:4317": false, "": false,
	} {
		if got := netsec.IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v", addr, got)
		}
	}
}

func TestServerConfigValidate(t *testing.T) {
	secure := netsec.ServerConfig{TLS: netsec.ServerTLS{CertFile: "c", KeyFile: "k"}, TokenFile: "t"}
	mtls := netsec.ServerConfig{TLS: netsec.ServerTLS{CertFile: "c", KeyFile: "k", ClientCAFile: "ca"}}
	cases := []struct {
		name, listen string
		cfg          netsec.ServerConfig
		err, warn    string
	}{
		{"loopback plaintext", "127.0.0.1:9401", netsec.ServerConfig{}, "", ""},
		{"no listener", "", netsec.ServerConfig{}, "", ""},
		{"all interfaces plaintext", ":9401", netsec.ServerConfig{}, "web.insecure: true", ""},
		{"TLS without auth", "10.0.0.1:9401", netsec.ServerConfig{TLS: secure.TLS}, "not a loopback address", ""},
		{"auth without TLS", "10.0.0.1:9401", netsec.ServerConfig{TokenFile: "t"}, "not a loopback address", ""},
		{"insecure", ":9401", netsec.ServerConfig{Insecure: true}, "", "without TLS or authentication"},
		{"insecure with token", ":9401", netsec.ServerConfig{Insecure: true, TokenFile: "t"}, "", "without TLS (insecure"},
		{"TLS and token", ":9401", secure, "", ""},
		{"mutual TLS", ":9401", mtls, "", ""},
		{"cert without key", "127.0.0.1:1", netsec.ServerConfig{TLS: netsec.ServerTLS{CertFile: "c"}}, "web.tls: cert_file and key_file go together", ""},
		{"client CA without cert", "127.0.0.1:1", netsec.ServerConfig{TLS: netsec.ServerTLS{ClientCAFile: "ca"}}, "client_ca_file needs cert_file", ""},
	}
	for _, c := range cases {
		err := c.cfg.Validate("web", c.listen)
		if (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: Validate = %v, want %q", c.name, err, c.err)
		}
		if c.err != "" {
			continue // invalid: the program does not start, nothing to warn about
		}
		if w := c.cfg.Warning(c.listen); (w == "") != (c.warn == "") || !strings.Contains(w, c.warn) {
			t.Errorf("%s: Warning = %q, want %q", c.name, w, c.warn)
		}
	}
}

// rewrite replaces a file's contents and moves its modification time
// forward, as a rotation that lands within one timestamp tick would not.
func rewrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	next := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(path, next, next); err != nil {
		t.Fatal(err)
	}
}

func TestTokenFileRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if _, err := netsec.OpenTokenFile(path); err == nil {
		t.Fatal("a missing token file opened")
	}
	rewrite(t, path, "# comment\n\n")
	if _, err := netsec.OpenTokenFile(path); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Fatalf("an empty token file: %v", err)
	}
	rewrite(t, path, "old\n")
	tf, err := netsec.OpenTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if tf.Token() != "old" || !tf.Valid("old") || tf.Valid("new") || tf.Valid("") {
		t.Fatal("first token")
	}
	rewrite(t, path, "old\nnew\n") // both accepted during a rotation
	if tf.Token() != "old" || !tf.Valid("old") || !tf.Valid("new") {
		t.Fatal("during rotation")
	}
	rewrite(t, path, "new\n")
	if tf.Token() != "new" || tf.Valid("old") {
		t.Fatal("after rotation")
	}
	rewrite(t, path, "") // a half-written file keeps the last good tokens
	if tf.Token() != "new" || tf.ReloadError() == nil {
		t.Fatalf("empty rewrite: %q, %v", tf.Token(), tf.ReloadError())
	}
	// A rotation by rename (a new inode) is seen too.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte("newer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if tf.Token() != "newer" || tf.ReloadError() != nil {
		t.Fatalf("after rename: %q, %v", tf.Token(), tf.ReloadError())
	}
}

// serve runs h behind a Server built from cfg and returns its base URL.
func serve(t *testing.T, cfg netsec.ServerConfig, h http.Handler, open ...string) (*netsec.Server, string) {
	t.Helper()
	s, err := netsec.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.Handler(h, open...), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s, s.Scheme() + "://" + l.Addr().String()
}

func get(c *http.Client, url, token string) (int, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func pool(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(data)
	return p
}

// An insecure listener on every interface starts, and says so.
func TestInsecureListenerWarns(t *testing.T) {
	var logs strings.Builder
	s, err := netsec.NewServer(netsec.ServerConfig{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Listen("0.0.0.0:0", slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "without TLS or authentication") {
		t.Fatalf("no warning: %q", logs.String())
	}
	logs.Reset()
	if l, err = s.Listen("127.0.0.1:0", slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if logs.Len() != 0 {
		t.Fatalf("loopback warned: %q", logs.String())
	}
}

func TestServerTLSAndToken(t *testing.T) {
	f, err := devcerts.Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	s, base := serve(t, netsec.ServerConfig{TLS: netsec.ServerTLS{CertFile: f.ServerCert, KeyFile: f.ServerKey}, TokenFile: f.Token}, ok, "/healthz")
	if !strings.HasPrefix(base, "https://") {
		t.Fatal(base)
	}
	tokenData, _ := os.ReadFile(f.Token)
	token := strings.TrimSpace(string(tokenData))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(t, f.CA)}}}
	for _, c := range []struct {
		path, token string
		want        int
	}{{"/metrics", token, 200}, {"/metrics", "", 401}, {"/metrics", "wrong", 401}, {"/healthz", "", 200}} {
		if got, err := get(client, base+c.path, c.token); err != nil || got != c.want {
			t.Errorf("GET %s with token %q: %d, %v; want %d", c.path, c.token, got, err, c.want)
		}
	}
	if n := s.Unauthorized.Load(); n != 2 {
		t.Errorf("Unauthorized = %d, want 2", n)
	}
	// A client that does not trust the private CA fails the handshake.
	if _, err := get(&http.Client{}, base+"/metrics", token); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA: %v", err)
	}
}

func TestServerMutualTLSAndCertReload(t *testing.T) {
	dir := t.TempDir()
	f, err := devcerts.Ensure(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The served certificate is a copy, so a rotation can replace it.
	cert, key := filepath.Join(dir, "serving.pem"), filepath.Join(dir, "serving-key.pem")
	copyFile(t, f.ServerCert, cert)
	copyFile(t, f.ServerKey, key)
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})
	_, base := serve(t, netsec.ServerConfig{TLS: netsec.ServerTLS{CertFile: cert, KeyFile: key, ClientCAFile: f.CA}}, ok)

	ctls, err := netsec.ClientTLS{CAFile: f.CA, CertFile: f.ClientCert, KeyFile: f.ClientKey}.Build()
	if err != nil {
		t.Fatal(err)
	}
	// A fresh transport per request: every request is a new handshake.
	fresh := func(c *tls.Config) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: c, DisableKeepAlives: true}}
	}
	if code, err := get(fresh(ctls), base, ""); err != nil || code != 200 {
		t.Fatalf("with a client certificate: %d, %v", code, err)
	}
	if _, err := get(fresh(&tls.Config{RootCAs: pool(t, f.CA)}), base, ""); err == nil {
		t.Fatal("a client without a certificate got through mutual TLS")
	}
	// Rotate the server certificate: a new one, signed by the same CA.
	f2dir := t.TempDir()
	for _, n := range []string{"ca.pem", "ca-key.pem"} {
		copyFile(t, filepath.Join(dir, n), filepath.Join(f2dir, n))
	}
	f2, err := devcerts.Ensure(f2dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, f2.ServerCert, cert)
	copyFile(t, f2.ServerKey, key)
	var served *x509.Certificate
	check := fresh(ctls.Clone())
	check.Transport.(*http.Transport).TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
		served = cs.PeerCertificates[0]
		return nil
	}
	if code, err := get(check, base, ""); err != nil || code != 200 {
		t.Fatalf("after rotation: %d, %v", code, err)
	}
	want, _ := tls.LoadX509KeyPair(f2.ServerCert, f2.ServerKey)
	if served == nil || !served.Equal(mustParse(t, want.Certificate[0])) {
		t.Fatal("the server still serves the old certificate after its files changed")
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	rewrite(t, to, string(data))
}
