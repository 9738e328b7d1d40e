package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/internal/analyzer"
	"github.com/fleetwatch/fleetwatch/internal/backtest"
	"github.com/fleetwatch/fleetwatch/internal/scoring"
)

// backtestHelp follows the flags in `fleetctl backtest --help`; the same
// text is in docs/RUNBOOK.md, "Backtesting".
const backtestHelp = `
The analyzer's detectors and alerting (its YAML's analyzer: section, or the
shipped defaults) evaluate every window of [--from, --to) back to back on a
virtual clock: no waiting, and no window ending after --to. Detections, the
window ledger, SPC state, drift scores and the drift profiles built in the
run, and incidents go to --target-db (created with the schema; it must not
hold an earlier run); the source is only read. Notifications are recorded
and counted, never sent.

Ground truth (--truth): JSON lines, one injected fault per line, as
'fleetctl simulate --truth F' writes them:
  {"fault":"fan","type":"gpu_fan","level":"gpu","start":"2026-11-23T00:05:30Z",
   "end":"2026-11-23T00:10:00Z","datacenter":"dc-0","row":"row-0-0","rack":"rack-00",
   "node":"node-002","gpu":"GPU-...","gpu_index":3}
  fault   name of the fault            type   straggler, nvlink_degradation, gpu_fan,
  level   gpu, node, rack, datacenter,        ecc_ramp, xid79, node_cooling, rack_cdu,
          model or pipeline                   facility_temperature, or a model fault
  start   RFC 3339; end: omitted = lasts to the end of the run
  where   datacenter, row, rack, node, gpu (UUID) for hardware faults;
          model, pipeline, models for model faults
With it, two tables are printed: per fault type the detections' precision,
recall, F1 and delay (in windows of the fleet-health detector), and per
fault its pages, their levels and whether they came at the fault's level.
`

func runBacktest(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "backtest")
	usage := fs.Usage
	fs.Usage = func() { usage(); fmt.Fprint(fs.Output(), backtestHelp) }
	resolve := chFlags(fs)
	fromS := fs.String("from", "", "start of the range, RFC 3339 (required)")
	toS := fs.String("to", "", "end of the range, RFC 3339, exclusive (required): no window ending after it is evaluated")
	target := fs.String("target-db", "", "database for the results, on the same server (default <database>_backtest)")
	truth := fs.String("truth", "", "ground truth (JSON lines, see below): print the scoring tables")
	format := fs.String("format", "table", "output: table or json")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkFormat(fs, *format); err != nil {
		return err
	}
	if *fromS == "" || *toS == "" {
		return badUsage(fs, "--from and --to are required")
	}
	from, err := time.Parse(time.RFC3339, *fromS)
	if err != nil {
		return badUsage(fs, "--from: %v", err)
	}
	to, err := time.Parse(time.RFC3339, *toS)
	if err != nil {
		return badUsage(fs, "--to: %v", err)
	}
	if !to.After(from) {
		return badUsage(fs, "--to %s is not after --from %s", *toS, *fromS)
	}
	cfg, err := resolve()
	if err != nil {
		return err
	}
	acfg := analyzer.NewDefaultConfig()
	if f := fs.Lookup("config").Value.String(); f != "" {
		if acfg, err = analyzer.LoadConfig(f); err != nil {
			return err
		}
	}
	var truths []sim.Truth
	if *truth != "" {
		if truths, err = readTruth(*truth); err != nil {
			return err
		}
	}
	tcfg := cfg
	tcfg.Database = *target
	if tcfg.Database == "" {
		tcfg.Database = cfg.Database + "_backtest"
	}
	if tcfg.Database == cfg.Database {
		return badUsage(fs, "--target-db is the source database %s", cfg.Database)
	}
	log := logger(e)
	src, err := open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := createAndOpen(ctx, tcfg, log)
	if err != nil {
		return err
	}
	defer dst.Close()
	fmt.Fprintf(e.stderr, "replaying [%s, %s) of %s into %s ...\n", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), cfg.Database, tcfg.Database)
	res, err := backtest.Run(ctx, backtest.Config{Analyzer: acfg, From: from, To: to}, src, dst, log)
	if err != nil {
		return err
	}
	var sc *scores
	if truths != nil {
		iv := acfg.Health.Interval
		o := scoring.Options{Interval: iv, Grace: 2 * iv, RunEnd: res.To}
		sc = &scores{Detections: scoring.Score(truths, res.Detections, o), Pages: scoring.Pages(truths, res.Pages, o)}
	}
	if *format == "json" {
		return writeJSON(e.stdout, backtestJSON(res, tcfg.Database, sc))
	}
	writeBacktest(e.stdout, res, tcfg.Database, sc)
	return nil
}

