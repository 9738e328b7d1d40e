package chexporter

import (
	"context"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// ConsumeTraces validates td, turns its spans into rows and queues them; it
// returns once they are on disk.
func (e *chExporter) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	var blk storage.SpanBlock
	rejected := map[string]int{}
	now := time.Now()
	e.received(ctx, td.SpanCount())
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		res := resourceOf(rs.Resource().Attributes(), e.cfg.MaxLabelLength)
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				start, end := sp.StartTimestamp().AsTime(), sp.EndTimestamp().AsTime()
				switch {
				case sp.TraceID().IsEmpty() || sp.SpanID().IsEmpty() || end.Before(start):
					rejected[ReasonBadSpan]++
					continue
				case e.outOfRange(now, start):
					rejected[ReasonTimeOutOfRange]++
					continue
				}
				a := attrs{sp.Attributes(), e.cfg.MaxLabelLength, nil}
				var keys, values []string
				sp.Attributes().Range(func(k string, v pcommon.Value) bool {
					keys, values = append(keys, k), append(values, truncate(v.AsString(), e.cfg.MaxLabelLength))
					return true
				})
				sortKV(keys, values)
				parent := ""
				if !sp.ParentSpanID().IsEmpty() {
					parent = sp.ParentSpanID().String()
				}
				blk.Append(&storage.Span{Start: start, Duration: end.Sub(start), TraceID: sp.TraceID().String(), SpanID: sp.SpanID().String(),
					ParentSpanID: parent, Service: res.service, Operation: truncate(sp.Name(), e.cfg.MaxLabelLength),
					Kind:          strings.ToLower(strings.TrimPrefix(sp.Kind().String(), "SPAN_KIND_")),
					StatusCode:    strings.ToLower(strings.TrimPrefix(sp.Status().Code().String(), "STATUS_CODE_")),
					StatusMessage: truncate(sp.Status().Message(), e.cfg.MaxLabelLength),
					Model:         a.str(telemetry.AttrModel), ModelVersion: a.str(telemetry.AttrModelVersion), RequestID: a.str(telemetry.AttrRequestID),
					Cluster: res.topo.Cluster, Node: res.topo.Node, K8s: res.k8s, Attributes: fleet.Labels{Keys: keys, Values: values}})
			}
		}
	}
	n := e.account(ctx, rejected, nil)
	return e.enqueue(ctx, td.SpanCount()-n, blk.Block())
}

func sortKV(keys, values []string) {
	if len(keys) > 1 {
		sort.Sort(kvSort{keys, values})
	}
}
