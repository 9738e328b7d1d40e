package chdb_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chdb"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

func mustQuery(t *testing.T, s *chdb.Session, sql string) string {
	t.Helper()
	out, err := s.Query(sql, "TabSeparated")
	if err != nil {
		t.Fatalf("%v\nSQL: %s", err, sql)
	}
	return strings.TrimSpace(out)
}

// The modern profile's DDL, representative inserts and the queries the
// storage layer ships all run on a current ClickHouse.
func TestModernProfileOnCurrentClickHouse(t *testing.T) {
	s := session(t)
	t.Logf("ClickHouse %s", mustQuery(t, s, "SELECT version()"))
	tg := schema.Target{Database: "fleetwatch", Features: schema.Modern}
	for _, stmt := range schema.Bootstrap(tg) {
		mustQuery(t, s, stmt)
	}
	for _, m := range schema.Migrations() {
		for _, stmt := range m.Statements(tg) {
			mustQuery(t, s, stmt)
		}
		mustQuery(t, s, "INSERT INTO fleetwatch.schema_migrations (version, name, checksum, applied_at, server_version, profile) VALUES ("+
			strconv.Itoa(m.Version)+", '"+m.Name+"', '"+storage.Checksum(m.Statements(tg))+"', now(), version(), 'modern')")
	}
	// Re-running every statement is harmless (IF NOT EXISTS everywhere).
	for _, m := range schema.Migrations() {
		for _, stmt := range m.Statements(tg) {
			mustQuery(t, s, stmt)
		}
	}

	// Modern extras are really there.
	ddl := mustQuery(t, s, "SHOW CREATE TABLE fleetwatch.gpu_samples")
	for _, want := range []string{"LowCardinality(String)", "CODEC(DoubleDelta, ZSTD(1))", "CODEC(Gorilla", "TTL ts + toIntervalDay(14)"} {
		if !strings.Contains(ddl, want) {
			t.Errorf("gpu_samples lacks %s:\n%s", want, ddl)
		}
	}
	if ddl := mustQuery(t, s, "SHOW CREATE TABLE fleetwatch.spans"); !strings.Contains(ddl, "INDEX trace_idx trace_id TYPE bloom_filter") {
		t.Errorf("spans lacks its bloom filter index:\n%s", ddl)
	}

	inserts := []string{
		`INSERT INTO fleetwatch.gpu_series (series, metric, counter, datacenter, cluster, rack, node, gpu, uuid, model_name, job, label_keys, label_values, first_seen, last_seen)
		 VALUES (1, 'DCGM_FI_DEV_GPU_TEMP', 0, 'dc1', 'c1', 'r1', 'n1', '0', 'GPU-a', 'NVIDIA H100 80GB HBM3', 'j', ['k'], ['v'], now(), now()),
		        (2, 'DCGM_FI_DEV_ECC_SBE_VOL_TOTAL', 1, 'dc1', 'c1', 'r1', 'n1', '0', 'GPU-a', 'NVIDIA H100 80GB HBM3', 'j', [], [], now(), now())`,
		`INSERT INTO fleetwatch.gpu_samples (ts, metric, series, value, delta)
		 VALUES (toStartOfMinute(now()), 'DCGM_FI_DEV_GPU_TEMP', 1, 40, 0), (toStartOfMinute(now()) + 1, 'DCGM_FI_DEV_GPU_TEMP', 1, 44, 0),
		        (toStartOfMinute(now()), 'DCGM_FI_DEV_ECC_SBE_VOL_TOTAL', 2, 10, 3), (toStartOfMinute(now()) + 1, 'DCGM_FI_DEV_ECC_SBE_VOL_TOTAL', 2, 12, 2)`,
		`INSERT INTO fleetwatch.gpu_events (ts, event, code, count, message, source, cluster, node, uuid)
		 VALUES (now(), 'xid', 79, 1, 'GPU has fallen off the bus', 'nvml', 'c1', 'n1', 'GPU-a')`,
		`INSERT INTO fleetwatch.inference_events (ts, model, model_version, request_id, latency_ms, status, feature_names, feature_values, cat_feature_names, cat_feature_values, prediction, prediction_class, sample_rate)
		 VALUES (now(), 'fraud', 'v3', 'r-1', 12.5, 'ok', ['amount', 'age'], [120.5, nan], ['country'], ['DE'], 0.91, 'fraud', 0.1)`,
		`INSERT INTO fleetwatch.delayed_labels (ts, model, request_id, label, label_value) VALUES (now(), 'fraud', 'r-1', 'fraud', nan)`,
		`INSERT INTO fleetwatch.model_deployments (ts, model, model_version, previous_version, change, environment, actor, note)
		 VALUES (now(), 'fraud', 'v3', 'v2', 'deploy', 'prod', 'ci', '')`,
		`INSERT INTO fleetwatch.detections (ts, window_start, detector, class, severity, entity_type, entity, key, row, rack, node, gpu_uuid, value, threshold, p_value, action, summary, evidence)
		 VALUES (now(), now() - 60, 'xid', 'gpu_lost', 'critical', 'gpu', 'GPU-a', 'xid/GPU-a', 'row1', 'r1', 'n1', 'GPU-a', 79, 0, nan, 'drain', 'GPU fell off the bus', '{}')`,
		`INSERT INTO fleetwatch.spans (ts, start_ns, duration_ns, trace_id, span_id, parent_span_id, service, operation, kind, status_code, model, request_id, attr_keys, attr_values)
		 VALUES (now(), toInt64(toUnixTimestamp(now())) * 1000000000, 2500000, '0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331', '', 'scorer', 'predict', 'server', 'ok', 'fraud', 'r-1', ['k'], ['v'])`,
	}
	for _, q := range inserts {
		mustQuery(t, s, q)
	}

	checks := []struct{ name, sql, want string }{
		{"rollup merges", `SELECT countMerge(samples), sumMerge(sum), minMerge(min), maxMerge(max), argMaxMerge(last), sumMerge(delta_sum)
			FROM fleetwatch.gpu_samples_1m WHERE metric = 'DCGM_FI_DEV_ECC_SBE_VOL_TOTAL'`, "2\t22\t10\t12\t12\t5"},
		{"samples join series", `SELECT s.rack, max(x.value) FROM fleetwatch.gpu_samples AS x
			ANY LEFT JOIN (SELECT series, rack FROM fleetwatch.gpu_series) AS s USING series
			WHERE x.metric = 'DCGM_FI_DEV_GPU_TEMP' GROUP BY s.rack`, "r1\t44"},
		{"labels join by request id", `SELECT e.model, l.label FROM fleetwatch.inference_events AS e
			ANY INNER JOIN (SELECT request_id, label FROM fleetwatch.delayed_labels) AS l USING request_id`, "fraud\tfraud"},
		{"feature arrays", `SELECT f, isNaN(v) FROM fleetwatch.inference_events ARRAY JOIN feature_names AS f, feature_values AS v ORDER BY f`, "age\t1\namount\t0"},
		{"migration ledger", storage.LedgerSQL("fleetwatch") + " ORDER BY version LIMIT 1", "1\t" + storage.Checksum(schema.Migrations()[0].Statements(tg))},
	}
	for _, c := range checks {
		if got := mustQuery(t, s, c.sql); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}

	// Retention's partition listing and drop work here too.
	parts := mustQuery(t, s, storage.PartitionsSQL("fleetwatch", "gpu_samples"))
	if len(parts) != 8 {
		t.Fatalf("gpu_samples partitions %q, want one YYYYMMDD id", parts)
	}
	mustQuery(t, s, storage.DropPartitionSQL(tg, "gpu_samples", parts))
	if n := mustQuery(t, s, "SELECT count() FROM fleetwatch.gpu_samples"); n != "0" {
		t.Errorf("%s rows left after dropping the partition", n)
	}
}

// Cluster DDL cannot run without ZooKeeper here, but current ClickHouse must
// parse every statement of it.
func TestClusterDDLParsesOnCurrentClickHouse(t *testing.T) {
	s := session(t)
	tg := schema.Target{Database: "fleetwatch", Cluster: "fleet", Features: schema.Modern}
	stmts := schema.Bootstrap(tg)
	for _, m := range schema.Migrations() {
		stmts = append(stmts, m.Statements(tg)...)
	}
	stmts = append(stmts, storage.DropPartitionSQL(tg, "gpu_samples", "20261123"))
	for _, stmt := range stmts {
		if _, err := s.Query("EXPLAIN AST "+stmt, "TabSeparated"); err != nil {
			t.Errorf("does not parse: %v\n%s", err, stmt)
		}
	}
}
