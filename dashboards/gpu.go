package dashboards

import "github.com/fleetwatch/fleetwatch/storage/schema"

// The GPU fleet health dashboard: topology heat maps, stragglers, ECC and
// NVLink trends, XIDs. Platform on-call's view (the infrastructure level
// of the monitoring hierarchy).

var (
	clusterVar = queryVar("cluster", "Cluster", "Logical compute cluster (Kubernetes or Slurm).",
		"SELECT DISTINCT cluster FROM gpu_series WHERE metric = 'DCGM_FI_DEV_GPU_TEMP' ORDER BY cluster", true)
	rackVar = queryVar("rack", "Rack", "Racks of the selected clusters.",
		"SELECT DISTINCT rack FROM gpu_series WHERE metric = 'DCGM_FI_DEV_GPU_TEMP' AND "+anyOf("cluster", "cluster")+" ORDER BY rack", true)
	nodeVar = queryVar("node", "Node", "Nodes of the selected racks.",
		"SELECT DISTINCT node FROM gpu_series WHERE metric = 'DCGM_FI_DEV_GPU_TEMP' AND "+anyOf("cluster", "cluster")+" AND "+anyOf("rack", "rack")+" ORDER BY node", true)
	modelVar = queryVar("model", "Model", "Models that served requests in the time range.",
		"SELECT DISTINCT model FROM inference_events WHERE $__timeFilter(ts) ORDER BY model", true)
)

// Metric conditions on gpu_samples_1m.
const (
	tempMetric   = "metric = 'DCGM_FI_DEV_GPU_TEMP'"
	eccMetrics   = "metric IN ('DCGM_FI_DEV_ECC_SBE_VOL_TOTAL', 'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL')"
	nvlinkErrors = "metric IN ('DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL', 'DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL', " +
		"'DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL', 'DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL')"
	stepMetric = "metric = 'fleetwatch_train_step_seconds'"
)

