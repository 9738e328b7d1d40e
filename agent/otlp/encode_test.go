package otlp_test

import (
	"math"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"

	"github.com/fleetwatch/fleetwatch/agent/otlp"
	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

func attrs(kvs []*commonpb.KeyValue) map[string]*commonpb.AnyValue {
	out := map[string]*commonpb.AnyValue{}
	for _, kv := range kvs {
		out[kv.Key] = kv.Value
	}
	return out
}

func batch(t time.Time, energy float64) *record.Batch {
	return &record.Batch{
		Resource: &record.Resource{Host: "n1", Rack: "r1", Datacenter: "dc", Row: "row"},
		Time:     t,
		GPUs: []record.GPU{{Index: "0", UUID: "GPU-1", ModelName: "H100", MIGInstance: "3", DriverVersion: "550.90.07",
			Workload: record.Workload{Pod: "p", PodUID: "u-1", Job: "llm"}}},
		Samples: []record.Sample{
			{Field: int16(telemetry.Index(telemetry.GPUTemp)), GPU: 0, Link: -1, Value: 51},
			{Field: int16(telemetry.Index(telemetry.TotalEnergy)), GPU: 0, Link: -1, Value: energy},
			{Field: int16(telemetry.Index(telemetry.NVLinkCRCFlit)), GPU: 0, Link: 4, Value: 2},
			{Field: -1, Name: "DCGM_FI_DEV_VGPU_LICENSE_STATUS", Kind: telemetry.Gauge, GPU: 0, Link: -1, Value: 1,
				Extra: []record.Label{{Key: "DCGM_FI_DRIVER_VERSION", Value: "580"}}},
		},
	}
}

func TestMetricsEncoding(t *testing.T) {
	start := time.Unix(1000, 0)
	enc := otlp.NewEncoder(start, "test")
	req := enc.Metrics(batch(start.Add(time.Minute), 500))
	rm := req.ResourceMetrics[0]
	res := attrs(rm.Resource.Attributes)
	if res[telemetry.AttrHostName].GetStringValue() != "n1" || res[telemetry.AttrRack].GetStringValue() != "r1" ||
		res[telemetry.AttrRow].GetStringValue() != "row" || res[telemetry.AttrServiceName].GetStringValue() != "fleetwatch-agent" {
		t.Fatalf("resource %v", res)
	}
	ms := rm.ScopeMetrics[0].Metrics
	if len(ms) != 4 {
		t.Fatalf("%d metrics", len(ms))
	}
	temp := ms[0]
	if temp.Name != telemetry.GPUTemp || temp.Unit != "C" || temp.GetGauge() == nil {
		t.Fatalf("temperature metric %+v", temp)
	}
	dp := temp.GetGauge().DataPoints[0]
	a := attrs(dp.Attributes)
	if a[telemetry.LabelUUID].GetStringValue() != "GPU-1" || a[telemetry.LabelHostname].GetStringValue() != "n1" ||
		a[telemetry.LabelMIGID].GetStringValue() != "3" || dp.GetAsDouble() != 51 || dp.TimeUnixNano != uint64(start.Add(time.Minute).UnixNano()) {
		t.Fatalf("data point %+v", dp)
	}
	// The job is hpc_job: Prometheus owns "job" (issue 13).
	if a["hpc_job"].GetStringValue() != "llm" || a["job"] != nil || a[telemetry.LabelPodUID].GetStringValue() != "u-1" ||
		a[telemetry.LabelDriverVersion].GetStringValue() != "550.90.07" {
		t.Fatalf("workload and driver attributes %v", a)
	}
	energy := ms[1].GetSum()
	if energy == nil || !energy.IsMonotonic || energy.DataPoints[0].StartTimeUnixNano != uint64(start.UnixNano()) {
		t.Fatalf("energy counter %+v", ms[1])
	}
	if attrs(ms[2].GetSum().DataPoints[0].Attributes)[telemetry.LabelLink].GetStringValue() != "4" {
		t.Fatal("link label missing")
	}
	if attrs(ms[3].GetGauge().DataPoints[0].Attributes)["DCGM_FI_DRIVER_VERSION"].GetStringValue() != "580" {
		t.Fatal("extra label missing")
	}
	// The counter goes down: a reset, so the series gets a new start time.
	req = enc.Metrics(batch(start.Add(2*time.Minute), 10))
	st := req.ResourceMetrics[0].ScopeMetrics[0].Metrics[1].GetSum().DataPoints[0].StartTimeUnixNano
	if st <= uint64(start.Add(time.Minute).UnixNano()) || st >= uint64(start.Add(2*time.Minute).UnixNano()) {
		t.Fatalf("after a reset the start time is %v", time.Unix(0, int64(st)))
	}
	// It rises again: the start time stays.
	req = enc.Metrics(batch(start.Add(3*time.Minute), 20))
	if req.ResourceMetrics[0].ScopeMetrics[0].Metrics[1].GetSum().DataPoints[0].StartTimeUnixNano != st {
		t.Fatal("start time moved without a reset")
	}
	if enc.Metrics(&record.Batch{}) != nil {
		t.Fatal("an empty batch encoded to a request")
	}
}

func TestLogsEncoding(t *testing.T) {
	now := time.Unix(2000, 0)
	b := &record.Batch{Source: "nvml", Time: now, GPUs: []record.GPU{{UUID: "GPU-9"}},
		Events: []record.Event{{Time: now, GPU: 0, Kind: telemetry.GPUEventXID, Code: 79, Message: "XID 79"}},
		Inferences: []record.Inference{{Time: now, Model: "m", RequestID: "r", LatencyMs: 3, Status: "ok", SampleRate: 0.5,
			Prediction: 0.7, HasPrediction: true,
			Features: []record.Feature{{Name: "b", Num: 2}, {Name: "a", IsCat: true, Str: "x"}, {Name: "c", Missing: true}}}},
		Labels:      []record.DelayedLabel{{Time: now, Model: "m", RequestID: "r", Label: "yes", LabelValue: 1, HasValue: true}},
		Deployments: []record.Deployment{{Time: now, Model: "m", ModelVersion: "v2", Note: "n"}},
	}
	req := otlp.NewEncoder(now, "t").Logs(b)
	recs := req.ResourceLogs[0].ScopeLogs[0].LogRecords
	if len(recs) != 4 {
		t.Fatalf("%d records", len(recs))
	}
	ev := attrs(recs[0].Attributes)
	if recs[0].EventName != telemetry.EventGPU || ev[telemetry.AttrEventName].GetStringValue() != telemetry.EventGPU ||
		ev[telemetry.AttrCode].GetIntValue() != 79 || ev[telemetry.AttrCount].GetIntValue() != 1 || recs[0].Body.GetStringValue() != "XID 79" ||
		ev[telemetry.LabelUUID].GetStringValue() != "GPU-9" || ev[telemetry.AttrSource].GetStringValue() != "nvml" {
		t.Fatalf("gpu event %+v", recs[0])
	}
	in := attrs(recs[1].Attributes)
	if recs[1].EventName != telemetry.EventInference || in[telemetry.AttrSampleRate].GetDoubleValue() != 0.5 || in[telemetry.AttrPrediction].GetDoubleValue() != 0.7 {
		t.Fatalf("inference %+v", recs[1])
	}
	fs := in[telemetry.AttrFeatures].GetKvlistValue().Values
	if len(fs) != 3 || fs[0].Key != "a" || fs[0].Value.GetStringValue() != "x" || fs[1].Value.GetDoubleValue() != 2 || fs[2].Value.Value != nil {
		t.Fatalf("features %v", fs)
	}
	if attrs(recs[2].Attributes)[telemetry.AttrLabelValue].GetDoubleValue() != 1 || recs[3].Body.GetStringValue() != "n" {
		t.Fatalf("label or deployment wrong: %+v %+v", recs[2], recs[3])
	}
	if math.IsNaN(in[telemetry.AttrLatencyMs].GetDoubleValue()) {
		t.Fatal("latency lost")
	}
}
