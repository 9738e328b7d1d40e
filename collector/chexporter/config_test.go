package chexporter

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	cfg := createDefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if !cfg.QueueConfig.HasValue() || !cfg.QueueConfig.Get().BlockOnOverflow || cfg.RetryConfig.MaxElapsedTime != 0 {
		t.Fatal("the defaults must queue, block on overflow, and retry without giving up")
	}
	bad := createDefaultConfig()
	bad.Endpoints = []string{"nohost"}
	bad.MaxLabelLength = 1
	bad.MaxAge = 0
	bad.SeriesRefresh = 0
	bad.Include = []string{"["}
	bad.MaxInsertRows = 0
	err := bad.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"nohost", "max_label_length", "max_age", "series_refresh", `metric glob "["`, "max_insert_rows"} {
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
}

func TestSeriesDelta(t *testing.T) {
	var e seriesEntry
	steps := []struct {
		name      string
		v         float64
		start, ts int64
		want      float64
	}{
		{"first point counts nothing", 100, 1, 10, 0},
		{"increase", 110, 1, 20, 10},
		{"flat", 110, 1, 30, 0},
		{"replay of the latest point", 110, 1, 30, 0},
		{"replay of an earlier point keeps its delta", 110, 1, 20, 10},
		{"new start time: restarted", 5, 2, 40, 5},
		{"increase after restart", 9, 2, 50, 4},
		{"decrease without new start: reset", 1, 2, 60, 1},
		{"replay of the restart", 5, 2, 40, 5},
		{"late point outside the window: counted at the later point", 3, 2, 15, 0},
		{"next point after replays", 4, 2, 70, 3},
	}
	for _, s := range steps {
		if got := e.delta(s.v, s.start, s.ts); got != s.want {
			t.Fatalf("%s: delta %v, want %v", s.name, got, s.want)
		}
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
