package chexporter

import (
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
	// them, so a row's name is looked up by its data pointer (and length);
	// a name whose pointer another name took is looked up by value.
	if s.byPtr == nil {
		s.byPtr, s.ranks = map[*byte]ptrRank{}, map[string]uint32{}
	}
	clear(s.byPtr)
	clear(s.ranks)
	s.names, s.seen = s.names[:0], s.seen[:0]
	for _, m := range metric {
		p := unsafe.StringData(m)
		e, ok := s.byPtr[p]
		if ok && e.n == len(m) {
			continue
		}
		if !ok {
			s.byPtr[p] = ptrRank{n: len(m)}
			s.seen = append(s.seen, m)
		}
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
		s.byPtr[unsafe.StringData(m)] = ptrRank{n: len(m), rank: s.ranks[m]}
	}
	// Count rows per rank, checking the order on the way: the starts of
	// the ranks' runs in the sorted rows.
	s.starts = slices.Grow(s.starts[:0], len(s.names)+1)[:len(s.names)+1]
	clear(s.starts)
	s.rank = slices.Grow(s.rank[:0], n)[:n]
	sorted := true
	for i, m := range metric {
		r, ok := s.byPtr[unsafe.StringData(m)]
		if !ok || r.n != len(m) {
			r.rank = s.ranks[m]
		}
		s.rank[i] = r.rank
		s.starts[r.rank+1]++
		if i > 0 && sorted {
			prev := s.rank[i-1]
			sorted = prev < r.rank || prev == r.rank && (series[i-1] < series[i] || series[i-1] == series[i] && ts[i-1] <= ts[i])
		}
	}
	if sorted {
		return b
	}
	// A least-significant-digit radix sort: by each byte of the series
	// id, then by the metric's rank, every pass stable, so rows of one
	// series keep the order they came in (their time order: a sender's
	// points come in order; a late point only leaves ClickHouse a block to
	// sort, as before). Ten passes over the rows cost less than comparing
	// them (a comparison sort per metric was 150 ns a row).
	s.keys = slices.Grow(s.keys[:0], n)[:n]
	s.tmp = slices.Grow(s.tmp[:0], n)[:n]
	for i := range n {
		s.keys[i] = sortKey{series: series[i], row: uint32(i), rank: s.rank[i]}
	}
	var count [257]int
	for shift := 0; shift < 64; shift += 8 {
		clear(count[:])
		for _, k := range s.keys {
			count[int(byte(k.series>>shift))+1]++
		}
		if slices.Contains(count[1:], n) {
			continue // every row has the same byte here
		}
		for d := 1; d < len(count); d++ {
			count[d] += count[d-1]
		}
		for _, k := range s.keys {
			d := byte(k.series >> shift)
			s.tmp[count[d]] = k
			count[d]++
		}
		s.keys, s.tmp = s.tmp, s.keys
	}
	for r := 1; r < len(s.starts); r++ {
		s.starts[r] += s.starts[r-1]
	}
	next := append(s.next[:0], s.starts...)
	s.next = next
	for _, k := range s.keys {
		s.tmp[next[k.rank]] = k
		next[k.rank]++
	}
	s.keys, s.tmp = s.tmp, s.keys
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
	byPtr  map[*byte]ptrRank
	ranks  map[string]uint32
	names  []string // distinct, sorted
	seen   []string // one per distinct data pointer
	rank   []uint32 // per row
	starts []int    // per rank, its first position in keys; then the end
	next   []int
	keys   []sortKey
	tmp    []sortKey
	cols   []any // per column position, the last output slice
}

// ptrRank is the rank of the name of length n at a data pointer.
type ptrRank struct {
	n    int
	rank uint32
}

// sortKey is a row's place in the order: its series, its metric's rank.
type sortKey struct {
	series    uint64
	row, rank uint32
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
