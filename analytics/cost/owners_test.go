package cost_test

import (
	"testing"

	"github.com/fleetwatch/fleetwatch/analytics/cost"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
)

// The catalog maps model → team → cost centre for holders whose pods carry
// only the model.
func TestFillOwnersFromCatalog(t *testing.T) {
	c, err := catalog.Load("../../deploy/catalog.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	owners := func(model string) (string, string, bool) {
		m := c.Model(model)
		if m == nil {
			return "", "", false
		}
		return m.Ownership.Team, m.Ownership.CostCenter, true
	}
	allocs := []cost.Allocation{
		{GPU: "a", Tags: cost.Tags{Model: "user_embedding_v3"}},
		{GPU: "b", Tags: cost.Tags{Model: "user_embedding_v3", Team: "ml-research"}}, // the pod's own label wins
		{GPU: "c", Tags: cost.Tags{Model: "not_in_catalog"}},
		{GPU: "d", Tags: cost.Tags{Namespace: "dev"}},
	}
	if n := cost.FillOwners(allocs, owners); n != 2 {
		t.Errorf("changed %d, want 2", n)
	}
	for i, want := range []cost.Tags{
		{Model: "user_embedding_v3", Team: "recommendation-core", CostCenter: "CC-4521"},
		{Model: "user_embedding_v3", Team: "ml-research", CostCenter: "CC-4521"},
		{Model: "not_in_catalog"},
		{Namespace: "dev"},
	} {
		if allocs[i].Tags != want {
			t.Errorf("allocation %d: %+v, want %+v", i, allocs[i].Tags, want)
		}
	}
}
