package fastotlp

import (
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/fleetwatch/fleetwatch/agent/otlp"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// agentRequest is one simulated 8-GPU node's NVML poll in the agent's
// older per-point form (ship.gpu_identity: data_points): the GPU's identity
// labels on every data point (the request
// BenchmarkDecode in collector/chexporter decodes).
func agentRequest(tb testing.TB) *colmetrics.ExportMetricsServiceRequest {
	tb.Helper()
	sc, err := sim.Parse([]byte("seed: 7\nfleet: {racks_per_row: 1, nodes_per_rack: 1, gpus_per_node: 8}\njobs: [{name: j, nodes: 1}]\n"))
	if err != nil {
		tb.Fatal(err)
	}
	r, err := sim.New(sc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	enc := otlp.NewEncoder(sc.Start, "bench")
	enc.Form = otlp.PerPoint          // perGPU derives the other form from this one
	r.Step(sc.Start.Add(time.Second)) // rates need two polls
	for _, batch := range r.Step(sc.Start.Add(2 * time.Second)) {
		if batch.Source == "nvml" {
			batch.Time = time.Now()
			return enc.Metrics(batch)
		}
	}
	tb.Fatal("no nvml batch")
	return nil
}

// identityLabels are the data point labels that name the GPU (the agent's
// gpuAttributes): the per-GPU form moves them to the resource.
var identityLabels = map[string]bool{
	telemetry.LabelGPU: true, telemetry.LabelUUID: true, telemetry.LabelPCIBusID: true, telemetry.LabelDevice: true,
	telemetry.LabelModelName: true, telemetry.LabelHostname: true, telemetry.LabelDriverVersion: true,
	telemetry.LabelMIGID: true, telemetry.LabelMIGProfile: true, telemetry.LabelNamespace: true,
	telemetry.LabelPod: true, telemetry.LabelPodUID: true, telemetry.LabelContainer: true, telemetry.LabelJob: true,
}

// perGPU rewrites req in the per-GPU form (issue 18 item 1): one resource
// per GPU, its attributes the node's plus the GPU's identity labels; each
// data point keeps only the labels that vary (NVLink link, ...).
func perGPU(req *colmetrics.ExportMetricsServiceRequest) *colmetrics.ExportMetricsServiceRequest {
	out := &colmetrics.ExportMetricsServiceRequest{}
	for _, rm := range req.ResourceMetrics {
		byGPU := map[string]*metricspb.ResourceMetrics{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				for _, dp := range points(m) {
					var id, rest []*commonpb.KeyValue
					var key strings.Builder
					for _, kv := range dp.Attributes {
						if identityLabels[kv.Key] {
							id = append(id, kv)
							key.WriteString(kv.Key + "=" + kv.Value.GetStringValue() + "\x00")
						} else {
							rest = append(rest, kv)
						}
					}
					g, ok := byGPU[key.String()]
					if !ok {
						attrs := append(append([]*commonpb.KeyValue{}, rm.Resource.Attributes...), id...)
						g = &metricspb.ResourceMetrics{Resource: &resourcepb.Resource{Attributes: attrs},
							ScopeMetrics: []*metricspb.ScopeMetrics{{Scope: sm.Scope}}}
						byGPU[key.String()] = g
						out.ResourceMetrics = append(out.ResourceMetrics, g)
					}
					gm := metricIn(g.ScopeMetrics[0], m)
					np := proto.Clone(dp).(*metricspb.NumberDataPoint)
					np.Attributes = rest
					switch d := gm.Data.(type) {
					case *metricspb.Metric_Gauge:
						d.Gauge.DataPoints = append(d.Gauge.DataPoints, np)
					case *metricspb.Metric_Sum:
						d.Sum.DataPoints = append(d.Sum.DataPoints, np)
					}
				}
			}
		}
	}
	return out
}

func points(m *metricspb.Metric) []*metricspb.NumberDataPoint {
	switch d := m.Data.(type) {
	case *metricspb.Metric_Gauge:
		return d.Gauge.DataPoints
	case *metricspb.Metric_Sum:
		return d.Sum.DataPoints
	}
	return nil
}

// metricIn returns sm's metric named like m, adding an empty copy of m.
func metricIn(sm *metricspb.ScopeMetrics, m *metricspb.Metric) *metricspb.Metric {
	for _, x := range sm.Metrics {
		if x.Name == m.Name {
			return x
		}
	}
	x := &metricspb.Metric{Name: m.Name, Description: m.Description, Unit: m.Unit}
	switch d := m.Data.(type) {
	case *metricspb.Metric_Gauge:
		x.Data = &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{}}
	case *metricspb.Metric_Sum:
		x.Data = &metricspb.Metric_Sum{Sum: &metricspb.Sum{AggregationTemporality: d.Sum.AggregationTemporality,
			IsMonotonic: d.Sum.IsMonotonic}}
	}
	sm.Metrics = append(sm.Metrics, x)
	return x
}

