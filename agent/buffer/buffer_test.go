package buffer_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/buffer"
)

func small(dir string) buffer.Config {
	return buffer.Config{Dir: dir, MaxBytes: 64 << 10, SegmentBytes: 8 << 10}
}

func open(t *testing.T, cfg buffer.Config) *buffer.Buffer {
	t.Helper()
	b, err := buffer.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func payload(i int) []byte {
	p := make([]byte, 100)
	binary.LittleEndian.PutUint64(p, uint64(i))
	return p
}

func seq(t *testing.T, r buffer.Record) int {
	t.Helper()
	if len(r.Payload) != 100 {
		t.Fatalf("payload of %d bytes", len(r.Payload))
	}
	return int(binary.LittleEndian.Uint64(r.Payload))
}

func appendN(t *testing.T, b *buffer.Buffer, from, n int, source byte) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := b.Append(buffer.Meta{Kind: 1, Source: source, Items: 10}, payload(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// drain reads and acks up to n records, returning their sequence numbers.
func drain(t *testing.T, b *buffer.Buffer, n int) []int {
	t.Helper()
	var got []int
	done := make(chan struct{})
	time.AfterFunc(2*time.Second, func() { close(done) })
	for len(got) < n {
		r, err := b.Next(done)
		if err != nil {
			t.Fatalf("after %d records: %v", len(got), err)
		}
		got = append(got, seq(t, r))
		if err := b.Ack(r); err != nil {
			t.Fatal(err)
		}
	}
	return got
}

func wantSeq(t *testing.T, got []int, from int) {
	t.Helper()
	for i, g := range got {
		if g != from+i {
			t.Fatalf("record %d is #%d, want #%d (in order, no gaps, no repeats)", i, g, from+i)
		}
	}
}

func TestInOrderAcrossSegments(t *testing.T) {
	b := open(t, small(t.TempDir()))
	appendN(t, b, 0, 200, 3) // ~23 KB: several segments
	st := b.Stats()
	if st.Pending != 200 || st.PendingItems[3] != 2000 {
		t.Fatalf("pending %d records, %d items", st.Pending, st.PendingItems[3])
	}
	wantSeq(t, drain(t, b, 200), 0)
	st = b.Stats()
	if st.Pending != 0 || st.PendingItems[3] != 0 || st.Acked != 200 || st.Dropped != 0 {
		t.Fatalf("after draining: %+v", st)
	}
	if st.Bytes > 8<<10 {
		t.Errorf("acked segments not deleted: %d bytes left", st.Bytes)
	}
}

func TestRestartResumesAtTheCursor(t *testing.T) {
	dir := t.TempDir()
	b, err := buffer.Open(small(dir))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, b, 0, 150, 1)
	wantSeq(t, drain(t, b, 70), 0)
	b.Close()

	b2 := open(t, small(dir))
	st := b2.Stats()
	if st.Pending != 80 || st.PendingItems[1] != 800 {
		t.Fatalf("after reopen: pending %d records, %d items; want 80, 800", st.Pending, st.PendingItems[1])
	}
	appendN(t, b2, 150, 10, 1)
	wantSeq(t, drain(t, b2, 90), 70)
}

func TestFullBufferDropsOldestFirstAndCountsIt(t *testing.T) {
	b := open(t, small(t.TempDir()))
	appendN(t, b, 0, 2000, 2) // ~230 KB into a 64 KB buffer, nothing read
	st := b.Stats()
	if st.Bytes > 64<<10 {
		t.Fatalf("%d bytes on disk, bound is 64 KiB", st.Bytes)
	}
	if st.Dropped == 0 || st.Dropped+uint64(st.Pending) != 2000 {
		t.Fatalf("dropped %d + pending %d != 2000 appended", st.Dropped, st.Pending)
	}
	if st.DroppedItems[2] != st.Dropped*10 {
		t.Fatalf("dropped items %d, want %d", st.DroppedItems[2], st.Dropped*10)
	}
	// What is left is the newest records, in order.
	got := drain(t, b, int(st.Pending))
	wantSeq(t, got, int(st.Dropped))
	if got[len(got)-1] != 1999 {
		t.Fatalf("last record #%d, want #1999", got[len(got)-1])
	}
}

func TestDropWhileReadingMidSegment(t *testing.T) {
	b := open(t, small(t.TempDir()))
	appendN(t, b, 0, 100, 0)
	wantSeq(t, drain(t, b, 5), 0) // cursor inside the first segment
	appendN(t, b, 100, 2000, 0)   // forces the first segments out
	st := b.Stats()
	if int(st.Dropped)+int(st.Pending)+5 != 2100 {
		t.Fatalf("dropped %d + pending %d + acked 5 != 2100", st.Dropped, st.Pending)
	}
	got := drain(t, b, int(st.Pending))
	wantSeq(t, got, 2100-len(got))
}

func TestTornTailIsCutOnOpen(t *testing.T) {
	dir := t.TempDir()
	b, err := buffer.Open(small(dir))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, b, 0, 20, 0)
	b.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	sort.Strings(segs)
	last := segs[len(segs)-1]
	f, err := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{50, 0, 0, 0, 1, 2, 3}) // a header cut short, as a crash leaves it
	f.Close()

	b2 := open(t, small(dir))
	if st := b2.Stats(); st.Corrupt != 1 || st.Pending != 20 {
		t.Fatalf("after reopen: corrupt %d, pending %d; want 1, 20", st.Corrupt, st.Pending)
	}
	appendN(t, b2, 20, 5, 0)
	wantSeq(t, drain(t, b2, 25), 0)
}

