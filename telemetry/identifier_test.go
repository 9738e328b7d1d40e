package telemetry_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/fleetwatch/fleetwatch/telemetry"
)

func TestCheckIdentifier(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"empty", "", true},
		{"host", "node-0042.dc1.example.com", true},
		{"uuid", "GPU-8e3f0c0a-6f0e-4b3c-9a57-1f2d3c4b5a69", true},
		{"GPU model with spaces", "NVIDIA H100 80GB HBM3", true},
		{"model with version punctuation", "fraud-detector/v2.1_rc+3 (canary)", true},
		{"unicode letters", "modèle-ß-日本", true},
		{"replacement character", "bad\uFFFDname", true},
		{"longest", strings.Repeat("a", telemetry.MaxIdentifierBytes), true},
		{"too long", strings.Repeat("a", telemetry.MaxIdentifierBytes+1), false},
		{"single quote", "o'brien", false},
		{"double quote", `say "hi"`, false},
		{"backslash", `a\b`, false},
		{"backtick", "a`b", false},
		{"injection", `\') UNION ALL SELECT name FROM system.databases -- `, false},
		{"newline", "a\nb", false},
		{"tab", "a\tb", false},
		{"NUL", "a\x00b", false},
		{"DEL", "a\x7fb", false},
		{"C1 control", "a\u0085b", false},
		{"line separator", "a\u2028b", false},
		{"zero-width space", "a\u200bb", false},
		{"no-break space", "a\u00a0b", false},
		{"invalid UTF-8", "a\xffb", false},
		{"truncated UTF-8", "a\xe6\x97", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := telemetry.CheckIdentifier(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("CheckIdentifier(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if err != nil && !errors.Is(err, telemetry.ErrBadIdentifier) {
				t.Errorf("%v does not wrap ErrBadIdentifier", err)
			}
		})
	}
}

func TestIdentifierAttributesAreKnown(t *testing.T) {
	for _, k := range telemetry.IdentifierAttributes {
		if !telemetry.IsIdentifierAttribute(k) {
			t.Errorf("%s is listed but not recognised", k)
		}
	}
	if telemetry.IsIdentifierAttribute(telemetry.AttrLatencyMs) {
		t.Errorf("%s is a number, not an identifier", telemetry.AttrLatencyMs)
	}
}

// The policy, restated rune by rune, agrees with CheckIdentifier on any input.
func FuzzCheckIdentifier(f *testing.F) {
	for _, s := range []string{"", "node-1", "o'brien", `a\b`, "a\x00", "\xff", "日本", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := len(s) <= telemetry.MaxIdentifierBytes && utf8.ValidString(s)
		for _, r := range s {
			if strings.ContainsRune("'\"\\`", r) || (r != ' ' && !unicode.IsPrint(r)) {
				want = false
			}
		}
		if got := telemetry.CheckIdentifier(s) == nil; got != want {
			t.Fatalf("CheckIdentifier(%q) ok=%v, want %v", s, got, want)
		}
	})
}