func gpuFleet() *board {
	b := newBoard("fleetwatch-gpu-fleet", "Fleetwatch / GPU fleet health",
		"Infrastructure level: which GPUs, nodes and racks are hot, slow or erroring. Reads one-minute rollups, so any range is cheap.",
		clusterVar, rackVar, nodeVar)
	b.add(sqlPanel("stat", "GPUs reporting", "GPUs with temperature samples in the range.", 4, 4, statLook("none"),
		`SELECT uniqExact(series) AS gpus FROM gpu_samples_1m
WHERE `+tempMetric+` AND $__timeFilter(minute)
  AND series IN (SELECT series FROM gpu_series WHERE `+tempMetric+` AND `+topoFilter+`)`),
		Expect{Columns: []string{"gpus"}, Rows: true})
	b.add(sqlPanel("stat", "Hottest GPU", "Highest GPU temperature in the range.", 4, 4, statLook("celsius", 75, 85),
		`SELECT maxMerge(max) AS max_temp_c FROM gpu_samples_1m
WHERE `+tempMetric+` AND $__timeFilter(minute)
  AND series IN (SELECT series FROM gpu_series WHERE `+tempMetric+` AND `+topoFilter+`)`),
		Expect{Columns: []string{"max_temp_c"}, Rows: true})
	b.add(sqlPanel("stat", "XIDs in range", "XID errors in the range (any XID deserves a look; 48, 63, 64, 74, 79 mean hardware).", 4, 4, statLook("none", 1),
		`SELECT toUInt64(sum(count)) AS xids FROM gpu_events WHERE event = 'xid' AND $__timeFilter(ts) AND `+topoFilter),
		Expect{Columns: []string{"xids"}, Rows: true})
	b.add(sqlPanel("stat", "Nodes not ok", "Nodes whose latest health (view oncall_node_health) is warning or critical.", 4, 4, statLook("none", 1),
		`SELECT countIf(status != 'ok') AS nodes_not_ok FROM oncall_node_health WHERE `+topoFilter),
		Expect{Columns: []string{"nodes_not_ok"}, Rows: true})
	b.add(sqlPanel("stat", "Stragglers (24 h)", "Distinct stragglers detected in the last 24 hours (view oncall_stragglers_24h).", 4, 4, statLook("none", 1),
		`SELECT count() AS stragglers FROM oncall_stragglers_24h WHERE `+topoFilter),
		Expect{Columns: []string{"stragglers"}, Rows: true})
	b.add(sqlPanel("stat", "Detections", "Analyzer detections on the selected hardware in the range.", 4, 4, statLook("none", 1),
		`SELECT count() AS detections FROM detections WHERE $__timeFilter(ts) AND `+topoFilter),
		Expect{Columns: []string{"detections"}, Rows: true})

	b.add(sqlPanel("heatmap", "Topology heat map: hottest GPU per rack", "Rows are racks, colour is the hottest GPU's temperature: a rack-wide band is cooling (CDU), a single node is its fans.", 12, 9,
		look{unit: "celsius", interval: "1m", options: map[string]any{"calculate": false, "cellGap": 1, "color": map[string]any{"mode": "scheme", "scheme": "Oranges"},
			"yAxis": map[string]any{"axisPlacement": "left"}}},
		rollup("rack", tempMetric, "maxMerge(max)", "max(v)", "max_temp_c")),
		Expect{Columns: []string{"time", "rack", "max_temp_c"}, Rows: true})
	b.add(sqlPanel("status-history", "Topology heat map: hottest GPU per node", "One row per node; yellow from 75 °C, red from 85 °C.", 12, 9,
		look{unit: "celsius", interval: "1m", thresholds: []float64{75, 85}, options: map[string]any{"showValue": "never", "rowHeight": 0.9}},
		rollup("node", tempMetric, "maxMerge(max)", "max(v)", "max_temp_c")),
		Expect{Columns: []string{"time", "node", "max_temp_c"}, Rows: true})

	b.add(sqlPanel("table", "Node health now", "Latest health per node (view oncall_node_health), worst first.", 24, 8, tableLook,
		`SELECT * FROM oncall_node_health WHERE `+topoFilter),
		Expect{Columns: schema.OncallNodeHealth.ColumnNames(), Rows: true})

	b.add(sqlPanel("timeseries", "Training step time per node (stragglers)", "Slowest rank's step time per node: a gray-failure straggler is the line above its peers with no error anywhere.", 12, 8,
		lineLook("s"), rollup("node", stepMetric, "maxMerge(max)", "max(v)", "step_seconds")),
		Expect{Columns: []string{"time", "node", "step_seconds"}, Rows: true})
	b.add(sqlPanel("table", "Stragglers (last 24 h)", "From detections (view oncall_stragglers_24h).", 12, 8, tableLook,
		`SELECT * FROM oncall_stragglers_24h WHERE `+topoFilter),
		Expect{Columns: schema.OncallStragglers.ColumnNames(), Rows: true})

	b.add(sqlPanel("timeseries", "Training job goodput", "Share of each interval a training job made progress at its healthy pace (job_health, analytics/jobs): stalls, checkpoint pauses and regressions pull it down.", 12, 8,
		lineLook("percentunit"), `SELECT `+bucket("ts")+` AS time, job, avg(goodput) AS mean_goodput
FROM job_health
WHERE $__timeFilter(ts) AND isFinite(goodput)
GROUP BY time, job
ORDER BY time, job`),
		Expect{Columns: []string{"time", "job", "mean_goodput"}, Rows: true})
	b.add(sqlPanel("table", "Training jobs in range", "Per job: its latest step time against its own baseline, mean goodput, and what it raised in the range (flags: 2 regression, 4 stalled, 8 slow checkpoint, 16 failing checkpoints).", 12, 8, tableLook,
		`SELECT job, argMax(step_seconds, ts) AS last_step_s, argMax(baseline_step_seconds, ts) AS baseline_step_s,
  avgIf(goodput, isFinite(goodput)) AS mean_goodput, max(stalled_ranks) AS most_stalled_ranks,
  sum(checkpoint_failures) AS failed_checkpoints, groupBitOr(flags) AS flags_raised
FROM job_health
WHERE $__timeFilter(ts)
GROUP BY job
ORDER BY mean_goodput`),
		Expect{Columns: []string{"job", "last_step_s", "baseline_step_s", "mean_goodput", "most_stalled_ranks", "failed_checkpoints", "flags_raised"}, Rows: true})

	b.add(sqlPanel("timeseries", "ECC errors per node", "Volatile single- and double-bit ECC error increases per interval.", 12, 8,
		lineLook("none"), rollup("node", eccMetrics, "sumMerge(delta_sum)", "sum(v)", "ecc_errors")),
		Expect{Columns: []string{"time", "node", "ecc_errors"}, Rows: true})
	b.add(sqlPanel("timeseries", "NVLink errors per node", "CRC, replay and recovery error increases per interval: a degrading link climbs long before it fails.", 12, 8,
		lineLook("none"), rollup("node", nvlinkErrors, "sumMerge(delta_sum)", "sum(v)", "nvlink_errors")),
		Expect{Columns: []string{"time", "node", "nvlink_errors"}, Rows: true})

	b.add(sqlPanel("timeseries", "XIDs per interval by code", "XID events per interval, one series per XID code.", 12, 8, lineLook("none"),
		`SELECT `+bucket("ts")+` AS time, concat('XID ', toString(code)) AS xid, toUInt64(sum(count)) AS events
FROM gpu_events
WHERE event = 'xid' AND $__timeFilter(ts) AND `+topoFilter+`
GROUP BY time, xid
ORDER BY time, xid`),
		Expect{Columns: []string{"time", "xid", "events"}, Rows: true})
	b.add(sqlPanel("table", "XID events", "Latest XID events with their messages.", 12, 8, tableLook,
		`SELECT ts, cluster, rack, node, gpu, uuid, code, count, message
FROM gpu_events
WHERE event = 'xid' AND $__timeFilter(ts) AND `+topoFilter+`
ORDER BY ts DESC
LIMIT 500`),
		Expect{Columns: []string{"ts", "cluster", "rack", "node", "gpu", "uuid", "code", "count", "message"}, Rows: true})

	b.add(promPanel("Live GPU temperature (Prometheus)", "Straight from the agents' /metrics (dcgm-exporter names), for when ClickHouse is the thing that is down.", 24, 8,
		lineLook("celsius"), `max by (Hostname) (DCGM_FI_DEV_GPU_TEMP{Hostname=~"$node"})`, "{{Hostname}}"), Expect{})
	return b
}
