package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/fleetwatch/fleetwatch/analytics/drift"
	"github.com/fleetwatch/fleetwatch/analytics/offline"
	"github.com/fleetwatch/fleetwatch/lib/profile"
)

func runDrift(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "drift")
	ref := fs.String("reference", "", "reference table: .csv (header row; empty cell = missing) or .arrow (Arrow IPC / Feather v2, streamed)")
	cur := fs.String("current", "", "current table, same format and column names")
	bins := fs.Int("bins", 10, "numeric bins (edges at reference quantiles; fewer for discrete data)")
	topK := fs.Int("top-k", 20, "categories kept per text column; the rest share \"other\"")
	fdr := fs.Float64("fdr", 0.05, "false-discovery rate across the columns (Benjamini-Hochberg)")
	format := fs.String("format", "table", "output: table or json")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *ref == "" || *cur == "" {
		return badUsage(fs, "both --reference and --current are required")
	}
	if err := checkFormat(fs, *format); err != nil {
		return err
	}
	opt := offline.NewDefaultOptions()
	opt.Build.Bins, opt.Build.TopK, opt.FDR = *bins, *topK, *fdr
	if err := opt.Validate(); err != nil {
		return badUsage(fs, "bad flags: %v", err)
	}
	rep, err := offline.CompareFiles(*ref, *cur, opt)
	if err != nil {
		return err
	}
	if *format == "json" {
		return writeDriftJSON(e.stdout, *ref, *cur, rep)
	}
	writeDriftTable(e.stdout, rep)
	return nil
}

// driftBin is one bin of a column, for output.
type driftBin struct {
	Bin      string   `json:"bin"`
	Lo       *float64 `json:"lo,omitempty"`
	Hi       *float64 `json:"hi,omitempty"`
	RefCount float64  `json:"ref_count"`
	CurCount float64  `json:"cur_count"`
	Ref      float64  `json:"ref"`
	Cur      float64  `json:"cur"`
}

// driftBins lists a column's bins with their shares, then missing.
func driftBins(c offline.Column) []driftBin {
	p, r := c.Profile, c.Result
	share := func(x, n float64) float64 {
		if n == 0 {
			return 0
		}
		return x / n
	}
	var out []driftBin
	for i := 0; i < p.Bins(); i++ {
		b := driftBin{RefCount: p.Counts[i], CurCount: r.CurCounts[i]}
		if p.Kind == profile.Numeric {
			b.Bin = interval(p.Edges, i)
			if i > 0 {
				b.Lo = &p.Edges[i-1]
			}
			if i < len(p.Edges) {
				b.Hi = &p.Edges[i]
			}
		} else if i < len(p.Categories) {
			b.Bin = strconv.Quote(p.Categories[i])
		} else {
			b.Bin = "other"
		}
		out = append(out, b)
	}
	out = append(out, driftBin{Bin: "missing", RefCount: p.Missing, CurCount: r.CurCounts[len(r.CurCounts)-1]})
	for i := range out {
		out[i].Ref, out[i].Cur = share(out[i].RefCount, r.NRef), share(out[i].CurCount, r.NCur)
	}
	return out
}

func interval(edges []float64, i int) string {
	lo, hi := "-inf", "+inf"
	if i > 0 {
		lo = num(edges[i-1])
	}
	if i < len(edges) {
		hi = num(edges[i])
	}
	if i == 0 {
		return "(" + lo + ", " + hi + ")"
	}
	return "[" + lo + ", " + hi + ")"
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', 6, 64) }

func pct(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" }

func writeDriftTable(w io.Writer, rep *offline.Report) {
	fmt.Fprintf(w, "%d reference rows, %d current rows, %d columns compared\n\n", rep.RefRows, rep.CurRows, len(rep.Columns))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "column\tkind\tpsi\tp_value\tq_value\tband\tn_ref\tn_cur\tmissing_ref\tmissing_cur\tdrift")
	for _, c := range rep.Columns {
		r := c.Result
		flag := ""
		if c.Flagged {
			flag = "DRIFT"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.4f\t%.3g\t%.3g\t%s\t%.0f\t%.0f\t%s\t%s\t%s\n", c.Name, c.Profile.Kind, r.PSI, r.PValue, c.QValue,
			r.Band, r.NRef, r.NCur, pct(r.MissingRef), pct(r.MissingCur), flag)
	}
	tw.Flush()
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "skipped %s: %s\n", s.Name, s.Reason)
	}
	for _, c := range rep.Columns {
		fmt.Fprintf(w, "\n%s (%s, %d bins in use, p-value by %s):\n", c.Name, c.Profile.Kind, c.Result.DF+1, c.Result.Method)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  bin\tref\tcur\tref_count\tcur_count")
		for _, b := range driftBins(c) {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%.0f\t%.0f\n", b.Bin, pct(b.Ref), pct(b.Cur), b.RefCount, b.CurCount)
		}
		tw.Flush()
	}
}

func writeDriftJSON(w io.Writer, refPath, curPath string, rep *offline.Report) error {
	type column struct {
		Column     string       `json:"column"`
		Kind       profile.Kind `json:"kind"`
		PSI        float64      `json:"psi"`
		PValue     float64      `json:"p_value"`
		QValue     float64      `json:"q_value"`
		Band       drift.Band   `json:"band"`
		Drift      bool         `json:"drift"`
		Method     string       `json:"method"`
		DF         int          `json:"df"`
		NRef       float64      `json:"n_ref"`
		NCur       float64      `json:"n_cur"`
		MissingRef float64      `json:"missing_ref"`
		MissingCur float64      `json:"missing_cur"`
		Bins       []driftBin   `json:"bins"`
	}
	type skip struct {
		Column string `json:"column"`
		Reason string `json:"reason"`
	}
	out := struct {
		Reference string   `json:"reference"`
		Current   string   `json:"current"`
		RefRows   int      `json:"ref_rows"`
		CurRows   int      `json:"cur_rows"`
		Columns   []column `json:"columns"`
		Skipped   []skip   `json:"skipped"`
	}{Reference: refPath, Current: curPath, RefRows: rep.RefRows, CurRows: rep.CurRows, Columns: []column{}, Skipped: []skip{}}
	for _, c := range rep.Columns {
		r := c.Result
		out.Columns = append(out.Columns, column{Column: c.Name, Kind: c.Profile.Kind, PSI: r.PSI, PValue: r.PValue, QValue: c.QValue,
			Band: r.Band, Drift: c.Flagged, Method: r.Method, DF: r.DF, NRef: r.NRef, NCur: r.NCur,
			MissingRef: r.MissingRef, MissingCur: r.MissingCur, Bins: driftBins(c)})
	}
	for _, s := range rep.Skipped {
		out.Skipped = append(out.Skipped, skip{s.Name, s.Reason})
	}
	return writeJSON(w, out)
}
