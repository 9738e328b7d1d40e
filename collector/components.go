// Package collector is Fleetwatch's OpenTelemetry Collector distribution:
// Fleetwatch's OTLP receiver with partial success (package otlprecv, type
// fleetwatch_otlp) beside the standard otlp receiver, the memory_limiter and
// batch processors, the debug and OTLP exporters, the file_storage
// (persistent queues), health_check, pprof and bearertokenauth (the OTLP
// listeners' authenticator) extensions, and Fleetwatch's ClickHouse
// exporter (package chexporter).
package collector

import (
	_ "embed"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/bearertokenauthextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/pprofextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"

	"github.com/fleetwatch/fleetwatch/collector/chexporter"
	"github.com/fleetwatch/fleetwatch/collector/otlprecv"
)

// DefaultConfig is the configuration used when none is given (a copy of
// deploy/collector.yaml).
//
//go:embed default.yaml
var DefaultConfig string

// Settings returns the distribution's settings: its components, the file,
// env and yaml config providers ("env" is the default scheme, as in the
// upstream distributions) and the converter that resolves the receiver's
// metrics_decoder (NewDirectMetricsConverter).
func Settings(version string) otelcol.CollectorSettings {
	return otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{Command: "fleetwatch-collector",
			Description: "Fleetwatch OpenTelemetry Collector: OTLP in, ClickHouse out", Version: version},
		Factories: Components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
			ProviderFactories:  []confmap.ProviderFactory{fileprovider.NewFactory(), envprovider.NewFactory(), yamlprovider.NewFactory()},
			ConverterFactories: []confmap.ConverterFactory{NewDirectMetricsConverter()},
			DefaultScheme:      "env",
		}},
	}
}

// Components returns the factories of the distribution.
func Components() (otelcol.Factories, error) {
	var f otelcol.Factories
	var err error
	if f.Receivers, err = otelcol.MakeFactoryMap(otlprecv.NewFactory()); err != nil {
		return f, err
	}
	if f.Processors, err = otelcol.MakeFactoryMap(batchprocessor.NewFactory(), memorylimiterprocessor.NewFactory()); err != nil {
		return f, err
	}
	if f.Exporters, err = otelcol.MakeFactoryMap(chexporter.NewFactory(), debugexporter.NewFactory(), otlpexporter.NewFactory()); err != nil {
		return f, err
	}
	if f.Extensions, err = otelcol.MakeFactoryMap(bearertokenauthextension.NewFactory(), filestorage.NewFactory(),
		healthcheckextension.NewFactory(), pprofextension.NewFactory()); err != nil {
		return f, err
	}
	f.Telemetry = otelconftelemetry.NewFactory()
	return f, nil
}
