// Package buffer is the agent's bounded on-disk queue. Every encoded batch is
// appended here before it is shipped, so a collector outage or an agent
// restart loses nothing that fits: the shipper reads records in order and
// acknowledges them once the collector accepted them. Past MaxBytes the
// oldest segment is dropped first and its unsent records are counted. A full
// disk is not a reason to drop anything: Append fails with an error that
// wraps ErrDiskFull, deletes nothing, cuts a record it wrote only in part back
// off the segment, and the next Append tries again, so the buffer recovers by
// itself once space returns (the agent holds the batch and retries).
//
// On disk: a directory of segment files (%016d.seg) holding records
//
//	[4-byte length][4-byte CRC-32C of the rest][1-byte kind][1-byte source]
//	[4-byte item count][payload]
//
// and a file "cursor" with the read position (segment, offset, records read
// in that segment), rewritten atomically on every acknowledgement.
package buffer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Config sizes the buffer.
type Config struct {
	Dir string `yaml:"dir"`
	// MaxBytes bounds the buffer on disk (default 256 MiB).
	MaxBytes int64 `yaml:"max_bytes"`
	// SegmentBytes is the size at which a new segment starts (default 4 MiB).
	SegmentBytes int64 `yaml:"segment_bytes"`
	// Sync fsyncs every append (survives power loss, costs throughput);
	// without it an agent crash loses nothing, an OS crash the last seconds.
	Sync bool `yaml:"sync"`
}

// NewDefaultConfig returns the defaults for dir.
func NewDefaultConfig(dir string) Config {
	return Config{Dir: dir, MaxBytes: 256 << 20, SegmentBytes: 4 << 20}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("buffer.dir is required"))
	}
	if c.SegmentBytes < 1024 {
		errs = append(errs, fmt.Errorf("buffer.segment_bytes: %d is below 1024", c.SegmentBytes))
	}
	if c.MaxBytes < 2*c.SegmentBytes {
		errs = append(errs, fmt.Errorf("buffer.max_bytes: %d must be at least two segments (%d)", c.MaxBytes, 2*c.SegmentBytes))
	}
	return errors.Join(errs...)
}

const headerLen = 14

// Meta describes a record: its kind, the source that produced it (an index
// the caller assigns) and how many items (samples, events) it holds, so that
// drops can be counted per source in items, not just records.
type Meta struct {
	Kind   byte
	Source byte
	Items  uint32
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrClosed is returned after Close.
var ErrClosed = errors.New("buffer closed")

// ErrDiskFull is wrapped by Append's error when the file system has no space
// (ENOSPC) or the quota is exhausted (EDQUOT). Nothing was stored and nothing
// was deleted; Append may be called again once space returns.
var ErrDiskFull = errors.New("no space left for the disk buffer")

// file is what the buffer needs of the segment it appends to. *os.File is
// one; a test injects a disk that fills up where it cannot mount a small
// file system.
type file interface {
	Write(p []byte) (int, error)
	Truncate(size int64) error
	Sync() error
	Close() error
}

func openAppend(path string) (file, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

// Record is one queued payload.
type Record struct {
	Meta
	Payload []byte
	seg     uint64
	end     int64 // offset just past the record
}

// Stats are the buffer's counters.
type Stats struct {
	// Bytes on disk, Pending records not yet acknowledged.
	Bytes   int64
	Pending int64
	// PendingItems are the items of pending records, by source.
	PendingItems [256]int64
	// Appended and Acked count records since Open.
	Appended, Acked uint64
	// Dropped counts unsent records lost to the size bound (oldest first),
	// DroppedItems their items by source; Corrupt counts records found
	// damaged (a torn write at a crash) and skipped.
	Dropped, DroppedBytes, Corrupt uint64
	DroppedItems                   [256]uint64
	// DiskFull counts appends refused for lack of disk space, WriteErrors
	// appends that failed otherwise; neither stored anything. Truncated
	// counts records written in part before such a failure and cut off
	// again. CursorErrors counts acknowledgements whose read position could
	// not be saved (it is kept in memory and saved with the next one).
	DiskFull, WriteErrors, Truncated, CursorErrors uint64
}

type segment struct {
	id      uint64
	size    int64
	records int64
	items   [256]int64
}

// Buffer is safe for one appender and one reader at a time.
type Buffer struct {
	cfg Config

	mu   sync.Mutex
	segs []*segment // oldest first; the last is the one being written
	// w appends to the last segment; nil after a failed write could not be
	// cut back, so that the next append starts a new segment.
	w        file
	openFile func(path string) (file, error)
	rec      []byte // the record being appended, reused
	notify   chan struct{}
	closed   bool
	cursor   position
	read     [256]int64 // items read (acked) in the cursor's segment
	// inflight is the record Next handed out and Ack has not confirmed; a
	// drop of its segment does not count it, since the reader holds it.
	inflight *Record
	stats    Stats
	r        *os.File // reader's open segment
	br       *bufio.Reader
	rSeg     uint64
	rPos     int64 // offset of br's next byte in r
}

type position struct {
	seg     uint64
	off     int64
	records int64 // records read in seg before off
}

// Open opens (or creates) the buffer in cfg.Dir, recovering from a crash:
// a torn record at the end of the last segment is cut off.
func Open(cfg Config) (*Buffer, error) { return open(cfg, openAppend) }

func open(cfg Config, openFile func(string) (file, error)) (*Buffer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("buffer: %w", err)
	}
	b := &Buffer{cfg: cfg, notify: make(chan struct{}), openFile: openFile}
	entries, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("buffer: %w", err)
	}
	var ids []uint64
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".seg") {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, ".seg"), 10, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for i, id := range ids {
		seg, err := b.scan(id, i == len(ids)-1)
		if err != nil {
			return nil, err
		}
		b.segs = append(b.segs, seg)
	}
	if err := b.loadCursor(); err != nil {
		return nil, err
	}
	if len(b.segs) == 0 {
		// On a full disk even the first segment may not be created yet:
		// then the first append that finds space creates it.
		if err := b.newSegment(1); err != nil && !isDiskFull(err) {
			return nil, fmt.Errorf("buffer: %w", err)
		}
	} else if err := b.openWriter(b.segs[len(b.segs)-1].id); err != nil {
		return nil, fmt.Errorf("buffer: %w", err)
	}
	for _, s := range b.segs {
		b.stats.Bytes += s.size
		b.stats.Pending += s.records
		for i, n := range s.items {
			b.stats.PendingItems[i] += n
		}
	}
	b.stats.Pending -= b.cursor.records
	if err := b.recountRead(); err != nil {
		return nil, err
	}
	for i, n := range b.read {
		b.stats.PendingItems[i] -= n
	}
	return b, nil
}

