package agent

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetwatch/fleetwatch/lib/buildinfo"
)

// The agent's own metrics, read from its parts at scrape time.
var (
	descCollected = prometheus.NewDesc("fleetwatch_agent_samples_collected_total",
		"GPU samples collected, by source.", []string{"source"}, nil)
	descRecords = prometheus.NewDesc("fleetwatch_agent_records_collected_total",
		"Events, inference events, labels and deployments collected, by source.", []string{"source"}, nil)
	descShipped = prometheus.NewDesc("fleetwatch_agent_items_shipped_total",
		"Samples and records the collector accepted, by source.", []string{"source"}, nil)
	descBuffered = prometheus.NewDesc("fleetwatch_agent_items_buffered",
		"Samples and records waiting in the disk buffer, by source.", []string{"source"}, nil)
	descDropped = prometheus.NewDesc("fleetwatch_agent_items_dropped_total",
		"Samples and records lost, by source and reason: buffer_full (past buffer.max_bytes, oldest dropped first), rejected (refused by the collector), encode_error, disk_full and buffer_error (refused by the disk buffer while the agent stopped).",
		[]string{"source", "reason"}, nil)
	descSourceErrors = prometheus.NewDesc("fleetwatch_agent_source_errors_total",
		"Errors reading a source, by source and reason.", []string{"source", "reason"}, nil)
	descUnsupported = prometheus.NewDesc("fleetwatch_agent_unsupported_fields",
		"GPUs that do not support a field (not read from them), by source and field.", []string{"source", "field"}, nil)
	descBufferBytes = prometheus.NewDesc("fleetwatch_agent_buffer_bytes",
		"Bytes in the disk buffer.", nil, nil)
	descCorrupt = prometheus.NewDesc("fleetwatch_agent_buffer_corrupt_records_total",
		"Damaged records found in the disk buffer and skipped.", nil, nil)
	descBufferErrors = prometheus.NewDesc("fleetwatch_agent_buffer_errors_total",
		"Disk buffer operations that failed, by reason: disk_full and write_error (an append refused; the batch is held and retried), partial_write_cut (a record written in part and cut off again), cursor_save_error (the read position is saved with a later acknowledgement).",
		[]string{"reason"}, nil)
	descBlocked = prometheus.NewDesc("fleetwatch_agent_buffer_blocked",
		"1 while the pipeline holds a batch the disk buffer refused (a full disk) and sources are blocked.", nil, nil)
	descUp = prometheus.NewDesc("fleetwatch_agent_collector_up",
		"1 when the last send to the collector succeeded.", nil, nil)
	descRetries = prometheus.NewDesc("fleetwatch_agent_ship_retries_total",
		"Failed sends to the collector that were retried.", nil, nil)
	descSeries = prometheus.NewDesc("fleetwatch_agent_exposed_series",
		"GPU series currently exposed on /metrics.", nil, nil)
	descUnauthorized = prometheus.NewDesc("fleetwatch_agent_http_unauthorized_total",
		"Requests to /metrics refused for a missing or wrong bearer token.", nil, nil)
	descBuild = prometheus.NewDesc("fleetwatch_agent_build_info",
		"The agent's version.", []string{"version", "goversion"}, nil)
)

type healthCollector struct{ a *Agent }

func (h *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCollected, descRecords, descShipped, descBuffered, descDropped, descSourceErrors, descUnsupported,
		descBufferBytes, descCorrupt, descBufferErrors, descBlocked, descUp, descRetries, descSeries, descUnauthorized, descBuild} {
		ch <- d
	}
}

func (h *healthCollector) Collect(ch chan<- prometheus.Metric) {
	a := h.a
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	bst := a.buf.Stats()
	ss := &a.shipper.Stats
	a.srcMu.Lock()
	names := make(map[byte]string, len(a.srcIdx))
	for n, i := range a.srcIdx {
		names[i] = n
	}
	a.srcMu.Unlock()
	for i, name := range names {
		c := &a.counts[i]
		counter(descCollected, float64(c.samples.Load()), name)
		counter(descRecords, float64(c.records.Load()), name)
		counter(descShipped, float64(ss.SentItems[i].Load()), name)
		gauge(descBuffered, float64(bst.PendingItems[i]), name)
		counter(descDropped, float64(bst.DroppedItems[i]), name, "buffer_full")
		counter(descDropped, float64(ss.RejectedItems[i].Load()), name, "rejected")
		counter(descDropped, float64(c.droppedEncode.Load()), name, "encode_error")
		counter(descDropped, float64(c.droppedBuf.Load()), name, "buffer_error")
		counter(descDropped, float64(c.droppedDiskFull.Load()), name, "disk_full")
	}
	for name, fn := range a.errFns {
		for reason, n := range fn() {
			counter(descSourceErrors, float64(n), name, reason)
		}
	}
	for name, fn := range a.unsupported {
		for field, n := range fn() {
			gauge(descUnsupported, float64(n), name, field)
		}
	}
	gauge(descBufferBytes, float64(bst.Bytes))
	counter(descCorrupt, float64(bst.Corrupt))
	counter(descBufferErrors, float64(bst.DiskFull), "disk_full")
	counter(descBufferErrors, float64(bst.WriteErrors), "write_error")
	counter(descBufferErrors, float64(bst.Truncated), "partial_write_cut")
	counter(descBufferErrors, float64(bst.CursorErrors), "cursor_save_error")
	gauge(descBlocked, float64(a.blocked.Load()))
	gauge(descUp, float64(ss.Connected.Load()))
	counter(descRetries, float64(ss.Retries.Load()))
	gauge(descSeries, float64(a.exporter.Series()))
	if a.web != nil {
		counter(descUnauthorized, float64(a.web.Unauthorized.Load()))
	}
	gauge(descBuild, 1, buildinfo.Version, runtime.Version())
}
