package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/fleetwatch/fleetwatch/lib/devcerts"
)

// runCerts makes a private CA, server and client certificates and a bearer
// token for a first install (what the shipped configs reference).
func runCerts(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "certs")
	dir := fs.String("dir", "/etc/fleetwatch/tls", "directory for ca.pem, server.pem, client.pem, their keys and the token; existing files are kept")
	hosts := fs.String("hosts", "", "comma-separated names and IP addresses the server certificate is valid for, besides localhost")
	if err := parse(fs, args); err != nil {
		return err
	}
	var hs []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hs = append(hs, h)
		}
	}
	f, err := devcerts.Ensure(*dir, hs)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, `certificates and token in %s:
  ca.pem                      trust anchor: agents' tls.ca_file, Prometheus' tls_config.ca_file
  server.pem, server-key.pem  the collector's (and /metrics') tls.cert_file and tls.key_file
  client.pem, client-key.pem  agents' client certificate, for mutual TLS
  token                       bearer token: the collector's auth extension and agents' token_file
  ca-key.pem                  signs new certificates; move it off the host when done
`, f.Dir)
	return nil
}
