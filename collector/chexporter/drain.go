package chexporter

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/fleetwatch/fleetwatch/collector/wal"
	"github.com/fleetwatch/fleetwatch/storage"
)

// tableOrder is the order a batch's tables are written in: a series is
// described (gpu_series) before its samples land, and drift_bins follows
// inference_events.
var tableOrder = []string{"gpu_series", "gpu_samples", "gpu_events", "inference_events", "drift_bins", "delayed_labels", "business_outcomes", "model_deployments", "spans"}

// batch is what one drain pass writes: the rows of consecutive queue
// records, merged per table.
type batch struct {
	blocks  map[string]storage.Block
	rows    int
	records int
	bytes   int64 // of the queue records gathered
	end     wal.Position
	// resolved: gpu_samples' increases computed and known duplicates removed.
	resolved bool
	// uncertain: a gpu_samples insert failed in a way that may have stored
	// some rows; they are looked up before the next attempt.
	uncertain bool
	done      map[string]bool
	// queued are the blocks as read from the queue (blocks' gpu_samples is
	// replaced when resolved), whose columns the next batch reuses.
	queued map[string]storage.Block
}

func newBatch() *batch { return &batch{blocks: map[string]storage.Block{}, done: map[string]bool{}} }

// drainBuffers are what the drain loop keeps from batch to batch: the
// columns of the last batch, emptied (decoding into them allocates nothing
// once they have grown to a batch's size), the strings decoded so far
// (metric names repeat on every row) and the buffer records are read into.
type drainBuffers struct {
	spare map[string]storage.Block
	strs  storage.Strings
	// read holds the records of the last read from the queue: add copies
	// what it keeps of them (AppendEncoded never aliases its input), so
	// the next read reuses it.
	read []byte
}

// recycle keeps b's columns for the next batch, once b is written.
func (d *drainBuffers) recycle(b *batch) {
	if d.spare == nil {
		d.spare = map[string]storage.Block{}
	}
	for table, blk := range b.queued {
		d.spare[table] = storage.TruncateRows(blk, 0)
	}
}

// add decodes queue records into the batch's columns. A record that cannot
// be decoded (written by a newer or broken collector) is skipped whole and
// counted; a block whose columns differ from the batch's for its table is
// skipped and counted.
func (e *chExporter) add(b *batch, recs []wal.Record) {
	type mark struct {
		table string
		rows  int
	}
	var marks []mark // the tables a record touched, with their rows before it
	for _, r := range recs {
		b.records++
		b.bytes += int64(len(r.Data))
		b.end = r.End
		marks = marks[:0]
		added := 0
		err := func() error {
			if len(r.Data) == 0 || r.Data[0] != recordVersion {
				return fmt.Errorf("queue record of unknown version")
			}
			rest := r.Data[1:]
			for len(rest) > 0 {
				table, ok := storage.EncodedTable(rest)
				if !ok {
					return fmt.Errorf("%w: no table", storage.ErrCorruptBlock)
				}
				dst, have := b.blocks[table]
				if !have {
					dst = e.drainBufs.spare[table] // empty, or absent
				}
				before, _ := dst.Rows()
				next, n, after, err := storage.AppendEncoded(dst, rest, &e.drainBufs.strs)
				if errors.Is(err, storage.ErrBlockShape) && before == 0 {
					// The batch has no rows of the table yet: the reused
					// columns' shape does not bind it.
					next, n, after, err = storage.AppendEncoded(storage.Block{}, rest, &e.drainBufs.strs)
				}
				switch {
				case errors.Is(err, storage.ErrBlockShape):
					blk, _, _ := storage.ReadBlock(rest)
					e.tel.ExporterDroppedRows.Add(context.Background(), int64(rowsOf(blk)), metric.WithAttributes(attribute.String("table", table), attribute.String("reason", "shape_mismatch")))
					e.logger.Error("skipping queued rows whose columns changed", zap.String("table", table), zap.Error(err))
				case err != nil:
					return err
				default:
					if !slices.ContainsFunc(marks, func(m mark) bool { return m.table == table }) {
						marks = append(marks, mark{table, before})
					}
					b.blocks[table] = next
					added += n
				}
				rest = after
			}
			return nil
		}()
		if err != nil {
			// Take back what the record's first blocks added.
			for _, m := range marks {
				if m.rows == 0 {
					delete(b.blocks, m.table)
				} else {
					b.blocks[m.table] = storage.TruncateRows(b.blocks[m.table], m.rows)
				}
			}
			e.tel.ExporterDroppedRows.Add(context.Background(), 1, metric.WithAttributes(attribute.String("table", "queue_record"), attribute.String("reason", "undecodable")))
			e.logger.Error("skipping a queue record that cannot be decoded", zap.String("signal", e.signal), zap.Error(err))
			continue
		}
		b.rows += added
	}
}

func rowsOf(b storage.Block) int {
	n, _ := b.Rows()
	return n
}

// readRecords caps the records of one read; the batch's byte threshold
// caps its bytes.
const readRecords = 4096

// full reports whether b has reached a flush threshold of cfg.
func (b *batch) full(cfg BatchConfig) bool {
	return b.rows >= cfg.FlushRows || b.bytes >= cfg.FlushBytes
}

