package layers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/fleetwatch/fleetwatch"

// layer is where a package sits.
type layer int

const (
	unknown     layer = iota
	ground            // shared domain types, pure libraries, telemetry, storage
	stage             // agent, collector, analytics, alerting, dashboards: peers
	assembly          // binaries, the analyzer app, the demo, examples
	testSupport       // rigs and harnesses that only tests import
)

func (l layer) String() string {
	return [...]string{"unknown", "ground", "stage", "assembly", "test support"}[l]
}

// layers maps a package path (relative to the module) or a folder prefix
// ending in "/" to its layer; the longest match wins. A stage's name is the
// first element of its path.
var layers = map[string]layer{
	"fleet":     ground,
	"fleet/":    ground,
	"lib/":      ground,
	"telemetry": ground,
	"storage":   ground,
	"storage/":  ground,

	"agent":      stage,
	"agent/":     stage,
	"collector":  stage,
	"collector/": stage,
	"analytics/": stage,
	"alerting":   stage,
	"alerting/":  stage,
	"dashboards": stage,

	"cmd/":              assembly,
	"internal/demo":     assembly,
	"internal/analyzer": assembly,
	"internal/backtest": assembly,
	"internal/scoring":  assembly,
	"examples/":         assembly,

	"storage/chtest":        testSupport,
	"internal/testsupport/": testSupport,
	"internal/chaos":        testSupport,
	"internal/layers":       testSupport,
	"deploy":                testSupport, // tests of the shipped deployment files only
}

// stdlibOnly are the packages that may import nothing but the standard
// library: the shared domain types every stage speaks.
var stdlibOnly = map[string]bool{"fleet": true}

// knownViolations are imports allowed to break a rule for now, each with a
// comment saying why and what removes it; the test fails on a violation
// missing from this list and on an entry that no longer happens, so the
// list only shrinks. Key: "importer -> imported" (module-relative). Issue 14
// emptied it; keep it empty.
var knownViolations = map[string]string{}

// pkg is the part of `go list -json` the test reads.
type pkg struct {
	ImportPath string
	Imports    []string
}

func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// listModule returns every package of the module with its non-test imports.
func listModule(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command(goTool(t), "list", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list returned %d packages; expected the whole module", len(pkgs))
	}
	return pkgs
}

// rel returns path relative to the module, and whether it is in the module.
func rel(path string) (string, bool) {
	if path == module {
		return "", true
	}
	r, ok := strings.CutPrefix(path, module+"/")
	return r, ok
}

// layerOf returns the layer of a module-relative package path.
func layerOf(p string) layer {
	best, l := -1, unknown
	for k, v := range layers {
		match := p == k || (strings.HasSuffix(k, "/") && strings.HasPrefix(p, k))
		if match && len(k) > best {
			best, l = len(k), v
		}
	}
	return l
}

func stageOf(p string) string {
	s, _, _ := strings.Cut(p, "/")
	return s
}

// rule returns the rule an import from → to breaks, or "".
func rule(from, to string) string {
	lf, lt := layerOf(from), layerOf(to)
	switch {
	case lt == testSupport && lf != testSupport:
		return "test support is imported only by tests"
	case lt == assembly && lf != assembly && lf != testSupport:
		return "only the assembly imports the assembly"
	case lf == ground && lt != ground:
		return "the ground imports only the ground"
	case strings.HasPrefix(from, "lib/") && to != "fleet" && !strings.HasPrefix(to, "lib/"):
		return "a pure library imports only fleet and lib/"
	case lf == stage && lt == stage && stageOf(from) != stageOf(to):
		return "stages are peers"
	}
	return ""
}

