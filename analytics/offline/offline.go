// Package offline compares a reference table with a current one, column by
// column, with the analyzer's PSI profiles, kernels and test: the engine of
// fleetctl drift, of backtests, and of the analyzer's training-data
// references. CSV files are read whole; Arrow IPC files are streamed one
// record batch at a time with bounded memory, however large they are.
package offline

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fleetwatch/fleetwatch/analytics/drift"
	"github.com/fleetwatch/fleetwatch/analytics/tabular"
	"github.com/fleetwatch/fleetwatch/lib/profile"
)

// Options tune a comparison.
type Options struct {
	Build profile.BuildConfig
	Test  drift.TestConfig
	// FDR is the Benjamini–Hochberg level across the columns.
	FDR float64
	// SampleRows bounds the reference rows whose values set the bin edges
	// of a streamed file (the counts are always exact); 0 means 65,536.
	SampleRows int
	// Workers streaming batches in parallel; 0 means 2.
	Workers int
	// PageCache reads streamed files through the page cache even when they
	// are big enough for direct I/O (tabular.DirectIOMin).
	PageCache bool
}

// NewDefaultOptions returns 10 bins, top 20 categories and FDR 5%.
func NewDefaultOptions() Options {
	return Options{Build: profile.NewDefaultBuildConfig(), Test: drift.NewDefaultTestConfig(), FDR: 0.05, SampleRows: 1 << 16, Workers: 2}
}

// Validate reports every problem at once.
func (o Options) Validate() error {
	var errs []error
	if err := o.Build.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := o.Test.Validate(); err != nil {
		errs = append(errs, err)
	}
	if !(o.FDR > 0 && o.FDR < 1) {
		errs = append(errs, fmt.Errorf("fdr %v: want 0 < fdr < 1", o.FDR))
	}
	if o.SampleRows < 0 || o.Workers < 0 {
		errs = append(errs, errors.New("sample rows and workers must not be negative"))
	}
	return errors.Join(errs...)
}

// Column is one compared column.
type Column struct {
	Name    string
	Profile *profile.Profile
	Result  drift.Result
	// QValue is the BH-adjusted p-value across the report's columns;
	// Flagged means significant at the FDR and not in the stable band.
	QValue  float64
	Flagged bool
}

// Skip is a column that could not be compared, and why.
type Skip struct{ Name, Reason string }

// Report is a comparison of two tables.
type Report struct {
	Columns          []Column
	Skipped          []Skip
	RefRows, CurRows int
}

// CompareFiles compares two files: Arrow IPC files are streamed, anything
// else is read whole (see tabular.ReadFile).
func CompareFiles(refPath, curPath string, opt Options) (*Report, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	if isIPC(refPath) && isIPC(curPath) {
		return CompareIPC(refPath, curPath, opt)
	}
	ref, err := tabular.ReadFile(refPath)
	if err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	cur, err := tabular.ReadFile(curPath)
	if err != nil {
		return nil, fmt.Errorf("current: %w", err)
	}
	return CompareTables(ref, cur, opt)
}

func isIPC(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".arrow", ".feather", ".ipc":
		return true
	}
	return false
}

// CompareTables compares two tables in memory. Bin edges are the exact
// reference quantiles.
func CompareTables(ref, cur *tabular.Table, opt Options) (*Report, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	rep := &Report{RefRows: ref.Rows, CurRows: cur.Rows}
	var profiles []*profile.Profile
	var hists [][]float64
	for _, pair := range match(ref.Names(), cur.Names(), rep) {
		rc, _ := ref.Column(pair)
		cc, _ := cur.Column(pair)
		if rc.Numeric != cc.Numeric {
			rep.Skipped = append(rep.Skipped, Skip{pair, kindMismatch(rc.Numeric)})
			continue
		}
		p, err := profileColumn(rc, opt.Build)
		h := []float64{}
		if err == nil && rc.Numeric {
			h, err = binFloats(p, cc.Floats)
		} else if err == nil {
			h, err = binStrings(p, cc.Strings)
		}
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", pair, err)
		}
		profiles, hists = append(profiles, p), append(hists, h)
	}
	return rep, rep.finish(profiles, hists, opt)
}

// match returns the columns present in both, in reference order, and
// records the others as skipped.
func match(ref, cur []string, rep *Report) []string {
	var both []string
	for _, n := range ref {
		if slices.Contains(cur, n) {
			both = append(both, n)
		} else {
			rep.Skipped = append(rep.Skipped, Skip{n, "only in the reference"})
		}
	}
	for _, n := range cur {
		if !slices.Contains(ref, n) {
			rep.Skipped = append(rep.Skipped, Skip{n, "only in the current file"})
		}
	}
	return both
}

func kindMismatch(refNumeric bool) string {
	if refNumeric {
		return "numeric in the reference but not in the current file"
	}
	return "text in the reference but numeric in the current file"
}

func binFloats(p *profile.Profile, xs []float64) ([]float64, error) {
	b, err := p.Binner()
	if err != nil {
		return nil, err
	}
	h := p.Histogram()
	b.AddFloat64s(h, xs)
	return h.Floats(), nil
}

func binStrings(p *profile.Profile, xs []string) ([]float64, error) {
	c, err := p.CategoryIndex()
	if err != nil {
		return nil, err
	}
	h := p.Histogram()
	c.AddStrings(h, xs)
	return h.Floats(), nil
}

// finish tests every column and applies Benjamini–Hochberg across them.
func (rep *Report) finish(profiles []*profile.Profile, hists [][]float64, opt Options) error {
	t, err := drift.NewTester(opt.Test)
	if err != nil {
		return err
	}
	rs := make([]drift.Result, len(profiles))
	for i, p := range profiles {
		r, err := t.Test(p, hists[i])
		if err != nil {
			return err
		}
		rep.Columns = append(rep.Columns, Column{Name: p.Feature, Profile: p, Result: r})
		rs[i] = r
	}
	flagged, q := drift.Flag(rs, opt.FDR)
	for i := range rep.Columns {
		rep.Columns[i].QValue, rep.Columns[i].Flagged = q[i], flagged[i]
	}
	return nil
}

// ProfileFile profiles every column of a training-data file (CSV or Arrow
// IPC); it is the analyzer's drift.FileProfiler.
func ProfileFile(path string, cfg profile.BuildConfig) ([]*profile.Profile, error) {
	t, err := tabular.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*profile.Profile
	for i := range t.Columns {
		p, err := profileColumn(&t.Columns[i], cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: column %s: %w", path, t.Columns[i].Name, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// profileColumn builds a reference profile of a numeric or string column,
// named after it.
func profileColumn(c *tabular.Column, cfg profile.BuildConfig) (*profile.Profile, error) {
	var p *profile.Profile
	var err error
	if c.Numeric {
		p, err = profile.BuildNumeric(c.Floats, cfg)
	} else {
		p, err = profile.BuildCategorical(c.Strings, cfg)
	}
	if err != nil {
		return nil, err
	}
	p.Feature = c.Name
	return p, nil
}
