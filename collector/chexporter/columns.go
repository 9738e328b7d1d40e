package chexporter

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/fleetwatch/fleetwatch/collector/fastotlp"
)

// convertColumns turns a request the receiver decoded without pdata
// (collector/fastotlp) into rows, as of now: the same rows, rejections and
// normalisations as convert gives for the same request decoded by pdata.
// The columns' strings alias the request: nothing here keeps one past the
// request (series rows are encoded into the queue before it returns).
func (e *chExporter) convertColumns(c *fastotlp.Columns, now time.Time) *metricBatch {
	mb := e.startConvert(now)
	mi, p := 0, 0
	for r := range c.Resources() {
		keys, values := c.ResourceAttrs(r)
		res := e.openResource(kvList{keys: keys, values: values})
		for ; mi < len(c.Metrics) && int(c.Metrics[mi].Resource) == r; mi++ {
			end := p
			for end < c.Len() && int(c.Metric[end]) == mi {
				end++
			}
			e.columnsMetric(mb, &res, c, &c.Metrics[mi], p, end)
			p = end
		}
		e.closeResource(&res)
	}
	e.endConvert(mb)
	return mb
}

// columnsMetric stores metric m, whose points are c's [lo, hi).
func (e *chExporter) columnsMetric(mb *metricBatch, res *resource, c *fastotlp.Columns, m *fastotlp.Metric, lo, hi int) {
	nm, ok := e.metricAs(mb, m.Name, hi-lo)
	if !ok {
		return
	}
	switch m.Type {
	case fastotlp.MetricGauge:
	case fastotlp.MetricSum:
		temporality := pmetric.AggregationTemporality(m.Temporality)
		nm.counter = m.Monotonic && temporality == pmetric.AggregationTemporalityCumulative
		nm.delta = m.Monotonic && temporality == pmetric.AggregationTemporalityDelta
	default: // no data: no points
		mb.rejected[ReasonUnsupportedType] += hi - lo
		return
	}
	for i := lo; i < hi; i++ {
		keys, values := c.PointAttrs(i)
		e.numberPoint(mb, res, &nm, c.Value[i], pcommon.Timestamp(c.Start[i]), pcommon.Timestamp(c.Time[i]), kvList{keys: keys, values: values})
	}
}
