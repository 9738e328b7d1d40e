package offline

import (
	"fmt"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/fleetwatch/fleetwatch/analytics/tabular"
	"github.com/fleetwatch/fleetwatch/lib/kernels"
	"github.com/fleetwatch/fleetwatch/lib/profile"
)

// CompareIPC compares two Arrow IPC files without holding either in
// memory. It reads the reference twice: a sample of evenly spaced batches
// (at least SampleRows rows, or all of them) sets the bin edges and the
// top categories, then every batch of both files is binned, Workers batches
// at a time. Memory is about SampleRows × columns × 8 bytes for the sample
// plus one batch per worker, whatever the files' sizes; the counts are
// exact for the edges chosen.
func CompareIPC(refPath, curPath string, opt Options) (*Report, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	if opt.SampleRows == 0 {
		opt.SampleRows = 1 << 16
	}
	if opt.Workers == 0 {
		opt.Workers = 2
	}
	open := tabular.OpenIPC
	if opt.PageCache {
		open = tabular.OpenIPCCached
	}
	ref, err := open(refPath)
	if err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	defer ref.Close()
	cur, err := open(curPath)
	if err != nil {
		return nil, fmt.Errorf("current: %w", err)
	}
	defer cur.Close()
	rep := &Report{}
	names := func(p *tabular.IPCFile) []string {
		var out []string
		for _, f := range p.Fields() {
			out = append(out, f.Name)
		}
		return out
	}
	// cols[i] is the column compared, by index into each file.
	var cols []streamCol
	for _, n := range match(names(ref), names(cur), rep) {
		ri, ci := fieldIndex(ref, n), fieldIndex(cur, n)
		if ref.Numeric(ri) != cur.Numeric(ci) {
			rep.Skipped = append(rep.Skipped, Skip{n, kindMismatch(ref.Numeric(ri))})
			continue
		}
		cols = append(cols, streamCol{name: n, ref: ri, cur: ci, numeric: ref.Numeric(ri)})
	}
	if err := sampleProfiles(ref, cols, opt); err != nil {
		return nil, err
	}
	refH, refRows, err := binAll(ref, cols, opt.Workers, func(c *streamCol) int { return c.ref })
	if err != nil {
		return nil, err
	}
	curH, curRows, err := binAll(cur, cols, opt.Workers, func(c *streamCol) int { return c.cur })
	if err != nil {
		return nil, err
	}
	rep.RefRows, rep.CurRows = refRows, curRows
	profiles := make([]*profile.Profile, len(cols))
	hists := make([][]float64, len(cols))
	for i, c := range cols {
		p := c.profile
		ref := refH[i].Floats()
		p.Counts, p.Missing = ref[:len(ref)-1:len(ref)-1], ref[len(ref)-1]
		profiles[i], hists[i] = p, curH[i].Floats()
	}
	return rep, rep.finish(profiles, hists, opt)
}

// streamCol is a column being compared, with its profile and binners.
type streamCol struct {
	name     string
	ref, cur int
	numeric  bool
	profile  *profile.Profile
	binner   *kernels.Binner
	cats     *kernels.Categories
}

func fieldIndex(p *tabular.IPCFile, name string) int {
	for i, f := range p.Fields() {
		if f.Name == name {
			return i
		}
	}
	return -1
}

// sampleProfiles sets each column's edges or categories from evenly spaced
// reference batches.
func sampleProfiles(ref *tabular.IPCFile, cols []streamCol, opt Options) error {
	n := ref.Batches()
	var picked []int
	rows := 0
	// Take every stride-th batch; batches are of similar size, so try
	// strides until the sample is large enough.
	for stride := max(1, n); stride >= 1 && rows < opt.SampleRows; stride /= 2 {
		picked, rows = picked[:0], 0
		for b := 0; b < n; b += stride {
			picked = append(picked, b)
		}
		if len(picked) == n {
			break
		}
		rec, err := ref.Batch(0)
		if err != nil {
			return err
		}
		rows = len(picked) * int(rec.NumRows())
		rec.Release()
	}
	floats := make([][]float64, len(cols))
	strs := make([][]string, len(cols))
	for _, b := range picked {
		rec, err := ref.Batch(b)
		if err != nil {
			return err
		}
		for i, c := range cols {
			a := rec.Column(c.ref)
			if c.numeric {
				floats[i] = tabular.AppendFloats(floats[i], a)
			} else {
				strs[i] = tabular.AppendStrings(strs[i], a)
			}
		}
		rec.Release()
	}
	for i := range cols {
		c := &cols[i]
		var err error
		c.profile, err = profileColumn(&tabular.Column{Name: c.name, Numeric: c.numeric, Floats: floats[i], Strings: strs[i]}, opt.Build)
		if err == nil && c.numeric {
			c.binner, err = c.profile.Binner()
		} else if err == nil {
			c.cats, err = c.profile.CategoryIndex()
		}
		if err != nil {
			return fmt.Errorf("column %s: %w", c.name, err)
		}
		floats[i], strs[i] = nil, nil
	}
	return nil
}

// binAll bins every batch of f into the columns' bins with workers
// goroutines, each with its own histograms, and merges them.
func binAll(f *tabular.IPCFile, cols []streamCol, workers int, index func(*streamCol) int) ([]*kernels.Histogram, int, error) {
	type result struct {
		h    []*kernels.Histogram
		rows int
		err  error
	}
	results := make([]result, workers)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[w]
			r.h = make([]*kernels.Histogram, len(cols))
			for i := range cols {
				r.h[i] = cols[i].profile.Histogram()
			}
			var buf []float64
			for b := range next {
				if r.err != nil {
					continue
				}
				rec, err := f.Batch(b)
				if err != nil {
					r.err = err
					continue
				}
				r.rows += int(rec.NumRows())
				for i := range cols {
					c := &cols[i]
					a := rec.Column(index(c))
					switch {
					case !c.numeric:
						if s, ok := a.(*array.String); ok {
							c.cats.AddArray(r.h[i], s)
						} else {
							c.cats.AddStrings(r.h[i], tabular.AppendStrings(nil, a))
						}
					case a.DataType().ID() == arrow.FLOAT64:
						c.binner.AddArray(r.h[i], a.(*array.Float64))
					default:
						buf = tabular.AppendFloats(buf[:0], a)
						c.binner.AddFloat64s(r.h[i], buf)
					}
				}
				rec.Release()
			}
		}()
	}
	for b := 0; b < f.Batches(); b++ {
		next <- b
	}
	close(next)
	wg.Wait()
	total := results[0]
	for _, r := range results[1:] {
		if r.err != nil && total.err == nil {
			total.err = r.err
		}
		total.rows += r.rows
		for i := range cols {
			total.h[i].Add(r.h[i])
		}
	}
	return total.h, total.rows, total.err
}
