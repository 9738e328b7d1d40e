package analyzer

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The example's alerting section decodes strictly into AlertingConfig, the
// SLO detector's section included, and is valid once turned on.
func TestAlertingExampleConfigIsValid(t *testing.T) {
	data, err := os.ReadFile("../../deploy/alerting.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Analyzer struct {
			Alerting AlertingConfig `yaml:"alerting"`
		} `yaml:"analyzer"`
	}
	doc.Analyzer.Alerting = NewDefaultAlertingConfig()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	cfg := doc.Analyzer.Alerting
	cfg.Enabled = true // the example shows the default, off
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Routing.Receivers) != 4 || len(cfg.Silences) != 1 || cfg.Correlation.FleetThreshold != 0.6 {
		t.Errorf("decoded %+v", cfg)
	}
}

// Validate lists the SLO detector's problems with alerting's.
func TestAlertingConfigValidateListsEveryProblem(t *testing.T) {
	cfg := NewDefaultAlertingConfig()
	cfg.Enabled = true
	cfg.Lifecycle.OpenAfter = 0
	cfg.SLO.Rules = nil
	err := cfg.Validate()
	for _, want := range []string{"open_after", "slo: no rules"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to mention %s", err, want)
		}
	}
}
