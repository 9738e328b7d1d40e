package alerting_test

import (
	"strings"
	"testing"

	"github.com/fleetwatch/fleetwatch/alerting"
)

func TestConfigValidateListsEveryProblem(t *testing.T) {
	cfg := alerting.NewDefaultConfig()
	cfg.Lifecycle.OpenSeverity = "urgent"
	cfg.Lifecycle.OpenAfter = 0
	cfg.Silences = []alerting.Silence{{Matchers: []string{"rack"}}}
	err := cfg.Validate()
	for _, want := range []string{"open_severity \"urgent\"", "open_after", "silence 1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to mention %s", err, want)
		}
	}
}
