package storage

import "testing"

func TestParseType(t *testing.T) {
	cases := []struct {
		in       string
		base     string
		nullable bool
		elem     string
		wantErr  bool
	}{
		{"Float64", "Float64", false, "", false},
		{"Nullable(Float64)", "Float64", true, "", false},
		{"LowCardinality(String)", "String", false, "", false},
		{"LowCardinality(Nullable(String))", "String", true, "", false},
		{"Array(LowCardinality(String))", "Array", false, "String", false},
		{"DateTime('UTC')", "DateTime", false, "", false},
		{"DateTime64(3, 'UTC')", "DateTime64", false, "", false},
		{"FixedString(16)", "String", false, "", false},
		{"Enum8('a' = 1, 'b' = 2)", "String", false, "", false},
		{"Decimal(18, 2)", "", false, "", true},
		{"Array(Float64", "", false, "", true},
	}
	for _, c := range cases {
		got, err := parseType(c.in)
		if (err != nil) != c.wantErr {
			t.Errorf("parseType(%q) error %v", c.in, err)
			continue
		}
		if c.wantErr {
			continue
		}
		if got.base != c.base || got.nullable != c.nullable || (c.elem != "" && (got.elem == nil || got.elem.base != c.elem)) {
			t.Errorf("parseType(%q) = %+v", c.in, got)
		}
		if _, _, err := newColumn(got); err != nil {
			t.Errorf("newColumn(%q): %v", c.in, err)
		}
	}
	if _, _, err := newColumn(chType{base: "DateTime64", param: "x"}); err == nil {
		t.Error("bad DateTime64 precision accepted")
	}
}

func FuzzParseType(f *testing.F) {
	for _, s := range []string{"Float64", "Nullable(Array(String))", "DateTime64(9, 'Europe/Berlin')", "((", "Array()", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ct, err := parseType(s)
		if err != nil {
			return
		}
		_, col, err := newColumn(ct)
		if err == nil && col.dest() == nil {
			t.Fatalf("column for %q has no scan destination", s)
		}
	})
}
