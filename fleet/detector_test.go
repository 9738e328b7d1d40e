package fleet_test

import (
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
)

func TestAlign(t *testing.T) {
	w := fleet.Align(time.Date(2026, 11, 23, 12, 7, 31, 0, time.UTC), 5*time.Minute)
	if w.Start != time.Date(2026, 11, 23, 12, 5, 0, 0, time.UTC) || w.End != time.Date(2026, 11, 23, 12, 10, 0, 0, time.UTC) {
		t.Fatalf("Align = %v", w)
	}
	// Before 1970 too.
	w = fleet.Align(time.Unix(-1, 0), time.Minute)
	if w.Start.Unix() != -60 || w.End.Unix() != 0 {
		t.Fatalf("Align(-1s) = %v", w)
	}
}
