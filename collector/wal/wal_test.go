package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/internal/testsupport/disktest"
)

func open(t *testing.T, o Options) *Log {
	t.Helper()
	l, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func rec(i int) []byte {
	return []byte(fmt.Sprintf("record %06d %s", i, bytes.Repeat([]byte{byte(i)}, i%97)))
}

// readAll reads until n records came, acknowledging none.
func readAll(t *testing.T, l *Log, n int) []Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []Record
	for len(out) < n {
		rs, err := l.Read(ctx, 7, 1<<20)
		if err != nil {
			t.Fatalf("read after %d of %d records: %v", len(out), n, err)
		}
		out = append(out, rs...)
	}
	return out
}

func checkRecords(t *testing.T, got []Record, from int) {
	t.Helper()
	for i, r := range got {
		if want := rec(from + i); !bytes.Equal(r.Data, want) {
			t.Fatalf("record %d: got %q, want %q", from+i, r.Data, want)
		}
	}
}

func TestAppendReadAckAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, SegmentBytes: 4096, MaxBytes: 1 << 20}
	l := open(t, o)
	for i := 0; i < 300; i++ {
		if err := l.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if st := l.Stats(); st.Segments < 5 || st.PendingRecords != 300 {
		t.Fatalf("stats after 300 appends: %+v", st)
	}
	got := readAll(t, l, 120)
	checkRecords(t, got, 0)
	if err := l.Ack(got[99].End); err != nil { // records 0..99 done; 100..119 read, not done
		t.Fatal(err)
	}
	if st := l.Stats(); st.PendingRecords != 200 || st.Acked != 100 {
		t.Fatalf("stats after acknowledging 100: %+v", st)
	}
	segsBefore := l.Stats().Segments
	l.Close()

	// A restart reads again from the first unacknowledged record.
	l = open(t, o)
	if st := l.Stats(); st.PendingRecords != 200 || st.Segments > segsBefore {
		t.Fatalf("stats after restart: %+v (segments before %d)", st, segsBefore)
	}
	got = readAll(t, l, 200)
	checkRecords(t, got, 100)
	if err := l.Ack(got[len(got)-1].End); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.PendingRecords != 0 || st.PendingBytes != 0 || st.Segments != 1 {
		t.Fatalf("everything acknowledged, yet: %+v", st)
	}
	if err := l.Append(rec(300)); err != nil {
		t.Fatal(err)
	}
	checkRecords(t, readAll(t, l, 1), 300)
}

