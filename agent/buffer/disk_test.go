package buffer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/fleetwatch/fleetwatch/internal/testsupport/disktest"
)

// fullDisk is a place for a buffer whose disk can be filled and freed.
type fullDisk struct {
	dir      string
	openFile func(string) (file, error)
	fill     func()
	free     func()
}

// tmpfsDisk is a real 1 MiB file system (needs root to mount).
func tmpfsDisk(t *testing.T) fullDisk {
	dir := disktest.Tmpfs(t, "1m")
	var free func()
	return fullDisk{dir: dir, openFile: openAppend,
		fill: func() { free = disktest.Fill(t, dir) },
		free: func() { free() }}
}

// quotaDisk injects ENOSPC through the file interface: writes past the quota
// are cut short and fail, as the kernel does. It runs everywhere.
type quotaDisk struct {
	mu          sync.Mutex
	used, limit int64
}

type quotaFile struct {
	*os.File
	d    *quotaDisk
	size int64
}

func (f *quotaFile) Write(p []byte) (int, error) {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	part := p[:min(int64(len(p)), max(f.d.limit-f.d.used, 0))]
	n, err := f.File.Write(part)
	f.size += int64(n)
	f.d.used += int64(n)
	if err == nil && len(part) < len(p) {
		err = &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return n, err
}

func (f *quotaFile) Truncate(size int64) error {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	f.d.used -= f.size - size
	f.size = size
	return f.File.Truncate(size)
}

func injectedDisk(t *testing.T) fullDisk {
	q := &quotaDisk{limit: 1 << 40}
	return fullDisk{
		dir: t.TempDir(),
		openFile: func(path string) (file, error) {
			f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return nil, err
			}
			st, _ := f.Stat()
			return &quotaFile{File: f, d: q, size: st.Size()}, nil
		},
		fill: func() { q.mu.Lock(); q.limit = q.used + 1000; q.mu.Unlock() },
		free: func() { q.mu.Lock(); q.limit = 1 << 40; q.mu.Unlock() },
	}
}

type written struct {
	meta    Meta
	payload []byte
}

// rec makes record i: sizes vary so that records straddle pages and segments.
func rec(i int) written {
	p := bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 150+(i*389)%750)
	return written{Meta{Kind: 1 + byte(i%2), Source: byte(i % 3), Items: uint32(i)}, p}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// A full disk refuses appends with a counted reason and deletes nothing; a
// record written in part is cut off (a reopened buffer finds nothing
// damaged); once space returns appends work again without a restart, and
// every record reads back exactly as it was written.
func TestFullDiskRefusesKeepsAndRecovers(t *testing.T) {
	for _, tc := range []struct {
		name string
		disk func(*testing.T) fullDisk
	}{{"tmpfs", tmpfsDisk}, {"injected", injectedDisk}} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.disk(t)
			cfg := Config{Dir: filepath.Join(d.dir, "buf"), SegmentBytes: 16 << 10, MaxBytes: 1 << 30}
			b, err := open(cfg, d.openFile)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { b.Close() }()
			var want []written
			next := 0
			appendNext := func() error {
				r := rec(next)
				err := b.Append(r.meta, r.payload)
				if err == nil {
					want = append(want, r)
					next++
				}
				return err
			}
			for range 40 {
				if err := appendNext(); err != nil {
					t.Fatalf("before the disk is full: %v", err)
				}
			}
			d.fill()
			var full error
			for i := 0; i < 1000 && full == nil; i++ {
				full = appendNext()
			}
			if !errors.Is(full, ErrDiskFull) || !errors.Is(full, syscall.ENOSPC) {
				t.Fatalf("append on a full disk: %v; want ErrDiskFull wrapping ENOSPC", full)
			}
			before := segFiles(t, cfg.Dir)
			for range 20 {
				if err := appendNext(); !errors.Is(err, ErrDiskFull) {
					t.Fatalf("append while still full: %v", err)
				}
			}
			st := b.Stats()
			if st.DiskFull != 21 || st.Dropped != 0 || st.Pending != int64(len(want)) {
				t.Fatalf("while full: disk_full %d (want 21), dropped %d, pending %d (want %d)", st.DiskFull, st.Dropped, st.Pending, len(want))
			}
			if st.Truncated == 0 {
				t.Errorf("no partial record was cut off; the test's records should straddle the last free bytes")
			}
			if after := segFiles(t, cfg.Dir); !slices.Equal(before, after) {
				t.Fatalf("segments changed while the disk was full: %v -> %v", before, after)
			}
			// A restart on the full disk finds every record whole.
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			if b, err = open(cfg, d.openFile); err != nil {
				t.Fatalf("reopen on a full disk: %v", err)
			}
			if st := b.Stats(); st.Corrupt != 0 || st.Pending != int64(len(want)) {
				t.Fatalf("after reopen: corrupt %d, pending %d (want 0, %d)", st.Corrupt, st.Pending, len(want))
			}
			d.free()
			for range 60 {
				if err := appendNext(); err != nil {
					t.Fatalf("after space returned: %v", err)
				}
			}
			done := make(chan struct{})
			for i, w := range want {
				r, err := b.Next(done)
				if err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				if r.Meta != w.meta || !bytes.Equal(r.Payload, w.payload) {
					t.Fatalf("record %d reads back as %+v with %d bytes, want %+v with %d bytes", i, r.Meta, len(r.Payload), w.meta, len(w.payload))
				}
				if err := b.Ack(r); err != nil {
					t.Fatal(err)
				}
			}
			if st := b.Stats(); st.Pending != 0 || st.Dropped != 0 || st.Corrupt != 0 {
				t.Fatalf("after reading everything back: %+v", st)
			}
			t.Logf("%d records kept and read back; %d appends refused while full, %d partial records cut off", len(want), st.DiskFull, st.Truncated)
		})
	}
}

