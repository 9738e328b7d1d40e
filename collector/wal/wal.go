// Package wal is the collector's write-ahead log: an append-only, segmented,
// checksummed log of opaque records on local disk, with one reader that
// acknowledges records by position once they are delivered.
//
// It is what makes the collector's acknowledgement to a sender mean "on
// disk": the exporter appends a request's rows, and only then answers the
// sender; a separate loop reads the log in order, writes to ClickHouse and
// acknowledges. Its properties:
//
//   - Durability: with SyncAlways (the default) Append returns after fsync;
//     concurrent appends share one fsync (group commit). SyncNever leaves
//     flushing to the kernel: a killed process loses nothing, a crashed
//     machine may lose the last seconds.
//   - Bounded: the log holds at most MaxBytes of unacknowledged records;
//     Append returns ErrFull beyond it and AppendWait waits for space, so a
//     full log pushes back on the sender instead of dropping.
//   - A failed append leaves nothing behind: the segment is truncated back to
//     where the record started, and the next append tries again. A full disk
//     (ENOSPC) is ErrDiskFull; nothing already in the log is touched.
//   - Crash safety: each record carries its length and a CRC-32C; at Open a
//     torn or corrupt tail is cut off and counted (Stats.TornRecords), and a
//     corrupt record inside an older segment ends that segment early.
//   - Acknowledged segments are deleted; the acknowledged position is kept
//     in a small file rewritten in place, which needs no new disk blocks, so
//     acknowledging works on a full disk too.
//
// On disk: segments named %016x.wal in Dir, each a sequence of records
// [length uint32 LE][crc32c(payload) uint32 LE][payload]; and the file "ack",
// holding the acknowledged position [segment uint64][offset uint64][crc32c
// of those 16 bytes uint32].
package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// SyncPolicy says when appended records are flushed to stable storage.
type SyncPolicy string

// Sync policies.
const (
	// SyncAlways fsyncs before Append returns (group-committed).
	SyncAlways SyncPolicy = "always"
	// SyncNever leaves flushing to the kernel.
	SyncNever SyncPolicy = "never"
)

// Errors.
var (
	// ErrFull means the log holds MaxBytes of unacknowledged records.
	ErrFull = errors.New("write-ahead log is full")
	// ErrDiskFull means the file system had no space for the record.
	ErrDiskFull = errors.New("no space left on the write-ahead log's disk")
	// ErrTooLarge means one record is larger than a segment or the log.
	ErrTooLarge = errors.New("record larger than the write-ahead log allows")
	// ErrClosed means the log was closed.
	ErrClosed = errors.New("write-ahead log closed")
)

const (
	headerSize = 8
	ackName    = "ack"
	ackSize    = 20
	segSuffix  = ".wal"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options configure a Log.
type Options struct {
	// Dir holds the segments; it is created if missing.
	Dir string
	// SegmentBytes is the size at which a new segment starts (default 16 MiB).
	SegmentBytes int64
	// MaxBytes bounds the unacknowledged records on disk (default 1 GiB).
	MaxBytes int64
	// Sync is the fsync policy (default SyncAlways).
	Sync SyncPolicy
	// Logger receives recovery and error reports (default: discard).
	Logger *slog.Logger
	// TailBytes bounds the records kept in memory after they are written,
	// until the reader reads them (default 32 MiB; -1 keeps none): a
	// reader keeping up with the appends reads them from there, without a
	// read from the file and a second checksum. Records appended while
	// the tail is full are read from the file, as after a restart.
	TailBytes int64
}

func (o *Options) defaults() {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 16 << 20
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 30
	}
	if o.Sync == "" {
		o.Sync = SyncAlways
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.TailBytes == 0 {
		o.TailBytes = 32 << 20
	}
}

// Validate reports every problem with o.
func (o Options) Validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("wal: directory is empty"))
	}
	if o.Sync != "" && o.Sync != SyncAlways && o.Sync != SyncNever {
		errs = append(errs, fmt.Errorf("wal: sync %q: want %q or %q", o.Sync, SyncAlways, SyncNever))
	}
	if o.SegmentBytes < 0 || o.MaxBytes < 0 {
		errs = append(errs, errors.New("wal: sizes must not be negative"))
	}
	if o.SegmentBytes > 0 && o.MaxBytes > 0 && o.MaxBytes < 2*o.SegmentBytes {
		errs = append(errs, fmt.Errorf("wal: max bytes %d must be at least two segments (%d)", o.MaxBytes, 2*o.SegmentBytes))
	}
	return errors.Join(errs...)
}

