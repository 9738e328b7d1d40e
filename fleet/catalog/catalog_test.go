package catalog_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/fleetwatch/fleetwatch/fleet/catalog"
)

func TestExampleCatalog(t *testing.T) {
	c, err := catalog.Load("../../deploy/catalog.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Models(); !slices.Equal(got, []string{"candidate_retrieval_v4", "fraud_detector", "ranking_ensemble_v2", "user_embedding_v3"}) {
		t.Errorf("models %v", got)
	}
	// Dependencies are transitive: the feature store feeds the embedding,
	// which feeds retrieval (downstream edge), which feeds ranking.
	if got := c.Consumers("feature_store/user_features_v2"); !slices.Equal(got, []string{"candidate_retrieval_v4", "ranking_ensemble_v2", "user_embedding_v3"}) {
		t.Errorf("consumers %v", got)
	}
	if got := c.Portfolio("recommendation"); len(got) != 3 {
		t.Errorf("recommendation portfolio %v", got)
	}
	if o, rb, ok := c.Owner("feature_store/user_features_v2"); !ok || o.Oncall != "feature-platform-oncall" || rb == "" {
		t.Errorf("pipeline owner %+v %q %v", o, rb, ok)
	}
	emb := c.Model("user_embedding_v3")
	if len(emb.SLOs) != 1 || emb.SLOs[0].LatencyMs != 5 || emb.SLOs[0].Kind != catalog.SLOLatency {
		t.Errorf("latency_p99_target_ms should give a latency SLO: %+v", emb.SLOs)
	}
	if s := c.Model("fraud_detector").SLOs; len(s) != 1 || s[0].Kind != catalog.SLOAvailability {
		t.Errorf("fraud SLOs %+v", s)
	}
}

func TestBadCatalogs(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "model: {name: a}\nownr: {team: x}\n", "ownr"},
		{"duplicate", "models:\n  - model: {name: a}\n  - model: {name: a}\n", "listed twice"},
		{"objective", "model: {name: a}\nslos: [{name: l, objective: 1.5, latency_ms: 3}]\n", "objective"},
		{"kind", "model: {name: a}\nslos: [{kind: throughput, objective: 0.9}]\n", "kind"},
		{"no name", "model: {version: \"1\"}\n", "model.name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := catalog.Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse() = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}
