package profile

import "testing"

func TestFingerprint(t *testing.T) {
	num := &Profile{Kind: Numeric, Edges: []float64{1, 2}}
	cat := &Profile{Kind: Categorical, Categories: []string{"a", "b"}}
	for _, c := range []struct {
		name string
		a, b *Profile
		same bool
	}{
		{"same edges, other counts", num, &Profile{Kind: Numeric, Edges: []float64{1, 2}, Counts: []float64{4, 5, 6}}, true},
		{"an edge moved", num, &Profile{Kind: Numeric, Edges: []float64{1, 2.0000001}}, false},
		{"an edge more", num, &Profile{Kind: Numeric, Edges: []float64{1, 2, 3}}, false},
		{"categories reordered", cat, &Profile{Kind: Categorical, Categories: []string{"b", "a"}}, false},
		{"categories split differently", cat, &Profile{Kind: Categorical, Categories: []string{"ab"}}, false},
	} {
		if got := c.a.Fingerprint() == c.b.Fingerprint(); got != c.same {
			t.Errorf("%s: equal fingerprints = %v", c.name, got)
		}
	}
}
