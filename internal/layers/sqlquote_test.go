package layers

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// quotingAllowed lists the files that may write a ClickHouse string literal
// by hand, and why.
var quotingAllowed = map[string]string{
	"storage/chsql/chsql.go": "the one quoting helper",
	"dashboards/expand.go":   "reproduces Grafana's variable formats and the data source's macros, which are not ours to choose",
}

// A format verb inside single quotes: fmt.Sprintf("x = '%s'", v).
var quotedVerb = regexp.MustCompile(`'%[-+# 0-9.]*[a-zA-Z]`)

// TestSQLLiteralsComeFromTheQuotingHelper fails on a string literal of SQL
// assembled outside storage/chsql: a Go string that opens or closes a
// single-quoted literal and is glued to a value with +, a format verb
// between single quotes in fmt.Sprintf, Fprintf or Appendf, or a join whose
// separator holds a quote. Such code is one forgotten backslash away from
// an injection; chsql.String escapes both ' and \.
func TestSQLLiteralsComeFromTheQuotingHelper(t *testing.T) {
	root := moduleRoot(t)
	var problems []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || quotingAllowed[rel] != "" {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, p := range handQuoted(f) {
			problems = append(problems, fset.Position(p.pos).String()[len(root)+1:]+": "+p.what)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s; render values with storage/chsql (chsql.String, chsql.In, ...)", p)
	}
}

type finding struct {
	pos  token.Pos
	what string
}

func handQuoted(f *ast.File) []finding {
	var out []finding
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BinaryExpr:
			if n.Op != token.ADD {
				return true
			}
			// Two constants glued together are one constant: fine.
			_, xConst := stringLit(n.X)
			_, yConst := stringLit(n.Y)
			if s, ok := stringLit(n.X); ok && !yConst && strings.HasSuffix(s, "'") {
				out = append(out, finding{n.Pos(), "a quote opens a literal before + " + short(s)})
			}
			if s, ok := stringLit(n.Y); ok && !xConst && strings.HasPrefix(s, "'") {
				out = append(out, finding{n.Pos(), "a quote closes a literal after + " + short(s)})
			}
		case *ast.CallExpr:
			sel, ok := n.Fun.(*ast.SelectorExpr)
			if !ok || len(n.Args) == 0 {
				return true
			}
			pkg, _ := sel.X.(*ast.Ident)
			if pkg == nil {
				return true
			}
			switch pkg.Name + "." + sel.Sel.Name {
			case "fmt.Sprintf":
				if s, ok := stringLit(n.Args[0]); ok && quotedVerb.MatchString(s) {
					out = append(out, finding{n.Pos(), "a format verb between quotes in " + short(s)})
				}
			case "fmt.Fprintf", "fmt.Appendf":
				if len(n.Args) > 1 {
					if s, ok := stringLit(n.Args[1]); ok && quotedVerb.MatchString(s) {
						out = append(out, finding{n.Pos(), "a format verb between quotes in " + short(s)})
					}
				}
			case "strings.Join":
				if len(n.Args) == 2 {
					if s, ok := stringLit(n.Args[1]); ok && strings.Contains(s, "'") {
						out = append(out, finding{n.Pos(), "a join separator with a quote " + short(s)})
					}
				}
			}
		}
		return true
	})
	return out
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

func short(s string) string {
	if len(s) > 40 {
		s = "…" + s[len(s)-40:]
	}
	return strconv.Quote(s)
}

// moduleRoot is the repository root: two folders above this file.
func moduleRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}