// An agent that starts on a full disk runs: the buffer opens without its
// first segment, refuses appends as disk_full, and creates the segment once
// space returns.
func TestOpenOnAFullDisk(t *testing.T) {
	dir := disktest.Tmpfs(t, "256k")
	free := disktest.Fill(t, dir)
	cfg := Config{Dir: dir, SegmentBytes: 16 << 10, MaxBytes: 1 << 30}
	b, err := Open(cfg)
	if err != nil {
		t.Fatalf("open on a full disk: %v", err)
	}
	defer b.Close()
	r := rec(1)
	if err := b.Append(r.meta, r.payload); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("append on a full disk: %v", err)
	}
	free()
	if err := b.Append(r.meta, r.payload); err != nil {
		t.Fatalf("append after space returned: %v", err)
	}
	got, err := b.Next(make(chan struct{}))
	if err != nil || got.Meta != r.meta || !bytes.Equal(got.Payload, r.payload) {
		t.Fatalf("read back %+v, %v", got.Meta, err)
	}
}

// The disk fills while the buffer writes one segment larger than the free
// space, and nothing else on the disk can be freed. Once the shipper has
// delivered what that segment holds, the buffer gets the space back by
// itself — it never deletes the segment it writes, so it moves on to a new
// one and deletes the delivered one — and appends go on; also when the
// shipper was only part way through the segment when the disk filled.
// Before, the delivered segment stayed as the one being written and the
// agent was stuck.
func TestDeliveredSegmentIsReclaimedOnAFullDisk(t *testing.T) {
	for _, firstPart := range []float64{1, 0.5} {
		t.Run(fmt.Sprintf("delivered %.0f%% when the disk filled", 100*firstPart), func(t *testing.T) {
			d := tmpfsDisk(t)
			cfg := Config{Dir: filepath.Join(d.dir, "buf"), MaxBytes: 1 << 30, SegmentBytes: 64 << 20}
			b, err := open(cfg, d.openFile)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			n := 0
			for ; n < 100000; n++ {
				r := rec(n)
				if err := b.Append(r.meta, r.payload); err != nil {
					if !errors.Is(err, ErrDiskFull) {
						t.Fatal(err)
					}
					break
				}
			}
			if n == 0 || n == 100000 {
				t.Fatalf("%d records fit", n)
			}
			deliver := func(k int) {
				for i := 0; i < k; i++ {
					r, err := b.Next(nil)
					if err != nil {
						t.Fatal(err)
					}
					if err := b.Ack(r); err != nil {
						t.Fatal(err)
					}
				}
			}
			first := int(firstPart * float64(n))
			deliver(first)
			r := rec(n)
			if err := b.Append(r.meta, r.payload); err != nil && !errors.Is(err, ErrDiskFull) {
				t.Fatal(err) // a refusal here lets the buffer move on
			}
			deliver(n - first)
			var appendErr error
			for try := 0; try < 3; try++ { // at most one more refusal
				if appendErr = b.Append(r.meta, r.payload); appendErr == nil {
					break
				}
			}
			if appendErr != nil {
				t.Fatalf("append after everything was delivered: %v (segments %v)", appendErr, segFiles(t, cfg.Dir))
			}
			got, err := b.Next(nil)
			if err != nil || !bytes.Equal(got.Payload, r.payload) {
				t.Fatalf("next record after the reclaim: %v", err)
			}
			if st := b.Stats(); st.Dropped != 0 || st.Pending != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}
