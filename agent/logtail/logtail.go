// Package logtail tails model-server inference logs (JSON lines, by file
// glob) and turns them into inference events, delayed labels and deployment
// markers. It follows files across rotation (rename and create, or copy and
// truncate), persists read offsets so that a restart neither loses nor
// repeats lines, samples each model at a configurable rate (recording the
// rate on every kept event), and writes malformed lines to a dead-letter file
// with the reason, counting them; a bad line never stops the tailer.
package logtail

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/record"
)

// Config says what to tail.
type Config struct {
	// Paths are file globs, e.g. /var/log/model-server/*.jsonl.
	Paths []string `yaml:"paths"`
	// Poll is how often files are checked for new lines (default 250ms).
	Poll time.Duration `yaml:"poll"`
	// StateFile keeps read offsets across restarts.
	StateFile string `yaml:"state_file"`
	// DeadLetter receives malformed lines, one JSON object each, rotated to
	// DeadLetter.1 at DeadLetterMaxBytes (default 64 MiB).
	DeadLetter         string `yaml:"dead_letter"`
	DeadLetterMaxBytes int64  `yaml:"dead_letter_max_bytes"`
	// SampleRate is the share of requests kept per model; DefaultSampleRate
	// applies to models not listed (default 1: keep all).
	SampleRate        map[string]float64 `yaml:"sample_rate"`
	DefaultSampleRate float64            `yaml:"default_sample_rate"`
	// MaxLineBytes rejects longer lines (default 1 MiB).
	MaxLineBytes int `yaml:"max_line_bytes"`
	// Accepted timestamps: at most MaxAge old, MaxFuture ahead (defaults 7 days, 1 hour).
	MaxAge    time.Duration `yaml:"max_age"`
	MaxFuture time.Duration `yaml:"max_future"`
	// StartAtEnd starts new files at their end instead of their beginning.
	StartAtEnd bool `yaml:"start_at_end"`
	// Service is the service.name of the events (default "model-server").
	Service string `yaml:"service"`
}

// NewDefaultConfig returns the defaults, keeping state under dir.
func NewDefaultConfig(dir string) Config {
	return Config{Poll: 250 * time.Millisecond, StateFile: filepath.Join(dir, "logtail-state.json"),
		DeadLetter: filepath.Join(dir, "dead-letter.jsonl"), DeadLetterMaxBytes: 64 << 20, DefaultSampleRate: 1,
		MaxLineBytes: 1 << 20, MaxAge: 7 * 24 * time.Hour, MaxFuture: time.Hour, Service: "model-server"}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if len(c.Paths) == 0 {
		errs = append(errs, errors.New("logs.paths: at least one glob is needed"))
	}
	for _, p := range c.Paths {
		if _, err := filepath.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("logs.paths %q: %w", p, err))
		}
	}
	if c.Poll < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("logs.poll %v is below 10ms", c.Poll))
	}
	if c.StateFile == "" || c.DeadLetter == "" {
		errs = append(errs, errors.New("logs.state_file and logs.dead_letter are required"))
	}
	check := func(name string, r float64) {
		if r <= 0 || r > 1 {
			errs = append(errs, fmt.Errorf("logs.%s %v: want a share in (0, 1]", name, r))
		}
	}
	check("default_sample_rate", c.DefaultSampleRate)
	for m, r := range c.SampleRate {
		check("sample_rate."+m, r)
	}
	if c.MaxLineBytes < 1024 {
		errs = append(errs, fmt.Errorf("logs.max_line_bytes %d is below 1024", c.MaxLineBytes))
	}
	if c.MaxAge <= 0 || c.MaxFuture < 0 {
		errs = append(errs, errors.New("logs.max_age must be positive and logs.max_future not negative"))
	}
	return errors.Join(errs...)
}

// fileID identifies a file across renames.
type fileID struct{ Dev, Ino uint64 }

func idOf(fi os.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{Dev: uint64(st.Dev), Ino: uint64(st.Ino)}, true
}

// tracked is one file being read.
type tracked struct {
	id       fileID
	path     string
	f        *os.File
	offset   int64 // start of the first line not yet read
	skipping bool  // inside an over-long line
	gone     bool  // its path now names another file (rotated away)
}

// Stats counts lines.
type Stats struct {
	Lines, Kept, Sampled uint64
	Malformed            map[string]uint64
	Truncations          uint64
	Rotations            uint64
}

// Tailer follows the configured files.
type Tailer struct {
	cfg Config
	log *slog.Logger
	res *record.Resource

	mu        sync.Mutex
	files     map[fileID]*tracked
	committed map[fileID]stateEntry
	stats     Stats
	dl        *os.File
	dlSize    int64
	buf       []byte
}

type stateEntry struct {
	Path   string `json:"path"`
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	Offset int64  `json:"offset"`
}

// New returns a tailer; res is the node's resource for the events.
func New(cfg Config, res record.Resource, log *slog.Logger) (*Tailer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	if res.Service == "" {
		res.Service = cfg.Service
	}
	t := &Tailer{cfg: cfg, log: log.With("source", "logs"), res: &res, files: map[fileID]*tracked{}, committed: map[fileID]stateEntry{},
		stats: Stats{Malformed: map[string]uint64{}}}
	if err := t.loadState(); err != nil {
		return nil, err
	}
	return t, nil
}

