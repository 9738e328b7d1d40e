package netsec

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// keyPair is a certificate and its key, reloaded when either file changes.
// A rotation that has written one file but not yet the other fails to load
// and keeps the previous pair until both match.
func keyPair(certFile, keyFile string) (*watched[*tls.Certificate], error) {
	w, err := newWatched(func() (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load %s and %s: %w", certFile, keyFile, err)
		}
		return &c, nil
	}, certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	return w, nil
}

// certPool is a PEM bundle of CA certificates, reloaded when it changes.
func certPool(path string) (*watched[*x509.CertPool], error) {
	w, err := newWatched(func() (*x509.CertPool, error) { return loadPool(path) }, path)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	return w, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return pool, nil
}

// ClientTLS is TLS for a client of a Fleetwatch server (the agent's
// connection to the collector). Every field is optional: without CAFile the
// system's roots verify the server.
type ClientTLS struct {
	// CAFile is a PEM bundle of the CAs that sign the server's certificate
	// (a private CA). Read at start.
	CAFile string `yaml:"ca_file,omitempty"`
	// CertFile and KeyFile are the client certificate for mutual TLS;
	// re-read when they change.
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
	// ServerName overrides the name the server's certificate must carry
	// (default: the endpoint's host).
	ServerName string `yaml:"server_name,omitempty"`
}

// IsSet reports whether any field is set.
func (c ClientTLS) IsSet() bool { return c != ClientTLS{} }

// Validate checks that the certificate and its key come together.
func (c ClientTLS) Validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("tls: cert_file and key_file go together")
	}
	return nil
}

// Build reads the files and returns the client's TLS configuration. The
// client certificate is re-read on a handshake after its files changed.
func (c ClientTLS) Build() (*tls.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pool, err := loadPool(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: ca_file: %w", err)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		pair, err := keyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return pair.get(), nil }
	}
	return cfg, nil
}

// ServerTLS is TLS for a Fleetwatch listener.
type ServerTLS struct {
	// CertFile and KeyFile are the server's certificate and key.
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
	// ClientCAFile, when set, makes TLS mutual: a client must present a
	// certificate signed by one of these CAs.
	ClientCAFile string `yaml:"client_ca_file,omitempty"`
}

// IsSet reports whether TLS is configured.
func (c ServerTLS) IsSet() bool { return c != ServerTLS{} }

// Validate checks the fields belong together.
func (c ServerTLS) Validate() error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("tls: cert_file and key_file go together"))
	}
	if c.ClientCAFile != "" && c.CertFile == "" {
		errs = append(errs, errors.New("tls: client_ca_file needs cert_file and key_file"))
	}
	return errors.Join(errs...)
}

// Build reads the files and returns the server's TLS configuration, or nil
// when TLS is off. Each handshake uses the current files: the certificate,
// its key and the client CAs are re-read after they change.
func (c ServerTLS) Build() (*tls.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.IsSet() {
		return nil, nil
	}
	pair, err := keyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	var pool *watched[*x509.CertPool]
	if c.ClientCAFile != "" {
		if pool, err = certPool(c.ClientCAFile); err != nil {
			return nil, fmt.Errorf("tls: client_ca_file: %w", err)
		}
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*pair.get()}}
		if pool != nil {
			cfg.ClientCAs, cfg.ClientAuth = pool.get(), tls.RequireAndVerifyClientCert
		}
		return cfg, nil
	}
	return base, nil
}
