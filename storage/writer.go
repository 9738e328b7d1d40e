package storage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Block is a columnar batch of rows for one table. Data holds one typed slice
// per column ([]float64, []string, []int64 seconds for DateTime, [][]string
// for Array(String), ...), all of the same length. After Write returns, the
// block is the caller's again; the writer keeps no reference to it.
type Block struct {
	// Table is the unqualified table name (the Distributed table in cluster mode).
	Table   string
	Columns []string
	Data    []any
}

// Rows returns the row count, or an error if the columns disagree.
func (b Block) Rows() (int, error) {
	if b.Table == "" {
		return 0, errors.New("block has no table")
	}
	if len(b.Columns) != len(b.Data) {
		return 0, fmt.Errorf("block for %s: %d column names but %d columns", b.Table, len(b.Columns), len(b.Data))
	}
	if len(b.Columns) == 0 {
		return 0, fmt.Errorf("block for %s has no columns", b.Table)
	}
	n := -1
	for i, d := range b.Data {
		v := reflect.ValueOf(d)
		if v.Kind() != reflect.Slice {
			return 0, fmt.Errorf("block for %s: column %s is a %T, not a slice", b.Table, b.Columns[i], d)
		}
		if n >= 0 && v.Len() != n {
			return 0, fmt.Errorf("block for %s: column %s has %d rows, column %s has %d", b.Table, b.Columns[i], v.Len(), b.Columns[0], n)
		}
		n = v.Len()
	}
	return n, nil
}

// longestColumn is the largest column length, the most rows a malformed block can hold.
func (b Block) longestColumn() int {
	n := 0
	for _, d := range b.Data {
		if v := reflect.ValueOf(d); v.Kind() == reflect.Slice {
			n = max(n, v.Len())
		}
	}
	return n
}

// slice returns rows [lo, hi) of b, sharing memory.
func (b Block) slice(lo, hi int) Block {
	out := Block{Table: b.Table, Columns: b.Columns, Data: make([]any, len(b.Data))}
	for i, d := range b.Data {
		out.Data[i] = reflect.ValueOf(d).Slice(lo, hi).Interface()
	}
	return out
}

// WriterConfig tunes a Writer.
type WriterConfig struct {
	// MaxRetries is how many times a retryable failure is retried (default 6).
	MaxRetries int `yaml:"max_retries"`
	// InitialBackoff and MaxBackoff bound the jittered exponential backoff.
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
	// AttemptTimeout bounds one insert attempt (default 2m).
	AttemptTimeout time.Duration `yaml:"attempt_timeout"`
	// MaxInFlight is how many inserts run at once; further Writes wait (backpressure).
	MaxInFlight int `yaml:"max_in_flight"`
	// MaxInsertRows splits larger blocks into INSERT statements of at most this
	// many rows; Written and Failed in a WriteError count whole statements.
	MaxInsertRows int `yaml:"max_insert_rows"`
	// NativeBlockRows is the size of the native-protocol blocks one INSERT is
	// sent in. The driver's column buffers are reused from block to block, so
	// this bounds the client's memory and avoids re-growing large buffers.
	NativeBlockRows int `yaml:"native_block_rows"`
}

// NewDefaultWriterConfig returns the defaults.
func NewDefaultWriterConfig() WriterConfig {
	return WriterConfig{
		MaxRetries:      6,
		InitialBackoff:  100 * time.Millisecond,
		MaxBackoff:      5 * time.Second,
		AttemptTimeout:  2 * time.Minute,
		MaxInFlight:     2,
		MaxInsertRows:   1_000_000,
		NativeBlockRows: 65_536,
	}
}

// Validate reports every problem at once.
func (c WriterConfig) Validate() error {
	var errs []error
	if c.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("max_retries: %d is negative", c.MaxRetries))
	}
	if c.InitialBackoff <= 0 || c.MaxBackoff < c.InitialBackoff {
		errs = append(errs, fmt.Errorf("backoff: want 0 < initial_backoff (%v) <= max_backoff (%v)", c.InitialBackoff, c.MaxBackoff))
	}
	if c.AttemptTimeout <= 0 {
		errs = append(errs, fmt.Errorf("attempt_timeout: %v must be positive", c.AttemptTimeout))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("max_in_flight: %d must be at least 1", c.MaxInFlight))
	}
	if c.MaxInsertRows < 1 {
		errs = append(errs, fmt.Errorf("max_insert_rows: %d must be at least 1", c.MaxInsertRows))
	}
	if c.NativeBlockRows < 1 {
		errs = append(errs, fmt.Errorf("native_block_rows: %d must be at least 1", c.NativeBlockRows))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid writer config: %w", err)
	}
	return nil
}

// Writer inserts columnar blocks over the native protocol with an explicit
// column list, retrying transient failures with backoff. Every row it is given
// is either written or reported: Write returns a *WriteError naming how many
// rows failed and why, and Stats counts failed rows by reason.
type Writer struct {
	c     *Client
	cfg   WriterConfig
	slots chan struct{}

	blocks, rows, retries atomic.Uint64
	mu                    sync.Mutex
	failed                map[string]uint64
}

// NewWriter returns a Writer on c.
func (c *Client) NewWriter(cfg WriterConfig) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Writer{c: c, cfg: cfg, slots: make(chan struct{}, cfg.MaxInFlight), failed: map[string]uint64{}}, nil
}

// WriteError reports rows that were not written.
type WriteError struct {
	Table string
	// Written rows made it (earlier chunks of a split block); Failed did not.
	Written, Failed int
	Reason          string
	Retryable       bool
	Attempts        int
	Err             error
}

