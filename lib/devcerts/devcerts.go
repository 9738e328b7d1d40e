// Package devcerts makes a private certificate authority, a server and a
// client certificate, and a bearer token, for a deployment that has no PKI
// of its own yet: the demo, tests, and `fleetctl certs` for a first
// install. It is part of the ground layer and imports nothing of ours.
//
// Keys are ECDSA P-256; certificates last a year (the CA ten); files are
// written with mode 0600 (keys, token) or 0644 (certificates) and never
// overwritten, so running it again keeps what is there.
package devcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files are the paths Ensure writes under its directory.
type Files struct {
	Dir        string
	CA         string // ca.pem: the authority both sides trust
	CAKey      string // ca-key.pem: keep it offline once the certificates exist
	ServerCert string // server.pem: for the collector's (or any) listener
	ServerKey  string // server-key.pem
	ClientCert string // client.pem: for mutual TLS from agents
	ClientKey  string // client-key.pem
	Token      string // token: a bearer token (64 hex digits)
}

// FilesIn names the files under dir.
func FilesIn(dir string) Files {
	p := func(n string) string { return filepath.Join(dir, n) }
	return Files{Dir: dir, CA: p("ca.pem"), CAKey: p("ca-key.pem"), ServerCert: p("server.pem"), ServerKey: p("server-key.pem"),
		ClientCert: p("client.pem"), ClientKey: p("client-key.pem"), Token: p("token")}
}

// Ensure creates whatever of the CA, the server certificate (valid for
// hosts: names or IP addresses; loopback is always included), the client
// certificate and the token is missing under dir, and returns the paths.
func Ensure(dir string, hosts []string) (Files, error) {
	f := FilesIn(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, fmt.Errorf("devcerts: %w", err)
	}
	if !exists(f.Token) {
		buf := make([]byte, 32)
		if _, err := rand.Read(buf); err != nil {
			return f, fmt.Errorf("devcerts: token: %w", err)
		}
		if err := os.WriteFile(f.Token, []byte(hex.EncodeToString(buf)+"\n"), 0o600); err != nil {
			return f, fmt.Errorf("devcerts: %w", err)
		}
	}
	if !exists(f.CA) || !exists(f.CAKey) {
		if exists(f.ServerCert) || exists(f.ClientCert) {
			return f, fmt.Errorf("devcerts: %s has certificates but no CA: remove them or restore ca.pem and ca-key.pem", dir)
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return f, fmt.Errorf("devcerts: %w", err)
		}
		tmpl := template("Fleetwatch private CA", 10*365*24*time.Hour)
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return f, fmt.Errorf("devcerts: CA: %w", err)
		}
		if err := writePair(f.CA, f.CAKey, der, key); err != nil {
			return f, err
		}
	}
	ca, caKey, err := load(f.CA, f.CAKey)
	if err != nil {
		return f, err
	}
	if !exists(f.ServerCert) {
		tmpl := template("fleetwatch server", 365*24*time.Hour)
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		for _, h := range append([]string{"localhost", "127.0.0.1", "::1"}, hosts...) {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else if h != "" {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
		if err := issue(f.ServerCert, f.ServerKey, tmpl, ca, caKey); err != nil {
			return f, err
		}
	}
	if !exists(f.ClientCert) {
		tmpl := template("fleetwatch-agent", 365*24*time.Hour)
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		if err := issue(f.ClientCert, f.ClientKey, tmpl, ca, caKey); err != nil {
			return f, err
		}
	}
	return f, nil
}

func template(cn string, life time.Duration) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Fleetwatch"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(life),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
}

func issue(certPath, keyPath string, tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("devcerts: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("devcerts: %s: %w", certPath, err)
	}
	return writePair(certPath, keyPath, der, key)
}

func writePair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("devcerts: %w", err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return fmt.Errorf("devcerts: %w", err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("devcerts: %w", err)
	}
	return nil
}

func load(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("devcerts: %w", err)
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("devcerts: %w", err)
	}
	cp, _ := pem.Decode(cb)
	kp, _ := pem.Decode(kb)
	if cp == nil || kp == nil {
		return nil, nil, fmt.Errorf("devcerts: %s or %s is not PEM", certPath, keyPath)
	}
	cert, err := x509.ParseCertificate(cp.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("devcerts: %s: %w", certPath, err)
	}
	key, err := x509.ParseECPrivateKey(kp.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("devcerts: %s: %w", keyPath, err)
	}
	return cert, key, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
