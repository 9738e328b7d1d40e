package cost_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/cost"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

// The rollup fleet of the benchmark, defined by formulas so that Go and
// ClickHouse build the same rows: GPU g on day d has price key g % 6, is
// held by team (g·19) % 50, for 12 hours when (g + d) % 10 = 0 and 24
// otherwise.
const (
	rollupKeys  = 6
	rollupTeams = 50
)

var rollupStart = time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)

func rollupRow(g, d int) (key, team int, hours float32) {
	hours = 24
	if (g+d)%10 == 0 {
		hours = 12
	}
	return g % rollupKeys, g * 19 % rollupTeams, hours
}

const rollupSQL = `INSERT INTO cost_rollups
SELECT toUInt16(intDiv(number, %[1]d)) AS day, toUInt32(number %% %[1]d) AS gpu, toUInt8(gpu %% 6) AS key,
       toUInt16(gpu * 19 %% 50) AS team, toFloat32(if((gpu + day) %% 10 = 0, 12, 24)) AS hours
FROM numbers(%[2]d)`

// The plain SQL a user would write for the same totals: join the daily
// price table, multiply, group.
const dailyCostSQL = `SELECT day, team, sum(hours * price) AS cost
FROM cost_rollups ANY INNER JOIN (SELECT key, day, price FROM cost_day_prices) USING (key, day)
GROUP BY day, team ORDER BY day, team`

// rollupBook prices six keys; two change: one at midnight of day 45, one
// at noon of day 60 (a partial day, priced at its mean).
func rollupBook(tb testing.TB) (*cost.PriceBook, []cost.PriceKey) {
	tb.Helper()
	var keys []cost.PriceKey
	var prices []cost.Price
	base := []float64{2.5, 1.6, 0.9, 1.1, 0.7, 0.4}
	for i, gm := range []string{"H100", "A100"} {
		for j, p := range []struct {
			c string
			p cost.Purchase
		}{{"us-east", cost.OnDemand}, {"us-east", cost.Reserved}, {"eu-west", cost.Spot}} {
			k := cost.PriceKey{GPUModel: gm, Cluster: p.c, Purchase: p.p}
			keys = append(keys, k)
			prices = append(prices, cost.Price{PriceKey: k, Effective: rollupStart, PerGPUHour: base[i*3+j]})
		}
	}
	prices = append(prices,
		cost.Price{PriceKey: keys[0], Effective: rollupStart.AddDate(0, 0, 45), PerGPUHour: 3},
		cost.Price{PriceKey: keys[5], Effective: rollupStart.AddDate(0, 0, 60).Add(12 * time.Hour), PerGPUHour: 0.6})
	b, err := cost.NewPriceBook(cost.PriceBookConfig{Currency: "USD", Prices: prices})
	if err != nil {
		tb.Fatal(err)
	}
	return b, keys
}