// Position is a place in the log: a segment and a byte offset in it.
type Position struct {
	Segment uint64
	Offset  int64
}

// Less orders positions.
func (p Position) Less(q Position) bool {
	return p.Segment < q.Segment || p.Segment == q.Segment && p.Offset < q.Offset
}

// Record is one record read from the log.
type Record struct {
	// End is the position just after the record: acknowledge it with Ack(End).
	End  Position
	Data []byte
}

// Stats describe the log.
type Stats struct {
	// PendingBytes and PendingRecords are on disk and not yet acknowledged.
	PendingBytes   int64
	PendingRecords int64
	Segments       int
	// TornRecords counts torn or corrupt records cut off or skipped at Open.
	TornRecords int64
	// Appended and Acked count records since Open.
	Appended, Acked int64
	// TailReads counts the records read from memory (Options.TailBytes)
	// rather than from the file.
	TailReads int64
	// AppendErrors counts failed appends by reason: full, disk_full, io.
	AppendErrors map[string]int64
}

// segment is one file of the log.
type segment struct {
	id   uint64
	size int64 // valid bytes (a corrupt tail of an older segment excluded)
}

// tailRecord is a record kept in memory after it was written: its position
// and its frame (header and payload).
type tailRecord struct {
	at    Position
	frame []byte
}

// Log is an open write-ahead log. Append is safe for concurrent use; Read
// and Ack belong to one reader.
type Log struct {
	opts Options

	mu       sync.Mutex
	space    *sync.Cond // signalled when acknowledgements free space
	freed    uint64     // counts those signals: a waiter that read it before a full append misses none
	data     *sync.Cond // signalled when records are appended
	closed   bool
	segs     []segment // oldest first; the last is being appended to
	cur      *os.File  // the last segment, open for appending
	broken   bool      // cur could not be truncated after a failed write: start a new segment
	ack      Position
	ackFile  *os.File
	read     Position   // the reader's next record
	readFile *os.File   // the segment read.Segment, open for reading
	pending  int64      // records appended and not acknowledged
	unacked  []Position // ends of the records read and not acknowledged
	written  int64      // bytes appended since Open, the sync high-water mark's unit
	wbuf     []byte     // the frame being written: header and payload
	tail     []tailRecord
	tailSize int64    // bytes of frames in tail
	free     [][]byte // frames read from the tail, for reuse as wbuf
	stats    Stats

	syncMu sync.Mutex
	synced int64
}

// Open opens the log in opts.Dir, creating it if needed, and recovers what a
// previous process left: acknowledged segments are deleted and a torn tail
// is cut off.
func Open(opts Options) (*Log, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.defaults()
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	l := &Log{opts: opts, stats: Stats{AppendErrors: map[string]int64{}}}
	l.space, l.data = sync.NewCond(&l.mu), sync.NewCond(&l.mu)
	if err := l.openAck(); err != nil {
		return nil, err
	}
	if err := l.recover(); err != nil {
		l.ackFile.Close()
		return nil, err
	}
	l.read = l.ack
	return l, nil
}

func segName(id uint64) string { return fmt.Sprintf("%016x%s", id, segSuffix) }

func (l *Log) path(id uint64) string { return filepath.Join(l.opts.Dir, segName(id)) }

