package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetwatch/fleetwatch/storage"
)

// One exit-code convention for every command: 2 for a wrong command line,
// with the command's usage on stderr; 1 for a failure while running, with
// the command's name and the error; 0 for --help.
func TestExitCodesAreTheSameForEveryCommand(t *testing.T) {
	t.Setenv(storage.DSNEnv, "")
	const nowhere = "clickhouse://127.0.0.1:1/fw?dial_timeout=200ms"
	missing := filepath.Join(t.TempDir(), "missing")
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		cmd string
		// extra is a stray positional argument.
		extra []string
		// badValue is a flag value that cannot be used, or nil for a
		// command without such flags.
		badValue []string
		// fails runs and fails, or nil for a command that cannot fail.
		fails []string
	}{
		{"migrate", []string{"x"}, []string{"--profile", "newest"}, []string{"--dsn", nowhere}},
		{"retention", []string{"x"}, []string{"--dsn", "http://127.0.0.1:1/fw"}, []string{"--dsn", nowhere}},
		{"demo", []string{"x"}, []string{"--duration", "soon"}, []string{"--data", t.TempDir(), "--scenario", missing + ".yaml"}},
		{"drift", []string{"x"}, []string{"--reference", "r.csv", "--current", "c.csv", "--bins", "1"}, []string{"--reference", missing + ".csv", "--current", missing + ".csv"}},
		{"spc", []string{"x"}, []string{"--input", "s.csv", "--rules", "we9"}, []string{"--input", missing + ".csv"}},
		{"incidents", []string{"x"}, []string{"--format", "xml"}, []string{"--dsn", nowhere}},
		{"simulate", []string{"x"}, []string{"--dsn", "bogus://h"}, []string{"--scenario", missing + ".yaml", "--dsn", nowhere}},
		{"sql", []string{"SELECT 1", "SELECT 2"}, []string{"--format", "xml", "SELECT 1"}, []string{"--dsn", nowhere, "SELECT 1"}},
		{"version", []string{"x"}, nil, nil},
		{"canary", []string{"plan", "--rate", "1", "--samples", "1", "x"}, []string{"plan", "--rate", "1", "--stages", "x"}, []string{"status", "--dsn", nowhere}},
		{"users", []string{"x"}, []string{"--format", "xml"}, []string{"--apply", "--dsn", nowhere}},
		{"certs", []string{"x"}, nil, []string{"--dir", filepath.Join(notADir, "tls")}},
		{"cost", []string{"x"}, []string{"--prices", "p.yaml", "--gpus", "g.csv", "--allocations", "a.csv", "--from", "2026-11-01", "--to", "2026-11-02", "--shared", "fair"},
			[]string{"--prices", missing + ".yaml", "--gpus", "g.csv", "--allocations", "a.csv", "--from", "2026-11-01", "--to", "2026-11-02"}},
		{"backtest", []string{"x"}, []string{"--from", "2026-11-23T00:00:00Z", "--to", "never"},
			[]string{"--from", "2026-11-23T00:00:00Z", "--to", "2026-11-23T01:00:00Z", "--dsn", nowhere}},
	}
	tested := map[string]bool{}
	for _, c := range cases {
		tested[c.cmd] = true
		t.Run(c.cmd, func(t *testing.T) {
			try := func(what string, want int, args ...string) {
				t.Helper()
				code, _, errOut := fleetctl(t, append([]string{c.cmd}, args...)...)
				if code != want {
					t.Errorf("%s: exit %d, want %d; stderr:\n%s", what, code, want, errOut)
					return
				}
				switch want {
				case exitUsage:
					if !strings.Contains(errOut, "Usage: fleetctl "+c.cmd) {
						t.Errorf("%s: no usage on stderr:\n%s", what, errOut)
					}
				case exitFailure:
					if !strings.HasPrefix(errOut, "fleetctl "+c.cmd+": ") && !strings.Contains(errOut, "\nfleetctl "+c.cmd+": ") {
						t.Errorf("%s: stderr does not say which command failed:\n%s", what, errOut)
					}
				}
			}
			try("unknown flag", exitUsage, "--bogus")
			try("stray argument", exitUsage, c.extra...)
			if c.badValue != nil {
				try("bad flag value", exitUsage, c.badValue...)
			}
			if c.fails != nil {
				try("failure while running", exitFailure, c.fails...)
			}
			try("--help", exitOK, "--help")
		})
	}
	for _, c := range commands {
		if !tested[c.name] {
			t.Errorf("command %s has no exit-code cases here", c.name)
		}
	}
	if code, _, errOut := fleetctl(t); code != exitUsage || !strings.Contains(errOut, "Exit status") {
		t.Errorf("no command: exit %d, stderr:\n%s", code, errOut)
	}
	if code, out, _ := fleetctl(t, "--help"); code != exitOK || !strings.Contains(out, "2  the command line is wrong") {
		t.Errorf("--help does not document the exit codes: %d\n%s", code, out)
	}
}
