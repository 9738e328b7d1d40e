package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/canary"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
	"github.com/fleetwatch/fleetwatch/storage"
)

// runCanary dispatches fleetctl canary's subcommands: plan and status.
func runCanary(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "canary")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fs.SetOutput(e.stdout)
			fs.Usage()
			return nil
		}
		return badUsage(fs, "want a subcommand: plan or status")
	}
	switch args[0] {
	case "plan":
		return runCanaryPlan(ctx, e, args[1:])
	case "status":
		return runCanaryStatus(ctx, e, args[1:])
	}
	return badUsage(fs, "unknown subcommand %q: want plan or status", args[0])
}

func runCanaryPlan(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "canary")
	resolve := chFlags(fs)
	model := fs.String("model", "", "read the model's observed requests per hour from ClickHouse (inference_events, all versions, weighted by 1/sample_rate) instead of --rate")
	over := fs.Duration("over", time.Hour, "with --model: the trailing time the observed rate is averaged over")
	def := canary.NewDefaultPlanConfig()
	perHour := fs.Float64("rate", 0, "the model's requests per hour, all versions together (or --rps, or --model)")
	perSec := fs.Float64("rps", 0, "the model's requests per second (or --rate, or --model)")
	stages := fs.String("stages", "1,5,25,50", "canary stages, percent of traffic")
	samples := fs.Float64("samples", 0, "canary samples each stage needs (equation 5's n); else equation 6 from --baseline-rate and --effect")
	base := fs.Float64("baseline-rate", 0, "the metric's rate today, a fraction (CTR 0.05, error rate 0.005)")
	effect := fs.Float64("effect", 0, "the change to detect, absolute (0.005 = half a point); with --relative a fraction of --baseline-rate")
	relative := fs.Bool("relative", false, "--effect is relative to --baseline-rate")
	alpha := fs.Float64("alpha", def.Alpha, "two-sided significance of the fixed-n test (equation 6)")
	power := fs.Float64("power", def.Power, "power, for both the fixed-n and the sequential test")
	seqAlpha := fs.Float64("sequential-alpha", def.SequentialAlpha, "false-fail rate of the judge's always-valid test for this metric (its alpha over the rules in force); 0 leaves the sequential columns out")
	format := fs.String("format", "table", "output: table or json")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkFormat(fs, *format); err != nil {
		return err
	}
	given := 0
	for _, on := range []bool{*perHour > 0, *perSec > 0, *model != ""} {
		if on {
			given++
		}
	}
	if given != 1 {
		return badUsage(fs, "give the traffic as one of --rate (per hour), --rps (per second) or --model (observed)")
	}
	if *over <= 0 {
		return badUsage(fs, "--over %v: want > 0", *over)
	}
	c := def
	c.RequestsPerHour = *perHour + *perSec*3600
	c.Samples, c.BaselineRate, c.Effect = *samples, *base, *effect
	if *relative {
		c.Effect = *effect * *base
	}
	c.Alpha, c.Power, c.SequentialAlpha = *alpha, *power, *seqAlpha
	c.Stages = nil
	for _, s := range strings.Split(*stages, ",") {
		v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
		if err != nil {
			return badUsage(fs, "--stages %q: %v", *stages, err)
		}
		if !(v > 0 && v <= 100) {
			return badUsage(fs, "--stages %q: %g%%: want a percent in (0, 100]", *stages, v)
		}
		c.Stages = append(c.Stages, v/100)
	}
	if *model != "" {
		c.RequestsPerHour = 1 // a placeholder: the other flags are checked before ClickHouse is asked
	}
	if err := c.Validate(); err != nil {
		return badUsage(fs, "bad flags: %v", err)
	}
	if *model != "" {
		rate, err := observedRate(ctx, e, resolve, *model, *over)
		if err != nil {
			return err
		}
		if rate == 0 {
			return fmt.Errorf("model %s had no requests in inference_events over the last %v", *model, *over)
		}
		c.RequestsPerHour = rate
	}
	p, err := canary.MakePlan(c)
	if err != nil {
		return err
	}
	if *format == "json" {
		return writeJSON(e.stdout, struct {
			Config canary.PlanConfig `json:"config"`
			canary.Plan
		}{c, p})
	}
	writePlanTable(e.stdout, c, p)
	return nil
}

// observedRate reads a model's requests per hour over the trailing over.
func observedRate(ctx context.Context, e *env, resolve func() (storage.Config, error), model string, over time.Duration) (float64, error) {
	cfg, err := resolve()
	if err != nil {
		return 0, err
	}
	c, err := open(ctx, cfg, logger(e))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	now := time.Now().UTC()
	return canary.NewReader(c).RequestRate(ctx, model, now.Add(-over), now)
}