func (l *Log) openAck() error {
	f, err := os.OpenFile(filepath.Join(l.opts.Dir, ackName), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	l.ackFile = f
	var b [ackSize]byte
	n, err := f.ReadAt(b[:], 0)
	switch {
	case n == 0 && (err == nil || errors.Is(err, io.EOF)):
		// A new log: write the zero position so later rewrites need no new blocks.
		return l.writeAck(Position{})
	case n < ackSize || crc32.Checksum(b[:16], castagnoli) != binary.LittleEndian.Uint32(b[16:]):
		// A torn ack write: start from the oldest segment (records may be
		// delivered twice, never lost).
		l.opts.Logger.Warn("wal: acknowledged position unreadable; replaying from the oldest segment", "dir", l.opts.Dir)
		return nil
	}
	l.ack = Position{Segment: binary.LittleEndian.Uint64(b[:8]), Offset: int64(binary.LittleEndian.Uint64(b[8:16]))}
	return nil
}

func (l *Log) writeAck(p Position) error {
	var b [ackSize]byte
	binary.LittleEndian.PutUint64(b[:8], p.Segment)
	binary.LittleEndian.PutUint64(b[8:16], uint64(p.Offset))
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
	if _, err := l.ackFile.WriteAt(b[:], 0); err != nil {
		return fmt.Errorf("wal: write the acknowledged position: %w", err)
	}
	if l.opts.Sync == SyncAlways {
		if err := l.ackFile.Sync(); err != nil {
			return fmt.Errorf("wal: sync the acknowledged position: %w", err)
		}
	}
	return nil
}

// recover lists the segments, deletes acknowledged ones, validates the rest
// and opens the last one for appending.
func (l *Log) recover() error {
	entries, err := os.ReadDir(l.opts.Dir)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	var ids []uint64
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, segSuffix) {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 16, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if id < l.ack.Segment {
			if err := os.Remove(l.path(id)); err != nil {
				return fmt.Errorf("wal: remove acknowledged segment: %w", err)
			}
			continue
		}
		last := id == ids[len(ids)-1]
		size, records, torn, err := l.scan(id, last)
		if err != nil {
			return err
		}
		if id == l.ack.Segment {
			if l.ack.Offset > size {
				l.opts.Logger.Warn("wal: acknowledged position beyond the segment's end; replaying the segment", "segment", id)
				l.ack.Offset = 0
			}
			records -= l.countTo(id, l.ack.Offset)
		}
		l.stats.TornRecords += torn
		l.pending += records
		l.segs = append(l.segs, segment{id: id, size: size})
	}
	if len(l.segs) == 0 {
		id := l.ack.Segment
		if l.ack.Offset > 0 {
			id++ // the acknowledged segment is gone: continue after it
			l.ack = Position{Segment: id}
		}
		l.segs = append(l.segs, segment{id: id})
	} else if first := l.segs[0].id; l.ack.Segment < first {
		l.ack = Position{Segment: first}
	}
	lastSeg := l.segs[len(l.segs)-1]
	f, err := os.OpenFile(l.path(lastSeg.id), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	if err := f.Truncate(lastSeg.size); err != nil {
		f.Close()
		return fmt.Errorf("wal: cut the torn tail: %w", err)
	}
	if _, err := f.Seek(lastSeg.size, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("wal: %w", err)
	}
	l.cur = f
	if l.stats.TornRecords > 0 {
		l.opts.Logger.Warn("wal: torn or corrupt records cut off at recovery", "records", l.stats.TornRecords, "dir", l.opts.Dir)
	}
	return syncDir(l.opts.Dir)
}

// scan validates segment id and returns its valid size, its valid records,
// and how many torn or corrupt records follow them (one, for a cut tail).
func (l *Log) scan(id uint64, last bool) (size, records, torn int64, err error) {
	f, err := os.Open(l.path(id))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("wal: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("wal: %w", err)
	}
	var off int64
	var hdr [headerSize]byte
	var buf []byte
	for off < st.Size() {
		n, err := f.ReadAt(hdr[:], off)
		if n < headerSize {
			if err != nil && !errors.Is(err, io.EOF) {
				return 0, 0, 0, fmt.Errorf("wal: read %s: %w", segName(id), err)
			}
			break
		}
		length := int64(binary.LittleEndian.Uint32(hdr[:4]))
		if off+headerSize+length > st.Size() {
			break
		}
		if int64(cap(buf)) < length {
			buf = make([]byte, length)
		}
		buf = buf[:length]
		if _, err := f.ReadAt(buf, off+headerSize); err != nil {
			return 0, 0, 0, fmt.Errorf("wal: read %s: %w", segName(id), err)
		}
		if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			break
		}
		off += headerSize + length
		records++
	}
	if off < st.Size() {
		torn = 1
		l.opts.Logger.Warn("wal: torn or corrupt record; the segment ends before it", "segment", segName(id),
			"valid_bytes", off, "file_bytes", st.Size(), "last_segment", last)
	}
	return off, records, torn, nil
}

