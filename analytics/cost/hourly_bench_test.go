package cost_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/cost"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// The hourly rollup of a 100,000-GPU fleet, generated in ClickHouse from
// numbers() by formulas (no raw samples): every hour has heldRowsPerHour
// rows of gpu_held_1h, standing for 100,000 GPUs:
//
//   - 6,000 serving rows: 1,000 models × 2 versions (model m/2, version
//     m%2, team m/2 % 50), each version on 3 of the 6 price keys of
//     rollupBook, 40/3 − 1, 40/3 or 40/3 + 1 GPU-hours a row (80,000 GPUs),
//     busy 60 %;
//   - 200 training jobs on one key each (job j on key j % 6, team j % 50),
//     75 GPUs each (15,000), busy 90 %;
//   - per key, 1,000/6 GPU-hours held by system pods and 4,000/6 nobody
//     held.
//
// Rows grow with scopes × price keys × hours, not with GPUs: a bigger
// fleet of the same models adds GPU-hours to the rows, not rows.
const heldRowsPerHour = 6212

const heldRollupSQL = `INSERT INTO %[1]s.gpu_held_1h (hour, kind, model_name, cluster, purchase, gpu_profile, namespace, team, model, model_version,
    cost_center, job, gpus, gpu_hours, busy_gpu_hours, mem_gpu_hours, idle_gpu_hours)
SELECT toDateTime(%[2]d + intDiv(number, %[3]d) * 3600) AS hour, multiIf(r < 6200, 'held', r < 6206, 'system', 'unallocated') AS kind,
    ['H100', 'H100', 'H100', 'A100', 'A100', 'A100'][k + 1] AS model_name, ['us-east', 'us-east', 'eu-west', 'us-east', 'us-east', 'eu-west'][k + 1] AS cluster,
    ['on_demand', 'reserved', 'spot', 'on_demand', 'reserved', 'spot'][k + 1] AS purchase, '' AS gpu_profile,
    multiIf(r < 6000, concat('t', toString(intDiv(intDiv(r, 3), 2) %% 50)), r < 6200, 'training', r < 6206, 'kube-system', '') AS namespace,
    multiIf(r < 6000, concat('t', toString(intDiv(intDiv(r, 3), 2) %% 50)), r < 6200, concat('t', toString((r - 6000) %% 50)), '') AS team,
    if(r < 6000, concat('m', toString(intDiv(intDiv(r, 3), 2))), '') AS model, if(r < 6000, concat('v', toString(intDiv(r, 3) %% 2)), '') AS model_version,
    '' AS cost_center, if(r >= 6000 AND r < 6200, concat('job', toString(r - 6000)), '') AS job,
    toUInt64(round(gh)) AS gpus, gh AS gpu_hours, gh * if(r < 6000, 0.6, if(r < 6200, 0.9, 0)) AS busy_gpu_hours, gh * 0.5 AS mem_gpu_hours, 0 AS idle_gpu_hours
FROM
(
    SELECT number, number %% %[3]d AS r,
        multiIf(r < 6000, (intDiv(r, 3) + 2 * (r %% 3)) %% 6, r < 6200, (r - 6000) %% 6, r < 6206, r - 6200, r - 6206) AS k,
        multiIf(r < 6000, 40 / 3 + toFloat64((r + intDiv(number, %[3]d)) %% 3) - 1, r < 6200, toFloat64(75), r < 6206, 1000 / 6, 4000 / 6) AS gh
    FROM numbers(%[4]d)
)`

