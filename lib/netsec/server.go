package netsec

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
)

// ServerConfig secures an HTTP listener (/metrics and /healthz): the
// `web:` section of the agent's and the analyzer's configuration.
type ServerConfig struct {
	TLS ServerTLS `yaml:"tls"`
	// TokenFile holds the bearer tokens a request must carry
	// (Authorization: Bearer <token>), one per line; re-read when it changes.
	TokenFile string `yaml:"token_file,omitempty"`
	// Insecure allows serving a non-loopback address without TLS and
	// authentication (logged as a warning at start).
	Insecure bool `yaml:"insecure,omitempty"`
}

// Authenticated reports whether callers must prove who they are: with a
// bearer token, or a client certificate (mutual TLS).
func (c ServerConfig) Authenticated() bool { return c.TokenFile != "" || c.TLS.ClientCAFile != "" }

// Secure reports whether the listener has TLS and authentication.
func (c ServerConfig) Secure() bool { return c.TLS.IsSet() && c.Authenticated() }

// Validate checks the section for a listener on listen (host:port; empty
// means no listener). A non-loopback address needs TLS and authentication,
// or Insecure. prefix names the section in messages, e.g. "web".
func (c ServerConfig) Validate(prefix, listen string) error {
	var errs []error
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%s.%w", prefix, err))
	}
	if listen != "" && !IsLoopback(listen) && !c.Secure() && !c.Insecure {
		errs = append(errs, fmt.Errorf("listen %q is not a loopback address: serve it with TLS and authentication "+
			"(%[2]s.tls.cert_file and key_file, and %[2]s.token_file or %[2]s.tls.client_ca_file), "+
			"or set %[2]s.insecure: true to serve it in plaintext without authentication", listen, prefix))
	}
	return errors.Join(errs...)
}

// Warning returns what to log at start for a listener on listen, or ""
// when there is nothing to say: a non-loopback address without TLS or
// authentication (allowed by Insecure).
func (c ServerConfig) Warning(listen string) string {
	if listen == "" || IsLoopback(listen) || c.Secure() {
		return ""
	}
	var miss []string
	if !c.TLS.IsSet() {
		miss = append(miss, "TLS")
	}
	if !c.Authenticated() {
		miss = append(miss, "authentication")
	}
	return fmt.Sprintf("serving %s on a non-loopback address without %s (insecure: true): anyone who can reach it can read it",
		listen, strings.Join(miss, " or "))
}

// IsLoopback reports whether the host of hostport (host:port, or a bare
// host) is a loopback address or "localhost". An empty host — every
// interface — is not.
func IsLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Server is a ServerConfig with its files loaded.
type Server struct {
	cfg    ServerConfig
	tls    *tls.Config
	tokens *TokenFile
	// Unauthorized counts requests refused for a missing or wrong token.
	Unauthorized atomic.Uint64
}

// NewServer loads the certificate, client CAs and tokens the config names.
func NewServer(cfg ServerConfig) (*Server, error) {
	s := &Server{cfg: cfg}
	var err error
	if s.tls, err = cfg.TLS.Build(); err != nil {
		return nil, err
	}
	if cfg.TokenFile != "" {
		if s.tokens, err = OpenTokenFile(cfg.TokenFile); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Listen listens on addr, with TLS when configured, and logs the
// configuration's warning, if any, on log.
func (s *Server) Listen(addr string, log *slog.Logger) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if w := s.cfg.Warning(addr); w != "" && log != nil {
		log.Warn(w)
	}
	if s.tls != nil {
		l = tls.NewListener(l, s.tls)
	}
	return l, nil
}

// Scheme is "https" with TLS, else "http".
func (s *Server) Scheme() string {
	if s.tls != nil {
		return "https"
	}
	return "http"
}

// Handler requires a valid bearer token on every request to h, when a
// token file is configured, except on the paths in open (e.g. /healthz for
// probes), which answer without one. A refused request gets 401.
func (s *Server) Handler(h http.Handler, open ...string) http.Handler {
	if s.tokens == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, p := range open {
			if r.URL.Path == p {
				h.ServeHTTP(w, r)
				return
			}
		}
		scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || !s.tokens.Valid(strings.TrimSpace(tok)) {
			s.Unauthorized.Add(1)
			w.Header().Set("WWW-Authenticate", `Bearer realm="fleetwatch"`)
			http.Error(w, "unauthorized: a valid bearer token is required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
