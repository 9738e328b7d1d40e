package chexporter

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"google.golang.org/protobuf/proto"

	"github.com/fleetwatch/fleetwatch/agent/otlp"
	"github.com/fleetwatch/fleetwatch/agent/sim"
)

// nodeRequest is one simulated 8-GPU node's poll as the agent sends it,
// marshalled: what the collector's receiver decodes.
func nodeRequest(b *testing.B) []byte {
	b.Helper()
	sc, err := sim.Parse([]byte("seed: 7\nfleet: {racks_per_row: 1, nodes_per_rack: 1, gpus_per_node: 8}\njobs: [{name: j, nodes: 1}]\n"))
	if err != nil {
		b.Fatal(err)
	}
	r, err := sim.New(sc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.Close)
	enc := otlp.NewEncoder(sc.Start, "bench")
	r.Step(sc.Start.Add(time.Second)) // rates need two polls
	for _, batch := range r.Step(sc.Start.Add(2 * time.Second)) {
		if batch.Source != "nvml" {
			continue
		}
		batch.Time = time.Now()
		data, err := proto.Marshal(enc.Metrics(batch))
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	b.Fatal("no nvml batch")
	return nil
}

// BenchmarkDecode is the receiver's share: OTLP protobuf to pdata.
func BenchmarkDecode(b *testing.B) {
	data := nodeRequest(b)
	var u pmetric.ProtoUnmarshaler
	md, err := u.UnmarshalMetrics(data)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := u.UnmarshalMetrics(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(md.DataPointCount()), "ns/sample")
}

// BenchmarkConvert is the exporter's share before the write: pdata to
// column blocks, for series already known. cache=off forgets the raw-key
// cache every push, which is the path every point took before it existed.
func BenchmarkConvert(b *testing.B) {
	data := nodeRequest(b)
	md, err := (&pmetric.ProtoUnmarshaler{}).UnmarshalMetrics(data)
	if err != nil {
		b.Fatal(err)
	}
	for _, cache := range []bool{true, false} {
		name := "cache=on"
		if !cache {
			name = "cache=off"
		}
		b.Run(name, func(b *testing.B) {
			cfg := createDefaultConfig()
			e, err := newExporter(cfg, exportertest.NewNopSettings(Type), signalMetrics)
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			e.convert(md, now) // learn the series
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if !cache {
					clear(e.series.raw)
				}
				mb := e.convert(md, now)
				if mb.samples.Len() != md.DataPointCount() {
					b.Fatalf("converted %d of %d points", mb.samples.Len(), md.DataPointCount())
				}
				_ = mb.samples.Block()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(md.DataPointCount()), "ns/sample")
		})
	}
}