// countTo counts the records of segment id before offset.
func (l *Log) countTo(id uint64, offset int64) int64 {
	f, err := os.Open(l.path(id))
	if err != nil {
		return 0
	}
	defer f.Close()
	var n int64
	var hdr [headerSize]byte
	for off := int64(0); off < offset; n++ {
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			break
		}
		off += headerSize + int64(binary.LittleEndian.Uint32(hdr[:4]))
	}
	return n
}

// size is the bytes of unacknowledged records on disk; l.mu is held.
func (l *Log) size() int64 {
	var n int64
	for _, s := range l.segs {
		n += s.size
	}
	if len(l.segs) > 0 && l.segs[0].id == l.ack.Segment {
		n -= l.ack.Offset
	}
	return n
}

// Append writes one record. It returns once the record is in the log (and,
// under SyncAlways, on stable storage): ErrFull when the log is at MaxBytes,
// ErrDiskFull when the disk is, other errors for other write failures. A
// failed append leaves the log as it was.
func (l *Log) Append(payload []byte) error {
	end, err := l.write(payload)
	if err != nil {
		return err
	}
	return l.sync(end)
}

// AppendWait is Append that waits for space while the log is full, until
// ctx ends.
func (l *Log) AppendWait(ctx context.Context, payload []byte) error {
	for {
		l.mu.Lock()
		seen := l.freed
		l.mu.Unlock()
		err := l.Append(payload)
		if !errors.Is(err, ErrFull) {
			return err
		}
		if err := l.waitSpace(ctx, seen); err != nil {
			return fmt.Errorf("%w (waited for space: %w)", ErrFull, err)
		}
	}
}

// waitSpace blocks until an acknowledgement frees space, the log closes or
// ctx ends. seen is l.freed as read before the append that found the log
// full: space freed between that append and this wait ends it at once.
func (l *Log) waitSpace(ctx context.Context, seen uint64) error {
	stop := context.AfterFunc(ctx, func() {
		l.mu.Lock()
		l.space.Broadcast()
		l.mu.Unlock()
	})
	defer stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	for l.freed == seen && !l.closed && ctx.Err() == nil {
		l.space.Wait()
	}
	if l.closed {
		return ErrClosed
	}
	return ctx.Err()
}

func (l *Log) write(payload []byte) (int64, error) {
	frame := int64(headerSize + len(payload))
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	if frame > l.opts.SegmentBytes || frame > l.opts.MaxBytes || len(payload) > 1<<31 {
		l.stats.AppendErrors["too_large"]++
		return 0, fmt.Errorf("%w: %d bytes, segments are %d", ErrTooLarge, frame, l.opts.SegmentBytes)
	}
	if l.size()+frame > l.opts.MaxBytes {
		l.stats.AppendErrors["full"]++
		return 0, ErrFull
	}
	last := &l.segs[len(l.segs)-1]
	if l.broken || (last.size > 0 && last.size+frame > l.opts.SegmentBytes) {
		if err := l.roll(); err != nil {
			l.stats.AppendErrors[reason(err)]++
			return 0, err
		}
		last = &l.segs[len(l.segs)-1]
	}
	l.wbuf = l.wbuf[:0]
	l.wbuf = binary.LittleEndian.AppendUint32(l.wbuf, uint32(len(payload)))
	l.wbuf = binary.LittleEndian.AppendUint32(l.wbuf, crc32.Checksum(payload, castagnoli))
	l.wbuf = append(l.wbuf, payload...)
	_, err := l.cur.Write(l.wbuf)
	if err != nil && isDiskFull(err) {
		l.undo(last.size)
		if l.reclaim() {
			last = &l.segs[len(l.segs)-1]
			_, err = l.cur.Write(l.wbuf)
		}
	}
	if err != nil {
		l.stats.AppendErrors[reason(err)]++
		l.undo(last.size)
		return 0, classify(err)
	}
	l.keepTail(Position{Segment: last.id, Offset: last.size})
	last.size += frame
	l.pending++
	l.written += frame
	l.stats.Appended++
	l.data.Broadcast()
	return l.written, nil
}

