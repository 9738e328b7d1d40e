package offline

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// envInt reads an integer environment variable with a default.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// writeSynthetic writes rows × cols Float64 values as an Arrow IPC file in
// batches of batch rows: column j is N(j, 1 + j%5) shifted by shift(j) SDs,
// with 1% NaN in every tenth column. Normal draws come from a table indexed
// by a xorshift generator, so writing is disk-bound, not RNG-bound.
func writeSynthetic(b *testing.B, path string, rows, cols, batch int, seed uint64, shift func(int) float64) {
	b.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	table := make([]float64, 1<<20)
	for i := range table {
		table[i] = r.NormFloat64()
	}
	fields := make([]arrow.Field, cols)
	for j := range fields {
		fields[j] = arrow.Field{Name: fmt.Sprintf("f%04d", j), Type: arrow.PrimitiveTypes.Float64}
	}
	schema := arrow.NewSchema(fields, nil)
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 8<<20)
	w, err := ipc.NewFileWriter(&seekless{bw, f}, ipc.WithSchema(schema))
	if err != nil {
		b.Fatal(err)
	}
	state := seed | 1
	bufs := make([][]float64, cols)
	for j := range bufs {
		bufs[j] = make([]float64, batch)
	}
	for lo := 0; lo < rows; lo += batch {
		n := min(batch, rows-lo)
		arrs := make([]arrow.Array, cols)
		for j := 0; j < cols; j++ {
			mean, sd := float64(j), 1+float64(j%5)
			s := shift(j)
			v := bufs[j][:n]
			for i := range v {
				state ^= state << 13
				state ^= state >> 7
				state ^= state << 17
				v[i] = mean + sd*(table[state&(1<<20-1)]+s)
				if j%10 == 9 && state>>40%100 == 0 {
					v[i] = math.NaN()
				}
			}
			raw := unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), n*8)
			data := array.NewData(arrow.PrimitiveTypes.Float64, n, []*memory.Buffer{nil, memory.NewBufferBytes(raw)}, nil, 0, 0)
			arrs[j] = array.NewFloat64Data(data)
			data.Release()
		}
		rec := array.NewRecord(schema, arrs, int64(n))
		if err := w.Write(rec); err != nil {
			b.Fatal(err)
		}
		rec.Release()
		for _, a := range arrs {
			a.Release()
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// seekless lets the IPC writer, which only asks where it is, write through
// a buffer.
type seekless struct {
	*bufio.Writer
	f *os.File
}

func (s *seekless) Seek(offset int64, whence int) (int64, error) {
	if offset == 0 && whence == 1 {
		pos, err := s.f.Seek(0, 1)
		return pos + int64(s.Buffered()), err
	}
	if err := s.Flush(); err != nil {
		return 0, err
	}
	return s.f.Seek(offset, whence)
}

// rssSampler records the process's peak resident memory while it runs.
type rssSampler struct {
	stop chan struct{}
	done sync.WaitGroup
	peak int64
}

func rss() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func sampleRSS() *rssSampler {
	s := &rssSampler{stop: make(chan struct{})}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			s.peak = max(s.peak, rss())
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) Stop() int64 {
	close(s.stop)
	s.done.Wait()
	return s.peak
}

// BenchmarkEvidentlyWorkload is the workload of Evidently issue #1526: a
// drift report over 3M reference rows and 0.3M current rows of 1,000
// numeric columns (6 hours there; out of memory at 10M rows), here streamed
// from Arrow IPC files on disk (26 GB) with bounded memory. It writes the
// files first (not timed) under $FLEETWATCH_BENCH_DIR or the temp dir,
// removes them afterwards, and needs 30 GB free. Opt in with
// FLEETWATCH_BENCH_EVIDENTLY=1; FLEETWATCH_BENCH_REF_ROWS,
// FLEETWATCH_BENCH_CUR_ROWS and FLEETWATCH_BENCH_COLS shrink it.
func BenchmarkEvidentlyWorkload(b *testing.B) {
	if os.Getenv("FLEETWATCH_BENCH_EVIDENTLY") == "" {
		b.Skip("set FLEETWATCH_BENCH_EVIDENTLY=1: writes 26 GB of data and takes minutes")
	}
	refRows := envInt("FLEETWATCH_BENCH_REF_ROWS", 3_000_000)
	curRows := envInt("FLEETWATCH_BENCH_CUR_ROWS", 300_000)
	cols := envInt("FLEETWATCH_BENCH_COLS", 1000)
	dir := os.Getenv("FLEETWATCH_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	} else {
		var err error
		if dir, err = os.MkdirTemp(dir, "evidently-"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
	}
	need := int64(refRows+curRows) * int64(cols) * 8 * 11 / 10
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err == nil && int64(st.Bavail)*int64(st.Bsize) < need {
		b.Skipf("%s has %d GB free; the files need %d GB", dir, int64(st.Bavail)*int64(st.Bsize)>>30, need>>30)
	}
	refPath, curPath := filepath.Join(dir, "reference.arrow"), filepath.Join(dir, "current.arrow")
	t0 := time.Now()
	writeSynthetic(b, refPath, refRows, cols, 8192, 1, func(int) float64 { return 0 })
	// Columns 0–9 shift by half a σ (PSI ≈ 0.25), 10–19 by a tenth (real
	// but in the stable band); the rest do not move.
	writeSynthetic(b, curPath, curRows, cols, 8192, 2, func(j int) float64 {
		switch {
		case j < 10:
			return 0.5
		case j < 20:
			return 0.1
		}
		return 0
	})
	b.Logf("wrote %d + %d rows × %d columns (%.1f GB) in %v", refRows, curRows, cols, float64(need)/1.1/(1<<30), time.Since(t0))
	for _, mode := range []struct {
		name      string
		pageCache bool
	}{{"direct-io", false}, {"page-cache", true}} {
		b.Run(mode.name, func(b *testing.B) {
			opt := NewDefaultOptions()
			opt.PageCache = mode.pageCache
			runEvidently(b, refPath, curPath, opt, refRows, curRows, cols)
		})
	}
}

// runEvidently times CompareIPC from a cold page cache where the benchmark
// may drop it (root on Linux), and checks the report.
func runEvidently(b *testing.B, refPath, curPath string, opt Options, refRows, curRows, cols int) {
	var rep *Report
	var peak int64
	var timed time.Duration
	for i := 0; i < b.N; i++ {
		if err := dropPageCache(); err != nil {
			b.Logf("page cache not dropped (%v): part of the files may be read from memory", err)
		}
		s := sampleRSS()
		t := time.Now()
		var err error
		rep, err = CompareIPC(refPath, curPath, opt)
		timed += time.Since(t)
		peak = max(peak, s.Stop())
		if err != nil {
			b.Fatal(err)
		}
	}
	flagged, significant := 0, 0
	for j, c := range rep.Columns {
		if c.Flagged {
			flagged++
			if j >= 10 {
				b.Errorf("column %s flagged: %+v", c.Name, c.Result)
			}
		}
		if c.QValue < opt.FDR {
			significant++
		}
	}
	if flagged != min(10, cols) || rep.RefRows != refRows || rep.CurRows != curRows {
		b.Errorf("flagged %d columns (want the 10 shifted by σ/2), rows %d/%d", flagged, rep.RefRows, rep.CurRows)
	}
	values := float64(refRows+curRows) * float64(cols)
	b.ReportMetric(timed.Seconds()/float64(b.N), "s/report")
	b.ReportMetric(values*float64(b.N)/timed.Seconds()/1e6, "Mvalues/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(significant), "significant-columns")
}

// dropPageCache writes back dirty pages and empties the page cache, so a
// run reads its files from disk.
func dropPageCache() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0o200)
}