func writePlanTable(w io.Writer, c canary.PlanConfig, p canary.Plan) {
	how := fmt.Sprintf("%.0f canary samples per stage (given)", p.Samples)
	if c.Samples == 0 {
		how = fmt.Sprintf("%.0f samples per variant to detect %+.4g on a rate of %.4g (equation 6, α %.3g two-sided, power %.2g)",
			p.Samples, c.Effect, c.BaselineRate, c.Alpha, c.Power)
	}
	fmt.Fprintf(w, "traffic: %.0f requests/h; %s\n", c.RequestsPerHour, how)
	seq := p.Stages[0].SequentialSamples > 0
	if seq {
		fmt.Fprintf(w, "sequential: the canary judge's always-valid test (α %.3g, looking as often as it likes), the baseline serving the rest\n", c.SequentialAlpha)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "stage\tcanary req/h\tduration (eq. 5)\t"
	if seq {
		head += "sequential samples\tsequential duration\t"
	}
	fmt.Fprintln(tw, head)
	for _, s := range p.Stages {
		line := fmt.Sprintf("%g%%\t%.0f\t%s\t", 100*s.Share, s.CanaryPerHour, dur(s.Duration))
		if seq {
			line += fmt.Sprintf("%.0f\t%s\t", s.SequentialSamples, dur(s.SequentialDuration))
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}

// dur prints a duration without trailing zero units (1h, 12m, 2h58m57s).
func dur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// runCanaryStatus judges the running canaries from ClickHouse, as the
// analyzer does, and prints each verdict with its evidence.
func runCanaryStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "canary")
	resolve := chFlags(fs)
	catPath := fs.String("catalog", "", "model catalog (each model's type and canary: settings); without it every model gets the generic defaults (design document 003, listing 4)")
	at := fs.String("at", "", "judge as of this time (RFC 3339; default now)")
	format := fs.String("format", "table", "output: table or json")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkFormat(fs, *format); err != nil {
		return err
	}
	now := time.Now().UTC()
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return badUsage(fs, "--at: %v", err)
		}
		now = t.UTC()
	}
	var cat *catalog.Catalog
	if *catPath != "" {
		var err error
		if cat, err = catalog.Load(*catPath); err != nil {
			return err
		}
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
	d, err := canary.NewDetector(canary.NewDefaultDetectorConfig(), c, cat, logger(e))
	if err != nil {
		return err
	}
	deps, err := d.Canaries(ctx, now)
	if err != nil {
		return err
	}
	type status struct {
		canary.Deployment
		Verdict canary.Verdict `json:"verdict"`
	}
	out := []status{}
	for _, dep := range deps {
		v, err := d.Judge(ctx, dep, now)
		if err != nil {
			return err
		}
		v.Evidence = canary.JSONSafe(v.Evidence)
		out = append(out, status{dep, v})
	}
	if *format == "json" {
		return writeJSON(e.stdout, out)
	}
	if len(out) == 0 {
		fmt.Fprintf(e.stdout, "no canary running at %s\n", now.Format(time.RFC3339))
		return nil
	}
	for _, s := range out {
		left := ""
		if s.Verdict.Outcome == canary.Inconclusive {
			left = ", decision in " + dur(s.Verdict.TimeLeft)
			if s.Verdict.TimeLeft < 0 {
				left = ", no decision in sight"
			}
		}
		fmt.Fprintf(e.stdout, "%s %s vs %s, started %s (%v ago): %s%s\n", s.Model, s.Version, s.BaselineVersion,
			s.Started.Format(time.RFC3339), s.Verdict.Elapsed.Round(time.Second), strings.ToUpper(string(s.Verdict.Outcome)), left)
		fmt.Fprintf(e.stdout, "  %s\n", s.Verdict.Gate)
		if s.LastKnownGood != "" {
			fmt.Fprintf(e.stdout, "  last known good: %s\n", s.LastKnownGood)
		}
		if ev := s.Evaluation; ev != nil {
			fmt.Fprintf(e.stdout, "  evaluation: data %s, commit %s%s\n", orNone(ev.DataVersion), orNone(ev.CodeCommit), offlineMetrics(ev.OfflineMetrics))
		}
		for _, ev := range s.Verdict.Evidence {
			fmt.Fprintf(e.stdout, "  %s\n", ev)
		}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// offlineMetrics lists a version's offline metrics, sorted by name.
func offlineMetrics(m map[string]float64) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, ", %s %g", k, m[k])
	}
	return b.String()
}