// keepTail keeps the frame just written (l.wbuf) at in memory for the
// reader, when the tail has room, and takes a free buffer for the next
// frame; l.mu is held.
func (l *Log) keepTail(at Position) {
	n := int64(len(l.wbuf))
	if n > 4<<20 || l.tailSize+n > l.opts.TailBytes {
		if cap(l.wbuf) > 4<<20 {
			l.wbuf = nil // don't keep a huge record's buffer
		}
		return
	}
	l.tail = append(l.tail, tailRecord{at: at, frame: l.wbuf})
	l.tailSize += n
	l.wbuf = nil
	if k := len(l.free); k > 0 {
		l.wbuf, l.free = l.free[k-1][:0], l.free[:k-1]
	}
}

// fromTail returns the frame of the record at l.read if the tail holds
// it, dropping what the tail holds before it; l.mu is held. releaseTail
// gives the frame back once its payload is copied.
func (l *Log) fromTail() []byte {
	for len(l.tail) > 0 && l.tail[0].at.Less(l.read) {
		l.releaseTail()
	}
	if len(l.tail) > 0 && l.tail[0].at == l.read {
		return l.tail[0].frame
	}
	return nil
}

// releaseTail drops the tail's first record, keeping a few frames' memory
// for the next appends.
func (l *Log) releaseTail() {
	f := l.tail[0].frame
	l.tail[0] = tailRecord{}
	l.tail = l.tail[1:]
	l.tailSize -= int64(len(f))
	if len(l.free) < 8 {
		l.free = append(l.free, f)
	}
}

// undo cuts the current segment back to size after a failed write.
func (l *Log) undo(size int64) {
	if err := l.cur.Truncate(size); err != nil {
		l.opts.Logger.Error("wal: cannot cut a failed append back; the next append starts a new segment", "error", err)
		l.broken = true
		return
	}
	if _, err := l.cur.Seek(size, io.SeekStart); err != nil {
		l.broken = true
	}
}

// roll starts a new segment; l.mu is held.
func (l *Log) roll() error {
	id := l.segs[len(l.segs)-1].id + 1
	f, err := os.OpenFile(l.path(id), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return classify(err)
	}
	if err := syncDir(l.opts.Dir); err != nil {
		f.Close()
		os.Remove(l.path(id))
		return classify(err)
	}
	if l.opts.Sync == SyncAlways {
		// Everything written to the old segment was synced by its appenders,
		// or is being synced now; sync once more so nothing depends on them.
		if err := l.cur.Sync(); err != nil {
			f.Close()
			os.Remove(l.path(id))
			return classify(err)
		}
	}
	l.cur.Close() // the reader has its own handle
	l.cur, l.broken = f, false
	l.segs = append(l.segs, segment{id: id})
	// The segment left behind may be acknowledged to its end already.
	ack := l.ack
	l.dropAcked()
	if l.ack != ack {
		if err := l.writeAck(l.ack); err != nil {
			l.opts.Logger.Warn("wal: cannot record the acknowledged position", "error", err)
		}
	}
	return nil
}

