package storage_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// sampleRows makes deterministic gpu_samples rows (chtest.SampleRows).
var sampleRows = chtest.SampleRows

func count(t *testing.T, c *storage.Client, table string) uint64 {
	t.Helper()
	var n uint64
	if err := c.QueryScalar(context.Background(), "SELECT count() FROM "+c.Config().Database+"."+table, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func fastRetries(retries int) storage.WriterConfig {
	cfg := storage.NewDefaultWriterConfig()
	cfg.MaxRetries = retries
	cfg.InitialBackoff = 20 * time.Millisecond
	cfg.MaxBackoff = 100 * time.Millisecond
	cfg.AttemptTimeout = 10 * time.Second
	return cfg
}

func TestMillionRowRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("1M rows; not in -short")
	}
	c := chtest.NewDB(t)
	ctx := context.Background()
	const n, gpus = 1_000_000, 512
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	b := sampleRows(0, n, gpus, day)
	cfg := storage.NewDefaultWriterConfig()
	cfg.MaxInsertRows = 300_000  // exercise splitting into statements
	cfg.NativeBlockRows = 50_000 // and statements into blocks
	w, err := c.NewWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, b.Block()); err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	if st.Rows != n || st.Blocks != 4 || len(st.FailedRows) != 0 {
		t.Fatalf("stats %+v", st)
	}

	rr, err := c.QueryArrow(ctx, "SELECT ts, value, series FROM gpu_samples ORDER BY value")
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	i := 0
	records := 0
	for rr.Next() {
		rec := rr.Record()
		records++
		ts := rec.Column(0).(*array.Timestamp)
		val := rec.Column(1).(*array.Float64)
		series := rec.Column(2).(*array.Uint64)
		for j := 0; j < int(rec.NumRows()); j++ {
			wantTS := day.Add(time.Duration(i/gpus) * time.Second).Unix()
			if val.Value(j) != float64(i) || int64(ts.Value(j)) != wantTS || series.Value(j) != uint64(i%gpus) {
				t.Fatalf("row %d: got (%v, %v, %d)", i, ts.Value(j), val.Value(j), series.Value(j))
			}
			i++
		}
	}
	if err := rr.Err(); err != nil {
		t.Fatal(err)
	}
	if i != n {
		t.Fatalf("read %d rows, want %d", i, n)
	}
	if want := (n + storage.DefaultBatchRows - 1) / storage.DefaultBatchRows; records != want {
		t.Errorf("%d records, want %d of at most %d rows", records, want, storage.DefaultBatchRows)
	}
	// The materialized view rolled every sample into gpu_samples_1m.
	var rolled uint64
	if err := c.QueryScalar(ctx, "SELECT countMerge(samples) FROM gpu_samples_1m", &rolled); err != nil {
		t.Fatal(err)
	}
	if rolled != n {
		t.Errorf("rollup counts %d samples, want %d", rolled, n)
	}
}

func TestWriterStoresAwkwardValuesFaithfully(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	big := strings.Repeat("x", 1<<20)
	values := []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, -0.5, math.MaxFloat64, math.SmallestNonzeroFloat64}
	messages := []string{"", big, "ünïcødé \x00 nul", "'quoted' \\ \"double\"", "\n\t", "x", "y"}
	samples := &storage.GPUSampleBlock{}
	events := &storage.GPUEventBlock{}
	now := time.Now().UTC().Truncate(time.Second)
	for i, v := range values {
		samples.Append(&storage.GPUSample{Time: now, Metric: "m", Value: v, Series: uint64(i)})
		events.Append(&storage.GPUEvent{Time: now, Event: "xid", Code: int64(i), Message: messages[i]})
	}
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []storage.Block{samples.Block(), events.Block()} {
		if err := w.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	rr, err := c.QueryArrow(ctx, "SELECT s.value, e.message FROM gpu_samples AS s ANY INNER JOIN (SELECT toUInt64(code) AS series, message FROM gpu_events) AS e USING series ORDER BY series")
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	if !rr.Next() {
		t.Fatalf("no rows: %v", rr.Err())
	}
	rec := rr.Record()
	if int(rec.NumRows()) != len(values) {
		t.Fatalf("%d rows, want %d", rec.NumRows(), len(values))
	}
	got := rec.Column(0).(*array.Float64)
	msgs := rec.Column(1).(*array.String)
	for i, want := range values {
		g := got.Value(i)
		if !(g == want || (math.IsNaN(g) && math.IsNaN(want))) || math.Signbit(g) != math.Signbit(want) {
			t.Errorf("value %d: got %v, want %v", i, g, want)
		}
		if msgs.Value(i) != messages[i] {
			t.Errorf("message %d: got %d bytes %.40q, want %d bytes %.40q", i, len(msgs.Value(i)), msgs.Value(i), len(messages[i]), messages[i])
		}
	}
}