func (b *Buffer) path(id uint64) string {
	return filepath.Join(b.cfg.Dir, fmt.Sprintf("%016d.seg", id))
}

// scan counts a segment's records; in the last segment a damaged tail is
// truncated away (a crash mid-write).
func (b *Buffer) scan(id uint64, last bool) (*segment, error) {
	f, err := os.Open(b.path(id))
	if err != nil {
		return nil, fmt.Errorf("buffer: %w", err)
	}
	defer f.Close()
	seg := &segment{id: id}
	r := bufio.NewReader(f)
	for {
		var rec Record
		n, _, err := readRecord(r, &rec)
		if err == io.EOF {
			break
		}
		if err != nil {
			b.stats.Corrupt++
			if last {
				if terr := os.Truncate(b.path(id), seg.size); terr != nil {
					return nil, fmt.Errorf("buffer: cut damaged tail of %s: %w", b.path(id), terr)
				}
			}
			break
		}
		seg.size += n
		seg.records++
		seg.items[rec.Source] += int64(rec.Items)
	}
	return seg, nil
}

// readRecord reads one record; with dst nil it skips the payload.
func readRecord(r *bufio.Reader, dst *Record) (int64, bool, error) {
	var hdr [headerLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return 0, false, io.EOF
		}
		return 0, false, fmt.Errorf("torn header: %w", err)
	}
	n := binary.LittleEndian.Uint32(hdr[0:4])
	sum := binary.LittleEndian.Uint32(hdr[4:8])
	if n > 1<<30 {
		return 0, false, fmt.Errorf("record length %d is implausible", n)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, false, fmt.Errorf("torn payload: %w", err)
	}
	c := crc32.Update(crc32.Checksum(hdr[8:], castagnoli), castagnoli, payload)
	if c != sum {
		return 0, false, errors.New("checksum mismatch")
	}
	if dst != nil {
		dst.Kind, dst.Source, dst.Items = hdr[8], hdr[9], binary.LittleEndian.Uint32(hdr[10:14])
		dst.Payload = payload
	}
	return int64(headerLen) + int64(n), true, nil
}

