//go:build !simulator

package main

import (
	"log/slog"

	"github.com/fleetwatch/fleetwatch/agent"
)

func simulated(*agent.Config, *slog.Logger, string, string, bool) ([]agent.Option, func(), error) {
	return nil, nil, errNoSimulator
}
