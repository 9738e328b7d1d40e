package drift_test

import (
	"slices"
	"testing"

	"github.com/fleetwatch/fleetwatch/analytics/drift"
)

func TestFlagNeedsSignificanceAndSize(t *testing.T) {
	rs := []drift.Result{
		{PValue: 1e-9, Band: drift.Stable},      // significant, tiny: a big sample's noise
		{PValue: 1e-9, Band: drift.Investigate}, // significant and large enough
		{PValue: 0.4, Band: drift.Action},       // large but not significant: a small window
		{PValue: 1e-6, Band: drift.Action},
	}
	flagged, q := drift.Flag(rs, 0.01)
	if !slices.Equal(flagged, []bool{false, true, false, true}) {
		t.Fatalf("flagged %v", flagged)
	}
	if q[0] != q[1] || q[2] != 0.4 || !(q[3] > q[1] && q[3] < 0.01) {
		t.Fatalf("q-values %v", q)
	}
}