func TestWriterReportsPermanentFailures(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	w, err := c.NewWriter(fastRetries(3))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		block  storage.Block
		reason string
		rows   int
	}{
		{"unknown table", storage.Block{Table: "no_such_table", Columns: []string{"ts"}, Data: []any{[]int64{1, 2}}}, "unknown_table", 2},
		{"unknown column", storage.Block{Table: "gpu_samples", Columns: []string{"nope"}, Data: []any{[]string{"a"}}}, "no_such_column_in_table", 1},
		{"wrong Go type", storage.Block{Table: "gpu_samples", Columns: []string{"value"}, Data: []any{[]string{"a", "b", "c"}}}, "bad_column_data", 3},
		{"ragged block", storage.Block{Table: "gpu_samples", Columns: []string{"value", "metric"}, Data: []any{[]float64{1, 2}, []string{"a"}}}, "invalid_block", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := w.Write(ctx, tc.block)
			var we *storage.WriteError
			if !errors.As(err, &we) {
				t.Fatalf("error %v is not a WriteError", err)
			}
			if we.Reason != tc.reason || we.Failed != tc.rows || we.Retryable || we.Attempts > 1 {
				t.Fatalf("got reason %q failed %d retryable %v attempts %d; want %q %d, no retries", we.Reason, we.Failed, we.Retryable, we.Attempts, tc.reason, tc.rows)
			}
		})
	}
	st := w.Stats()
	for _, tc := range cases {
		if st.FailedRows[tc.reason] != uint64(tc.rows) {
			t.Errorf("stats: %s = %d, want %d (all: %s)", tc.reason, st.FailedRows[tc.reason], tc.rows, st.FailureSummary())
		}
	}
	if st.Retries != 0 {
		t.Errorf("permanent errors were retried %d times", st.Retries)
	}
	// A good block still goes through on the same writer.
	if err := w.Write(ctx, sampleRows(0, 10, 2, time.Now().UTC()).Block()); err != nil {
		t.Fatal(err)
	}
	if n := count(t, c, "gpu_samples"); n != 10 {
		t.Fatalf("%d rows, want 10", n)
	}
}