func TestCorruptRecordIsSkippedAndCounted(t *testing.T) {
	dir := t.TempDir()
	b, err := buffer.Open(small(dir))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, b, 0, 200, 0)
	b.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	sort.Strings(segs)
	data, _ := os.ReadFile(segs[0])
	data[14+50] ^= 0xff // flip a payload byte of the first record
	os.WriteFile(segs[0], data, 0o644)

	b2 := open(t, small(dir))
	done := make(chan struct{})
	r, err := b2.Next(done)
	if err != nil {
		t.Fatal(err)
	}
	// The damaged record and the rest of its segment are skipped; the next
	// segment's first record comes next.
	if first := seq(t, r); first == 0 {
		t.Fatal("damaged record was returned")
	}
	if st := b2.Stats(); st.Corrupt != 1 {
		t.Fatalf("corrupt %d, want 1", st.Corrupt)
	}
}

func TestNextWaitsForAppend(t *testing.T) {
	b := open(t, small(t.TempDir()))
	got := make(chan int, 1)
	go func() {
		r, err := b.Next(make(chan struct{}))
		if err != nil {
			got <- -1
			return
		}
		got <- seq(t, r)
	}()
	select {
	case v := <-got:
		t.Fatalf("Next returned %d on an empty buffer", v)
	case <-time.After(50 * time.Millisecond):
	}
	appendN(t, b, 7, 1, 0)
	if v := <-got; v != 7 {
		t.Fatalf("got #%d, want #7", v)
	}
	// Close wakes a waiting reader.
	done := make(chan error, 1)
	go func() {
		r, err := b.Next(make(chan struct{}))
		if err == nil {
			b.Ack(r)
			_, err = b.Next(make(chan struct{}))
		}
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	b.Close()
	if err := <-done; err != buffer.ErrClosed {
		t.Fatalf("after Close: %v", err)
	}
}

func TestConcurrentAppendAndDrain(t *testing.T) {
	b := open(t, buffer.Config{Dir: t.TempDir(), MaxBytes: 64 << 20, SegmentBytes: 16 << 10})
	const n = 5000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			if err := b.Append(buffer.Meta{Kind: 2, Items: 1}, payload(i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	got := drain(t, b, n)
	wg.Wait()
	wantSeq(t, got, 0)
}

func TestConfigValidate(t *testing.T) {
	err := buffer.Config{MaxBytes: 10, SegmentBytes: 10}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"dir", "segment_bytes", "max_bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %s", err, want)
		}
	}
	if err := buffer.NewDefaultConfig("/tmp/x").Validate(); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkAppendAndDrain(b *testing.B) {
	buf, err := buffer.Open(buffer.Config{Dir: b.TempDir(), MaxBytes: 1 << 30, SegmentBytes: 4 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer buf.Close()
	p := make([]byte, 4096)
	done := make(chan struct{})
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := buf.Append(buffer.Meta{Kind: 1, Items: 100}, p); err != nil {
			b.Fatal(err)
		}
		r, err := buf.Next(done)
		if err != nil {
			b.Fatal(err)
		}
		if err := buf.Ack(r); err != nil {
			b.Fatal(err)
		}
	}
}

// A record being sent when its segment is dropped is delivered, not dropped:
// every record ends up counted exactly once, as acked, pending or dropped.
func TestDropOfTheRecordInFlight(t *testing.T) {
	b := open(t, small(t.TempDir()))
	appendN(t, b, 0, 10, 4)
	r, err := b.Next(make(chan struct{}))
	if err != nil || seq(t, r) != 0 {
		t.Fatalf("Next: %v", err)
	}
	appendN(t, b, 10, 2000, 4) // drops the in-flight record's segment
	if err := b.Ack(r); err != nil {
		t.Fatal(err)
	}
	st := b.Stats()
	if st.Acked != 1 || st.Acked+st.Dropped+uint64(st.Pending) != 2010 {
		t.Fatalf("acked %d + dropped %d + pending %d != 2010", st.Acked, st.Dropped, st.Pending)
	}
	if st.DroppedItems[4]+uint64(st.PendingItems[4])+10 != 20100 {
		t.Fatalf("items: dropped %d + pending %d + acked 10 != 20100", st.DroppedItems[4], st.PendingItems[4])
	}
	got := drain(t, b, int(st.Pending))
	wantSeq(t, got, 2010-len(got))
}
