package otlprecv

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// The checks of decoded requests, per signal: each removes the items that
// break a limit or the identifier policy (counting them in the checker) and
// repairs invalid UTF-8 in those it keeps. A resource or scope that breaks
// a limit takes all its items with it; containers left empty are removed.

// container is what the checks need of a resource or scope: its repair
// state is inherited by every item under it.
func (c *checker) container(reason string) (string, bool) {
	repaired := c.repaired
	c.repaired = false
	return reason, repaired
}

// item finishes one item: reason rejects it; otherwise a repair in it or
// in its resource or scope counts it as normalized.
func (c *checker) item(reason string, inherited bool) bool {
	if c.reject(reason, 1) {
		c.repaired = false
		return true
	}
	c.repaired = c.repaired || inherited
	c.endItem(1)
	return false
}

// removeIf removes the elements of s that drop reports, and reports whether
// that emptied s (a container that came empty is left to the exporter).
func removeIf[E any, S interface {
	Len() int
	RemoveIf(func(E) bool)
}](s S, drop func(E) bool) bool {
	had := s.Len() > 0
	s.RemoveIf(drop)
	return had && s.Len() == 0
}

// points removes the data points of m that drop reports.
func points(m pmetric.Metric, drop func(pcommon.Map) bool) bool {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return removeIf(m.Gauge().DataPoints(), func(p pmetric.NumberDataPoint) bool { return drop(p.Attributes()) })
	case pmetric.MetricTypeSum:
		return removeIf(m.Sum().DataPoints(), func(p pmetric.NumberDataPoint) bool { return drop(p.Attributes()) })
	case pmetric.MetricTypeHistogram:
		return removeIf(m.Histogram().DataPoints(), func(p pmetric.HistogramDataPoint) bool { return drop(p.Attributes()) })
	case pmetric.MetricTypeExponentialHistogram:
		return removeIf(m.ExponentialHistogram().DataPoints(), func(p pmetric.ExponentialHistogramDataPoint) bool { return drop(p.Attributes()) })
	case pmetric.MetricTypeSummary:
		return removeIf(m.Summary().DataPoints(), func(p pmetric.SummaryDataPoint) bool { return drop(p.Attributes()) })
	}
	return false
}

// scopeReason checks a scope under a resource: the first reason wins.
func (c *checker) scopeReason(sc pcommon.InstrumentationScope, resReason string, resRepaired bool) (string, bool) {
	reason, repaired := c.container(c.scope(sc))
	if resReason != "" {
		reason = resReason
	}
	return reason, repaired || resRepaired
}

func checkMetrics(md pmetric.Metrics, c *checker) {
	removeIf(md.ResourceMetrics(), func(rm pmetric.ResourceMetrics) bool {
		resReason, resRepaired := c.container(c.attrs(rm.Resource().Attributes()))
		return removeIf(rm.ScopeMetrics(), func(sm pmetric.ScopeMetrics) bool {
			scReason, inherited := c.scopeReason(sm.Scope(), resReason, resRepaired)
			return removeIf(sm.Metrics(), func(m pmetric.Metric) bool {
				c.fixStr(m.Name, m.SetName)
				c.fixStr(m.Description, m.SetDescription)
				c.fixStr(m.Unit, m.SetUnit)
				_, metricRepaired := c.container("")
				return points(m, func(attrs pcommon.Map) bool {
					reason := scReason
					if reason == "" {
						reason = c.attrs(attrs)
					}
					return c.item(reason, inherited || metricRepaired)
				})
			})
		})
	})
}

func checkLogs(ld plog.Logs, c *checker) {
	removeIf(ld.ResourceLogs(), func(rl plog.ResourceLogs) bool {
		resReason, resRepaired := c.container(c.attrs(rl.Resource().Attributes()))
		return removeIf(rl.ScopeLogs(), func(sl plog.ScopeLogs) bool {
			scReason, inherited := c.scopeReason(sl.Scope(), resReason, resRepaired)
			return removeIf(sl.LogRecords(), func(lr plog.LogRecord) bool {
				reason := scReason
				if reason == "" {
					reason = c.attrs(lr.Attributes())
				}
				if reason == "" {
					c.body(lr.Body())
					c.fixStr(lr.EventName, lr.SetEventName)
					c.fixStr(lr.SeverityText, lr.SetSeverityText)
				}
				return c.item(reason, inherited)
			})
		})
	})
}

func checkTraces(td ptrace.Traces, c *checker) {
	removeIf(td.ResourceSpans(), func(rs ptrace.ResourceSpans) bool {
		resReason, resRepaired := c.container(c.attrs(rs.Resource().Attributes()))
		return removeIf(rs.ScopeSpans(), func(ss ptrace.ScopeSpans) bool {
			scReason, inherited := c.scopeReason(ss.Scope(), resReason, resRepaired)
			return removeIf(ss.Spans(), func(sp ptrace.Span) bool {
				reason := scReason
				if reason == "" {
					reason = c.span(sp)
				}
				return c.item(reason, inherited)
			})
		})
	})
}

// span checks a span's attributes and those of its events and links.
func (c *checker) span(sp ptrace.Span) string {
	c.fixStr(sp.Name, sp.SetName)
	c.fixStr(sp.Status().Message, sp.Status().SetMessage)
	if r := c.attrs(sp.Attributes()); r != "" {
		return r
	}
	for _, ev := range sp.Events().All() {
		c.fixStr(ev.Name, ev.SetName)
		if r := c.attrs(ev.Attributes()); r != "" {
			return r
		}
	}
	for _, l := range sp.Links().All() {
		if r := c.attrs(l.Attributes()); r != "" {
			return r
		}
	}
	return ""
}
