package chexporter

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"

	"github.com/fleetwatch/fleetwatch/collector/chexporter/internal/metadata"
)

// The exporter's own metrics are declared in metadata.yaml; mdatagen
// (go.opentelemetry.io/collector/cmd/mdatagen) writes internal/metadata,
// documentation.md and the generated tests from it.
//go:generate mdatagen metadata.yaml

// TypeStr is the component type in Collector configuration.
const TypeStr = "fleetwatch_clickhouse"

// Type is the component type.
var Type = metadata.Type

// NewFactory returns the exporter's factory, for Collector distributions.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(Type,
		func() component.Config { return createDefaultConfig() },
		exporter.WithMetrics(createMetrics, metadata.MetricsStability),
		exporter.WithLogs(createLogs, metadata.LogsStability),
		exporter.WithTraces(createTraces, metadata.TracesStability),
	)
}

// The exporter does not use exporterhelper: it answers a sender only once the
// request is in its own write-ahead log, validates synchronously so that
// rejections reach the sender as OTLP partial success, and counts what it
// refuses, rejects and writes itself (exporterhelper would count rejected
// items as sent).

func createMetrics(_ context.Context, set exporter.Settings, c component.Config) (exporter.Metrics, error) {
	return newExporter(c.(*Config), set, signalMetrics)
}

func createLogs(_ context.Context, set exporter.Settings, c component.Config) (exporter.Logs, error) {
	return newExporter(c.(*Config), set, signalLogs)
}

func createTraces(_ context.Context, set exporter.Settings, c component.Config) (exporter.Traces, error) {
	return newExporter(c.(*Config), set, signalTraces)
}