func (b *Buffer) loadCursor() error {
	data, err := os.ReadFile(filepath.Join(b.cfg.Dir, "cursor"))
	if errors.Is(err, os.ErrNotExist) {
		if len(b.segs) > 0 {
			b.cursor = position{seg: b.segs[0].id}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("buffer: %w", err)
	}
	var p position
	if _, err := fmt.Sscanf(string(data), "%d %d %d", &p.seg, &p.off, &p.records); err != nil {
		return fmt.Errorf("buffer: cursor file: %w", err)
	}
	// The cursor's segment may have been dropped meanwhile: start at the oldest kept.
	if len(b.segs) > 0 && p.seg < b.segs[0].id {
		p = position{seg: b.segs[0].id}
	}
	if s := b.find(p.seg); s != nil && p.off > s.size {
		p.off, p.records = s.size, s.records
	}
	b.cursor = p
	return nil
}

// recountRead recomputes the items already read in the cursor's segment.
func (b *Buffer) recountRead() error {
	b.read = [256]int64{}
	if b.cursor.off == 0 {
		return nil
	}
	f, err := os.Open(b.path(b.cursor.seg))
	if err != nil {
		return fmt.Errorf("buffer: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var off int64
	for off < b.cursor.off {
		var rec Record
		n, _, err := readRecord(r, &rec)
		if err != nil {
			return nil
		}
		off += n
		b.read[rec.Source] += int64(rec.Items)
	}
	return nil
}

func (b *Buffer) saveCursor() error {
	tmp := filepath.Join(b.cfg.Dir, "cursor.tmp")
	data := fmt.Sprintf("%d %d %d\n", b.cursor.seg, b.cursor.off, b.cursor.records)
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("buffer: save cursor: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(b.cfg.Dir, "cursor")); err != nil {
		return fmt.Errorf("buffer: save cursor: %w", err)
	}
	return nil
}

func (b *Buffer) find(id uint64) *segment {
	for _, s := range b.segs {
		if s.id == id {
			return s
		}
	}
	return nil
}

// newSegment starts segment id; it is added only once its file is open.
func (b *Buffer) newSegment(id uint64) error {
	if err := b.openWriter(id); err != nil {
		return err
	}
	b.segs = append(b.segs, &segment{id: id})
	if len(b.segs) == 1 && b.cursor.seg == 0 {
		b.cursor = position{seg: id}
	}
	return nil
}

// openWriter opens segment id for appending and closes the previous writer.
func (b *Buffer) openWriter(id uint64) error {
	f, err := b.openFile(b.path(id))
	if err != nil {
		return err
	}
	if b.w != nil {
		b.w.Close()
	}
	b.w = f
	return nil
}

// Append queues one payload. When the buffer would exceed MaxBytes the
// oldest segments are dropped first (counted in Stats.Dropped). A full disk
// drops nothing: the error wraps ErrDiskFull and the caller keeps the
// payload and calls again; any part of the record already written is cut
// off, so a reader never sees it.
func (b *Buffer) Append(m Meta, payload []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if err := b.appendLocked(m, payload); err != nil {
		if isDiskFull(err) {
			b.stats.DiskFull++
			b.reclaimLocked()
			return fmt.Errorf("buffer: append: %w: %w", ErrDiskFull, err)
		}
		b.stats.WriteErrors++
		return fmt.Errorf("buffer: append: %w", err)
	}
	for b.stats.Bytes > b.cfg.MaxBytes && b.dropOldestLocked() {
	}
	close(b.notify)
	b.notify = make(chan struct{})
	return nil
}

func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

func (b *Buffer) appendLocked(m Meta, payload []byte) error {
	var cur *segment
	next := max(1, b.cursor.seg) // after reclaimLocked deleted the only segment
	if len(b.segs) > 0 {
		cur = b.segs[len(b.segs)-1]
		next = cur.id + 1
	}
	n := int64(headerLen + len(payload))
	if cur == nil || b.w == nil || cur.size > 0 && cur.size+n > b.cfg.SegmentBytes {
		if err := b.newSegment(next); err != nil {
			return err
		}
		cur = b.segs[len(b.segs)-1]
	}
	var zero [headerLen]byte
	rec := append(append(b.rec[:0], zero[:]...), payload...)
	hdr := rec[:headerLen]
	binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(payload)))
	hdr[8], hdr[9] = m.Kind, m.Source
	binary.LittleEndian.PutUint32(hdr[10:14], m.Items)
	binary.LittleEndian.PutUint32(hdr[4:8], crc32.Update(crc32.Checksum(hdr[8:], castagnoli), castagnoli, payload))
	if cap(rec) <= 1<<20 {
		b.rec = rec // keep a small buffer for the next record, not a huge one
	}
	// One write: the reader sees the record at once. fsync only when asked.
	written, err := b.w.Write(rec)
	if err == nil && b.cfg.Sync {
		err = b.w.Sync()
	}
	if err != nil {
		if written > 0 {
			b.cutBack(cur)
		}
		return err
	}
	cur.size += n
	cur.records++
	cur.items[m.Source] += int64(m.Items)
	b.stats.Bytes += n
	b.stats.Pending++
	b.stats.PendingItems[m.Source] += int64(m.Items)
	b.stats.Appended++
	return nil
}

// dropDeliveredLocked deletes the segments wholly before the cursor (every
// record in them acknowledged), never the one being written.
func (b *Buffer) dropDeliveredLocked() {
	for len(b.segs) > 1 && b.segs[0].id < b.cursor.seg {
		old := b.segs[0]
		b.stats.Bytes -= old.size
		b.segs = b.segs[1:]
		if b.r != nil && b.rSeg == old.id {
			b.r.Close()
			b.r = nil
		}
		_ = os.Remove(b.path(old.id))
	}
}

// reclaimLocked frees what a full disk can get back from the segment being
// written. The buffer deletes only segments it no longer writes, so a
// segment larger than the free space would never go: once part of it is
// delivered, the next append starts a new segment, and the old one is
// deleted when the reader is through it — at once, when it is delivered
// whole.
func (b *Buffer) reclaimLocked() {
	if len(b.segs) == 0 {
		return
	}
	cur := b.segs[len(b.segs)-1]
	// A segment the reader is through and that is no longer written goes now.
	if seg := b.find(b.cursor.seg); seg != nil && seg != cur && b.cursor.off >= seg.size && b.inflight == nil {
		b.cursor = position{seg: seg.id + 1}
		b.read = [256]int64{}
		b.dropDeliveredLocked()
		if err := b.saveCursor(); err != nil {
			b.stats.CursorErrors++
		}
	}
	if b.cursor.seg != cur.id || b.cursor.off == 0 {
		return
	}
	if b.w != nil {
		b.w.Close()
		b.w = nil // the next append starts segment cur.id+1
	}
	if b.cursor.off < cur.size || b.inflight != nil {
		return
	}
	b.segs = b.segs[:len(b.segs)-1]
	b.stats.Bytes -= cur.size
	if b.r != nil && b.rSeg == cur.id {
		b.r.Close()
		b.r = nil
	}
	_ = os.Remove(b.path(cur.id))
	b.cursor = position{seg: cur.id + 1}
	b.read = [256]int64{}
	if err := b.saveCursor(); err != nil {
		b.stats.CursorErrors++
	}
}

// cutBack removes a record written in part from the end of segment cur.
// Should even that fail, the segment is closed at its last whole record:
// readers never read past seg.size, the next append starts a new segment,
// and a restart cuts or skips the damaged tail (counted as Corrupt).
func (b *Buffer) cutBack(cur *segment) {
	b.stats.Truncated++
	if err := b.w.Truncate(cur.size); err != nil {
		b.w.Close()
		b.w = nil
	}
}

// dropOldestLocked removes the oldest segment that is not being written,
// counting its unacknowledged records as dropped.
func (b *Buffer) dropOldestLocked() bool {
	if len(b.segs) < 2 {
		return false
	}
	old := b.segs[0]
	unread := old.records
	items := old.items
	if b.cursor.seg == old.id {
		unread -= b.cursor.records
		for i := range items {
			items[i] -= b.read[i]
		}
		if f := b.inflight; f != nil && f.seg == old.id {
			unread--
			items[f.Source] -= int64(f.Items)
		}
	} else if b.cursor.seg > old.id {
		unread, items = 0, [256]int64{}
	}
	for i, n := range items {
		b.stats.DroppedItems[i] += uint64(n)
		b.stats.PendingItems[i] -= n
	}
	b.stats.Dropped += uint64(unread)
	if unread > 0 {
		b.stats.DroppedBytes += uint64(old.size - b.cursorOffsetIn(old.id))
	}
	b.stats.Pending -= unread
	b.stats.Bytes -= old.size
	b.segs = b.segs[1:]
	if b.cursor.seg <= old.id {
		b.cursor = position{seg: b.segs[0].id}
		b.read = [256]int64{}
		_ = b.saveCursor()
	}
	if b.r != nil && b.rSeg == old.id {
		b.r.Close()
		b.r = nil
	}
	_ = os.Remove(b.path(old.id))
	return true
}

func (b *Buffer) cursorOffsetIn(id uint64) int64 {
	if b.cursor.seg == id {
		return b.cursor.off
	}
	return 0
}

// Next returns the oldest unacknowledged record, waiting for one to be
// appended if there is none. It returns the same record until it is acked.
func (b *Buffer) Next(done <-chan struct{}) (Record, error) {
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return Record{}, ErrClosed
		}
		rec, ok, err := b.readLocked()
		wait := b.notify
		b.mu.Unlock()
		if err != nil || ok {
			return rec, err
		}
		select {
		case <-wait:
		case <-done:
			return Record{}, ErrClosed
		}
	}
}

