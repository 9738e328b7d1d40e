// Package dashboards holds Fleetwatch's Grafana dashboards and their file
// provisioning, and the code that writes them.
//
// The dashboards are defined in Go (executive, portfolio, model,
// investigation, GPU fleet health, drift and FinOps) and rendered to json/*.json,
// which Grafana loads through provisioning/ (see README.md). Each
// ClickHouse panel records what its query must return; the package's tests
// expand every query the way Grafana and grafana-clickhouse-datasource do
// (Expand) and run it on a real ClickHouse loaded with simulated telemetry.
//
// After changing a definition, regenerate the files:
//
//	go test ./dashboards -run TestFilesAreCurrent -update
//
// Layer: stage (docs/ARCHITECTURE.md, "Layers"): imports the ground
// (storage/schema for the on-call views), never another stage.
package dashboards

import (
	"embed"
	"fmt"
)

// Files holds the rendered dashboards (json/) and the provisioning files.
//
//go:embed json/*.json provisioning
var Files embed.FS

// Rendered returns every dashboard's file name (under json/) and content.
func Rendered() (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, b := range boards() {
		data, err := b.d.Render()
		if err != nil {
			return nil, err
		}
		name := b.d.UID + ".json"
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("dashboard uid %s is used twice", b.d.UID)
		}
		out[name] = data
	}
	return out, nil
}
