// Package netsec is the transport security Fleetwatch's own programs share:
// TLS (server, mutual, and client with a private CA) and bearer tokens, all
// read from files and re-read when the files change, so certificates and
// tokens rotate without a restart; and the loopback rule for listeners — a
// non-loopback address is served only with TLS and authentication, or with
// an explicit insecure setting that is logged as a warning.
//
// The agent uses it for its connection to the collector and for /metrics;
// the analyzer for /metrics. The collector uses the Collector's own
// configtls and auth extension instead.
//
// Layer: ground (docs/ARCHITECTURE.md, "Layers"): it imports only the
// standard library.
package netsec