// isStd reports whether an import path belongs to the standard library.
func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// violations returns "from -> to" → rule for every import of pkgs that breaks
// a rule, and the packages that have no layer.
func violations(pkgs []pkg) (map[string]string, []string) {
	got := map[string]string{}
	var unclassified []string
	for _, p := range pkgs {
		from, _ := rel(p.ImportPath)
		if layerOf(from) == unknown {
			unclassified = append(unclassified, from)
			continue
		}
		for _, imp := range p.Imports {
			if stdlibOnly[from] && !isStd(imp) {
				got[from+" -> "+imp] = "the shared domain types import only the standard library"
				continue
			}
			to, ours := rel(imp)
			if !ours {
				continue
			}
			if r := rule(from, to); r != "" {
				got[from+" -> "+to] = r
			}
		}
	}
	return got, unclassified
}

func TestLayers(t *testing.T) {
	got, unclassified := violations(listModule(t))
	sort.Strings(unclassified)
	for _, p := range unclassified {
		t.Errorf("package %s has no layer: add it to the table in internal/layers/layers_test.go (docs/ARCHITECTURE.md, \"Layers\")", p)
	}
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, known := knownViolations[k]; !known {
			t.Errorf("import %s breaks the rule %q", k, got[k])
		}
	}
	keys = keys[:0]
	for k := range knownViolations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, still := got[k]; !still {
			t.Errorf("known violation %s no longer happens: remove it from knownViolations", k)
		} else if got[k] != knownViolations[k] {
			t.Errorf("known violation %s breaks %q, listed as %q", k, got[k], knownViolations[k])
		}
	}
}

// TestRules checks the rules themselves on made-up imports, so that a rule
// that stopped firing cannot pass unnoticed.
func TestRules(t *testing.T) {
	for _, tc := range []struct {
		from, to, want string
	}{
		{"collector/chexporter", "analytics/drift", "stages are peers"},
		{"alerting", "analytics/engine", "stages are peers"},
		{"analytics/drift", "analytics/kernels", ""},
		{"collector/chexporter", "storage", ""},
		{"agent/ship", "telemetry", ""},
		{"storage", "analytics/drift", "the ground imports only the ground"},
		{"telemetry", "agent/record", "the ground imports only the ground"},
		{"storage", "storage/schema", ""},
		{"analytics/engine", "internal/demo", "only the assembly imports the assembly"},
		{"storage", "cmd/fleetctl", "only the assembly imports the assembly"},
		{"internal/demo", "agent", ""},
		{"cmd/fleetctl", "analytics/drift", ""},
		{"internal/demo", "internal/testsupport/promtest", "test support is imported only by tests"},
		{"agent", "internal/testsupport/disktest", "test support is imported only by tests"},
		{"storage", "storage/chtest", "test support is imported only by tests"},
		{"internal/testsupport/promtest", "lib/freeport", ""},
		{"storage/chtest", "storage", ""},
		{"lib/kernels", "storage", "a pure library imports only fleet and lib/"},
		{"lib/kernels", "fleet", ""},
		{"storage", "lib/kernels", ""},
	} {
		if got := rule(tc.from, tc.to); got != tc.want {
			t.Errorf("rule(%s -> %s) = %q, want %q", tc.from, tc.to, got, tc.want)
		}
	}
	if layerOf("nowhere/new") != unknown {
		t.Error("an unlisted package has a layer")
	}
	got, _ := violations([]pkg{{ImportPath: module + "/storage", Imports: []string{module + "/collector/wal", "fmt"}}})
	if got["storage -> collector/wal"] != "the ground imports only the ground" {
		t.Errorf("violations missed storage -> collector/wal: %v", got)
	}
	stdlibOnly["storage/schema"] = true
	defer delete(stdlibOnly, "storage/schema")
	got, _ = violations([]pkg{{ImportPath: module + "/storage/schema", Imports: []string{"fmt", "github.com/apache/arrow/go/v17/arrow"}}})
	if got["storage/schema -> github.com/apache/arrow/go/v17/arrow"] == "" {
		t.Errorf("violations missed a non-standard import of a stdlib-only package: %v", got)
	}
}
