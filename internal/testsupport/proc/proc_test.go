package proc

import (
	"os"
	"testing"
	"time"
)

func TestSelf(t *testing.T) {
	pid := os.Getpid()
	// Burn a little CPU so the counters move.
	deadline := time.Now().Add(30 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	cpu, err := CPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	if cpu <= 0 || cpu > SelfCPU()+time.Second/userHZ {
		t.Errorf("CPU(self) = %v, rusage says %v", cpu, SelfCPU())
	}
	m, err := Mem(pid)
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.PeakRSS < m.RSS {
		t.Errorf("memory = %+v, want 0 < RSS <= PeakRSS", m)
	}
}

func TestMissingProcess(t *testing.T) {
	if _, err := CPU(1 << 30); err == nil {
		t.Error("CPU of a missing process: no error")
	}
	if _, err := Mem(1 << 30); err == nil {
		t.Error("Mem of a missing process: no error")
	}
}
