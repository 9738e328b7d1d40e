package tabular

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// openDirectOrFallback opens path with direct I/O; where the platform or
// file system refuses it (tmpfs, macOS), the same code is exercised on its
// buffered fallback, and the test says so in its log.
func openDirectOrFallback(t *testing.T, path string) *directFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	d, err := openDirect(path, f, st.Size())
	if err != nil {
		t.Logf("no direct I/O here (%v): testing the buffered fallback", err)
		d = &directFile{buffered: f, size: st.Size()}
		d.refused.Store(true)
		t.Cleanup(func() { f.Close() })
		return d
	}
	t.Cleanup(func() { d.Close(); f.Close() })
	return d
}

func TestDirectReadAtReturnsTheFileBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	data := make([]byte, 2*directChunk+3*directAlign+123) // unaligned size, several chunks
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	path := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	d := openDirectOrFallback(t, path)
	size := int64(len(data))
	cases := []struct {
		name    string
		off     int64
		n       int
		wantN   int
		wantEOF bool
	}{
		{"aligned block", directAlign, directAlign, directAlign, false},
		{"unaligned inside a block", 17, 100, 100, false},
		{"across blocks", directAlign - 3, 10, 10, false},
		{"across chunks", directChunk - 5, directChunk + 11, directChunk + 11, false},
		{"whole file", 0, len(data), len(data), false},
		{"up to the end", size - 50, 50, 50, false},
		{"past the end", size - 50, 80, 50, true},
		{"at the end", size, 10, 0, true},
		{"empty", 5, 0, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := make([]byte, c.n)
			n, err := d.ReadAt(p, c.off)
			if n != c.wantN || (err == io.EOF) != c.wantEOF || (err != nil && err != io.EOF) {
				t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d, eof=%v", c.n, c.off, n, err, c.wantN, c.wantEOF)
			}
			if !bytes.Equal(p[:n], data[c.off:c.off+int64(n)]) {
				t.Fatal("bytes differ from the file's")
			}
		})
	}
	if _, err := d.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("negative offset: no error")
	}

	// Concurrent readers share the scratch pool.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for i := 0; i < 50; i++ {
				off := r.Int64N(size)
				p := make([]byte, r.IntN(int(size-off))+1)
				n, err := d.ReadAt(p, off)
				if n != len(p) || (err != nil && err != io.EOF) || !bytes.Equal(p, data[off:off+int64(n)]) {
					errs <- errors.New("concurrent read returned wrong bytes")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestDirectSeek(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(path, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := openDirectOrFallback(t, path)
	if pos, err := d.Seek(-4, io.SeekEnd); pos != 6 || err != nil {
		t.Fatalf("Seek end-4 = %d, %v", pos, err)
	}
	p := make([]byte, 3)
	if n, err := d.Read(p); n != 3 || err != nil || string(p) != "678" {
		t.Fatalf("Read = %d %v %q", n, err, p)
	}
	if pos, _ := d.Seek(0, io.SeekCurrent); pos != 9 {
		t.Fatalf("position after read %d, want 9", pos)
	}
	if _, err := d.Seek(-1, io.SeekStart); err == nil {
		t.Error("negative seek: no error")
	}
	if _, err := d.Seek(0, 7); err == nil {
		t.Error("bad whence: no error")
	}
}

// TestDirectIPCRecordsMatchBuffered reads an Arrow IPC file through the
// direct reader and through os.File and compares every batch.
func TestDirectIPCRecordsMatchBuffered(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	tb := &Table{Rows: 10_000}
	for c := 0; c < 5; c++ {
		col := Column{Name: string(rune('a' + c)), Numeric: true, Floats: make([]float64, tb.Rows)}
		for i := range col.Floats {
			col.Floats[i] = r.NormFloat64()
		}
		tb.Columns = append(tb.Columns, col)
	}
	path := filepath.Join(t.TempDir(), "t.arrow")
	if err := WriteIPC(path, tb, 777); err != nil {
		t.Fatal(err)
	}
	plain, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	want, err := ipc.NewFileReader(plain, ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	got, err := ipc.NewFileReader(openDirectOrFallback(t, path), ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if got.NumRecords() != want.NumRecords() || got.NumRecords() != 13 {
		t.Fatalf("%d batches, want %d (13)", got.NumRecords(), want.NumRecords())
	}
	for i := 0; i < want.NumRecords(); i++ {
		a, err := want.RecordAt(i)
		if err != nil {
			t.Fatal(err)
		}
		b, err := got.RecordAt(i)
		if err != nil {
			t.Fatal(err)
		}
		if !array.RecordEqual(a, b) {
			t.Fatalf("batch %d differs", i)
		}
		a.Release()
		b.Release()
	}
}