// sync makes the log durable up to end (a value of l.written) under
// SyncAlways; concurrent callers share one fsync.
func (l *Log) sync(end int64) error {
	if l.opts.Sync != SyncAlways {
		return nil
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.synced >= end {
		return nil
	}
	l.mu.Lock()
	f, upTo := l.cur, l.written
	l.mu.Unlock()
	if err := f.Sync(); err != nil {
		if errors.Is(err, os.ErrClosed) {
			// A roll closed it after syncing it.
			l.synced = max(l.synced, end)
			return nil
		}
		l.mu.Lock()
		l.stats.AppendErrors[reason(err)]++
		l.mu.Unlock()
		return fmt.Errorf("wal: sync: %w", classify(err))
	}
	l.synced = max(l.synced, upTo)
	return nil
}

func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

func classify(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	return fmt.Errorf("wal: %w", err)
}

func reason(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, ErrDiskFull):
		return "disk_full"
	case errors.Is(err, ErrFull):
		return "full"
	}
	return "io"
}

// Read returns the records after the last one read, at most maxRecords and
// about maxBytes (at least one record), waiting until there is one or ctx
// ends. Records come in append order; each is returned once per Open.
func (l *Log) Read(ctx context.Context, maxRecords int, maxBytes int64) ([]Record, error) {
	recs, _, err := l.readWait(ctx, nil, false, maxRecords, maxBytes)
	return recs, err
}

// ReadInto is Read with the records' data in buf's memory (grown as
// needed, and returned for the next call): a drain loop that is done with
// a read's records before the next reuses one buffer instead of
// allocating every record. The records' Data is valid until buf is
// passed again.
func (l *Log) ReadInto(ctx context.Context, buf []byte, maxRecords int, maxBytes int64) ([]Record, []byte, error) {
	return l.readWait(ctx, buf, true, maxRecords, maxBytes)
}

func (l *Log) readWait(ctx context.Context, buf []byte, reuse bool, maxRecords int, maxBytes int64) ([]Record, []byte, error) {
	stop := context.AfterFunc(ctx, func() {
		l.mu.Lock()
		l.data.Broadcast()
		l.mu.Unlock()
	})
	defer stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if l.closed {
			return nil, buf, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, buf, err
		}
		recs, grown, err := l.readLocked(buf[:0], reuse, maxRecords, maxBytes)
		buf = grown
		if err != nil || len(recs) > 0 {
			return recs, buf, err
		}
		l.data.Wait()
	}
}

// readLocked reads what is available, the records' data appended to buf
// if reuse, else each record in its own allocation; l.mu is held.
func (l *Log) readLocked(buf []byte, reuse bool, maxRecords int, maxBytes int64) ([]Record, []byte, error) {
	var out []Record
	var bytes int64
	for len(out) < maxRecords && (bytes < maxBytes || len(out) == 0) {
		i := l.segIndex(l.read.Segment)
		if i < 0 {
			break
		}
		if l.read.Offset >= l.segs[i].size {
			if i == len(l.segs)-1 {
				break // caught up
			}
			l.closeReader()
			l.read = Position{Segment: l.segs[i+1].id}
			continue
		}
		mem := l.fromTail()
		if mem == nil && l.readFile == nil {
			f, err := os.Open(l.path(l.read.Segment))
			if err != nil {
				return out, buf, fmt.Errorf("wal: %w", err)
			}
			l.readFile = f
		}
		var hdr [headerSize]byte
		if mem != nil {
			copy(hdr[:], mem)
		} else if _, err := l.readFile.ReadAt(hdr[:], l.read.Offset); err != nil {
			return out, buf, fmt.Errorf("wal: read %s: %w", segName(l.read.Segment), err)
		}
		length := int64(binary.LittleEndian.Uint32(hdr[:4]))
		var data []byte
		if !reuse {
			data = make([]byte, length)
		} else {
			if int64(cap(buf)-len(buf)) < length {
				// A bigger buffer: the records read so far keep the old
				// one. Doubled, but not past what one read can hold
				// (maxBytes and the record that crosses it), and never
				// smaller than it was: a read asking for less (the rest
				// of a batch) must not hand back a buffer the next,
				// bigger read would outgrow again.
				c := int64(cap(buf))
				buf = make([]byte, 0, max(length, c, min(2*c, maxBytes+length)))
			}
			data = buf[len(buf) : int64(len(buf))+length : int64(len(buf))+length]
		}
		if mem != nil {
			// Written from this memory: nothing to check.
			copy(data, mem[headerSize:])
			l.releaseTail()
			l.stats.TailReads++
		} else if _, err := l.readFile.ReadAt(data, l.read.Offset+headerSize); err != nil {
			return out, buf, fmt.Errorf("wal: read %s: %w", segName(l.read.Segment), err)
		} else if crc32.Checksum(data, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			// Written and read back differently in this process: the disk
			// or the page cache failed us. Skip the rest of the segment.
			l.opts.Logger.Error("wal: record fails its checksum; skipping the rest of the segment", "segment", segName(l.read.Segment), "offset", l.read.Offset)
			l.stats.TornRecords++
			l.segs[i].size = l.read.Offset
			continue
		}
		if reuse {
			buf = buf[:int64(len(buf))+length]
		}
		l.read.Offset += headerSize + length
		bytes += length
		out = append(out, Record{End: l.read, Data: data})
		l.unacked = append(l.unacked, l.read)
	}
	return out, buf, nil
}

