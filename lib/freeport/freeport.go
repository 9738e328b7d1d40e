// Package freeport finds free loopback TCP ports for the servers that tests
// and the demo start (ClickHouse, Prometheus, the collector, the analyzer).
// A port is free when it is returned; another process may still take it
// before the server binds it, as with any such probe.
package freeport

import (
	"fmt"
	"net"
)

// Addr returns a free loopback address, "127.0.0.1:port".
func Addr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Port returns a free loopback port.
func Port() (int, error) {
	a, err := Addr()
	if err != nil {
		return 0, err
	}
	addr, err := net.ResolveTCPAddr("tcp", a)
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	return addr.Port, nil
}
