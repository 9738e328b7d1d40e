// Command fleetwatch-collector is Fleetwatch's OpenTelemetry Collector
// distribution. It takes ordinary Collector YAML (--config) and supports the
// usual subcommands: validate, components, print-config. Without --config it
// runs the built-in default (deploy/collector.yaml).
package main

import (
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/collector/otelcol"

	"github.com/fleetwatch/fleetwatch/collector"
	"github.com/fleetwatch/fleetwatch/lib/buildinfo"
)

// withDefaultConfig adds the built-in configuration when no --config is given.
func withDefaultConfig(args []string) []string {
	for _, a := range args {
		if a == "--config" || a == "-config" || strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "-config=") ||
			a == "components" || a == "-h" || a == "--help" || a == "help" || a == "--version" || a == "-v" {
			return args
		}
	}
	return append(args, "--config", "yaml:"+collector.DefaultConfig)
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run enables collector.DefaultFeatureGates, then runs the command with
// args: a --feature-gates flag among them has the last word
// (--feature-gates=-pdata.useProtoPooling turns pdata's pooling off).
func run(args []string) error {
	if err := collector.SetDefaultFeatureGates(); err != nil {
		return err
	}
	cmd := otelcol.NewCommand(collector.Settings(buildinfo.Version))
	cmd.SetArgs(withDefaultConfig(args))
	return cmd.Execute()
}