// scores are the scoring tables of a run with ground truth.
type scores struct {
	Detections scoring.Report     `json:"detections"`
	Pages      scoring.PageReport `json:"pages"`
}

func readTruth(path string) ([]sim.Truth, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read ground truth: %w", err)
	}
	defer f.Close()
	ts, err := sim.ReadTruth(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ts, nil
}

func writeBacktest(w io.Writer, res *backtest.Result, target string, sc *scores) {
	fmt.Fprintf(w, "backtest of [%s, %s) in %v; results in database %s\n", res.From.Format(time.RFC3339), res.To.Format(time.RFC3339),
		res.Elapsed.Round(time.Millisecond), target)
	switch {
	case res.DataEnd.IsZero():
		fmt.Fprintln(w, "no GPU samples or inference events are stored in the range")
	case res.To.Sub(res.DataEnd) > time.Minute:
		fmt.Fprintf(w, "the stored data ends at %s: the windows after it see none, as the live analyzer would\n", res.DataEnd.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DETECTOR\tWINDOWS\tSKIPPED\tDETECTIONS\tLAST WINDOW END")
	names := make([]string, 0, len(res.Windows))
	for n := range res.Windows {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		st := res.Windows[n]
		var skipped uint64
		for _, k := range st.Skipped {
			skipped += k
		}
		last := "-"
		if !st.LastWindowEnd.IsZero() {
			last = st.LastWindowEnd.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", n, st.Evaluated, skipped, st.Detections, last)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d incidents paged (%d pages, %d notifications recorded, none sent)\n", len(res.Incidents), len(res.Pages), res.Notifications)
	if len(res.Incidents) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "OPENED\tSTATUS\tLEVEL\tSEVERITY\tKEY")
		for _, inc := range res.Incidents {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", inc.OpenedAt.Format(time.TimeOnly), inc.Status, inc.Level, inc.Severity, inc.Key)
		}
		tw.Flush()
	}
	if sc == nil {
		return
	}
	fmt.Fprintf(w, "\nDetections against the ground truth:\n\n%s", sc.Detections.Markdown())
	for _, m := range sc.Detections.Missed {
		fmt.Fprintf(w, "missed: %s\n", m)
	}
	for _, fa := range sc.Detections.FalseAlarms {
		fmt.Fprintf(w, "false alarm: %s\n", fa)
	}
	fmt.Fprintf(w, "\nPages per cause:\n\n%s", sc.Pages.Markdown())
	for _, u := range sc.Pages.Unexplained {
		fmt.Fprintf(w, "page matching no fault: %s\n", u)
	}
}

func backtestJSON(res *backtest.Result, target string, sc *scores) any {
	type incidentJSON struct {
		Key, Level, Class, Severity, Status, Title string
		OpenedAt, ResolvedAt                       time.Time
	}
	out := struct {
		From, To, DataEnd time.Time
		TargetDatabase    string
		Windows           any
		Detections        int
		Pages             int
		Notifications     int
		Incidents         []incidentJSON
		Scores            *scores `json:",omitempty"`
	}{From: res.From, To: res.To, DataEnd: res.DataEnd, TargetDatabase: target, Windows: res.Windows,
		Detections: len(res.Detections), Pages: len(res.Pages), Notifications: res.Notifications, Scores: sc}
	for _, inc := range res.Incidents {
		out.Incidents = append(out.Incidents, incidentJSON{Key: inc.Key, Level: string(inc.Level), Class: inc.Class, Severity: inc.Severity,
			Status: string(inc.Status), Title: strings.TrimSpace(inc.Title), OpenedAt: inc.OpenedAt, ResolvedAt: inc.ResolvedAt})
	}
	return out
}
