package collector

import (
	"fmt"

	"go.opentelemetry.io/collector/featuregate"
	"go.opentelemetry.io/collector/pdata/xpdata/pref"
)

// DefaultFeatureGates are the Collector feature gates the distribution turns
// on unless told otherwise (--feature-gates=-<id> on the command line).
//
// pdata.useProtoPooling (alpha upstream) takes pdata's nodes — resources,
// scopes, metrics, data points, attribute values — from sync.Pools when a
// request is decoded, and returns them when the pipeline is done with it:
// the service wraps each pipeline's first processor (or, with none, its
// exporter) in a reference count that releases the request once that
// ConsumeMetrics/Logs/Traces returns, and the components that keep data
// past that (exporterhelper's queue, the batch processor) take a reference
// of their own. It is safe here because nothing in this distribution's
// default pipelines holds pdata past the call: fleetwatch_otlp hands each
// request on synchronously and does not touch it after, memory_limiter
// passes it through, and fleetwatch_clickhouse turns it into its own rows
// (Go strings, copied out of the request by pdata's decoder) and writes
// them to its log before returning. A component added to this distribution
// that keeps a pmetric/plog/ptrace value after its Consume call returns
// must take a reference (xpdata/pref) or copy it.
var DefaultFeatureGates = []string{pref.UseProtoPooling.ID()}

// SetDefaultFeatureGates enables DefaultFeatureGates in the global
// registry. cmd/fleetwatch-collector calls it before parsing its flags, so
// --feature-gates still has the last word; Start calls it too.
func SetDefaultFeatureGates() error {
	for _, id := range DefaultFeatureGates {
		if err := featuregate.GlobalRegistry().Set(id, true); err != nil {
			return fmt.Errorf("enabling feature gate %s: %w", id, err)
		}
	}
	return nil
}
