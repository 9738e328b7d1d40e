package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/featuregate"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/pdata/xpdata/pref"

	"github.com/fleetwatch/fleetwatch/collector"
)

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := otelcol.NewCommand(collector.Settings("test"))
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(withDefaultConfig(args))
	err := cmd.Execute()
	return out.String(), err
}

func TestSubcommands(t *testing.T) {
	out, err := runCmd(t, "components")
	if err != nil || !strings.Contains(out, "fleetwatch_clickhouse") || !strings.Contains(out, "file_storage") ||
		!strings.Contains(out, "memory_limiter") || !strings.Contains(out, "fleetwatch_otlp") ||
		strings.Contains(out[:max(strings.Index(out, "processors:"), 0)], "name: otlp\n") { // the upstream receiver lacks the input limits
		t.Fatalf("components: %v\n%s", err, out)
	}
	if _, err := runCmd(t, "validate"); err != nil {
		t.Fatalf("the built-in config does not validate: %v", err)
	}
	if _, err := runCmd(t, "validate", "--config", "../../deploy/collector.yaml"); err != nil {
		t.Fatalf("deploy/collector.yaml does not validate: %v", err)
	}
	_, err = runCmd(t, "validate", "--config", "yaml:exporters: {fleetwatch_clickhouse: {endpoints: [nohost], max_label_length: 3}}\n"+
		"receivers: {fleetwatch_otlp: {protocols: {http: {logs_url_path: v1/logs}}}}\n"+
		"service: {pipelines: {metrics: {receivers: [fleetwatch_otlp], exporters: [fleetwatch_clickhouse]}}}")
	if err == nil || !strings.Contains(err.Error(), "nohost") || !strings.Contains(err.Error(), "max_label_length") ||
		!strings.Contains(err.Error(), "logs_url_path must start with /") {
		t.Fatalf("bad config: %v", err)
	}
}

func TestDefaultConfigIsTheDeployedOne(t *testing.T) {
	if got := withDefaultConfig([]string{"validate"}); len(got) != 3 || !strings.HasPrefix(got[2], "yaml:") {
		t.Fatalf("no default config appended: %v", got)
	}
	if got := withDefaultConfig([]string{"--config=x.yaml"}); len(got) != 1 {
		t.Fatalf("default added beside --config: %v", got)
	}
	// The embedded default is a copy of the deployed file; keep them equal.
	deployed, err := os.ReadFile("../../deploy/collector.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(deployed) != collector.DefaultConfig {
		t.Fatal("collector/default.yaml differs from deploy/collector.yaml; copy one onto the other")
	}
}

// pdata's pooling stays off unless --feature-gates turns it on (measured
// without a gain: docs/BENCHMARKS.md, "pdata's proto pooling").
func TestPdataPoolingOffUnlessTurnedOn(t *testing.T) {
	defer func() { _ = featuregate.GlobalRegistry().Set(pref.UseProtoPooling.ID(), false) }()
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"validate"}, false},
		{[]string{"validate", "--feature-gates=pdata.useProtoPooling"}, true},
	} {
		if out, err := runCmd(t, tc.args...); err != nil {
			t.Fatalf("%v: %v\n%s", tc.args, err, out)
		}
		if got := pref.UseProtoPooling.IsEnabled(); got != tc.want {
			t.Errorf("%v: pdata.useProtoPooling %v, want %v", tc.args, got, tc.want)
		}
	}
}
