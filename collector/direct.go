package collector

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/confmap"
	"go.uber.org/zap"

	"github.com/fleetwatch/fleetwatch/collector/otlprecv"
)

// NewDirectMetricsConverter resolves each fleetwatch_otlp receiver's
// metrics_decoder. The direct decoder hands a request's columns to the
// ClickHouse exporter past the Collector's pipeline, so it is only right
// where that pipeline would pass the request through unchanged to that one
// exporter: the receiver is in one metrics pipeline, whose processors are
// memory_limiter only and whose one exporter is fleetwatch_clickhouse.
// "auto" (the default) becomes "direct" there and "pdata" elsewhere, with
// an info line saying why; an explicit "direct" anywhere else is an error.
func NewDirectMetricsConverter() confmap.ConverterFactory {
	return confmap.NewConverterFactory(func(set confmap.ConverterSettings) confmap.Converter {
		logger := set.Logger
		if logger == nil {
			logger = zap.NewNop()
		}
		return directMetricsConverter{logger: logger}
	})
}

type directMetricsConverter struct{ logger *zap.Logger }

const (
	receiverType = "fleetwatch_otlp"
	decoderKey   = "metrics_decoder"
)

// typeOf is a component ID's type: "memory_limiter" of "memory_limiter/x".
func typeOf(id string) string {
	t, _, _ := strings.Cut(id, "/")
	return t
}

func (c directMetricsConverter) Convert(_ context.Context, conf *confmap.Conf) error {
	raw := conf.ToStringMap()
	receivers, _ := raw["receivers"].(map[string]any)
	service, _ := raw["service"].(map[string]any)
	pipelines, _ := service["pipelines"].(map[string]any)
	resolved := map[string]any{}
	for id, cfg := range receivers {
		if typeOf(id) != receiverType {
			continue
		}
		mode := otlprecv.DecoderAuto
		if m, ok := cfg.(map[string]any); ok {
			if s, ok := m[decoderKey].(string); ok {
				mode = s
			}
		}
		if mode != otlprecv.DecoderAuto && mode != otlprecv.DecoderDirect {
			continue // pdata, or a value the receiver's Validate refuses
		}
		why := directRefusal(id, pipelines)
		switch {
		case why == "":
			resolved[id] = map[string]any{decoderKey: otlprecv.DecoderDirect}
		case mode == otlprecv.DecoderDirect:
			return fmt.Errorf("receivers::%s: metrics_decoder: direct needs %s", id, why)
		default:
			c.logger.Info("metrics_decoder: auto resolved to pdata", zap.String("receiver", id), zap.String("because", "direct needs "+why))
			resolved[id] = map[string]any{decoderKey: otlprecv.DecoderPdata}
		}
	}
	if len(resolved) == 0 {
		return nil
	}
	return conf.Merge(confmap.NewFromStringMap(map[string]any{"receivers": resolved}))
}

// directRefusal says why receiver id's metrics cannot take the direct
// path, or "" when they can.
func directRefusal(id string, pipelines map[string]any) string {
	var in []map[string]any
	for pid, p := range pipelines {
		pm, _ := p.(map[string]any)
		if typeOf(pid) == "metrics" && slices.Contains(idList(pm["receivers"]), id) {
			in = append(in, pm)
		}
	}
	if len(in) != 1 {
		return fmt.Sprintf("the receiver in exactly one metrics pipeline (it is in %d)", len(in))
	}
	for _, p := range idList(in[0]["processors"]) {
		if typeOf(p) != "memory_limiter" {
			return fmt.Sprintf("no processor but memory_limiter in its metrics pipeline (it has %s)", p)
		}
	}
	if ex := idList(in[0]["exporters"]); len(ex) != 1 || typeOf(ex[0]) != "fleetwatch_clickhouse" {
		return fmt.Sprintf("fleetwatch_clickhouse as the only exporter of its metrics pipeline (it has %v)", ex)
	}
	return ""
}

// idList reads a pipeline's list of component IDs.
func idList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
