package schema

import (
	"fmt"
	"sort"
)

// migrations is the ordered history of the schema, the analyzer's own tables
// included (storage owns every table). Append only: never edit or renumber a
// migration that has shipped; add a new one.
var migrations = []Migration{
	{Version: 1, Name: "gpu_samples", Steps: []Step{
		CreateTable{gpuSamplesV1},
		CreateTable{GPUSeries},
		CreateTable{GPUSamples1m},
		CreateView{GPUSamples1mView},
	}},
	{Version: 2, Name: "gpu_events", Steps: []Step{CreateTable{GPUEvents}}},
	{Version: 3, Name: "inference", Steps: []Step{
		CreateTable{inferenceEventsV1},
		CreateTable{DelayedLabels},
		CreateTable{ModelDeployments},
	}},
	{Version: 4, Name: "spans", Steps: []Step{CreateTable{Spans}}},
	{Version: 5, Name: "detections", Steps: []Step{CreateTable{detectionsV1}}},
	{Version: 6, Name: "analytics", Steps: analyticsSteps},
	// Version 7 was reserved for fleet health, which needed no table.
	{Version: 8, Name: "alerting", Steps: alertingSteps},
	{Version: 9, Name: "views", Steps: oncallSteps},
	{Version: 10, Name: "drift_bins", Steps: driftBinsSteps},
	// Points of one series within one second were folded into one row.
	{Version: 11, Name: "gpu_samples_subsecond", Steps: []Step{AddSortColumn{Table: GPUSamples, Column: "ts_ns"}}},
	// A page could be lost between saving an incident and sending it.
	{Version: 12, Name: "notification_outbox", Steps: notificationOutboxSteps},
	// Freshness is the age of a feature's value, not of the event carrying it.
	{Version: 13, Name: "feature_update_times", Steps: []Step{
		AddColumns{Table: InferenceEvents.Name, Columns: featureUpdateColumns},
		CreateQueryView{OncallFeatureFreshness},
	}},
	// Training-job health beyond one slow rank (issue 16).
	{Version: 14, Name: "job_health", Steps: []Step{CreateTable{JobHealth}}},
	// Analyzers sharing the fleet: the alerting owner reads each share's
	// detections back by the evaluation that raised them.
	{Version: 15, Name: "detections_source", Steps: []Step{
		AddColumns{Table: Detections.Name, Columns: detectionSourceColumns},
	}},
	// Cost and utilization (issue 19): the cost detector's daily rows.
	{Version: 16, Name: "cost_daily", Steps: []Step{CreateTable{CostDaily}, CreateQueryView{OncallCostFindings}}},
	// A daily cost pass over 100,000 GPUs reads rollups per scope, not
	// raw samples (issue 19 item 10): hourly by the analyzer's pass, daily
	// by a view on it.
	{Version: 17, Name: "gpu_held_1h", Steps: []Step{
		CreateTable{GPUHeld1h},
		CreateTable{GPUHeld1d},
		CreateView{GPUHeld1dView},
		CreateTable{GPUHeld1hHours},
	}},
	// Per-version canary signals (issue 20 items 1 and 8): business
	// outcomes, and the on-call views of canaries.
	{Version: 18, Name: "canary_signals", Steps: canarySignalSteps},
}

// Migrations returns every migration in version order.
func Migrations() []Migration {
	out := make([]Migration, len(migrations))
	copy(out, migrations)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// Tables returns every table the migrations create, in creation order, each
// as the last migration that shapes it leaves it.
func Tables() []Table {
	var out []Table
	at := map[string]int{}
	for _, m := range Migrations() {
		for _, s := range m.Steps {
			switch s := s.(type) {
			case CreateTable:
				at[s.Table.Name] = len(out)
				out = append(out, s.Table)
			case AddSortColumn:
				if i, ok := at[s.Table.Name]; ok {
					out[i] = s.Table
				}
			case AddColumns:
				if i, ok := at[s.Table]; ok {
					out[i] = out[i].withColumns(s.Columns...)
				}
			}
		}
	}
	return out
}

// Views returns every materialized view the migrations create.
func Views() []View {
	var out []View
	for _, m := range Migrations() {
		for _, s := range m.Steps {
			if cv, ok := s.(CreateView); ok {
				out = append(out, cv.View)
			}
		}
	}
	return out
}

// Check validates every table definition; tests call it.
func Check() error {
	seen := map[string]bool{}
	for _, t := range append([]Table{migrationsTable}, Tables()...) {
		if err := t.validate(); err != nil {
			return err
		}
		if seen[t.Name] {
			return fmt.Errorf("table %s is created twice", t.Name)
		}
		seen[t.Name] = true
	}
	for _, m := range Migrations() {
		for _, s := range m.Steps {
			if ac, ok := s.(AddColumns); ok && !seen[ac.Table] {
				return fmt.Errorf("migration %d alters %s before it is created", m.Version, ac.Table)
			}
			if as, ok := s.(AddSortColumn); ok {
				if !seen[as.Table.Name] {
					return fmt.Errorf("migration %d alters %s before it is created", m.Version, as.Table.Name)
				}
				if err := as.validate(); err != nil {
					return err
				}
			}
		}
	}
	for _, v := range Views() {
		if !seen[v.From] || !seen[v.To] {
			return fmt.Errorf("view %s: tables %s and %s must be created first", v.Name, v.From, v.To)
		}
		seen[v.Name] = true
	}
	return checkQueryViews(seen)
}

// checkQueryViews checks that plain views have unique names, documented
// columns, and read only what earlier steps created.
func checkQueryViews(seen map[string]bool) error {
	for _, v := range QueryViews() {
		if !ValidIdent(v.Name) || seen[v.Name] {
			return fmt.Errorf("view %s: bad or duplicate name", v.Name)
		}
		if len(v.Columns) == 0 || v.Doc == "" {
			return fmt.Errorf("view %s: document its columns", v.Name)
		}
		reads := v.Reads()
		if len(reads) == 0 {
			return fmt.Errorf("view %s: qualify the tables it reads as {db}.name", v.Name)
		}
		for _, r := range reads {
			if !seen[r] {
				return fmt.Errorf("view %s reads %s, which no earlier step creates", v.Name, r)
			}
		}
		seen[v.Name] = true
	}
	return nil
}