// A server that dies while batches are being written: the writer retries,
// gives up with a report, never panics, and every row is either reported
// written, or reported failed; a failed chunk is all or nothing.
func TestWriterServerKilledMidStream(t *testing.T) {
	srv := chtest.StartServer(t)
	c := chtest.OpenDB(t, srv, true)
	ctx := context.Background()
	w, err := c.NewWriter(fastRetries(3))
	if err != nil {
		t.Fatal(err)
	}
	day := time.Now().UTC().Truncate(24 * time.Hour)
	const per = 20_000
	var (
		written, failed int
		firstErr        error
		wg              sync.WaitGroup
		killed          = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 10_000; i++ {
			b := sampleRows(i*per, per, 64, day)
			err := w.Write(ctx, b.Block())
			if i == 5 {
				close(killed)
			}
			var we *storage.WriteError
			switch {
			case err == nil:
				written += per
			case errors.As(err, &we):
				written += we.Written
				failed += we.Failed
				firstErr = err
				return
			default:
				firstErr = err
				return
			}
		}
	}()
	<-killed
	srv.Kill()
	wg.Wait()
	var we *storage.WriteError
	if !errors.As(firstErr, &we) {
		t.Fatalf("after the kill: %v, want a WriteError", firstErr)
	}
	if !we.Retryable || !strings.HasPrefix(we.Reason, "retries_exhausted:") || we.Attempts != 4 {
		t.Fatalf("reason %q retryable %v attempts %d; want retries exhausted after 4 attempts", we.Reason, we.Retryable, we.Attempts)
	}
	if got := w.Stats().FailedRows[we.Reason]; got != uint64(failed) {
		t.Fatalf("stats count %d failed rows, the error %d", got, failed)
	}

	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	stored := count(t, c, "gpu_samples")
	// Blocks of the failed statement may have committed before the
	// connection died (the at-least-once window), never more than that.
	if stored < uint64(written) || stored > uint64(written+failed) {
		t.Fatalf("stored %d rows; reported written %d, failed %d", stored, written, failed)
	}
	t.Logf("written %d, failed %d, stored %d", written, failed, stored)
}

// While the server restarts, retries carry the write through.
func TestWriterRidesOutARestart(t *testing.T) {
	srv := chtest.StartServer(t)
	c := chtest.OpenDB(t, srv, true)
	ctx := context.Background()
	cfg := fastRetries(60)
	w, err := c.NewWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill() // a crash; a graceful stop waits ~10s for idle pooled connections
	go func() {
		time.Sleep(500 * time.Millisecond)
		_ = srv.Restart(context.Background())
	}()
	if err := w.Write(ctx, sampleRows(0, 1000, 8, time.Now().UTC()).Block()); err != nil {
		t.Fatalf("write across a restart: %v", err)
	}
	if w.Stats().Retries == 0 {
		t.Error("expected retries while the server was down")
	}
	if n := count(t, c, "gpu_samples"); n != 1000 {
		t.Fatalf("%d rows, want 1000", n)
	}
}

func TestWriterConfigValidate(t *testing.T) {
	bad := storage.WriterConfig{MaxRetries: -1, InitialBackoff: time.Second, MaxBackoff: time.Millisecond}
	err := bad.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"max_retries", "backoff", "attempt_timeout", "max_in_flight", "max_insert_rows", "native_block_rows"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if err := storage.NewDefaultWriterConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestWriteCanceledWhileWaitingForASlot(t *testing.T) {
	c := chtest.NewDB(t)
	cfg := storage.NewDefaultWriterConfig()
	w, err := c.NewWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = w.Write(ctx, sampleRows(0, 5, 1, time.Now()).Block())
	var we *storage.WriteError
	// With free slots the write may still start; canceled context must then
	// surface as a non-retryable failure, never as silent success or a panic.
	if err == nil || !errors.As(err, &we) || we.Failed != 5 {
		t.Fatalf("got %v", err)
	}
}

// At-least-once delivery re-sends rows after an ambiguous failure; the tables
// collapse such replays, so queries with FINAL (and all data after merges)
// count each record once.
func TestReplayedRowsCollapse(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	b := sampleRows(0, 1000, 10, time.Now().UTC().Truncate(24*time.Hour))
	for i := 0; i < 3; i++ {
		if err := w.Write(ctx, b.Block()); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, c, "gpu_samples"); n != 3000 {
		t.Fatalf("before merge: %d raw rows, want 3000", n)
	}
	var final uint64
	if err := c.QueryScalar(ctx, "SELECT count() FROM gpu_samples FINAL", &final); err != nil {
		t.Fatal(err)
	}
	if final != 1000 {
		t.Fatalf("FINAL counts %d, want 1000", final)
	}
	if err := c.Exec(ctx, "OPTIMIZE TABLE "+c.Config().Database+".gpu_samples FINAL"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, c, "gpu_samples"); n != 1000 {
		t.Fatalf("after merge: %d rows, want 1000", n)
	}
}
