package collector

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/confmap"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"gopkg.in/yaml.v3"
)

// The converter makes metrics_decoder: auto direct exactly where the
// receiver's metrics pipeline passes requests unchanged to the ClickHouse
// exporter, says why it does not elsewhere, and refuses an explicit direct
// there.
func TestDirectMetricsConverter(t *testing.T) {
	const receivers = `
receivers:
  fleetwatch_otlp: %s
  fleetwatch_otlp/b: {}
  otlp: {}
`
	for _, tc := range []struct {
		name      string
		receiver  string // the settings of fleetwatch_otlp
		pipelines string
		want      map[string]string // receiver → resolved decoder ("" none)
		err       string
		why       string // in the info line for fleetwatch_otlp
	}{
		{"the shipped pipelines", "{}", `
    metrics: {receivers: [fleetwatch_otlp], processors: [memory_limiter], exporters: [fleetwatch_clickhouse]}
    logs: {receivers: [fleetwatch_otlp], processors: [memory_limiter, batch], exporters: [fleetwatch_clickhouse, debug]}`,
			map[string]string{"fleetwatch_otlp": "direct", "fleetwatch_otlp/b": "pdata"}, "", ""},
		{"named components, no processor", "{metrics_decoder: auto}", `
    metrics/gpu: {receivers: [fleetwatch_otlp], exporters: [fleetwatch_clickhouse/main]}
    metrics/other: {receivers: [fleetwatch_otlp/b], processors: [memory_limiter/x], exporters: [fleetwatch_clickhouse]}`,
			map[string]string{"fleetwatch_otlp": "direct", "fleetwatch_otlp/b": "direct"}, "", ""},
		{"a batch processor", "{}", `
    metrics: {receivers: [fleetwatch_otlp], processors: [memory_limiter, batch], exporters: [fleetwatch_clickhouse]}`,
			map[string]string{"fleetwatch_otlp": "pdata"}, "", "it has batch"},
		{"a second exporter", "{}", `
    metrics: {receivers: [fleetwatch_otlp], exporters: [fleetwatch_clickhouse, debug]}`,
			map[string]string{"fleetwatch_otlp": "pdata"}, "", "[fleetwatch_clickhouse debug]"},
		{"two metrics pipelines", "{}", `
    metrics: {receivers: [fleetwatch_otlp], exporters: [fleetwatch_clickhouse]}
    metrics/copy: {receivers: [fleetwatch_otlp], exporters: [fleetwatch_clickhouse/b]}`,
			map[string]string{"fleetwatch_otlp": "pdata"}, "", "it is in 2"},
		{"pdata stays pdata", "{metrics_decoder: pdata}", `
    metrics: {receivers: [fleetwatch_otlp], exporters: [fleetwatch_clickhouse]}`,
			map[string]string{"fleetwatch_otlp": "pdata"}, "", ""},
		{"direct where it cannot be", "{metrics_decoder: direct}", `
    metrics: {receivers: [fleetwatch_otlp], exporters: [debug]}`,
			nil, "receivers::fleetwatch_otlp: metrics_decoder: direct needs fleetwatch_clickhouse as the only exporter", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var raw map[string]any
			doc := strings.Replace(receivers, "%s", tc.receiver, 1) + "service:\n  pipelines:" + tc.pipelines + "\n"
			if err := yaml.Unmarshal([]byte(doc), &raw); err != nil {
				t.Fatal(err)
			}
			conf := confmap.NewFromStringMap(raw)
			core, logs := observer.New(zap.InfoLevel)
			err := NewDirectMetricsConverter().Create(confmap.ConverterSettings{Logger: zap.New(core)}).Convert(context.Background(), conf)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for id, want := range tc.want {
				got, _ := conf.Get("receivers::" + id + "::metrics_decoder").(string)
				if got != want {
					t.Errorf("%s: metrics_decoder %q, want %q", id, got, want)
				}
			}
			if got := conf.Get("receivers::otlp::metrics_decoder"); got != nil {
				t.Errorf("another receiver type got metrics_decoder %v", got)
			}
			if tc.why != "" {
				found := false
				for _, e := range logs.FilterField(zap.String("receiver", "fleetwatch_otlp")).All() {
					found = found || strings.Contains(e.ContextMap()["because"].(string), tc.why)
				}
				if !found {
					t.Errorf("no info line saying %q: %v", tc.why, logs.All())
				}
			}
		})
	}
}
