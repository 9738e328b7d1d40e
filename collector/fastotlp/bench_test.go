package fastotlp

import (
	"runtime"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/featuregate"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/xpdata/pref"
)

// sink keeps the walks' results alive.
var sink int

// BenchmarkDecode compares the receiver's decoder (pdata, then a walk over
// every point as the exporter's convert reads it) with the direct decoder
// (columns, then the same walk), on one simulated 8-GPU node's request in
// both telemetry forms: identity labels on each point (the agent today) and
// one resource per GPU (issue 18 item 1). decoder=pdata-nowalk is the
// decode alone; decoder=pdata-pooled is pdata with the Collector's
// pdata.useProtoPooling feature gate, the request released after the walk.
//
//	go test -run '^$' -bench Decode -count 3 ./collector/fastotlp/
//
// Besides ns/op it reports per sample (data point): wall ns, CPU ns of the
// whole process (the garbage collector's background work included, which
// ns/op leaves out when it runs on another core), allocations and bytes.
func BenchmarkDecode(b *testing.B) {
	today := agentRequest(b)
	for _, form := range []struct {
		name string
		data []byte
	}{
		{"form=point", marshal(b, today)},
		{"form=resource", marshal(b, perGPU(today))},
	} {
		var c Columns
		if err := c.Decode(form.data); err != nil {
			b.Fatal(err)
		}
		samples := c.Len()
		b.Run(form.name+"/decoder=pdata", func(b *testing.B) {
			measure(b, samples, func() {
				req := pmetricotlp.NewExportRequest()
				if err := req.UnmarshalProto(form.data); err != nil {
					b.Fatal(err)
				}
				if n := walkPdata(req.Metrics()); n != samples {
					b.Fatalf("walked %d points of %d", n, samples)
				}
			})
		})
		b.Run(form.name+"/decoder=pdata-nowalk", func(b *testing.B) {
			measure(b, samples, func() {
				req := pmetricotlp.NewExportRequest()
				if err := req.UnmarshalProto(form.data); err != nil {
					b.Fatal(err)
				}
			})
		})
		b.Run(form.name+"/decoder=pdata-pooled", func(b *testing.B) {
			// The Collector's own answer to pdata's garbage: objects from
			// pools, returned when the pipeline drops its last reference.
			setPooling(b, true)
			defer setPooling(b, false)
			measure(b, samples, func() {
				req := pmetricotlp.NewExportRequest()
				if err := req.UnmarshalProto(form.data); err != nil {
					b.Fatal(err)
				}
				md := req.Metrics()
				pref.MarkPipelineOwnedMetrics(md)
				if n := walkPdata(md); n != samples {
					b.Fatalf("walked %d points of %d", n, samples)
				}
				pref.UnrefMetrics(md)
			})
		})
		b.Run(form.name+"/decoder=direct", func(b *testing.B) {
			measure(b, samples, func() {
				if err := c.Decode(form.data); err != nil {
					b.Fatal(err)
				}
				if n := walkColumns(&c); n != samples {
					b.Fatalf("walked %d points of %d", n, samples)
				}
			})
		})
	}
}

// setPooling turns pdata's pdata.useProtoPooling feature gate on or off.
func setPooling(b *testing.B, on bool) {
	if err := featuregate.GlobalRegistry().Set(pref.UseProtoPooling.ID(), on); err != nil {
		b.Fatal(err)
	}
}

// measure runs op b.N times and reports per-sample costs.
func measure(b *testing.B, samples int, op func()) {
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for b.Loop() {
		op()
	}
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	runtime.ReadMemStats(&after)
	n := float64(b.N) * float64(samples)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/sample")
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/sample")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/sample")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "B/sample")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// walkPdata reads what the exporter reads of each gauge and sum point and
// returns how many there were.
func walkPdata(md pmetric.Metrics) int {
	n, acc := 0, 0
	attrs := func(m pcommon.Map) {
		for k, v := range m.All() {
			acc += len(k) + len(v.Str())
		}
	}
	for _, rm := range md.ResourceMetrics().All() {
		attrs(rm.Resource().Attributes())
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				var dps pmetric.NumberDataPointSlice
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					dps = m.Gauge().DataPoints()
				case pmetric.MetricTypeSum:
					dps = m.Sum().DataPoints()
				default:
					continue
				}
				acc += len(m.Name())
				for _, dp := range dps.All() {
					attrs(dp.Attributes())
					acc += int(dp.Timestamp()) + int(dp.StartTimestamp()) + int(dp.DoubleValue())
					n++
				}
			}
		}
	}
	sink += acc
	return n
}

// walkColumns reads the same of the decoder's columns.
func walkColumns(c *Columns) int {
	acc := 0
	for r := range c.Resources() {
		keys, values := c.ResourceAttrs(r)
		for i := range keys {
			acc += len(keys[i]) + len(values[i])
		}
	}
	for i := range c.Len() {
		acc += len(c.Metrics[c.Metric[i]].Name)
		keys, values := c.PointAttrs(i)
		for j := range keys {
			acc += len(keys[j]) + len(values[j])
		}
		acc += int(c.Time[i]) + int(c.Start[i]) + int(c.Value[i])
	}
	sink += acc
	return c.Len()
}