func rollups(tb testing.TB, gpus, days int) (*cost.Rollups, []float64) {
	tb.Helper()
	book, keys := rollupBook(tb)
	r := &cost.Rollups{Start: rollupStart, Days: days, Keys: keys}
	for t := range rollupTeams {
		r.Groups = append(r.Groups, fmt.Sprintf("team%02d", t))
	}
	n := gpus * days
	r.Day, r.Key, r.Group, r.Hours = make([]uint16, 0, n), make([]uint16, 0, n), make([]uint32, 0, n), make([]float32, 0, n)
	for d := range days {
		for g := range gpus {
			k, t, h := rollupRow(g, d)
			r.Append(d, k, t, h)
		}
	}
	prices, err := r.DayPrices(book, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return r, prices
}

// loadRollups writes the same rollups and day prices into ClickHouse.
func loadRollups(tb testing.TB, db *storage.Client, gpus, days int, prices []float64) {
	tb.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`CREATE TABLE cost_rollups (day UInt16, gpu UInt32, key UInt8, team UInt16, hours Float32) ENGINE = MergeTree ORDER BY (day, gpu)`,
		`CREATE TABLE cost_day_prices (key UInt8, day UInt16, price Float64) ENGINE = MergeTree ORDER BY (key, day)`,
		fmt.Sprintf(rollupSQL, gpus, gpus*days),
	} {
		if err := db.Exec(ctx, q); err != nil {
			tb.Fatal(err)
		}
	}
	batch, err := db.Conn().PrepareBatch(ctx, "INSERT INTO "+db.Config().Database+".cost_day_prices (key, day, price)")
	if err != nil {
		tb.Fatal(err)
	}
	for k := range rollupKeys {
		for d := range days {
			if err := batch.Append(uint8(k), uint16(d), prices[k*days+d]); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := batch.Send(); err != nil {
		tb.Fatal(err)
	}
}

func queryDailyCost(tb testing.TB, db *storage.Client, days int) []float64 {
	tb.Helper()
	rows, err := db.Conn().Query(context.Background(), dailyCostSQL)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	out := make([]float64, days*rollupTeams)
	for rows.Next() {
		var day, team uint16
		var c float64
		if err := rows.Scan(&day, &team, &c); err != nil {
			tb.Fatal(err)
		}
		out[int(day)*rollupTeams+int(team)] = c
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestDailyCostHandRows(t *testing.T) {
	book, keys := rollupBook(t)
	r := &cost.Rollups{Start: rollupStart, Days: 61, Keys: keys, Groups: []string{"a", "b"}}
	r.Append(0, 0, 0, 24)  // H100 on demand day 0: 24 × 2.5 = 60
	r.Append(0, 1, 0, 12)  // H100 reserved: 12 × 1.6 = 19.2
	r.Append(45, 0, 1, 24) // after the change: 24 × 3 = 72
	r.Append(60, 5, 1, 24) // half the day at 0.4, half at 0.6: 12
	prices, err := r.DayPrices(book, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.DailyCost(prices, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		day, group int
		want       float64
	}{{0, 0, 79.2}, {0, 1, 0}, {45, 1, 72}, {60, 1, 12}, {60, 0, 0}} {
		if v := got[c.day*2+c.group]; !near(v, c.want) {
			t.Errorf("day %d group %d: %v, want %v", c.day, c.group, v, c.want)
		}
	}
	r.Append(61, 0, 0, 1)
	if _, err := r.DailyCost(prices, nil); err == nil {
		t.Error("a row past the last day was accepted")
	}
}

// TestDailyCostMatchesClickHouse: the Go pass and the plain SQL give the
// same cost for every day and team (2,000 GPUs × 90 days).
func TestDailyCostMatchesClickHouse(t *testing.T) {
	const gpus, days = 2000, 90
	r, prices := rollups(t, gpus, days)
	got, err := r.DailyCost(prices, nil)
	if err != nil {
		t.Fatal(err)
	}
	db := chtest.NewDB(t)
	loadRollups(t, db, gpus, days, prices)
	want := queryDailyCost(t, db, days)
	var total float64
	for i := range want {
		total += got[i]
		if math.Abs(got[i]-want[i]) > 1e-9*math.Max(1, want[i]) {
			t.Fatalf("day %d team %d: Go %v, ClickHouse %v", i/rollupTeams, i%rollupTeams, got[i], want[i])
		}
	}
	if total == 0 {
		t.Fatal("no cost at all")
	}
}

const benchGPUs, benchDays = 100_000, 90

// BenchmarkDailyCost100kGPUs90Days is the daily cost pass over 100,000
// GPUs × 90 days of rollups (9 M rows) in memory: day prices from the book,
// then cost per day and team.
func BenchmarkDailyCost100kGPUs90Days(b *testing.B) {
	r, _ := rollups(b, benchGPUs, benchDays)
	book, _ := rollupBook(b)
	var prices, out []float64
	var err error
	b.ReportAllocs()
	for b.Loop() {
		if prices, err = r.DayPrices(book, prices); err != nil {
			b.Fatal(err)
		}
		if out, err = r.DailyCost(prices, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(r.Len()), "rows")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(r.Len()), "ns/row")
}

// BenchmarkDailyCostClickHouseSQL is the same pass as the plain SQL a user
// would write, on the private ClickHouse server (the same rows, read back:
// 4,500 day × team sums).
func BenchmarkDailyCostClickHouseSQL(b *testing.B) {
	_, prices := rollups(b, 1, benchDays) // the prices only
	db := chtest.NewDB(b)
	loadRollups(b, db, benchGPUs, benchDays, prices)
	var out []float64
	b.ReportAllocs()
	for b.Loop() {
		out = queryDailyCost(b, db, benchDays)
	}
	b.ReportMetric(float64(benchGPUs*benchDays), "rows")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(benchGPUs*benchDays), "ns/row")
	if out[0] == 0 {
		b.Fatal("no cost")
	}
}