func (e *WriteError) Error() string {
	return fmt.Sprintf("write %s: %d rows not written (%s) after %d attempt(s), %d written: %v",
		e.Table, e.Failed, e.Reason, e.Attempts, e.Written, e.Err)
}

func (e *WriteError) Unwrap() error { return e.Err }

// WriterStats is a snapshot of a Writer's counters.
type WriterStats struct {
	Blocks, Rows, Retries uint64
	// FailedRows counts rows that were not written, by reason.
	FailedRows map[string]uint64
}

// Stats returns the counters so far.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := make(map[string]uint64, len(w.failed))
	for k, v := range w.failed {
		f[k] = v
	}
	return WriterStats{Blocks: w.blocks.Load(), Rows: w.rows.Load(), Retries: w.retries.Load(), FailedRows: f}
}

// FailureSummary formats FailedRows as "reason=n, ..." sorted by reason.
func (s WriterStats) FailureSummary() string {
	keys := make([]string, 0, len(s.FailedRows))
	for k := range s.FailedRows {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, s.FailedRows[k])
	}
	return strings.Join(parts, ", ")
}

func (w *Writer) fail(reason string, n int) {
	w.mu.Lock()
	w.failed[reason] += uint64(n)
	w.mu.Unlock()
}

// Write inserts b in INSERT statements of at most MaxInsertRows rows, each sent
// as native blocks of NativeBlockRows. It blocks while MaxInFlight inserts are
// running (backpressure) or until ctx ends.
//
// Delivery is at least once. An INSERT of several native blocks is not atomic
// in ClickHouse: when one fails, blocks sent before the failure may be stored
// although the whole statement's rows are reported Failed. Retrying them is
// safe: every table is a ReplacingMergeTree keyed on the record's identity, so
// re-sent rows collapse into one at merge time (SELECT ... FINAL is exact at
// once).
func (w *Writer) Write(ctx context.Context, b Block) error {
	n, err := b.Rows()
	if err != nil {
		n = b.longestColumn()
		w.fail("invalid_block", n)
		return &WriteError{Table: b.Table, Failed: n, Reason: "invalid_block", Err: &PermanentError{Reason: "invalid_block", Err: err}}
	}
	if n == 0 {
		return nil
	}
	select {
	case w.slots <- struct{}{}:
	case <-ctx.Done():
		w.fail("canceled", n)
		return &WriteError{Table: b.Table, Failed: n, Reason: "canceled", Err: ctx.Err()}
	}
	defer func() { <-w.slots }()

	written := 0
	for lo := 0; lo < n; lo += w.cfg.MaxInsertRows {
		hi := min(lo+w.cfg.MaxInsertRows, n)
		chunk := b
		if lo > 0 || hi < n {
			chunk = b.slice(lo, hi)
		}
		attempts, err := w.insertWithRetry(ctx, chunk)
		if err != nil {
			reason, retryable := Classify(err)
			if retryable {
				reason = "retries_exhausted:" + reason
			}
			w.fail(reason, n-written)
			return &WriteError{Table: b.Table, Written: written, Failed: n - written, Reason: reason, Retryable: retryable, Attempts: attempts, Err: err}
		}
		written += hi - lo
		w.blocks.Add(1)
		w.rows.Add(uint64(hi - lo))
	}
	return nil
}

func (w *Writer) insertWithRetry(ctx context.Context, b Block) (int, error) {
	backoff := w.cfg.InitialBackoff
	for attempt := 1; ; attempt++ {
		err := w.insert(ctx, b)
		if err == nil {
			return attempt, nil
		}
		reason, retryable := Classify(err)
		if !retryable || attempt > w.cfg.MaxRetries || ctx.Err() != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (context ended: %v)", err, ctx.Err())
			}
			return attempt, err
		}
		w.retries.Add(1)
		sleep := backoff/2 + rand.N(backoff/2+1)
		w.c.log.Warn("insert failed, retrying", "table", b.Table, "reason", reason, "attempt", attempt, "backoff", sleep, "err", err)
		t := time.NewTimer(sleep)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return attempt, fmt.Errorf("%w (context ended while backing off: %v)", err, ctx.Err())
		}
		backoff = min(backoff*2, w.cfg.MaxBackoff)
	}
}

func (w *Writer) insert(ctx context.Context, b Block) error {
	actx, cancel := context.WithTimeout(ctx, w.cfg.AttemptTimeout)
	defer cancel()
	cols := make([]string, len(b.Columns))
	for i, c := range b.Columns {
		cols[i] = quoteColumn(c)
	}
	q := fmt.Sprintf("INSERT INTO %s.%s (%s)", w.c.cfg.Database, b.Table, strings.Join(cols, ", "))
	batch, err := w.c.conn.PrepareBatch(actx, q)
	if err != nil {
		return fmt.Errorf("prepare insert into %s: %w", b.Table, err)
	}
	defer batch.Close()
	n, _ := b.Rows()
	step := w.cfg.NativeBlockRows
	for lo := 0; lo < n; lo += step {
		part := b
		if n > step {
			part = b.slice(lo, min(lo+step, n))
		}
		for i, d := range part.Data {
			if err := batch.Column(i).Append(d); err != nil {
				_ = batch.Abort()
				return &PermanentError{Reason: "bad_column_data", Err: fmt.Errorf("column %s: %w", b.Columns[i], err)}
			}
		}
		if lo+step < n {
			// Send this block and reuse the column buffers for the next.
			if err := batch.Flush(); err != nil {
				return fmt.Errorf("send insert into %s: %w", b.Table, err)
			}
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("send insert into %s: %w", b.Table, err)
	}
	return nil
}

func quoteColumn(c string) string {
	if strings.ContainsAny(c, ".` -") {
		return "`" + strings.ReplaceAll(c, "`", "\\`") + "`"
	}
	return c
}
