package chexporter

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/confmap"

	"github.com/fleetwatch/fleetwatch/storage"
)

func TestConfigValidate(t *testing.T) {
	cfg := createDefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if cfg.Queue.Directory == "" || cfg.Queue.Fsync != "always" || cfg.Queue.BlockTimeout <= 0 || cfg.Queue.MaxBytes <= 0 {
		t.Fatalf("the defaults must queue on disk, fsync before acknowledging, and push back when full: %+v", cfg.Queue)
	}
	bad := createDefaultConfig()
	bad.Endpoints = []string{"nohost"}
	bad.MaxLabelLength = 1
	bad.MaxAge = 0
	bad.SeriesRefresh = 0
	bad.Include = []string{"["}
	bad.MaxInsertRows = 0
	bad.Queue.Fsync = "sometimes"
	bad.Batch.FlushRows = 0
	bad.Retry.InitialInterval = 0
	err := bad.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"nohost", "max_label_length", "max_age", "series_refresh", `metric glob "["`, "max_insert_rows", `sync "sometimes"`, "batch:", "retry:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	dsn := createDefaultConfig()
	dsn.DSN = "clickhouse://u:p@h1:9000,h2:9001/metrics?cluster=c"
	dsn.RetentionDays = map[string]int{"spans": 2}
	sc, err := dsn.StorageConfig()
	if err != nil || len(sc.Addrs) != 2 || sc.Database != "metrics" || sc.Cluster != "c" || sc.RetentionDays["spans"] != 2 {
		t.Fatalf("DSN: %+v, %v", sc, err)
	}
	// A password file applies to a DSN (the Helm chart's and systemd's way)
	// and to the separate fields; a password given twice is refused.
	fields := createDefaultConfig()
	fields.PasswordFile = "/etc/fleetwatch/clickhouse/password"
	if sc, err := fields.StorageConfig(); err != nil || sc.PasswordFile != fields.PasswordFile || sc.Password != "" {
		t.Errorf("password_file: %+v, %v", sc, err)
	}
	withFile := createDefaultConfig()
	withFile.DSN, withFile.PasswordFile = "clickhouse://fleetwatch_collector@h1:9000/fleetwatch", "/run/pw"
	if sc, err := withFile.StorageConfig(); err != nil || sc.Username != "fleetwatch_collector" || sc.PasswordFile != "/run/pw" {
		t.Errorf("DSN with password_file: %+v, %v", sc, err)
	}
	withFile.DSN = "clickhouse://u:p@h1:9000/fleetwatch"
	if err := withFile.Validate(); err == nil || !strings.Contains(err.Error(), "password") {
		t.Errorf("a DSN password and password_file together: %v", err)
	}
}

func TestPointIncrease(t *testing.T) {
	var p pointState
	steps := []struct {
		name      string
		kind      uint8
		v         float64
		start, ts int64
		given     float64
		want      float64
	}{
		{"first point counts nothing", kindCumulative, 100, 1, 10, 0, 0},
		{"increase", kindCumulative, 110, 1, 20, 0, 10},
		{"flat", kindCumulative, 110, 1, 30, 0, 0},
		{"new start time and lower: restarted", kindCumulative, 5, 2, 40, 0, 5},
		{"increase after restart", kindCumulative, 9, 2, 50, 0, 4},
		{"decrease without new start: reset", kindCumulative, 1, 2, 60, 0, 1},
		{"new start time, still rising: the sender restarted, not the counter", kindCumulative, 4, 3, 65, 0, 3},
		{"a delta sum's increase is as sent", kindDelta, 7, 0, 70, 7, 7},
		{"a gauge has none", kindGauge, 3, 0, 80, 0, 0},
	}
	for _, s := range steps {
		if got := p.advance(s.kind, s.v, s.start, s.ts, s.given); got != s.want {
			t.Fatalf("%s: delta %v, want %v", s.name, got, s.want)
		}
	}
	for _, ts := range []int64{50, 60, 70, 80} {
		if !p.isRecent(ts) {
			t.Errorf("point at %d not remembered", ts)
		}
	}
	if p.isRecent(55) || p.isRecent(0) {
		t.Error("a point never seen is remembered")
	}
}

