package chexporter

import (
	"math"
	"reflect"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.uber.org/zap"

	"github.com/fleetwatch/fleetwatch/collector/chexporter/internal/metadata"
	"github.com/fleetwatch/fleetwatch/collector/wal"
	"github.com/fleetwatch/fleetwatch/storage"
)

// The drain loop decodes queue records straight into the batch's columns:
// the rows are those of the records in order; an undecodable record is
// skipped whole (also the blocks before its bad one); a block whose columns
// differ is skipped alone; the next batch reuses the columns, gives the
// same rows and may take another shape for a table it has no rows of yet.
func TestAddDecodesRecordsIntoReusedColumns(t *testing.T) {
	tel, err := metadata.NewTelemetryBuilder(componenttest.NewNopTelemetrySettings())
	if err != nil {
		t.Fatal(err)
	}
	e := &chExporter{logger: zap.NewNop(), tel: tel}
	samples := func(metric string, series ...uint64) storage.Block {
		n := len(series)
		ts, value, delta, kind, start := make([]int64, n), make([]float64, n), make([]float64, n), make([]uint8, n), make([]int64, n)
		tsNS, metrics := make([]uint32, n), make([]string, n)
		for i := range series {
			ts[i], value[i], tsNS[i], metrics[i], kind[i] = int64(1000+i), float64(series[i])/2, uint32(i), metric, kindCumulative
		}
		return storage.Block{Table: "gpu_samples", Columns: []string{"ts", "metric", "series", "value", "delta", "ts_ns", colKind, colStart},
			Data: []any{ts, metrics, series, value, delta, tsNS, kind, start}}
	}
	bins := storage.Block{Table: "drift_bins", Columns: []string{"ts", "bin"}, Data: []any{[]int64{1}, []int16{2}}}
	otherBins := storage.Block{Table: "drift_bins", Columns: []string{"ts", "count"}, Data: []any{[]int64{1}, []uint64{2}}}
	record := func(blocks ...storage.Block) wal.Record {
		b := []byte{recordVersion}
		for _, blk := range blocks {
			var err error
			if b, err = storage.AppendBlock(b, blk); err != nil {
				t.Fatal(err)
			}
		}
		return wal.Record{Data: b}
	}
	good1 := record(samples("DCGM_FI_DEV_GPU_TEMP", 1, 2, 3), bins)
	cut := record(samples("DCGM_FI_DEV_POWER_USAGE", 9), samples("DCGM_FI_DEV_POWER_USAGE", 8, 7))
	cut.Data = cut.Data[:len(cut.Data)-3]
	shape := record(samples("DCGM_FI_DEV_SM_CLOCK", 4), otherBins)
	good2 := record(samples("DCGM_FI_DEV_GPU_UTIL", math.MaxUint64))
	wantSeries := []uint64{1, 2, 3, 4, math.MaxUint64}
	wantMetrics := []string{"DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_GPU_UTIL"}

	var first []uint64
	for round := 0; round < 2; round++ {
		b := newBatch()
		e.add(b, []wal.Record{good1, cut})
		e.add(b, []wal.Record{shape, {Data: []byte{99}}, good2})
		if b.records != 5 || b.rows != 6 {
			t.Fatalf("round %d: %d records, %d rows; want 5, 6", round, b.records, b.rows)
		}
		s, err := samplesOf(b.blocks["gpu_samples"])
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s.series, wantSeries) || !reflect.DeepEqual(s.metric, wantMetrics) || s.value[4] != float64(math.MaxUint64)/2 || s.kind[0] != kindCumulative {
			t.Fatalf("round %d: series %v metrics %v values %v", round, s.series, s.metric, s.value)
		}
		if got := b.blocks["drift_bins"].Data[1]; !reflect.DeepEqual(got, []int16{2}) {
			t.Fatalf("round %d: drift_bins %v", round, got)
		}
		if round == 0 {
			first = s.series
		} else if &first[:1][0] != &s.series[:1][0] {
			t.Fatal("the second batch did not reuse the first's columns")
		}
		b.queued = b.blocks
		e.drainBufs.recycle(b)
	}
	// A table with no rows in the batch yet takes the record's shape.
	b := newBatch()
	e.add(b, []wal.Record{record(otherBins)})
	if b.rows != 1 || !reflect.DeepEqual(b.blocks["drift_bins"].Columns, otherBins.Columns) {
		t.Fatalf("new shape: %d rows, %v", b.rows, b.blocks["drift_bins"].Columns)
	}
}