// Name is "logs".
func (t *Tailer) Name() string { return "logs" }

// Stats returns a snapshot of the counters.
func (t *Tailer) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats
	s.Malformed = make(map[string]uint64, len(t.stats.Malformed))
	for k, v := range t.stats.Malformed {
		s.Malformed[k] = v
	}
	return s
}

func (t *Tailer) loadState() error {
	data, err := os.ReadFile(t.cfg.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("logtail state: %w", err)
	}
	var entries []stateEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		return fmt.Errorf("logtail state %s: %w", t.cfg.StateFile, err)
	}
	for _, e := range entries {
		t.committed[fileID{e.Dev, e.Ino}] = e
	}
	return nil
}

// saveState writes the committed offsets atomically.
func (t *Tailer) saveState() error {
	entries := make([]stateEntry, 0, len(t.committed))
	for _, e := range t.committed {
		entries = append(entries, e)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	data, _ := json.MarshalIndent(entries, "", "  ")
	if err := os.MkdirAll(filepath.Dir(t.cfg.StateFile), 0o755); err != nil {
		return fmt.Errorf("logtail state: %w", err)
	}
	tmp := t.cfg.StateFile + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("logtail state: %w", err)
	}
	if err := os.Rename(tmp, t.cfg.StateFile); err != nil {
		return fmt.Errorf("logtail state: %w", err)
	}
	return nil
}

// Run polls the files until ctx ends.
func (t *Tailer) Run(ctx context.Context, sink record.Sink) error {
	defer t.close()
	tick := time.NewTicker(t.cfg.Poll)
	defer tick.Stop()
	for {
		if b := t.Poll(time.Now()); b != nil {
			sink.Put(b)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (t *Tailer) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, f := range t.files {
		if f.f != nil {
			f.f.Close()
		}
	}
	if t.dl != nil {
		t.dl.Close()
	}
}

// Poll reads what is new in every file and returns it as one batch (nil when
// nothing is new). The batch's Commit records the offsets it reached.
func (t *Tailer) Poll(now time.Time) *record.Batch {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.discover()
	b := &record.Batch{Source: "logs", Resource: t.res, Time: now}
	reached := map[fileID]stateEntry{}
	ids := make([]fileID, 0, len(t.files))
	for id := range t.files {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return t.files[ids[i]].path < t.files[ids[j]].path })
	for _, id := range ids {
		f := t.files[id]
		t.read(f, b, now)
		reached[id] = stateEntry{Path: f.path, Dev: id.Dev, Ino: id.Ino, Offset: f.offset}
		if f.gone {
			// Rotated away and read to its end: stop following it.
			f.f.Close()
			delete(t.files, id)
		}
	}
	changed := false
	for id, e := range reached {
		if t.committed[id] != e {
			changed = true
		}
	}
	if b.Len() == 0 && !changed {
		return nil
	}
	b.Commit = func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		for id, e := range reached {
			if e.Offset >= t.committed[id].Offset || t.committed[id].Path != e.Path {
				t.committed[id] = e
			}
		}
		// Forget files that are gone: neither followed nor found at their path.
		for id, e := range t.committed {
			if _, open := t.files[id]; open {
				continue
			}
			if fi, err := os.Stat(e.Path); err != nil {
				delete(t.committed, id)
			} else if cur, ok := idOf(fi); !ok || cur != id {
				delete(t.committed, id)
			}
		}
		if err := t.saveState(); err != nil {
			t.log.Error("cannot save read offsets; lines may be read again after a restart", "err", err)
		}
	}
	return b
}

// discover opens files newly matching the globs and notices rotations.
func (t *Tailer) discover() {
	seen := map[fileID]string{}
	for _, g := range t.cfg.Paths {
		paths, _ := filepath.Glob(g)
		for _, p := range paths {
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			id, ok := idOf(fi)
			if !ok {
				continue
			}
			seen[id] = p
			if f, ok := t.files[id]; ok {
				f.path = p // renamed within the glob: keep reading where we were
				continue
			}
			fh, err := os.Open(p)
			if err != nil {
				t.log.Warn("cannot open log file", "path", p, "err", err)
				continue
			}
			f := &tracked{id: id, path: p, f: fh}
			if st, ok := t.committed[id]; ok {
				f.offset = st.Offset
			} else if t.cfg.StartAtEnd {
				f.offset = fi.Size()
			}
			t.files[id] = f
		}
	}
	// A file whose path now names another file (or nothing) was rotated away:
	// read the rest of it through the open descriptor, then let it go.
	for id, f := range t.files {
		if _, ok := seen[id]; !ok && !f.gone {
			f.gone = true
			t.stats.Rotations++
		}
	}
}

