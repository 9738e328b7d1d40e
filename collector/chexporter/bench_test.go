package chexporter

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"google.golang.org/protobuf/proto"

	"github.com/fleetwatch/fleetwatch/agent/otlp"
	"github.com/fleetwatch/fleetwatch/agent/sim"
)

// forms are the two places a GPU's labels travel (docs/TELEMETRY.md): on
// every data point (the agent before issue 18, dcgm-exporter-style senders)
// and once per GPU on its resource (the agent's default since).
var forms = []otlp.Form{otlp.PerPoint, otlp.PerGPU}

// nodeRequest is one simulated 8-GPU node's poll as the agent sends it in
// form, marshalled: what the collector's receiver decodes.
func nodeRequest(b testing.TB, form otlp.Form) []byte {
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
	enc.Form = form
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

// perSample runs f b.N times and reports its cost per sample (samples per
// call): time, allocations and, with bytes, the request's size.
func perSample(b *testing.B, samples int, bytes int, f func()) {
	b.Helper()
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		f()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	n := float64(b.N) * float64(samples)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/sample")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/sample")
	if bytes > 0 {
		b.ReportMetric(float64(bytes)/float64(samples), "B/sample")
	}
}

// BenchmarkDecode is the receiver's share: OTLP protobuf to pdata. B/sample
// is the request's size on the wire before compression.
func BenchmarkDecode(b *testing.B) {
	for _, form := range forms {
		b.Run("form="+form.String(), func(b *testing.B) {
			data := nodeRequest(b, form)
			var u pmetric.ProtoUnmarshaler
			md, err := u.UnmarshalMetrics(data)
			if err != nil {
				b.Fatal(err)
			}
			perSample(b, md.DataPointCount(), len(data), func() {
				if _, err := u.UnmarshalMetrics(data); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkConvert is the exporter's share before the write: pdata to
// column blocks, for series already known. cache=off forgets the raw-key
// cache every push, so every point's labels are read again (as for a new
// series, or after the hourly refresh).
func BenchmarkConvert(b *testing.B) {
	for _, form := range forms {
		data := nodeRequest(b, form)
		md, err := (&pmetric.ProtoUnmarshaler{}).UnmarshalMetrics(data)
		if err != nil {
			b.Fatal(err)
		}
		for _, cache := range []bool{true, false} {
			name := "form=" + form.String() + "/cache=on"
			if !cache {
				name = "form=" + form.String() + "/cache=off"
			}
			b.Run(name, func(b *testing.B) {
				cfg := createDefaultConfig()
				e, err := newExporter(cfg, exportertest.NewNopSettings(Type), signalMetrics)
				if err != nil {
					b.Fatal(err)
				}
				now := time.Now()
				e.convert(md, now) // learn the series
				perSample(b, md.DataPointCount(), 0, func() {
					if !cache {
						clear(e.series.raw)
					}
					mb := e.convert(md, now)
					if mb.samples.Len() != md.DataPointCount() {
						b.Fatalf("converted %d of %d points", mb.samples.Len(), md.DataPointCount())
					}
					_ = mb.samples.Block()
				})
			})
		}
	}
}
