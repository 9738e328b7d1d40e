package cost_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/cost"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/storage/heldrows"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// TestServingHandComputed stores two servers of model "chat" and one of
// "embed" and checks the store's serving efficiency by hand:
//
//   - chat tokens: server a counts 0, 100, 250, restarts, 50, 80 (an
//     increase of 100 + 150 + 50 + 30 = 330); server b 1,000 then 1,400
//     (400): 730 tokens over the hour, 730/3,600 tokens/s; at $7.30 that
//     is $10,000 per million tokens;
//   - chat batches: a reports 4 and 6, b 5 (mean 5) of a largest batch of
//     8 on both: efficiency 0.625;
//   - chat cache: hits 0 → 30, lookups 0 → 120: hit ratio 0.25;
//   - embed reports only tokens; its batch and cache are unknown (NaN);
//   - a sample outside the hour does not count.
func TestServingHandComputed(t *testing.T) {
	db := chtest.NewDB(t)
	ctx := context.Background()
	from := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	to := from.Add(time.Hour)
	at := func(minutes ...int) []time.Time {
		var out []time.Time
		for _, m := range minutes {
			out = append(out, from.Add(time.Duration(m)*time.Minute))
		}
		return out
	}
	var s heldrows.Rows
	s.Server("a", "chat", telemetry.ModelTokens, at(1, 10, 20, 30, 40), []float64{0, 100, 250, 50, 80})
	s.Server("b", "chat", telemetry.ModelTokens, at(5, 50, 70), []float64{1000, 1400, 9999}) // minute 70 is past the hour
	s.Server("a", "chat", telemetry.ModelBatchSize, at(10, 20), []float64{4, 6})
	s.Server("b", "chat", telemetry.ModelBatchSize, at(10), []float64{5})
	s.Server("a", "chat", telemetry.ModelMaxBatchSize, at(10, 20), []float64{8, 8})
	s.Server("b", "chat", telemetry.ModelMaxBatchSize, at(10), []float64{8})
	s.Server("a", "chat", telemetry.ModelCacheHits, at(1, 30), []float64{0, 30})
	s.Server("a", "chat", telemetry.ModelCacheLookups, at(1, 30), []float64{0, 120})
	s.Server("c", "embed", telemetry.ModelTokens, at(0, 59), []float64{10, 3610})
	if err := s.Write(ctx, db); err != nil {
		t.Fatal(err)
	}
	store, err := cost.NewStore(db, cost.NewDefaultStoreConfig())
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.Serving(ctx, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("models %v, want chat and embed", got)
	}
	chat, embed := got["chat"], got["embed"]
	for _, c := range []struct {
		what      string
		got, want float64
	}{
		{"chat tokens", chat.Tokens, 730},
		{"chat tokens/s", chat.TokensPerSecond(), 730.0 / 3600},
		{"chat $ per 1M tokens at $7.30", chat.CostPerMillionTokens(7.30), 10000},
		{"chat mean batch", chat.BatchSize, 5},
		{"chat batch efficiency", chat.BatchEfficiency(), 0.625},
		{"chat cache hit ratio", chat.CacheHitRatio(), 0.25},
		{"embed tokens/s", embed.TokensPerSecond(), 1},
	} {
		if math.Abs(c.got-c.want) > 1e-9*math.Max(1, c.want) {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	if !math.IsNaN(embed.BatchEfficiency()) || !math.IsNaN(embed.CacheHitRatio()) {
		t.Errorf("embed reports no batches or cache: efficiency %v, hit ratio %v, want NaN", embed.BatchEfficiency(), embed.CacheHitRatio())
	}
}
