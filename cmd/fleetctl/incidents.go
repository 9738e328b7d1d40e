package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/alerting/store"
)

func runIncidents(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "incidents")
	resolve := chFlags(fs)
	since := fs.Duration("since", 24*time.Hour, "also list incidents resolved within this long")
	evidence := fs.Int("evidence", 5, "evidence items shown per incident (0: none, -1: all)")
	ack := fs.String("ack", "", "acknowledge the open incident with this key (the analyzer notifies receivers)")
	by := fs.String("by", os.Getenv("USER"), "who acknowledges, with --ack")
	format := fs.String("format", "table", "output: table or json")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkFormat(fs, *format); err != nil {
		return err
	}
	cfg, err := resolve()
	if err != nil {
		return err
	}
	c, err := open(ctx, cfg, logger(e))
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := store.New(c)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	if *ack != "" {
		if err := st.Acknowledge(ctx, *ack, *by, now); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "acknowledged %s as %s\n", *ack, *by)
		return nil
	}
	incs, err := st.Load(ctx, now.Add(-*since))
	if err != nil {
		return err
	}
	if *format == "json" {
		return writeJSON(e.stdout, incs)
	}
	writeIncidents(e.stdout, incs, *evidence)
	return nil
}

// writeIncidents prints each incident and its evidence chain: probable
// cause, suspects, then the detections it explains.
func writeIncidents(w io.Writer, incs []incident.Incident, evidence int) {
	if len(incs) == 0 {
		fmt.Fprintln(w, "no open or recent incidents")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, inc := range incs {
		when := "opened " + inc.OpenedAt.Format(time.RFC3339)
		if inc.Status == incident.StatusResolved {
			when += ", resolved " + inc.ResolvedAt.Format(time.RFC3339) + " (" + inc.Resolved + ")"
		}
		owner := inc.Oncall
		if owner == "" {
			owner = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", strings.ToUpper(string(inc.Status)), inc.Severity, inc.Key, owner, when)
		fmt.Fprintf(tw, "\t\t%s\n", inc.Title)
		if inc.Cause != "" {
			fmt.Fprintf(tw, "\t\tprobable cause: %s\n", inc.Cause)
		}
		for _, s := range inc.Suspects {
			fmt.Fprintf(tw, "\t\tsuspect: %s %s → %s at %s (%s)\n", s.Model, s.Previous, s.Version, s.Time.Format(time.RFC3339), s.Change)
		}
		for i, ev := range inc.Evidence {
			if evidence >= 0 && i >= evidence {
				fmt.Fprintf(tw, "\t\t… %d more detection(s)\n", len(inc.Evidence)-i)
				break
			}
			fmt.Fprintf(tw, "\t\t└ %s %s %s: %s\n", ev.Severity, ev.Class, ev.Entity, ev.Summary)
		}
	}
	tw.Flush()
}