// readLocked reads the record at the cursor, moving to the next segment at
// the end of a finished one and skipping damaged records.
func (b *Buffer) readLocked() (Record, bool, error) {
	for {
		seg := b.find(b.cursor.seg)
		if seg == nil {
			if len(b.segs) == 0 {
				return Record{}, false, nil
			}
			b.cursor = position{seg: b.segs[0].id}
			b.read = [256]int64{}
			continue
		}
		if b.cursor.off >= seg.size {
			if seg == b.segs[len(b.segs)-1] {
				return Record{}, false, nil // caught up with the writer
			}
			b.cursor = position{seg: seg.id + 1}
			b.read = [256]int64{}
			// Delivered whole: its space may be what a full disk waits for.
			b.dropDeliveredLocked()
			continue
		}
		if b.r == nil || b.rSeg != seg.id {
			if b.r != nil {
				b.r.Close()
			}
			f, err := os.Open(b.path(seg.id))
			if err != nil {
				return Record{}, false, fmt.Errorf("buffer: %w", err)
			}
			b.r, b.rSeg, b.rPos = f, seg.id, -1
			if b.br == nil {
				b.br = bufio.NewReaderSize(f, 64<<10)
			}
		}
		if b.rPos != b.cursor.off {
			if _, err := b.r.Seek(b.cursor.off, io.SeekStart); err != nil {
				return Record{}, false, fmt.Errorf("buffer: %w", err)
			}
			b.br.Reset(b.r)
			b.rPos = b.cursor.off
		}
		var rec Record
		n, _, err := readRecord(b.br, &rec)
		if err != nil {
			b.rPos = -1
			// A damaged record: count it and skip the rest of this segment.
			b.stats.Corrupt++
			b.stats.Pending -= seg.records - b.cursor.records
			for i := range seg.items {
				b.stats.PendingItems[i] -= seg.items[i] - b.read[i]
				b.read[i] = seg.items[i]
			}
			b.cursor = position{seg: seg.id, off: seg.size, records: seg.records}
			continue
		}
		b.rPos = b.cursor.off + n
		rec.seg, rec.end = seg.id, b.cursor.off+n
		inflight := rec
		inflight.Payload = nil
		b.inflight = &inflight
		return rec, true, nil
	}
}

