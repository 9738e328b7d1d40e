// Package kubeapitest serves a fake Kubernetes API server over TLS for
// tests, with a kubeapi.Client configured for it (token and CA files).
package kubeapitest

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/kubeapi"
)

// Token is the bearer token the client sends.
const Token = "sa-token"

// Server is a TLS server answering with h; Calls counts the requests.
type Server struct {
	Client kubeapi.Client
	Calls  atomic.Int32
	URL    string
}

// Start serves h until the test ends. The client's backoff is 1ms.
func Start(t testing.TB, h http.HandlerFunc) *Server {
	t.Helper()
	s := &Server{}
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Calls.Add(1)
		h(w, r)
	}))
	t.Cleanup(ts.Close)
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	s.URL = ts.URL
	s.Client = kubeapi.Client{Server: ts.URL, TokenFile: filepath.Join(dir, "token"), CAFile: filepath.Join(dir, "ca.crt"), Backoff: time.Millisecond}
	if err := os.WriteFile(s.Client.CAFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.Client.TokenFile, []byte(Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// Authorized reports whether r carries the client's token.
func Authorized(r *http.Request) bool {
	return r.Header.Get("Authorization") == "Bearer "+Token
}
