package tabular

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadCSV(t *testing.T) {
	in := "\ufeffamount, country ,flag\n1.5,DE,1\n,FR,x\n-2e3,,0\nNaN, US ,1\n"
	tb, err := ReadCSV(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if tb.Rows != 4 || !slices.Equal(tb.Names(), []string{"amount", "country", "flag"}) {
		t.Fatalf("rows %d names %q", tb.Rows, tb.Names())
	}
	amount, _ := tb.Column("amount")
	if !amount.Numeric || amount.Floats[0] != 1.5 || !math.IsNaN(amount.Floats[1]) || amount.Floats[2] != -2000 || !math.IsNaN(amount.Floats[3]) {
		t.Errorf("amount: %+v", amount)
	}
	country, _ := tb.Column("country")
	if country.Numeric || !slices.Equal(country.Strings, []string{"DE", "FR", "", "US"}) {
		t.Errorf("country: %+v", country)
	}
	if flag, _ := tb.Column("flag"); flag.Numeric || flag.Len() != 4 {
		t.Errorf("flag with a non-number must be text: %+v", flag)
	}
	// In a one-column file a blank line is a missing value; trailing blank
	// lines are not rows.
	one, err := ReadCSV(strings.NewReader("v\n1\n\n\n\"x\ny\"\n\n2\n\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := one.Column("v"); c.Numeric || !slices.Equal(c.Strings, []string{"1", "", "", "x\ny", "", "2"}) {
		t.Errorf("one column with blank lines: %q", c.Strings)
	}
	headerOnly, err := ReadCSV(strings.NewReader("a,b\n"))
	if err != nil || headerOnly.Rows != 0 || len(headerOnly.Columns) != 2 {
		t.Errorf("header only: %+v, %v", headerOnly, err)
	}
}

func TestReadCSVErrors(t *testing.T) {
	cases := map[string]string{
		"":                    "empty file",
		"a,,b\n1,2,3\n":       "column 2 has no name",
		"a,b,a\n":             `column "a" appears twice`,
		"a,b\n1,2\n3\n":       "line 3: 1 cells, but the header has 2 columns",
		"a,b\n1,\"2\n":        "extraneous or missing",
		"a,\xff\n1,2\n":       "not UTF-8",
		"a\n1\n2\n3,4\n5\n":   "line 4",
		"a,b\n1,2\n\n3,4\n":   "line 3: empty line",
		"a,b\n1,2\n3,4\n\n\n": "",
		"a,b\n1,2,3,4,5,6\n":  "6 cells",
		"x\n\"a\"\"b\"c\"\n":  "extraneous",
		"\n\n":                "empty file",
		"a;b\n1;2\n3\n":       "",
		"a\n" + "1\n" + "2\n": "",
	}
	for in, want := range cases {
		_, err := ReadCSV(strings.NewReader(in))
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", in, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
}

func TestReadFileByExtension(t *testing.T) {
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "t.csv")
	if err := os.WriteFile(csvPath, []byte("x,y\n1,a\n2,b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tb, err := ReadFile(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	arrowPath := filepath.Join(dir, "t.arrow")
	if err := WriteIPC(arrowPath, tb, 1); err != nil {
		t.Fatal(err)
	}
	back, err := ReadFile(arrowPath)
	if err != nil {
		t.Fatal(err)
	}
	if !equalTables(tb, back) {
		t.Fatalf("IPC round trip: %+v != %+v", back, tb)
	}
	f, err := OpenIPC(arrowPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Batches() != 2 || !f.Numeric(0) || f.Numeric(1) {
		t.Fatalf("batches %d", f.Batches())
	}
	for _, c := range []struct{ name, data, want string }{
		{"t.xlsx", "", "unknown file type"},
		{"t.parquet", "PAR1", "Parquet is not supported"},
		{"p.csv", "PAR1....", "this is a Parquet file"},
		{"bad.arrow", "not arrow", "not an Arrow IPC"},
	} {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, []byte(c.data), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadFile(p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func equalTables(a, b *Table) bool {
	if a.Rows != b.Rows || len(a.Columns) != len(b.Columns) {
		return false
	}
	for i := range a.Columns {
		x, y := a.Columns[i], b.Columns[i]
		if x.Name != y.Name || x.Numeric != y.Numeric || !slices.Equal(x.Strings, y.Strings) {
			return false
		}
		if !slices.EqualFunc(x.Floats, y.Floats, func(p, q float64) bool { return p == q || (math.IsNaN(p) && math.IsNaN(q)) }) {
			return false
		}
	}
	return true
}

// FuzzReadCSV: any input either fails with an error or yields a consistent
// table that survives a write and a second read unchanged.
func FuzzReadCSV(f *testing.F) {
	for _, s := range []string{"a,b\n1,x\n,y\n", "\ufeffa\n1e308\n-inf\n", "a,b\n\"1,2\",3\n", "a\n\n\n", "a,b\n1\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		tb, err := ReadCSV(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, c := range tb.Columns {
			if c.Len() != tb.Rows {
				t.Fatalf("column %q has %d rows, table %d", c.Name, c.Len(), tb.Rows)
			}
		}
		var buf bytes.Buffer
		if err := WriteCSV(&buf, tb); err != nil {
			t.Fatal(err)
		}
		back, err := ReadCSV(&buf)
		if err != nil {
			t.Fatalf("re-reading written CSV: %v\n%s", err, buf.String())
		}
		if !equalTables(tb, back) {
			t.Fatalf("round trip changed the table:\n%+v\n%+v", tb, back)
		}
	})
}
