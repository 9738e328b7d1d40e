package alerting_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/fleetwatch/fleetwatch/alerting"
)

func TestExampleConfigIsValid(t *testing.T) {
	data, err := os.ReadFile("../deploy/alerting.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Analyzer struct {
			Alerting struct {
				Enabled         bool `yaml:"enabled"`
				alerting.Config `yaml:",inline"`
			} `yaml:"alerting"`
		} `yaml:"analyzer"`
	}
	doc.Analyzer.Alerting.Config = alerting.NewDefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	cfg := doc.Analyzer.Alerting.Config
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Routing.Receivers) != 4 || len(cfg.Silences) != 1 || cfg.Correlation.FleetThreshold != 0.6 {
		t.Errorf("decoded %+v", cfg)
	}
}

func TestConfigValidateListsEveryProblem(t *testing.T) {
	cfg := alerting.NewDefaultConfig()
	cfg.Lifecycle.OpenSeverity = "urgent"
	cfg.Lifecycle.OpenAfter = 0
	cfg.Silences = []alerting.Silence{{Matchers: []string{"rack"}}}
	cfg.SLO.Rules = nil
	err := cfg.Validate()
	for _, want := range []string{"open_severity \"urgent\"", "open_after", "silence 1", "slo: no rules"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to mention %s", err, want)
		}
	}
}
