package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/fleetwatch/fleetwatch/analytics/spc"
	"github.com/fleetwatch/fleetwatch/analytics/tabular"
	"github.com/fleetwatch/fleetwatch/lib/kernels"
)

func runSPC(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "spc")
	def := spc.NewDefaultAnalyzeConfig() // the analyzer's defaults
	input := fs.String("input", "", "series table: .csv (header row; empty cell = missing) or .arrow (Arrow IPC / Feather v2)")
	column := fs.String("column", "", "numeric column to chart (default: the only numeric column)")
	baseline := fs.Int("baseline", def.BaselinePoints, "leading values that form the baseline; 0 = every value (a retrospective chart)")
	rules := fs.String("rules", def.Params.Rules.String(), "rules to evaluate: we1 (beyond 3σ), we2 (2 of 3 beyond 2σ), we3 (4 of 5 beyond 1σ), we4 (7 in a row on one side), ewma, cusum")
	learn := fs.Bool("learn", def.Params.LearnCap > 0, "let in-control points after the baseline refine it, as the analyzer does; --learn=false freezes the baseline")
	format := fs.String("format", "table", "output: table or json")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *input == "" {
		return badUsage(fs, "--input is required")
	}
	if err := checkFormat(fs, *format); err != nil {
		return err
	}
	cfg := def
	cfg.BaselinePoints = *baseline
	r, err := kernels.ParseSignal(*rules)
	if err != nil {
		return badUsage(fs, "--rules: %v", err)
	}
	cfg.Params.Rules = r
	if !*learn {
		cfg.Params.LearnCap = 0
	}
	if err := cfg.Validate(); err != nil {
		return badUsage(fs, "bad flags: %v", err)
	}
	t, err := tabular.ReadFile(*input)
	if err != nil {
		return err
	}
	col, err := pickColumn(t, *column)
	if err != nil {
		return fmt.Errorf("%s: %w", *input, err)
	}
	a, err := spc.Analyze(col.Floats, cfg)
	if err != nil {
		return fmt.Errorf("%s, column %s: %w", *input, col.Name, err)
	}
	if *format == "json" {
		return writeSPCJSON(e.stdout, *input, col.Name, cfg, a)
	}
	writeSPCTable(e.stdout, *input, col.Name, cfg, a)
	return nil
}

// pickColumn returns the named numeric column, or the only numeric one.
func pickColumn(t *tabular.Table, name string) (*tabular.Column, error) {
	var numeric []string
	for _, c := range t.Columns {
		if c.Numeric {
			numeric = append(numeric, c.Name)
		}
	}
	if name != "" {
		c, ok := t.Column(name)
		switch {
		case !ok:
			return nil, fmt.Errorf("no column %q; columns: %s", name, strings.Join(t.Names(), ", "))
		case !c.Numeric:
			return nil, fmt.Errorf("column %q is not numeric (a cell is not a number); numeric columns: %s", name, list(numeric))
		}
		return c, nil
	}
	switch len(numeric) {
	case 0:
		return nil, fmt.Errorf("no numeric column; columns: %s", strings.Join(t.Names(), ", "))
	case 1:
		c, _ := t.Column(numeric[0])
		return c, nil
	}
	return nil, fmt.Errorf("%d numeric columns (%s); pick one with --column", len(numeric), strings.Join(numeric, ", "))
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func baselineText(cfg spc.AnalyzeConfig, a spc.Analysis) string {
	what := fmt.Sprintf("the first %d values (rows 0-%d)", cfg.BaselinePoints, a.BaselineEnd-1)
	if cfg.BaselinePoints == 0 {
		what = "every value"
	}
	s := fmt.Sprintf("baseline: %s, %d in control", what, a.Baseline.Stats.N)
	if len(a.Baseline.Excluded) > 0 {
		s += fmt.Sprintf(", excluded beyond robust 3σ: rows %s", ints(a.Baseline.Excluded))
	}
	return s
}

func ints(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, ", ")
}

func writeSPCTable(w io.Writer, input, column string, cfg spc.AnalyzeConfig, a spc.Analysis) {
	b := a.Baseline
	m, s := b.Mean(), b.Sigma()
	fmt.Fprintf(w, "%s, column %s: %d values, %d missing\n", input, column, a.Points, a.Missing)
	fmt.Fprintln(w, baselineText(cfg, a))
	fmt.Fprintf(w, "mean %.6g  sigma %.6g (average moving range / 1.128)\n", m, s)
	lcl, ucl := a.Limits(3)
	lo2, hi2 := a.Limits(2)
	lo1, hi1 := a.Limits(1)
	fmt.Fprintf(w, "UCL %.6g  LCL %.6g  (±2σ %.6g / %.6g, ±1σ %.6g / %.6g)\n", ucl, lcl, hi2, lo2, hi1, lo1)
	if a.BaselineEnd > 0 {
		fmt.Fprintf(w, "limits: prediction limits of a %d-point baseline (μ and σ are estimates); they narrow as the baseline learns\n", b.Stats.N)
	}
	fmt.Fprintf(w, "rules: %s\n", cfg.Params.Rules)
	if len(a.Violations) == 0 {
		fmt.Fprintln(w, "no rule violations")
		return
	}
	fmt.Fprintf(w, "%d rule violations (row = 0-based data row):\n", len(a.Violations))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  row\tvalue\tz\trules")
	for _, v := range a.Violations {
		fmt.Fprintf(tw, "  %d\t%.6g\t%.2f\t%s\n", v.Index, v.Value, v.Z, v.Rules)
	}
	tw.Flush()
}

func writeSPCJSON(w io.Writer, input, column string, cfg spc.AnalyzeConfig, a spc.Analysis) error {
	type violation struct {
		Row   int      `json:"row"`
		Value float64  `json:"value"`
		Z     float64  `json:"z"`
		Rules []string `json:"rules"`
	}
	b := a.Baseline
	lcl, ucl := a.Limits(3)
	out := struct {
		Input       string      `json:"input"`
		Column      string      `json:"column"`
		Values      int         `json:"values"`
		Missing     int         `json:"missing"`
		BaselineEnd int         `json:"baseline_end"`
		Excluded    []int       `json:"baseline_excluded"`
		Mean        float64     `json:"mean"`
		Sigma       float64     `json:"sigma"`
		UCL         float64     `json:"ucl"`
		LCL         float64     `json:"lcl"`
		Rules       []string    `json:"rules"`
		Violations  []violation `json:"violations"`
	}{Input: input, Column: column, Values: a.Points, Missing: a.Missing, BaselineEnd: a.BaselineEnd, Excluded: append([]int{}, b.Excluded...),
		Mean: b.Mean(), Sigma: b.Sigma(), UCL: ucl, LCL: lcl, Rules: cfg.Params.Rules.Names(), Violations: []violation{}}
	for _, v := range a.Violations {
		out.Violations = append(out.Violations, violation{v.Index, v.Value, v.Z, v.Rules.Names()})
	}
	return writeJSON(w, out)
}