func TestTornTailIsCutAndCounted(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, SegmentBytes: 1 << 20, MaxBytes: 4 << 20}
	l := open(t, o)
	for i := 0; i < 10; i++ {
		if err := l.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	// A crash mid-write: half a record at the end, then a record whose bytes rotted.
	seg := filepath.Join(dir, segName(0))
	whole, _ := os.ReadFile(seg)
	for _, tail := range [][]byte{whole[len(whole)-20:], append([]byte{40, 0, 0, 0, 1, 2, 3, 4}, bytes.Repeat([]byte("x"), 40)...)} {
		f, err := os.OpenFile(seg, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(tail)
		f.Close()
		l = open(t, o)
		if st := l.Stats(); st.TornRecords != 1 || st.PendingRecords != 10 {
			t.Fatalf("after a torn tail: %+v", st)
		}
		if err := l.Append(rec(10)); err != nil {
			t.Fatal(err)
		}
		checkRecords(t, readAll(t, l, 11), 0)
		l.Close()
		// Leave the file with 10 records again for the next case.
		if err := os.Truncate(seg, int64(len(whole))); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFullLogPushesBackUntilAcknowledged(t *testing.T) {
	o := Options{Dir: t.TempDir(), SegmentBytes: 1024, MaxBytes: 4096}
	l := open(t, o)
	n := 0
	for ; ; n++ {
		err := l.Append(rec(n))
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n < 10 {
		t.Fatalf("only %d records fit", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.AppendWait(ctx, rec(n)); !errors.Is(err, ErrFull) {
		t.Fatalf("AppendWait on a full log until the deadline: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- l.AppendWait(context.Background(), rec(n)) }()
	got := readAll(t, l, n)
	checkRecords(t, got, 0)
	if err := l.Ack(got[n-1].End); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("AppendWait did not resume after the log was acknowledged")
	}
	checkRecords(t, readAll(t, l, 1), n)
	if st := l.Stats(); st.AppendErrors["full"] < 2 {
		t.Fatalf("full appends not counted: %+v", st.AppendErrors)
	}
}

func TestConcurrentAppendsAreAllKeptInOrderPerWriter(t *testing.T) {
	l := open(t, Options{Dir: t.TempDir(), SegmentBytes: 8192, MaxBytes: 16 << 20})
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := l.Append([]byte(fmt.Sprintf("%d/%d", w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	next := make([]int, writers)
	for _, r := range readAll(t, l, writers*each) {
		var w, i int
		fmt.Sscanf(string(r.Data), "%d/%d", &w, &i)
		if i != next[w] {
			t.Fatalf("writer %d: record %d after %d", w, i, next[w]-1)
		}
		next[w]++
	}
}

// TestDiskFullKeepsTheLogAndRecovers fills a real file system (a 1 MiB
// tmpfs): appends fail with ErrDiskFull and leave no partial record, nothing
// already in the log is lost, and appends work again once space returns.
func TestDiskFullKeepsTheLogAndRecovers(t *testing.T) {
	dir := disktest.Tmpfs(t, "1m")
	// Eat most of the space with a file we can delete later.
	ballast := filepath.Join(dir, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 700<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{Dir: filepath.Join(dir, "wal"), SegmentBytes: 64 << 10, MaxBytes: 64 << 20}
	l := open(t, o)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB
	stored := 0
	var err error
	for ; stored < 1000; stored++ {
		if err = l.Append(append([]byte(fmt.Sprintf("%04d", stored)), payload...)); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v, want ErrDiskFull wrapping ENOSPC", err)
	}
	for i := 0; i < 3; i++ { // still full: still a clean error
		if err := l.Append(payload); !errors.Is(err, ErrDiskFull) {
			t.Fatalf("append %d on a full disk: %v", i, err)
		}
	}
	if st := l.Stats(); st.PendingRecords != int64(stored) || st.AppendErrors["disk_full"] < 4 {
		t.Fatalf("after disk-full appends: %+v (stored %d)", st, stored)
	}
	// Acknowledging works on a full disk.
	got := readAll(t, l, stored)
	if err := l.Ack(got[0].End); err != nil {
		t.Fatalf("acknowledge on a full disk: %v", err)
	}
	// Space returns: appends work again, without reopening.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(append([]byte("more"), payload...)); err != nil {
		t.Fatalf("append after space returned: %v", err)
	}
	l.Close()
	// Nothing torn, nothing lost: a reopened log has every record but the
	// acknowledged one, intact.
	l = open(t, o)
	if st := l.Stats(); st.TornRecords != 0 || st.PendingRecords != int64(stored) {
		t.Fatalf("after reopening: %+v", st)
	}
	got = readAll(t, l, stored)
	for i, r := range got[:stored-1] {
		if want := fmt.Sprintf("%04d", i+1); string(r.Data[:4]) != want || !bytes.Equal(r.Data[4:], payload) {
			t.Fatalf("record %d is %q…", i, r.Data[:4])
		}
	}
	if string(got[stored-1].Data[:4]) != "more" {
		t.Fatalf("the record appended after space returned is %q…", got[stored-1].Data[:4])
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want bool
	}{
		{Options{Dir: "x"}, true},
		{Options{}, false},
		{Options{Dir: "x", Sync: "sometimes"}, false},
		{Options{Dir: "x", SegmentBytes: 1 << 20, MaxBytes: 1 << 20}, false},
		{Options{Dir: "x", SegmentBytes: -1}, false},
	} {
		if err := tc.o.Validate(); (err == nil) != tc.want {
			t.Errorf("Validate(%+v) = %v", tc.o, err)
		}
	}
}

// The disk fills while the log writes one segment larger than the free
// space, and nothing else on the disk can be freed: once the records in it
// are acknowledged, the log gets the space back by itself and appends go on
// — also when only part had been acknowledged when the disk filled.
func TestAcknowledgedSpaceIsReclaimedOnAFullDisk(t *testing.T) {
	for _, part := range []float64{1, 0.5} {
		t.Run(fmt.Sprintf("acknowledged %.0f%% when the disk filled", 100*part), func(t *testing.T) {
			dir := disktest.Tmpfs(t, "1m")
			l := open(t, Options{Dir: filepath.Join(dir, "wal"), SegmentBytes: 64 << 20, MaxBytes: 1 << 30})
			payload := bytes.Repeat([]byte("x"), 8<<10)
			n := 0
			for ; n < 1000; n++ {
				if err := l.Append(payload); err != nil {
					if !errors.Is(err, ErrDiskFull) {
						t.Fatal(err)
					}
					break
				}
			}
			if n == 0 || n == 1000 {
				t.Fatalf("%d records fit", n)
			}
			recs := readAll(t, l, n)
			first := int(part * float64(n))
			if err := l.Ack(recs[first-1].End); err != nil {
				t.Fatal(err)
			}
			err := l.Append(payload) // frees space when everything was acknowledged
			if part < 1 {
				if !errors.Is(err, ErrDiskFull) {
					t.Fatalf("append with half the segment unacknowledged: %v, want ErrDiskFull", err)
				}
				if err := l.Ack(recs[n-1].End); err != nil {
					t.Fatal(err)
				}
				err = l.Append(payload)
			}
			if err != nil {
				t.Fatalf("append once everything was acknowledged: %v", err)
			}
			for i := 0; i < 3; i++ { // and it keeps working
				if err := l.Append(payload); err != nil {
					t.Fatalf("append %d after reclaiming: %v", i, err)
				}
			}
			got := readAll(t, l, 4)
			if len(got) != 4 || !bytes.Equal(got[0].Data, payload) {
				t.Fatalf("read after reclaiming: %d records", len(got))
			}
			if st := l.Stats(); st.PendingRecords != 4 || st.Segments > 2 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// ReadInto gives the records Read gives, in one reused buffer: each read's
// records are right when read, later reads reuse (and grow) the buffer.
func TestReadIntoReusesItsBuffer(t *testing.T) {
	l := open(t, Options{Dir: t.TempDir(), SegmentBytes: 4096, MaxBytes: 1 << 20})
	for i := 0; i < 200; i++ {
		if err := l.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var buf []byte
	var firstBuf *byte
	for n := 0; n < 200; {
		recs, grown, err := l.ReadInto(ctx, buf, 7, 1<<20)
		if err != nil {
			t.Fatalf("read after %d records: %v", n, err)
		}
		checkRecords(t, recs, n)
		if n == 0 {
			firstBuf = &grown[:1][0]
		}
		buf, n = grown, n+len(recs)
	}
	if &buf[:1][0] != firstBuf && cap(buf) < 2*len(rec(199)) {
		t.Fatal("the buffer was replaced without growing")
	}
	// Records appended later read into the same buffer, without allocating
	// for their data.
	for i := 200; i < 207; i++ {
		if err := l.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	before := &buf[:1][0]
	recs, grown, err := l.ReadInto(ctx, buf, 7, 1<<20)
	if err != nil || len(recs) != 7 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	checkRecords(t, recs, 200)
	if &grown[:1][0] != before || &recs[0].Data[0] != before {
		t.Fatal("the records of a read that fits were not read into the buffer")
	}
}

// Records read back while the log is open come from memory when the tail
// holds them and from the file when it does not (appended while the tail
// was full, or TailBytes -1): the same records, in order, either way,
// across segments (300 records of 4 KiB segments make about 8).
func TestTailServesWhatTheFileHolds(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tail      int64
		fromTail  func(n int64) bool
		appendRun int
	}{
		{"all in memory", 1 << 20, func(n int64) bool { return n == 300 }, 10},
		{"a small tail", 600, func(n int64) bool { return n > 0 && n < 300 }, 25},
		{"no tail", -1, func(n int64) bool { return n == 0 }, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := open(t, Options{Dir: t.TempDir(), SegmentBytes: 4096, MaxBytes: 1 << 20, TailBytes: tc.tail})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var buf []byte
			read, appended := 0, 0
			for read < 300 {
				for i := 0; i < tc.appendRun && appended < 300; i++ {
					if err := l.Append(rec(appended)); err != nil {
						t.Fatal(err)
					}
					appended++
				}
				recs, grown, err := l.ReadInto(ctx, buf, 7, 1<<20)
				if err != nil {
					t.Fatalf("read after %d records: %v", read, err)
				}
				checkRecords(t, recs, read)
				buf, read = grown, read+len(recs)
				if err := l.Ack(recs[len(recs)-1].End); err != nil {
					t.Fatal(err)
				}
			}
			st := l.Stats()
			if !tc.fromTail(st.TailReads) || st.PendingRecords != 0 {
				t.Fatalf("%d of 300 records read from memory, %d pending", st.TailReads, st.PendingRecords)
			}
		})
	}
}
