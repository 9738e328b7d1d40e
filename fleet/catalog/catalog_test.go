package catalog_test

import (
	"slices"
	"strings"
	"testing"
	"time"

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
	// Features map to the pipeline among the model's upstreams that serves them.
	if p, f, ok := c.FeaturePipeline("user_embedding_v3", "cart_value"); !ok || p != "feature_store/user_features_v2" ||
		f.Type != catalog.FeatureRealtime || f.FreshnessSLO != 30*time.Second {
		t.Errorf("FeaturePipeline(cart_value) = %q %+v %v", p, f, ok)
	}
	if sc, ev := emb.Scaling, emb.Evaluation; sc.PerReplicaConcurrency != 8 || sc.Step != 2 || sc.LoadTime != 3*time.Minute ||
		ev.LastKnownGood != "3.2.0" || ev.CodeCommit != "4f2a9c1" || ev.DataVersion != "interactions-2026-11-30" || ev.OfflineMetrics["ndcg"] != 0.41 {
		t.Errorf("scaling %+v evaluation %+v", sc, ev)
	}
	if _, _, ok := c.FeaturePipeline("fraud_detector", "cart_value"); ok {
		t.Error("fraud_detector does not depend on the pipeline")
	}
}

func TestBadCatalogs(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "model: {name: a}\nownr: {team: x}\n", "ownr"},
		{"duplicate", "models:\n  - model: {name: a}\n  - model: {name: a}\n", "listed twice"},
		{"objective", "model: {name: a}\nslos: [{name: l, objective: 1.5, latency_ms: 3}]\n", "objective"},
		{"kind", "model: {name: a}\nslos: [{kind: throughput, objective: 0.9}]\n", "kind"},
		{"no name", "model: {version: \"1\"}\n", "model.name"},
		{"feature type", "components: [{name: p, type: feature_pipeline, features: [{name: f, type: hourly}]}]\n", "type \"hourly\""},
		{"feature twice", "components: [{name: p, type: feature_pipeline, features: [{name: f, type: static}, {name: f, type: static}]}]\n", "feature f is listed twice"},
		{"feature slo", "components: [{name: p, type: feature_pipeline, features: [{name: f, type: static, freshness_slo: -1h}]}]\n", "negative"},
		{"scaling step", "model: {name: a}\nscaling: {per_replica_concurrency: 4, step: 3}\n", "scaling.step 3, want 1, 2 or 4"},
		{"scaling concurrency", "model: {name: a}\nscaling: {per_replica_concurrency: -1}\n", "per_replica_concurrency -1 is negative"},
		{"scaling load time", "model: {name: a}\nscaling: {load_time: -1m}\n", "load_time -1m0s is negative"},
		{"min above max", "model: {name: a}\nserving: {min_replicas: 5, max_replicas: 2}\n", "min_replicas 5 is above max_replicas 2"},
		{"commit", "model: {name: a}\nevaluation: {code_commit: main}\n", "code_commit \"main\" is not a hex commit id"},
		{"last known good is itself", "model: {name: a, version: \"7\"}\nevaluation: {last_known_good: \"7\"}\n", "is the model's own version"},
		{"evaluation key", "model: {name: a}\nevaluation: {accuracy: 0.9}\n", "accuracy"},
		{"features off a pipeline", "components: [{name: p, type: feature_store, features: [{name: f, type: static}]}]\n", "want feature_pipeline"},
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

func TestCanaryOverrides(t *testing.T) {
	c, err := catalog.Parse([]byte(`
model: {name: ranker, version: "8", type: ranking, domain: recommendation}
canary: {model_type: recommendation, gate_p99_ms: 80, engagement_window: 30m, drift_is_rollback: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Model("ranker").Canary
	if got.ModelType != "recommendation" || got.GateP99Ms != 80 || got.EngagementWindow != 30*time.Minute || !got.DriftIsRollback {
		t.Errorf("canary section %+v", got)
	}
	_, err = catalog.Parse([]byte(`
model: {name: ranker}
canary: {gate_p50_ms: -1, latency_window: -5m}
`))
	for _, want := range []string{"canary.gate_p50_ms -1 is negative", "canary.latency_window -5m0s is negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	if _, err := catalog.Parse([]byte("model: {name: ranker}\ncanary: {gate_p95_ms: 3}\n")); err == nil || !strings.Contains(err.Error(), "gate_p95_ms") {
		t.Errorf("unknown canary key: %v", err)
	}
}
