// Package buildinfo reports the version a binary was built from.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version and Commit are set at link time by the Makefile
// (-ldflags "-X github.com/fleetwatch/fleetwatch/lib/buildinfo.Version=...").
var (
	Version = "dev"
	Commit  = ""
)

// String is a one-line description: name, version, commit and Go version.
func String(program string) string {
	commit := Commit
	if commit == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					commit = s.Value[:12]
				}
			}
		}
	}
	if commit == "" {
		commit = "unknown"
	}
	return fmt.Sprintf("%s %s (commit %s, %s, %s/%s)", program, Version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