// Ack marks r (the record Next returned) as delivered and persists the
// cursor. A cursor that cannot be saved (a full disk) is counted in
// Stats.CursorErrors and saved with a later Ack; until then a restart would
// send the records since the last saved cursor again (at least once).
func (b *Buffer) Ack(r Record) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f := b.inflight; f != nil && f.seg == r.seg && f.end == r.end {
		b.inflight = nil
		if b.find(r.seg) == nil {
			// Its segment was dropped while it was being sent; it was not
			// counted as dropped, so it is delivered now.
			b.stats.Pending--
			b.stats.PendingItems[r.Source] -= int64(r.Items)
			b.stats.Acked++
			return nil
		}
	}
	if r.seg != b.cursor.seg || r.end <= b.cursor.off {
		return nil // already acknowledged
	}
	b.cursor.off = r.end
	b.cursor.records++
	b.read[r.Source] += int64(r.Items)
	b.stats.Pending--
	b.stats.PendingItems[r.Source] -= int64(r.Items)
	b.stats.Acked++
	b.dropDeliveredLocked()
	if seg := b.find(b.cursor.seg); seg != nil && b.cursor.off >= seg.size && seg != b.segs[len(b.segs)-1] {
		next := b.cursor.seg + 1
		b.cursor = position{seg: next}
		b.read = [256]int64{}
		for len(b.segs) > 1 && b.segs[0].id < next {
			old := b.segs[0]
			b.stats.Bytes -= old.size
			b.segs = b.segs[1:]
			if b.r != nil && b.rSeg == old.id {
				b.r.Close()
				b.r = nil
			}
			_ = os.Remove(b.path(old.id))
		}
	}
	if err := b.saveCursor(); err != nil {
		b.stats.CursorErrors++
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (b *Buffer) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// Close flushes and closes the files; a waiting Next returns ErrClosed.
func (b *Buffer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	close(b.notify)
	var err error
	if b.w != nil {
		err = b.w.Close()
	}
	if b.r != nil {
		b.r.Close()
	}
	return err
}
