package chexporter

import (
	"slices"
	"testing"
)

func TestLabelsWithKeepsKeyOrderAndOwnsItsSlices(t *testing.T) {
	base := pointLabels{keys: []string{"a", "m", "z"}, values: []string{"1", "2", "3"}, truncated: 1}
	got := base.with("le", "0.5")
	if !slices.Equal(got.keys, []string{"a", "le", "m", "z"}) || !slices.Equal(got.values, []string{"1", "0.5", "2", "3"}) || got.truncated != 1 {
		t.Fatalf("with: %v %v truncated %d", got.keys, got.values, got.truncated)
	}
	other := base.with("quantile", "0.99")
	got.values[0] = "changed"
	if base.values[0] != "1" || other.values[0] != "1" || !slices.Equal(base.keys, []string{"a", "m", "z"}) {
		t.Fatalf("copies share memory: base %v, other %v", base.values, other.values)
	}
}