// loadHeldRollup writes days of the fleet's hourly rollup from
// rollupStart, records every hour as rolled up, and writes each key's day
// prices into held_day_prices for the plain SQL.
func loadHeldRollup(tb testing.TB, db *storage.Client, days int) time.Duration {
	tb.Helper()
	ctx := context.Background()
	d := db.Config().Database
	_, prices := rollups(tb, 1, days)
	t0 := time.Now()
	for _, q := range []string{
		fmt.Sprintf(heldRollupSQL, d, rollupStart.Unix(), heldRowsPerHour, heldRowsPerHour*24*days),
		fmt.Sprintf(`INSERT INTO %s.gpu_held_1h_hours (hour, rolled_at, rows, gpu_hours)
SELECT toDateTime(%d + number * 3600), now(), %d, 100000 FROM numbers(%d)`, d, rollupStart.Unix(), heldRowsPerHour, 24*days),
		fmt.Sprintf(`CREATE TABLE %s.held_day_prices (d Date, model_name String, cluster String, purchase String, price Float64)
ENGINE = MergeTree ORDER BY (d, model_name, cluster, purchase)`, d),
	} {
		if err := db.Exec(ctx, q); err != nil {
			tb.Fatal(err)
		}
	}
	load := time.Since(t0)
	_, keys := rollupBook(tb)
	batch, err := db.Conn().PrepareBatch(ctx, "INSERT INTO "+d+".held_day_prices (d, model_name, cluster, purchase, price)")
	if err != nil {
		tb.Fatal(err)
	}
	for k, key := range keys {
		for day := range days {
			if err := batch.Append(rollupStart.AddDate(0, 0, day), key.GPUModel, key.Cluster, string(key.Purchase), prices[k*days+day]); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := batch.Send(); err != nil {
		tb.Fatal(err)
	}
	return load
}

// The plain SQL a user would write for each team's daily cost: every held
// row of the table (gpu_held_1h, or gpu_held_1d with day for hour) priced
// by its day's price, summed per day and team.
const heldDailyCostSQL = `SELECT d, team, sum(gpu_hours * price) AS cost
FROM (SELECT toDate(%[2]s) AS d, toString(model_name) AS model_name, toString(cluster) AS cluster, toString(purchase) AS purchase,
        toString(team) AS team, gpu_hours FROM %[1]s.%[3]s WHERE kind = 'held')
ANY INNER JOIN (SELECT d, model_name, cluster, purchase, price FROM %[1]s.held_day_prices) USING (d, model_name, cluster, purchase)
GROUP BY d, team`

// plainDailyTeamCost runs heldDailyCostSQL over gpu_held_1h (daily
// false) or gpu_held_1d: cost by team and day.
func plainDailyTeamCost(tb testing.TB, db *storage.Client, daily bool) map[string]map[int64]float64 {
	tb.Helper()
	at, table := "hour", "gpu_held_1h"
	if daily {
		at, table = "day", "gpu_held_1d"
	}
	rows, err := db.Conn().Query(context.Background(), fmt.Sprintf(heldDailyCostSQL, db.Config().Database, at, table))
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	out := map[string]map[int64]float64{}
	for rows.Next() {
		var d time.Time
		var team string
		var c float64
		if err := rows.Scan(&d, &team, &c); err != nil {
			tb.Fatal(err)
		}
		if out[team] == nil {
			out[team] = map[int64]float64{}
		}
		out[team][time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC).Unix()] = c
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func requireStore(tb testing.TB, db *storage.Client) *cost.Store {
	tb.Helper()
	cfg := cost.NewDefaultStoreConfig()
	cfg.Rollup = cost.RollupRequire
	s, err := cost.NewStore(db, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestHeldRollupPassMatchesPlainSQL: over 3 days of the generated
// rollup, the store's daily series (priced in Go) and the plain SQL give
// every team the same cost every day, and the period totals add up to
// 100,000 GPUs an hour with the hand-computed split.
func TestHeldRollupPassMatchesPlainSQL(t *testing.T) {
	const days = 3
	db := chtest.NewDB(t)
	loadHeldRollup(t, db, days)
	store := requireStore(t, db)
	book, _ := rollupBook(t)
	to := rollupStart.AddDate(0, 0, days)
	ss, err := store.DailySeries(context.Background(), book, rollupStart, to)
	if err != nil {
		t.Fatal(err)
	}
	plain, plainDaily := plainDailyTeamCost(t, db, false), plainDailyTeamCost(t, db, true)
	teams := 0
	for _, s := range ss {
		if s.Scope.Kind != cost.ScopeTeam {
			continue
		}
		teams++
		for _, d := range s.Days {
			want, daily := plain[s.Scope.Name][d.Date.Unix()], plainDaily[s.Scope.Name][d.Date.Unix()]
			if math.Abs(d.Cost-want) > 1e-9*want || math.Abs(daily-want) > 1e-9*want || want == 0 {
				t.Errorf("%s %s: store $%v, plain SQL $%v (hourly) $%v (daily)", s.Scope.Name, d.Date.Format(time.DateOnly), d.Cost, want, daily)
			}
		}
	}
	if teams != 50 {
		t.Errorf("%d team series, want 50", teams)
	}
	tot, err := store.Totals(context.Background(), book, rollupStart, to)
	if err != nil {
		t.Fatal(err)
	}
	// per hour: serving 2,000 rows each of 40/3 − 1, 40/3 and 40/3 + 1
	// GPU-hours (80,000), jobs 15,000, system 1,000, unallocated 4,000
	hours := float64(24 * days)
	for _, c := range []struct {
		what      string
		got, want float64
	}{
		{"provisioned", tot.ProvisionedHours, 100_000 * hours}, {"held", tot.HeldHours, 95_000 * hours},
		{"system", tot.SystemHours, 1_000 * hours}, {"unallocated", tot.UnallocatedHours, 4_000 * hours},
		{"busy", tot.BusyHours, (80_000*0.6 + 15_000*0.9) * hours},
	} {
		if math.Abs(c.got-c.want) > 1e-9*c.want {
			t.Errorf("%s GPU-hours %v, want %v", c.what, c.got, c.want)
		}
	}
	if len(tot.Versions) != 2001 { // 2,000 model versions and the jobs' row without a model
		t.Errorf("%d version rows, want 2,001", len(tot.Versions))
	}
}

// benchHeldDays is the days of the 100,000-GPU rollup the benchmark
// generates (FLEETWATCH_COST_BENCH_DAYS, default 90).
func benchHeldDays(b *testing.B) int {
	if s := os.Getenv("FLEETWATCH_COST_BENCH_DAYS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 90 {
			b.Fatalf("FLEETWATCH_COST_BENCH_DAYS=%q is not 1–90", s)
		}
		return n
	}
	return 90
}

// BenchmarkHeldRollup100kGPUs is the daily cost pass over the hourly
// rollup of 100,000 GPUs × 90 days (6,212 rows an hour, 13.4 M rows),
// generated in the private ClickHouse server (gpu_held_1d filled by its
// view: 559,080 rows): the store's daily series of every model, team and
// job (Store.DailySeries, what the cost detector reads), the period
// totals with each model version's unit cost (Store.Totals), both from
// gpu_held_1d, and the plain SQL a user would write for each team's daily
// cost over gpu_held_1d and over gpu_held_1h. ns/row is per hourly row.
func BenchmarkHeldRollup100kGPUs(b *testing.B) {
	days := benchHeldDays(b)
	db := chtest.NewDB(b)
	load := loadHeldRollup(b, db, days)
	b.Logf("generated %d rollup rows (%d days) in %v", heldRowsPerHour*24*days, days, load.Round(time.Millisecond))
	store := requireStore(b, db)
	book, _ := rollupBook(b)
	ctx := context.Background()
	to := rollupStart.AddDate(0, 0, days)
	rows := float64(heldRowsPerHour * 24 * days)
	report := func(b *testing.B) {
		b.ReportMetric(rows, "rows")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/rows, "ns/row")
	}
	b.Run("store_daily_series", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			ss, err := store.DailySeries(ctx, book, rollupStart, to)
			if err != nil || len(ss) != 1000+50+200 {
				b.Fatalf("%d series (%v), want 1,250", len(ss), err)
			}
		}
		report(b)
	})
	b.Run("store_totals", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			t, err := store.Totals(ctx, book, rollupStart, to)
			if err != nil || len(t.Versions) != 2001 {
				b.Fatalf("%d versions (%v), want 2,001", len(t.Versions), err)
			}
		}
		report(b)
	})
	for _, daily := range []bool{true, false} {
		name := "plain_sql_hourly"
		if daily {
			name = "plain_sql_daily"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if c := plainDailyTeamCost(b, db, daily); len(c) != 50 {
					b.Fatalf("%d teams, want 50", len(c))
				}
			}
			report(b)
		})
	}
}
