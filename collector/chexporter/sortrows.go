package chexporter

import (
	"cmp"
	"slices"
	"unsafe"

	"github.com/fleetwatch/fleetwatch/storage"
)

// sortSamples orders a gpu_samples block (the drain loop's, queue columns
// removed) by the table's sorting key, (metric, series, ts). ClickHouse
// sorts every inserted block by that key unless it already is sorted, and
// comparing the metric strings row by row was the largest part of its CPU
// per sample (a quarter, profiled): the collector sorts by a rank of the
// batch's few distinct metric names instead, integers only, so the server
// only checks the order. The rows are the same; a block already in order,
// or without those columns, is returned as it is.
func (s *sampleSorter) sortSamples(b storage.Block) storage.Block {
	var metric []string
	var series []uint64
	var ts []int64
	for i, c := range b.Columns {
		switch c {
		case "metric":
			metric, _ = b.Data[i].([]string)
		case "series":
			series, _ = b.Data[i].([]uint64)
		case "ts":
			ts, _ = b.Data[i].([]int64)
		}
	}
	n := len(metric)
	if n < 2 || len(series) != n || len(ts) != n {
		return b
	}
	// Rank the distinct metric names in order. The drain loop interns
	// them, so a row's name is looked up by its data pointer; names the
	// pointer map has not seen are looked up by value.
	if s.byPtr == nil {
		s.byPtr, s.ranks = map[*byte]uint32{}, map[string]uint32{}
	}
	clear(s.byPtr)
	clear(s.ranks)
	s.names, s.seen = s.names[:0], s.seen[:0]
	for _, m := range metric {
		p := unsafe.StringData(m)
		if _, ok := s.byPtr[p]; ok {
			continue
		}
		s.byPtr[p] = 0
		s.seen = append(s.seen, m)
		if _, ok := s.ranks[m]; !ok {
			s.ranks[m] = 0
			s.names = append(s.names, m)
		}
	}
	slices.Sort(s.names)
	for r, m := range s.names {
		s.ranks[m] = uint32(r)
	}
	for _, m := range s.seen {
		s.byPtr[unsafe.StringData(m)] = s.ranks[m]
	}
	// Count rows per rank, checking the order on the way.
	s.starts = slices.Grow(s.starts[:0], len(s.names)+1)[:len(s.names)+1]
	clear(s.starts)
	s.rank = slices.Grow(s.rank[:0], n)[:n]
	sorted := true
	for i, m := range metric {
		r := s.byPtr[unsafe.StringData(m)]
		s.rank[i] = r
		s.starts[r+1]++
		if i > 0 && sorted {
			prev := s.rank[i-1]
			sorted = prev < r || prev == r && (series[i-1] < series[i] || series[i-1] == series[i] && ts[i-1] <= ts[i])
		}
	}
	if sorted {
		return b
	}
	for r := 1; r < len(s.starts); r++ {
		s.starts[r] += s.starts[r-1]
	}
	// Place each row in its rank's bucket (a counting sort), then order
	// each bucket by series and time.
	s.keys = slices.Grow(s.keys[:0], n)[:n]
	next := append(s.next[:0], s.starts...)
	s.next = next
	for i, r := range s.rank {
		s.keys[next[r]] = sortKey{series: series[i], ts: ts[i], row: uint32(i)}
		next[r]++
	}
	for r := 0; r+1 < len(s.starts); r++ {
		slices.SortFunc(s.keys[s.starts[r]:s.starts[r+1]], compareKeys)
	}
	if len(s.cols) < len(b.Data) {
		s.cols = append(s.cols, make([]any, len(b.Data)-len(s.cols))...)
	}
	out := storage.Block{Table: b.Table, Columns: b.Columns, Data: make([]any, len(b.Data))}
	for c, d := range b.Data {
		switch v := d.(type) {
		case []string:
			out.Data[c] = permute(s, c, v)
		case []uint64:
			out.Data[c] = permute(s, c, v)
		case []int64:
			out.Data[c] = permute(s, c, v)
		case []float64:
			out.Data[c] = permute(s, c, v)
		case []uint32:
			out.Data[c] = permute(s, c, v)
		case []uint8:
			out.Data[c] = permute(s, c, v)
		default:
			return b // a column type this does not know: leave the order to ClickHouse
		}
	}
	return out
}

// sampleSorter keeps sortSamples' memory from batch to batch: the output
// columns are reused once their batch is written.
type sampleSorter struct {
	byPtr  map[*byte]uint32
	ranks  map[string]uint32
	names  []string // distinct, sorted
	seen   []string // one per distinct data pointer
	rank   []uint32 // per row
	starts []int    // per rank, its first position in keys; then the end
	next   []int
	keys   []sortKey
	cols   []any // per column position, the last output slice
}

// sortKey orders the rows of one metric.
type sortKey struct {
	series uint64
	ts     int64
	row    uint32
}

func compareKeys(a, b sortKey) int {
	if c := cmp.Compare(a.series, b.series); c != 0 {
		return c
	}
	return cmp.Compare(a.ts, b.ts)
}

// permute returns column c's values in the sorted order, in the slice the
// sorter kept for that column when it has the type.
func permute[T any](s *sampleSorter, c int, v []T) []T {
	out, _ := s.cols[c].([]T)
	out = slices.Grow(out[:0], len(v))[:len(v)]
	for i, k := range s.keys {
		out[i] = v[k.row]
	}
	s.cols[c] = out
	return out
}