// read consumes the new complete lines of f into b. An unfinished last line
// is left for the next poll; a line longer than MaxLineBytes is skipped to
// its end and dead-lettered.
func (t *Tailer) read(f *tracked, b *record.Batch, now time.Time) {
	fi, err := f.f.Stat()
	if err != nil {
		return
	}
	if fi.Size() < f.offset {
		// Truncated in place (copytruncate): start over.
		t.stats.Truncations++
		t.log.Info("log file was truncated; reading it from the start", "path", f.path)
		f.offset, f.skipping = 0, false
	}
	limit := int64(max(4<<20, t.cfg.MaxLineBytes+1))
	for f.offset < fi.Size() {
		n := min(fi.Size()-f.offset, limit)
		if cap(t.buf) < int(n) {
			t.buf = make([]byte, n)
		}
		buf := t.buf[:n]
		if _, err := f.f.ReadAt(buf, f.offset); err != nil && err != io.EOF {
			t.log.Warn("cannot read log file", "path", f.path, "err", err)
			return
		}
		consumed := 0
		for consumed < len(buf) {
			nl := bytes.IndexByte(buf[consumed:], '\n')
			if nl < 0 {
				break
			}
			line := buf[consumed : consumed+nl]
			start := f.offset + int64(consumed)
			consumed += nl + 1
			if f.skipping {
				f.skipping = false // the rest of an over-long line
				continue
			}
			t.handle(bytes.TrimRight(line, "\r"), f, start, b, now)
		}
		rest := len(buf) - consumed
		if rest > t.cfg.MaxLineBytes {
			// No end in sight: give up on this line and skip to its end.
			if !f.skipping {
				t.stats.Lines++
				t.deadLetter(f, f.offset+int64(consumed), buf[consumed:], &MalformedError{Reason: ReasonLineTooLong,
					Detail: fmt.Sprintf("over %d bytes", t.cfg.MaxLineBytes)}, now)
			}
			f.skipping = true
			consumed = len(buf)
		}
		if consumed == 0 {
			return // an unfinished last line: wait for the rest
		}
		f.offset += int64(consumed)
		if consumed < len(buf) {
			return
		}
	}
}

func (t *Tailer) handle(line []byte, f *tracked, offset int64, b *record.Batch, now time.Time) {
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	t.stats.Lines++
	if len(line) > t.cfg.MaxLineBytes {
		t.deadLetter(f, offset, line, &MalformedError{Reason: ReasonLineTooLong, Detail: fmt.Sprintf("%d bytes > %d", len(line), t.cfg.MaxLineBytes)}, now)
		return
	}
	item, err := ParseLine(line, now, Window{Past: t.cfg.MaxAge, Future: t.cfg.MaxFuture})
	if err != nil {
		t.deadLetter(f, offset, line, err, now)
		return
	}
	switch {
	case item.Inference != nil:
		rate := t.rate(item.Inference.Model)
		if !record.Keep(item.Inference.RequestID, rate) {
			t.stats.Sampled++
			return
		}
		item.Inference.SampleRate = rate
		b.Inferences = append(b.Inferences, *item.Inference)
	case item.Label != nil:
		if !record.Keep(item.Label.RequestID, t.rate(item.Label.Model)) {
			t.stats.Sampled++
			return
		}
		b.Labels = append(b.Labels, *item.Label)
	case item.Outcome != nil:
		// Sampled like labels: kept exactly when its request was.
		if !record.Keep(item.Outcome.RequestID, t.rate(item.Outcome.Model)) {
			t.stats.Sampled++
			return
		}
		b.Outcomes = append(b.Outcomes, *item.Outcome)
	case item.Deployment != nil:
		b.Deployments = append(b.Deployments, *item.Deployment)
	}
	t.stats.Kept++
}

func (t *Tailer) rate(model string) float64 {
	if r, ok := t.cfg.SampleRate[model]; ok {
		return r
	}
	return t.cfg.DefaultSampleRate
}

// deadLetter records a malformed line with its reason.
func (t *Tailer) deadLetter(f *tracked, offset int64, line []byte, err error, now time.Time) {
	reason := ReasonInvalidJSON
	var me *MalformedError
	if errors.As(err, &me) {
		reason = me.Reason
	}
	t.stats.Malformed[reason]++
	if len(line) > 4096 {
		line = line[:4096]
	}
	rec, _ := json.Marshal(struct {
		Time   time.Time `json:"time"`
		File   string    `json:"file"`
		Offset int64     `json:"offset"`
		Reason string    `json:"reason"`
		Error  string    `json:"error"`
		Line   string    `json:"line"`
	}{now.UTC(), f.path, offset, reason, err.Error(), string(line)})
	rec = append(rec, '\n')
	if t.dl == nil || t.dlSize+int64(len(rec)) > t.cfg.DeadLetterMaxBytes {
		if t.dl != nil {
			t.dl.Close()
			_ = os.Rename(t.cfg.DeadLetter, t.cfg.DeadLetter+".1")
		}
		_ = os.MkdirAll(filepath.Dir(t.cfg.DeadLetter), 0o755)
		dl, err := os.OpenFile(t.cfg.DeadLetter, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.log.Error("cannot write the dead-letter file; the malformed line is only counted", "err", err)
			return
		}
		fi, _ := dl.Stat()
		t.dl, t.dlSize = dl, fi.Size()
	}
	n, _ := t.dl.Write(rec)
	t.dlSize += int64(n)
}
