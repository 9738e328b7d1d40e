// Package proc reads a process's CPU time and memory from /proc, for
// benchmarks that measure a server and a client side by side.
package proc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userHZ is the kernel's clock tick for /proc/<pid>/stat times (100 on Linux
// for every architecture Go supports).
const userHZ = 100

// CPU returns the user+system CPU time process pid has used so far.
func CPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("proc: cpu of %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces; fields after it are fixed.
	end := bytes.LastIndexByte(data, ')')
	if end < 0 || end+2 > len(data) {
		return 0, fmt.Errorf("proc: cpu of %d: malformed stat %q", pid, data)
	}
	f := strings.Fields(string(data[end+2:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("proc: cpu of %d: stat has %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("proc: cpu of %d: malformed times %q %q", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * (time.Second / userHZ), nil
}

// SelfCPU returns the CPU time of the calling process.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Memory is a process's resident memory in bytes: now and its peak.
type Memory struct{ RSS, PeakRSS int64 }

// Mem reads VmRSS and VmHWM of process pid.
func Mem(pid int) (Memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, fmt.Errorf("proc: memory of %d: %w", pid, err)
	}
	var m Memory
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return Memory{}, fmt.Errorf("proc: memory of %d: malformed %q", pid, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("proc: memory of %d: %w", pid, err)
		}
		if k == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.PeakRSS = kb << 10
		}
	}
	return m, nil
}