func (l *Log) segIndex(id uint64) int {
	for i, s := range l.segs {
		if s.id == id {
			return i
		}
	}
	return -1
}

func (l *Log) closeReader() {
	if l.readFile != nil {
		l.readFile.Close()
		l.readFile = nil
	}
}

// Ack acknowledges every record up to end (a Record.End): they will not be
// read again after a restart, and segments wholly before end are deleted.
func (l *Log) Ack(end Position) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if !l.ack.Less(end) {
		return nil
	}
	if l.read.Less(end) {
		return fmt.Errorf("wal: acknowledging %v, beyond the records read (%v)", end, l.read)
	}
	if err := l.writeAck(end); err != nil {
		return err
	}
	l.ack = end
	var n int64
	for len(l.unacked) > 0 && !end.Less(l.unacked[0]) {
		l.unacked = l.unacked[1:]
		n++
	}
	l.pending -= n
	l.stats.Acked += n
	l.dropAcked()
	l.freed++
	l.space.Broadcast()
	return nil
}

// dropAcked deletes the segments whose records are all acknowledged; l.mu
// is held. A finished segment acknowledged to its end moves the
// acknowledged position to the next segment, so it goes at once: on a full
// disk its space may be what the next append waits for. The segment being
// written is never deleted here (see reclaim).
func (l *Log) dropAcked() {
	for len(l.segs) > 1 && l.segs[0].id == l.ack.Segment && l.ack.Offset >= l.segs[0].size {
		l.ack = Position{Segment: l.segs[1].id}
	}
	for len(l.segs) > 1 && l.segs[0].id < l.ack.Segment {
		if err := os.Remove(l.path(l.segs[0].id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.opts.Logger.Warn("wal: cannot delete an acknowledged segment", "error", err)
			break
		}
		if l.read.Segment == l.segs[0].id {
			l.closeReader()
		}
		l.segs = l.segs[1:]
	}
	if l.read.Less(l.ack) {
		l.read = l.ack
	}
}

// reclaim makes room on a full disk from the segment being written; l.mu
// is held. Once part of it is acknowledged, appends move on to a new
// segment so that the acknowledged one can be deleted; when all of it is,
// that happens now. It reports whether space was freed.
func (l *Log) reclaim() bool {
	last := l.segs[len(l.segs)-1]
	if l.ack.Segment != last.id || l.ack.Offset == 0 {
		return false
	}
	if l.ack.Offset < last.size {
		l.broken = true // the next append starts a new segment
		return false
	}
	before := len(l.segs)
	if err := l.roll(); err != nil {
		return false
	}
	return len(l.segs) <= before // the acknowledged segment went
}

// Stats returns the log's counters.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.PendingBytes = l.size()
	s.PendingRecords = l.pending
	s.Segments = len(l.segs)
	s.AppendErrors = make(map[string]int64, len(l.stats.AppendErrors))
	for k, v := range l.stats.AppendErrors {
		s.AppendErrors[k] = v
	}
	return s
}

// Close syncs and closes the log; appends and reads then fail with ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.space.Broadcast()
	l.data.Broadcast()
	l.closeReader()
	err := l.cur.Sync()
	err = errors.Join(err, l.cur.Close(), l.ackFile.Close())
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
