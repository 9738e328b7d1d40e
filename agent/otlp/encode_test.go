package otlp_test

import (
	"maps"
	"math"
	"slices"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"

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

// effective returns each data point's labels as the collector reads them:
// the GPU labels of its resource with its own attributes over them, keyed by
// metric name, UUID, MIG instance and link.
func effective(rms []*metricspb.ResourceMetrics) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, rm := range rms {
		base := map[string]string{}
		for _, kv := range rm.Resource.Attributes {
			if telemetry.IsGPULabel(kv.Key) {
				base[kv.Key] = kv.Value.GetStringValue()
			}
		}
		for _, m := range rm.ScopeMetrics[0].Metrics {
			dps := m.GetGauge().GetDataPoints()
			if m.GetSum() != nil {
				dps = m.GetSum().DataPoints
			}
			for _, dp := range dps {
				l := maps.Clone(base)
				for _, kv := range dp.Attributes {
					l[kv.Key] = kv.Value.GetStringValue()
				}
				out[m.Name+"/"+l[telemetry.LabelUUID]+"/"+l[telemetry.LabelMIGID]+"/"+l[telemetry.LabelLink]] = l
			}
		}
	}
	return out
}

func TestMetricsEncoding(t *testing.T) {
	start := time.Unix(1000, 0)
	for _, tc := range []struct {
		form otlp.Form
		// resources in the request; the temperature point's own attributes
		resources  int
		tempLabels []string
	}{
		{otlp.PerGPU, 1, nil},
		{otlp.PerPoint, 1, []string{"gpu", "UUID", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION", "GPU_I_ID", "pod", "pod_uid", "hpc_job"}},
	} {
		t.Run(tc.form.String(), func(t *testing.T) {
			enc := otlp.NewEncoder(start, "test")
			enc.Form = tc.form
			req := enc.Metrics(batch(start.Add(time.Minute), 500))
			if len(req.ResourceMetrics) != tc.resources {
				t.Fatalf("%d resources, want %d", len(req.ResourceMetrics), tc.resources)
			}
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
			var own []string
			for _, kv := range dp.Attributes {
				own = append(own, kv.Key)
			}
			if !slices.Equal(own, tc.tempLabels) || dp.GetAsDouble() != 51 || dp.TimeUnixNano != uint64(start.Add(time.Minute).UnixNano()) {
				t.Fatalf("data point has labels %v, want %v: %+v", own, tc.tempLabels, dp)
			}
			// Either form says the same of every point.
			l := effective(req.ResourceMetrics)
			a := l[telemetry.GPUTemp+"/GPU-1/3/"]
			if a[telemetry.LabelUUID] != "GPU-1" || a[telemetry.LabelMIGID] != "3" || a[telemetry.LabelModelName] != "H100" {
				t.Fatalf("temperature labels %v", a)
			}
			// The job is hpc_job: Prometheus owns "job" (issue 13).
			if a["hpc_job"] != "llm" || a["job"] != "" || a[telemetry.LabelPodUID] != "u-1" || a[telemetry.LabelDriverVersion] != "550.90.07" {
				t.Fatalf("workload and driver labels %v", a)
			}
			if l[telemetry.NVLinkCRCFlit+"/GPU-1/3/4"][telemetry.LabelUUID] != "GPU-1" {
				t.Fatalf("link point %v", l)
			}
			if l["DCGM_FI_DEV_VGPU_LICENSE_STATUS/GPU-1/3/"]["DCGM_FI_DRIVER_VERSION"] != "580" {
				t.Fatal("extra label missing or not over the GPU's")
			}
			energy := ms[1].GetSum()
			if energy == nil || !energy.IsMonotonic || energy.DataPoints[0].StartTimeUnixNano != uint64(start.UnixNano()) {
				t.Fatalf("energy counter %+v", ms[1])
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
		})
	}
}

// Per GPU, a GPU and its MIG instances share one resource with what they
// have alike; a MIG instance's id, profile and workload stay on its points.
// Node-level samples get a resource without GPU labels.
func TestMetricsPerGPU(t *testing.T) {
	now := time.Unix(1000, 0)
	temp := int16(telemetry.Index(telemetry.GPUTemp))
	b := &record.Batch{
		Resource: &record.Resource{Host: "n1", Rack: "r1"},
		Time:     now,
		GPUs: []record.GPU{
			{Index: "0", UUID: "GPU-A", ModelName: "A100", Workload: record.Workload{Pod: "p0"}},
			{Index: "1", UUID: "GPU-B", ModelName: "A100"},
			{Index: "1", UUID: "GPU-B", ModelName: "A100", MIGInstance: "1", MIGProfile: "1g.10gb", Workload: record.Workload{Pod: "p1"}},
			{Index: "1", UUID: "GPU-B", ModelName: "A100", MIGInstance: "2", MIGProfile: "3g.40gb", Workload: record.Workload{Pod: "p2"}},
		},
		Samples: []record.Sample{
			{Field: temp, GPU: 0, Link: -1, Value: 40},
			{Field: temp, GPU: 1, Link: -1, Value: 41},
			{Field: -1, Name: "DCGM_FI_PROF_SM_ACTIVE", Kind: telemetry.Gauge, GPU: 2, Link: -1, Value: 0.5},
			{Field: -1, Name: "DCGM_FI_PROF_SM_ACTIVE", Kind: telemetry.Gauge, GPU: 3, Link: -1, Value: 0.25},
			{Field: -1, Name: "node_load", Kind: telemetry.Gauge, GPU: -1, Link: -1, Value: 3},
		},
	}
	enc := otlp.NewEncoder(now, "test")
	rms := enc.Metrics(b).ResourceMetrics
	if len(rms) != 3 {
		t.Fatalf("%d resources, want one per GPU and one for the node", len(rms))
	}
	for i, want := range []struct {
		res    map[string]string // GPU labels of the resource
		points [][]string        // each point's own attribute keys, in order
	}{
		{map[string]string{"gpu": "0", "UUID": "GPU-A", "modelName": "A100", "pod": "p0"}, [][]string{nil}},
		{map[string]string{"gpu": "1", "UUID": "GPU-B", "modelName": "A100"},
			[][]string{nil, {"GPU_I_ID", "GPU_I_PROFILE", "pod"}, {"GPU_I_ID", "GPU_I_PROFILE", "pod"}}},
		{map[string]string{}, [][]string{nil}},
	} {
		got := map[string]string{}
		for _, kv := range rms[i].Resource.Attributes {
			if telemetry.IsGPULabel(kv.Key) {
				got[kv.Key] = kv.Value.GetStringValue()
			}
		}
		if !maps.Equal(got, want.res) || attrs(rms[i].Resource.Attributes)[telemetry.AttrRack].GetStringValue() != "r1" {
			t.Errorf("resource %d: GPU labels %v, want %v (attributes %v)", i, got, want.res, rms[i].Resource.Attributes)
		}
		var points [][]string
		for _, m := range rms[i].ScopeMetrics[0].Metrics {
			for _, dp := range m.GetGauge().DataPoints {
				var keys []string
				for _, kv := range dp.Attributes {
					keys = append(keys, kv.Key)
				}
				points = append(points, keys)
			}
		}
		if !slices.EqualFunc(points, want.points, slices.Equal) {
			t.Errorf("resource %d: points' own labels %v, want %v", i, points, want.points)
		}
	}
	// Both forms say the same of every point, save Hostname, which the
	// per-GPU form leaves to host.name.
	perGPU := effective(rms)
	enc.Form = otlp.PerPoint
	perPoint := effective(enc.Metrics(b).ResourceMetrics)
	for _, l := range perPoint {
		delete(l, telemetry.LabelHostname)
	}
	if !maps.EqualFunc(perGPU, perPoint, maps.Equal) || len(perGPU) != 5 {
		t.Fatalf("the forms differ:\nper GPU   %v\nper point %v", perGPU, perPoint)
	}
}

func TestParseForm(t *testing.T) {
	for _, tc := range []struct {
		name string
		want otlp.Form
		ok   bool
	}{{"", otlp.PerGPU, true}, {"resource", otlp.PerGPU, true}, {"data_points", otlp.PerPoint, true}, {"scope", otlp.PerGPU, false}} {
		f, err := otlp.ParseForm(tc.name)
		if f != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseForm(%q) = %v, %v", tc.name, f, err)
		}
		if tc.ok && tc.name != "" && f.String() != tc.name {
			t.Errorf("%v.String() = %q", f, f.String())
		}
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
		Outcomes: []record.Outcome{{Time: now.Add(time.Second), Model: "m", ModelVersion: "v2", RequestID: "r", Outcome: "click", Success: true},
			{Time: now, Model: "m", RequestID: "s", Value: 4, HasValue: true}},
	}
	req := otlp.NewEncoder(now, "t").Logs(b)
	recs := req.ResourceLogs[0].ScopeLogs[0].LogRecords
	if len(recs) != 6 {
		t.Fatalf("%d records", len(recs))
	}
	// Outcomes come after labels, before deployments.
	click, miss := attrs(recs[3].Attributes), attrs(recs[4].Attributes)
	if recs[3].EventName != telemetry.EventOutcome || click[telemetry.AttrEventName].GetStringValue() != telemetry.EventOutcome ||
		click[telemetry.AttrOutcome].GetStringValue() != "click" || !click[telemetry.AttrSuccess].GetBoolValue() ||
		click[telemetry.AttrModelVersion].GetStringValue() != "v2" || recs[3].TimeUnixNano != uint64(now.Add(time.Second).UnixNano()) {
		t.Fatalf("outcome %+v", recs[3])
	}
	if _, named := miss[telemetry.AttrOutcome]; named || miss[telemetry.AttrSuccess].GetBoolValue() || miss[telemetry.AttrOutcomeValue].GetDoubleValue() != 4 {
		t.Fatalf("explicit miss %+v", recs[4])
	}
	recs = append(recs[:3], recs[5])
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