// drain reads the queue in order, writes batches to ClickHouse and
// acknowledges them, until ctx ends. A batch is written once it holds
// batch.flush_rows rows or batch.flush_bytes bytes, or batch.max_delay
// after its first record was read, whichever comes first. Unacknowledged
// records are read again at the next start.
func (e *chExporter) drain(ctx context.Context) {
	cfg := e.cfg.Batch
	for {
		recs, read, err := e.log.ReadInto(ctx, e.drainBufs.read, readRecords, cfg.FlushBytes)
		e.drainBufs.read = read
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, wal.ErrClosed) {
				e.logger.Error("reading the queue failed; the exporter stops writing until restarted", zap.String("signal", e.signal), zap.Error(err))
			}
			return
		}
		b := newBatch()
		e.add(b, recs)
		deadline := time.Now().Add(cfg.MaxDelay)
		for !b.full(cfg) {
			rctx, cancel := context.WithDeadline(ctx, deadline)
			more, read, err := e.log.ReadInto(rctx, e.drainBufs.read, readRecords, cfg.FlushBytes-b.bytes)
			e.drainBufs.read = read
			cancel()
			if err != nil {
				break
			}
			e.add(b, more)
		}
		if ce := e.logger.Check(zapcore.DebugLevel, "inserting a batch"); ce != nil {
			ce.Write(zap.String("signal", e.signal), zap.Int("rows", b.rows), zap.Int64("bytes", b.bytes), zap.Int("requests", b.records))
		}
		b.queued = maps.Clone(b.blocks)
		if !e.deliver(ctx, b) {
			return
		}
		e.drainBufs.recycle(b)
		if err := e.log.Ack(b.end); err != nil {
			// The rows are in ClickHouse; a restart replays them and the
			// duplicate checks keep them from counting twice.
			e.throttledWarn("ack", "cannot record written requests in the queue; they may be replayed after a restart", zap.Error(err))
		}
	}
}

// deliver writes b, retrying until every table is written or permanently
// refused. It returns false if ctx ended first.
func (e *chExporter) deliver(ctx context.Context, b *batch) bool {
	wait := e.cfg.Retry.InitialInterval
	for {
		err := e.attempt(ctx, b)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		e.throttledWarn("insert", "writing to ClickHouse failed; retrying (the data stays queued)", zap.String("signal", e.signal),
			zap.Int("rows", b.rows), zap.Duration("next_try_in", wait), zap.Error(err))
		// Jitter so that collectors restarted together do not retry together.
		sleep := wait/2 + rand.N(wait/2+1)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(sleep):
		}
		wait = min(2*wait, e.cfg.Retry.MaxInterval)
	}
}

// attempt writes what of b is not written yet.
func (e *chExporter) attempt(ctx context.Context, b *batch) error {
	if err := e.ensure(ctx); err != nil {
		e.tel.ExporterInsertRetries.Add(ctx, 1, metric.WithAttributes(attribute.String("table", "connect"), attribute.String("reason", "connect")))
		return fmt.Errorf("connect to ClickHouse: %w", err)
	}
	if s, ok := b.blocks["gpu_samples"]; ok && !b.resolved {
		resolved, err := e.resolveSamples(ctx, s)
		if err != nil {
			e.tel.ExporterInsertRetries.Add(ctx, 1, metric.WithAttributes(attribute.String("table", "gpu_samples"), attribute.String("reason", "lookup")))
			return fmt.Errorf("look up stored points: %w", err)
		}
		b.blocks["gpu_samples"], b.resolved = resolved, true
	}
	for _, table := range tableOrder {
		blk, ok := b.blocks[table]
		if !ok || b.done[table] {
			continue
		}
		if table == "gpu_samples" && b.uncertain {
			unstored, err := e.dropStored(ctx, blk)
			if err != nil {
				return fmt.Errorf("look up points of an unconfirmed insert: %w", err)
			}
			b.blocks[table], blk, b.uncertain = unstored, unstored, false
		}
		err := e.write(ctx, blk)
		var we *storage.WriteError
		switch {
		case err == nil:
			b.done[table] = true
		case consumererror.IsPermanent(err):
			reason := "clickhouse_error"
			if errors.As(err, &we) {
				reason = "clickhouse_" + we.Reason
			}
			e.tel.ExporterDroppedRows.Add(ctx, int64(rowsOf(blk)), metric.WithAttributes(attribute.String("table", table), attribute.String("reason", reason)))
			e.logger.Error("ClickHouse refused queued rows permanently; they are dropped", zap.String("table", table),
				zap.Int("rows", rowsOf(blk)), zap.Error(err))
			b.done[table] = true
		default:
			reason := "transient"
			if errors.As(err, &we) {
				reason = we.Reason
			}
			e.tel.ExporterInsertRetries.Add(ctx, 1, metric.WithAttributes(attribute.String("table", table), attribute.String("reason", reason)))
			if table == "gpu_samples" {
				b.uncertain = true // some rows may have landed
			}
			return fmt.Errorf("write %s: %w", table, err)
		}
	}
	for table := range b.blocks {
		if !b.done[table] && !knownTable(table) {
			e.logger.Error("queued rows for a table this exporter does not know; dropped", zap.String("table", table))
			b.done[table] = true
		}
	}
	return nil
}

func knownTable(t string) bool {
	for _, k := range tableOrder {
		if k == t {
			return true
		}
	}
	return false
}

// write inserts one block; a failure that retrying cannot fix is permanent.
func (e *chExporter) write(ctx context.Context, b storage.Block) error {
	n, _ := b.Rows()
	if n == 0 {
		return nil
	}
	err := e.writer.Write(ctx, b)
	if err == nil {
		e.tel.ExporterWrittenRows.Add(ctx, int64(n), metric.WithAttributes(attribute.String("table", b.Table)))
		return nil
	}
	var we *storage.WriteError
	if errors.As(err, &we) && !we.Retryable {
		return consumererror.NewPermanent(err)
	}
	return err
}
