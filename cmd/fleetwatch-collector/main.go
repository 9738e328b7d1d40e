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
	cmd := otelcol.NewCommand(collector.Settings(buildinfo.Version))
	cmd.SetArgs(withDefaultConfig(os.Args[1:]))
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
