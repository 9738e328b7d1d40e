package knob

import (
	"fmt"
	"strings"
	"testing"
)

// fatal records Fatalf instead of stopping the test.
type fatal struct {
	testing.TB
	msg string
}

func (f *fatal) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestInt(t *testing.T) {
	t.Setenv("FLEETWATCH_KNOB_TEST", "")
	if got := Int(t, "FLEETWATCH_KNOB_TEST", 7); got != 7 {
		t.Errorf("unset: %d, want the default 7", got)
	}
	t.Setenv("FLEETWATCH_KNOB_TEST", "-12")
	if got := Int(t, "FLEETWATCH_KNOB_TEST", 7); got != -12 {
		t.Errorf("set to -12: %d", got)
	}
	t.Setenv("FLEETWATCH_KNOB_TEST", "12x")
	f := &fatal{TB: t}
	Int(f, "FLEETWATCH_KNOB_TEST", 7)
	if !strings.HasPrefix(f.msg, "FLEETWATCH_KNOB_TEST: ") {
		t.Errorf("a malformed value: %q, want a failure naming the variable", f.msg)
	}
}
