package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPortsCanBeBound(t *testing.T) {
	a, err := Addr()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Port()
	if err != nil {
		t.Fatal(err)
	}
	if p <= 0 || p > 65535 {
		t.Fatalf("port %d", p)
	}
	for _, addr := range []string{a, "127.0.0.1:" + strconv.Itoa(p)} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen on %s: %v", addr, err)
		}
		l.Close()
	}
}
