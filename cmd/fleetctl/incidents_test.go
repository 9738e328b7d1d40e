package main

import (
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting/incident"
)

func TestWriteIncidentsShowsTheEvidenceChain(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	incs := []incident.Incident{{Key: "latency/model/ranker", Status: incident.StatusOpen, Severity: "critical", Oncall: "recsys-oncall",
		Title: "latency: model ranker", OpenedAt: t0, Cause: "thermal/node/dc-0/row-0-0/rack-00/node-000",
		Suspects: []incident.Suspect{{Model: "ranker", Previous: "v6", Version: "v7", Time: t0.Add(-time.Hour), Change: "rollout"}},
		Evidence: []incident.Evidence{{Severity: "critical", Class: "latency", Entity: "ranker", Summary: "p99 burning 20x"}, {Entity: "x"}}}}
	var b strings.Builder
	writeIncidents(&b, incs, 1)
	for _, want := range []string{"OPEN", "latency/model/ranker", "recsys-oncall", "probable cause: thermal/node", "suspect: ranker v6 → v7",
		"└ critical latency ranker: p99 burning 20x", "… 1 more detection(s)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}