func TestRawKeyCacheSharesSeriesState(t *testing.T) {
	st := newSeriesState(time.Hour)
	now := time.Now()
	a, dueA := st.entry(7, 100, now)
	b, dueB := st.entry(7, 200, now) // the same series sent with attributes in another order
	if a != b || !dueA || dueB {
		t.Fatalf("entries %p %p, due %v %v: want one entry, due once", a, b, dueA, dueB)
	}
	if st.cached(100, now) != a || st.cached(200, now) != a || st.cached(300, now) != nil {
		t.Fatal("raw keys do not lead to the series")
	}
	if st.cached(100, now.Add(time.Hour)) != nil {
		t.Fatal("a series due for its gpu_series refresh must take the full path")
	}
	st.sweep(now.Add(25 * time.Hour))
	if st.size() != 0 || st.cached(100, now.Add(25*time.Hour)) != nil {
		t.Fatal("sweep kept a series unseen for a day")
	}
}

func TestTruncateKeepsUTF8(t *testing.T) {
	s := strings.Repeat("é", 10) // 2 bytes each
	if got := truncate(s, 5); got != "éé" {
		t.Fatalf("%q", got)
	}
	if truncate("abc", 5) != "abc" {
		t.Fatal("short string changed")
	}
}

// TestConfigTLS reads the exporter's tls section as the Collector does and
// checks what reaches the storage layer.
func TestConfigTLS(t *testing.T) {
	cases := []struct {
		name string
		conf map[string]any
		want func(storage.TLSConfig) bool
	}{
		{"absent: plaintext", map[string]any{}, func(c storage.TLSConfig) bool { return !c.Enabled }},
		{"present: on", map[string]any{"tls": map[string]any{"ca_file": "/ca.pem", "server_name_override": "ch", "min_version": "1.3"}},
			func(c storage.TLSConfig) bool {
				return c.Enabled && c.CAFile == "/ca.pem" && c.ServerName == "ch" && c.MinVersion == "1.3"
			}},
		{"enabled: true as before", map[string]any{"tls": map[string]any{"enabled": true, "insecure_skip_verify": true}},
			func(c storage.TLSConfig) bool { return c.Enabled && c.InsecureSkipVerify }},
		{"enabled: false", map[string]any{"tls": map[string]any{"enabled": false, "ca_file": "/ca.pem"}},
			func(c storage.TLSConfig) bool { return !c.Enabled }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := createDefaultConfig()
			if err := confmap.NewFromStringMap(c.conf).Unmarshal(cfg); err != nil {
				t.Fatal(err)
			}
			sc, err := cfg.StorageConfig()
			if err != nil {
				t.Fatal(err)
			}
			if !c.want(sc.TLS) {
				t.Fatalf("storage TLS %+v", sc.TLS)
			}
		})
	}
	cfg := createDefaultConfig()
	if err := confmap.NewFromStringMap(map[string]any{"tls": map[string]any{"server_name": "ch"}}).Unmarshal(cfg); err == nil {
		t.Fatal("server_name (storage's YAML alias) is not a configtls key in a Collector config")
	}
}

func TestBatchConfigValidate(t *testing.T) {
	def := NewDefaultBatchConfig()
	cases := []struct {
		name string
		edit func(*BatchConfig)
		want string // "" for valid
	}{
		{"defaults", func(*BatchConfig) {}, ""},
		{"one row", func(c *BatchConfig) { c.FlushRows = 1 }, ""},
		{"no rows", func(c *BatchConfig) { c.FlushRows = 0 }, "flush_rows"},
		{"tiny bytes", func(c *BatchConfig) { c.FlushBytes = 100 }, "flush_bytes"},
		{"no delay", func(c *BatchConfig) { c.MaxDelay = 0 }, "max_delay"},
		{"delay over a minute", func(c *BatchConfig) { c.MaxDelay = 2 * time.Minute }, "max_delay"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := def
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("valid config refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v; want one naming %s", err, tc.want)
			}
		})
	}
}

// The batch keys before issue 18 item 4 are refused, not silently ignored;
// the new ones are read.
func TestBatchKeys(t *testing.T) {
	cases := []struct {
		name  string
		batch map[string]any
		ok    bool
	}{
		{"new keys", map[string]any{"flush_rows": 1000, "flush_bytes": 1 << 20, "max_delay": "250ms"}, true},
		{"min_rows", map[string]any{"min_rows": 16384}, false},
		{"flush_timeout", map[string]any{"flush_timeout": "200ms"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := createDefaultConfig()
			err := confmap.NewFromStringMap(map[string]any{"batch": tc.batch}).Unmarshal(cfg)
			if tc.ok != (err == nil) {
				t.Fatalf("unmarshal: %v; want ok=%v", err, tc.ok)
			}
			if tc.ok && (cfg.Batch != BatchConfig{FlushRows: 1000, FlushBytes: 1 << 20, MaxDelay: 250 * time.Millisecond}) {
				t.Errorf("batch = %+v", cfg.Batch)
			}
		})
	}
}
