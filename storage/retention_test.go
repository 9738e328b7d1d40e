package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestEnforceRetentionDropsOnlyExpiredPartitions(t *testing.T) {
	c := chtest.NewDB(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		t.Fatal(err)
	}
	// gpu_samples keeps 14 days in daily partitions; gpu_events 400 days in monthly ones.
	samples := &storage.GPUSampleBlock{}
	for _, age := range []int{30, 15, 14, 13, 0} {
		samples.Append(&storage.GPUSample{Time: now.AddDate(0, 0, -age), Metric: "m", Series: uint64(age), Value: 1})
	}
	events := &storage.GPUEventBlock{}
	for _, age := range []int{500, 100} {
		events.Append(&storage.GPUEvent{Time: now.AddDate(0, 0, -age), Event: "xid", Code: int64(age)})
	}
	for _, b := range []storage.Block{samples.Block(), events.Block()} {
		if err := w.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	dropped, err := c.EnforceRetention(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, d := range dropped {
		got[d.Table+"/"+d.Partition] = true
	}
	// The 14-day-old partition (2026-11-09) ends 2026-11-10 00:00, after the
	// cutoff of 2026-11-09 12:00, so it is kept; the 15-day-old one is not.
	want := map[string]bool{"gpu_samples/20261024": true, "gpu_samples/20261108": true, "gpu_events/202507": true}
	if len(got) != len(want) {
		t.Fatalf("dropped %v, want %v", got, want)
	}
	for k := range want {
		if !got[k] {
			t.Errorf("did not drop %s (dropped %v)", k, got)
		}
	}
	if n := count(t, c, "gpu_samples"); n != 3 {
		t.Errorf("%d samples left, want 3", n)
	}
	if n := count(t, c, "gpu_events"); n != 1 {
		t.Errorf("%d events left, want 1", n)
	}
	// Nothing more to do on a second pass.
	if again, err := c.EnforceRetention(ctx, now); err != nil || len(again) != 0 {
		t.Fatalf("second pass dropped %v, %v", again, err)
	}
}

func TestRetentionOverride(t *testing.T) {
	srv := chtest.Server(t)
	c := chtest.OpenDB(t, srv, true)
	ctx := context.Background()
	cfg := c.Config()
	cfg.RetentionDays = map[string]int{"gpu_samples": 0} // keep forever
	c2, err := storage.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	w, _ := c2.NewWriter(storage.NewDefaultWriterConfig())
	b := &storage.GPUSampleBlock{}
	b.Append(&storage.GPUSample{Time: time.Now().AddDate(-1, 0, 0), Metric: "m", Value: 1})
	if err := w.Write(ctx, b.Block()); err != nil {
		t.Fatal(err)
	}
	if dropped, err := c2.EnforceRetention(ctx, time.Now()); err != nil || len(dropped) != 0 {
		t.Fatalf("dropped %v, %v; retention 0 keeps forever", dropped, err)
	}
}