func marshal(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// row is one data point with everything the comparison looks at; strings
// are copied, so a row outlives the bytes it came from.
type row struct {
	resource    string // "k=v\x00..." in order
	name        string
	typ         MetricType
	temporality int32
	monotonic   bool
	attrs       string
	start, time uint64
	valueType   ValueType
	value       uint64 // float64 bits
}

func joinKV(keys, values []string) string {
	var b strings.Builder
	for i := range keys {
		b.WriteString(keys[i])
		b.WriteByte('=')
		b.WriteString(values[i])
		b.WriteByte(0)
	}
	return b.String()
}

// directRows are c's points.
func directRows(c *Columns) []row {
	var rows []row
	for i := range c.Len() {
		m := c.Metrics[c.Metric[i]]
		rk, rv := c.ResourceAttrs(int(m.Resource))
		pk, pv := c.PointAttrs(i)
		rows = append(rows, row{resource: joinKV(rk, rv), name: strings.Clone(m.Name), typ: m.Type,
			temporality: m.Temporality, monotonic: m.Monotonic, attrs: joinKV(pk, pv),
			start: c.Start[i], time: c.Time[i], valueType: c.ValueType[i], value: math.Float64bits(c.Value[i])})
	}
	return rows
}

// pdataRows decodes b as the receiver does and returns its gauge and sum
// points.
func pdataRows(b []byte) ([]row, error) {
	req := pmetricotlp.NewExportRequest()
	if err := req.UnmarshalProto(b); err != nil {
		return nil, err
	}
	var rows []row
	for _, rm := range req.Metrics().ResourceMetrics().All() {
		var rk, rv []string
		for k, v := range rm.Resource().Attributes().All() {
			rk, rv = append(rk, k), append(rv, v.AsString())
		}
		res := joinKV(rk, rv)
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				var dps pmetric.NumberDataPointSlice
				r := row{resource: res, name: m.Name()}
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					r.typ, dps = MetricGauge, m.Gauge().DataPoints()
				case pmetric.MetricTypeSum:
					r.typ, dps = MetricSum, m.Sum().DataPoints()
					r.temporality, r.monotonic = int32(m.Sum().AggregationTemporality()), m.Sum().IsMonotonic()
				default:
					continue
				}
				for _, dp := range dps.All() {
					var pk, pv []string
					for k, v := range dp.Attributes().All() {
						pk, pv = append(pk, k), append(pv, v.AsString())
					}
					p := r
					p.attrs, p.start, p.time = joinKV(pk, pv), uint64(dp.StartTimestamp()), uint64(dp.Timestamp())
					switch dp.ValueType() {
					case pmetric.NumberDataPointValueTypeDouble:
						p.valueType, p.value = ValueDouble, math.Float64bits(dp.DoubleValue())
					case pmetric.NumberDataPointValueTypeInt:
						p.valueType, p.value = ValueInt, math.Float64bits(float64(dp.IntValue()))
					}
					rows = append(rows, p)
				}
			}
		}
	}
	return rows, nil
}
