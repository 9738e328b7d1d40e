package cost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
)

// The hourly rollup (gpu_held_1h, migration 17; issue 19 item 10). At
// 100,000 GPUs the daily cost pass cannot join gpu_samples_1m with
// gpu_series on every read (docs/BENCHMARKS.md, "The cost detector's daily
// read"), so each completed hour is rolled up once into held GPU-hours per
// price key and holder scope, and the daily series and period totals read
// those rows. A materialized view cannot do it: the holder of a GPU-hour
// is in gpu_series and its usage in gpu_samples_1m, and the split among
// concurrent holders needs the whole hour. The analyzer's hourly pass
// (RollUp, the cost_rollup detector) writes each hour once and records it
// in gpu_held_1h_hours; a period is read from the rollup only when every
// one of its hours is recorded (RollupMode says what happens otherwise).

// RollupMode is when the Store reads the hourly rollup.
type RollupMode string

// The rollup modes.
const (
	// RollupAuto reads the rollup when it covers every hour of the
	// period, and the raw samples otherwise (correct, but slow at fleet
	// scale; logged).
	RollupAuto RollupMode = "auto"
	// RollupRequire refuses a period the rollup does not cover.
	RollupRequire RollupMode = "require"
	// RollupOff always reads the raw samples.
	RollupOff RollupMode = "off"
)

// ErrRollupMissing is returned under RollupRequire for a period with hours
// the hourly pass has not rolled up.
var ErrRollupMissing = errors.New("hourly cost rollup (gpu_held_1h) is missing hours")

// Rollup kinds: who held a GPU-hour.
const (
	KindHeld        = "held"
	KindSystem      = "system"
	KindUnallocated = "unallocated"
)

// idleSM is the SM activity below which a rolled-up GPU-hour counts in
// idle_gpu_hours: the waste detector's default IdleSM.
const idleSM = 0.05

// rollupColumns are gpu_held_1h's columns in rollupSelectSQL's order.
const rollupColumns = `hour, kind, model_name, cluster, purchase, gpu_profile, namespace, team, model, model_version, cost_center, job,
    gpus, gpu_hours, busy_gpu_hours, mem_gpu_hours, idle_gpu_hours`

// RollupSelectSQL returns the rows of gpu_held_1h for [from, to) computed
// from gpu_samples_1m and gpu_series (the hourly pass's SELECT). Per GPU
// (or MIG instance) and hour: the holders outside the system namespaces
// split it equally (kind held); without one, the system pods that held it
// (kind system); without any holder, its unheld series (kind
// unallocated). Each row weighs its fraction of the physical GPU (a
// 3g.40gb instance 3/7) divided by the number of rows it is split into,
// so an hour's gpu_hours add up to its provisioned GPU-hours.
func RollupSelectSQL(database string, from, to time.Time, system []string) string {
	isSystem := "0"
	if len(system) > 0 {
		isSystem = "ns IN " + chsql.In(system)
	}
	return fmt.Sprintf(`SELECT h AS hour, kind, gmod AS model_name, clus AS cluster, tupleElement(x, 7) AS purchase, prof AS gpu_profile,
    tupleElement(x, 1) AS namespace, tupleElement(x, 2) AS team, tupleElement(x, 3) AS model, tupleElement(x, 4) AS model_version,
    tupleElement(x, 5) AS cost_center, tupleElement(x, 6) AS job,
    count() AS gpus, sum(w) AS gpu_hours, sum(w * tupleElement(x, 8)) AS busy_gpu_hours, sum(w * tupleElement(x, 9)) AS mem_gpu_hours,
    sum(if(tupleElement(x, 8) < %s, w, 0)) AS idle_gpu_hours
FROM
(
    SELECT h, gmod, clus, prof, kind, hs, frac / length(hs) AS w
    FROM
    (
        SELECT h, gmod, clus, prof, if(length(held) > 0, 'held', if(length(sys) > 0, 'system', 'unallocated')) AS kind,
            if(length(held) > 0, held, if(length(sys) > 0, sys, idle)) AS hs,
            if(toFloat64OrZero(extract(prof, '^([1-7])g[.]')) > 0, toFloat64OrZero(extract(prof, '^([1-7])g[.]')) / 7, 1) AS frac
        FROM
        (
            SELECT h, uuid, gi, any(gp) AS prof, any(gm) AS gmod, any(cl) AS clus,
                groupArrayIf(x0, hd AND NOT sy) AS held, groupArrayIf(x0, hd AND sy) AS sys, groupArrayIf(x0, NOT hd) AS idle
            FROM
            (
                SELECT h, uuid, gi, gp, gm, cl, (ns != '' OR pd != '' OR jb != '') AS hd, ns != '' AND %s AS sy,
                    tuple(ns, team, mdl, ver, cc, jb, pur,
                        if(sm_n > 0, sm_s / sm_n, if(u_n > 0, u_s / u_n / 100, 0)),
                        if(used_n > 0 AND free_n > 0 AND used_s / used_n + free_s / free_n > 0, (used_s / used_n) / (used_s / used_n + free_s / free_n), 0)) AS x0
                FROM
                (
%s
                ) AS q3
            ) AS q4
            GROUP BY h, uuid, gi
        ) AS q5
    ) AS q6
) AS q7
ARRAY JOIN hs AS x
GROUP BY hour, kind, model_name, cluster, purchase, gpu_profile, namespace, team, model, model_version, cost_center, job`,
		chsql.Float(idleSM), isSystem, heldRowsSQL(database, from, to))
}

// RollUpSQL returns the hourly pass's INSERT of [from, to) into
// gpu_held_1h.
func RollUpSQL(database string, from, to time.Time, system []string) string {
	return fmt.Sprintf("INSERT INTO %s (%s)\n%s", chsql.Ident(database, "gpu_held_1h"), rollupColumns, RollupSelectSQL(database, from, to, system))
}

// hourly returns the whole hours of [from, to).
func hourly(from, to time.Time) (time.Time, time.Time) {
	from = from.UTC().Truncate(time.Hour)
	to = to.UTC().Truncate(time.Hour)
	return from, to
}

// RolledHours returns the hours of [from, to) recorded in
// gpu_held_1h_hours.
func (s *Store) RolledHours(ctx context.Context, from, to time.Time) (map[int64]bool, error) {
	from, to = hourly(from, to)
	var res chsql.Result
	h := res.Time("hour")
	out := map[int64]bool{}
	q := fmt.Sprintf("SELECT DISTINCT hour FROM %s WHERE %s", chsql.Ident(s.client.Config().Database, "gpu_held_1h_hours"), chsql.Between("hour", from, to))
	if err := res.ForRows(ctx, s.client, q, func(r int) { out[h.Seconds(r)] = true }); err != nil {
		return nil, fmt.Errorf("rolled-up hours: %w", err)
	}
	return out, nil
}

// missingHours returns the hours of [from, to) not rolled up.
func (s *Store) missingHours(ctx context.Context, from, to time.Time) ([]time.Time, error) {
	from, to = hourly(from, to)
	done, err := s.RolledHours(ctx, from, to)
	if err != nil {
		return nil, err
	}
	var out []time.Time
	for t := from; t.Before(to); t = t.Add(time.Hour) {
		if !done[t.Unix()] {
			out = append(out, t)
		}
	}
	return out, nil
}

// rollupRun is the most hours one INSERT of the pass rolls up.
const rollupRun = 24

// RollUp is the hourly pass: it rolls each whole hour of [from, to) not
// yet in gpu_held_1h_hours up into gpu_held_1h and records it there (runs
// of up to a day of consecutive hours per INSERT), and returns how many
// hours it rolled up. System namespaces are the store's (a holder there
// does not split a GPU-hour with workloads). An hour with rollup rows but
// no record (a pass that died between the two inserts) is refused: take
// its rows out (docs/RUNBOOK.md) before rolling it up again.
func (s *Store) RollUp(ctx context.Context, from, to time.Time) (int, error) {
	missing, err := s.missingHours(ctx, from, to)
	if err != nil {
		return 0, err
	}
	done := 0
	for i := 0; i < len(missing); {
		j := i + 1
		for j < len(missing) && j-i < rollupRun && missing[j].Equal(missing[j-1].Add(time.Hour)) {
			j++
		}
		if err := s.rollUpRun(ctx, missing[i:j]); err != nil {
			return done, err
		}
		done += j - i
		i = j
	}
	return done, nil
}

// rollUpRun rolls up consecutive hours.
func (s *Store) rollUpRun(ctx context.Context, hours []time.Time) error {
	db := s.client.Config().Database
	from, to := hours[0], hours[len(hours)-1].Add(time.Hour)
	span := from.Format(time.RFC3339) + " to " + to.Format(time.RFC3339)
	var n uint64
	if err := s.client.QueryScalar(ctx, fmt.Sprintf("SELECT count() FROM %s WHERE %s", chsql.Ident(db, "gpu_held_1h"), chsql.Between("hour", from, to)), &n); err != nil {
		return fmt.Errorf("cost rollup %s: %w", span, err)
	}
	if n > 0 {
		return fmt.Errorf("cost rollup %s: %d rows in gpu_held_1h without a gpu_held_1h_hours record (an interrupted pass): "+
			"take them out of gpu_held_1h and gpu_held_1d (docs/RUNBOOK.md, \"The hourly rollup\"), then roll the hours up again", span, n)
	}
	if err := s.client.Exec(ctx, RollUpSQL(db, from, to, s.cfg.SystemNamespaces)); err != nil {
		return fmt.Errorf("cost rollup %s: %w", span, err)
	}
	list := make([]string, len(hours))
	for i, h := range hours {
		list[i] = chsql.Time(h)
	}
	mark := fmt.Sprintf(`INSERT INTO %s (hour, rolled_at, rows, gpu_hours)
SELECT hour, %s, rows, gh
FROM (SELECT arrayJoin([%s]) AS hour) AS q1
ANY LEFT JOIN (SELECT hour, count() AS rows, sum(gpu_hours) AS gh FROM %s WHERE %s GROUP BY hour) AS q2 USING hour`,
		chsql.Ident(db, "gpu_held_1h_hours"), chsql.Time(time.Now()), strings.Join(list, ", "), chsql.Ident(db, "gpu_held_1h"), chsql.Between("hour", from, to))
	if err := s.client.Exec(ctx, mark); err != nil {
		return fmt.Errorf("cost rollup %s: record the hours: %w", span, err)
	}
	return nil
}

// useRollup says whether [from, to) is read from the rollup, by the
// store's RollupMode.
func (s *Store) useRollup(ctx context.Context, from, to time.Time) (bool, error) {
	if s.cfg.Rollup == RollupOff {
		return false, nil
	}
	missing, err := s.missingHours(ctx, from, to)
	if err != nil {
		return false, err
	}
	if len(missing) == 0 {
		return true, nil
	}
	if s.cfg.Rollup == RollupRequire {
		return false, fmt.Errorf("%w: %d of the hours from %s to %s, the first %s", ErrRollupMissing, len(missing),
			from.Format(time.RFC3339), to.Format(time.RFC3339), missing[0].Format(time.RFC3339))
	}
	slog.Default().Info("cost store: hourly rollup incomplete, reading raw samples", "from", from, "to", to,
		"missing_hours", len(missing), "first_missing", missing[0])
	return false, nil
}

// rollupTable is the rollup a period is read from: gpu_held_1d (filled by
// a materialized view on gpu_held_1h) for whole UTC days, gpu_held_1h
// otherwise; and its time column.
func rollupTable(database string, from, to time.Time) (table, at string) {
	if from.Equal(from.Truncate(24*time.Hour)) && to.Equal(to.Truncate(24*time.Hour)) {
		return chsql.Ident(database, "gpu_held_1d"), "day"
	}
	return chsql.Ident(database, "gpu_held_1h"), "hour"
}

// Totals are a period's GPU-hours and cost from the hourly rollup: what
// was provisioned, who held it (direct cost by model and version, the
// unit cost of every model version), and the rest — GPU-hours held only
// by system pods and GPU-hours nobody held.
type Totals struct {
	From, To         time.Time
	Currency         string
	ProvisionedHours float64
	ProvisionedCost  float64
	HeldHours        float64
	HeldCost         float64
	BusyHours        float64
	SystemHours      float64
	SystemCost       float64
	UnallocatedHours float64
	UnallocatedCost  float64
	IdleHeldHours    float64 // held GPU-hours below SM activity 0.05
	// Versions are the direct cost of each model version's held
	// GPU-hours and its traffic, by model then version; holders without
	// a model label are in one row with an empty Model.
	Versions []VersionCost
}

// VersionCost is a model version's direct cost over a period, and per
// 1,000 requests (0 without requests: cost without traffic).
type VersionCost struct {
	Model, Version  string
	GPUHours        float64
	BusyGPUHours    float64
	Cost            float64
	Requests        float64
	Per1000Requests float64
}

// totalsSQL returns the sums of [from, to) per kind and model version
// over src (a rollup table, or RollupSelectSQL as a subquery; time column
// at), priced in ClickHouse by p.
func totalsSQL(src, at string, p *dayPricing, from, to time.Time) string {
	return fmt.Sprintf(`SELECT toString(kind) AS k, toString(model) AS mdl, toString(model_version) AS ver,
    sum(gpu_hours) AS gh, sum(gpu_hours * price) AS cost, sum(busy_gpu_hours) AS busy, sum(idle_gpu_hours) AS idle
FROM
(
    SELECT kind, model, model_version, gpu_hours, busy_gpu_hours, idle_gpu_hours, %[3]s AS ki, %[4]s AS price
    FROM %[1]s
    WHERE %[2]s
) AS q1
GROUP BY k, mdl, ver
ORDER BY k, mdl, ver`, src, chsql.Between(at, from, to), p.kiExpr(), p.priceExpr("ki", at))
}

// Totals reads [from, to) (whole hours) from the rollup (the daily one
// for whole days) — or, where RollupMode allows, computes the same rows
// from the raw samples (reading them twice: the price keys, then the
// sums) — priced in ClickHouse at each day's mean price per GPU-hour over
// the part of the day in the period. Cost per 1,000 requests of each
// model version uses Traffic's requests.
func (s *Store) Totals(ctx context.Context, book *PriceBook, from, to time.Time) (Totals, error) {
	from, to = hourly(from, to)
	if !to.After(from) {
		return Totals{}, fmt.Errorf("cost totals: empty period %v to %v", from, to)
	}
	db := s.client.Config().Database
	roll, err := s.useRollup(ctx, from, to)
	if err != nil {
		return Totals{}, err
	}
	src, at := rollupTable(db, from, to)
	if !roll {
		src, at = "(\n"+RollupSelectSQL(db, from, to, s.cfg.SystemNamespaces)+"\n)", "hour"
	}
	p, err := s.newDayPricing(ctx, book, src, at, from, to)
	if err != nil {
		return Totals{}, fmt.Errorf("cost totals: %w", err)
	}
	t := Totals{From: from, To: to, Currency: book.Currency()}
	var res chsql.Result
	k, mdl, ver := res.Str("k"), res.Str("mdl"), res.Str("ver")
	gh, c, busy, idle := res.F64("gh"), res.F64("cost"), res.F64("busy"), res.F64("idle")
	versions := map[[2]string]*VersionCost{}
	var order [][2]string
	version := func(vk [2]string) *VersionCost {
		v, ok := versions[vk]
		if !ok {
			v = &VersionCost{Model: vk[0], Version: vk[1]}
			versions[vk] = v
			order = append(order, vk)
		}
		return v
	}
	err = res.ForRows(ctx, s.client, totalsSQL(src, at, p, from, to), func(r int) {
		h, cost := gh.At(r), c.At(r)
		t.ProvisionedHours += h
		t.ProvisionedCost += cost
		switch k.At(r) {
		case KindHeld:
			t.HeldHours += h
			t.HeldCost += cost
			t.BusyHours += busy.At(r)
			t.IdleHeldHours += idle.At(r)
			v := version([2]string{mdl.At(r), ver.At(r)})
			v.GPUHours += h
			v.BusyGPUHours += busy.At(r)
			v.Cost += cost
		case KindSystem:
			t.SystemHours += h
			t.SystemCost += cost
		default:
			t.UnallocatedHours += h
			t.UnallocatedCost += cost
		}
	})
	if err == nil && math.IsNaN(t.ProvisionedCost) {
		err = p.err()
	}
	if err != nil {
		return Totals{}, fmt.Errorf("cost totals: %w", err)
	}
	traffic, err := s.Traffic(ctx, from, to)
	if err != nil {
		return Totals{}, err
	}
	for _, tr := range traffic {
		version([2]string{tr.Model, tr.Version}).Requests += tr.Requests
	}
	for _, vk := range order {
		v := versions[vk]
		if v.Requests > 0 {
			v.Per1000Requests = v.Cost / v.Requests * 1000
		}
		t.Versions = append(t.Versions, *v)
	}
	sortVersions(t.Versions)
	return t, nil
}

// RollupDetector is the analyzer's hourly pass as a fleet.Detector: each
// hourly window rolls its hour (and any earlier hour of the window not
// yet rolled up) into gpu_held_1h. It raises nothing.
type RollupDetector struct {
	store *Store
}

// NewRollupDetector runs store's RollUp hourly.
func NewRollupDetector(store *Store) *RollupDetector { return &RollupDetector{store: store} }

// Name implements fleet.Detector.
func (d *RollupDetector) Name() string { return "cost_rollup" }

// Interval implements fleet.Detector: an hour.
func (d *RollupDetector) Interval() time.Duration { return time.Hour }

// Evaluate implements fleet.Detector.
func (d *RollupDetector) Evaluate(ctx context.Context, w fleet.Window) ([]fleet.Detection, error) {
	_, err := d.store.RollUp(ctx, w.Start, w.End)
	return nil, err
}

// sortVersions orders by model, then version.
func sortVersions(vs []VersionCost) {
	slices.SortFunc(vs, func(a, b VersionCost) int {
		if c := strings.Compare(a.Model, b.Model); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// dayPricing is the price of every price key on every day of a period,
// as SQL: the rollup rows are priced in ClickHouse, so a 90-day pass
// brings back rows per scope and day, not per price key as well.
type dayPricing struct {
	keys   []PriceKey // by ki − 1
	raw    []string   // the rows' model_name, cluster, purchase joined by tabs
	start  time.Time  // 00:00 UTC of the period's first day
	days   int
	prices []float64 // [ki*days + day]: the mean price per GPU-hour over the part of the day in the period; NaN without one
	errs   []error   // by ki: why a price is NaN
}

// rawKeyExpr is a row's price key as dayPricing.raw spells it.
const rawKeyExpr = `concat(toString(model_name), '\t', toString(cluster), '\t', toString(purchase))`

// newDayPricing reads the price keys of src's rows in [from, to) and
// prices them from book.
func (s *Store) newDayPricing(ctx context.Context, book *PriceBook, src, at string, from, to time.Time) (*dayPricing, error) {
	p := &dayPricing{start: from.Truncate(24 * time.Hour)}
	p.days = int(to.Sub(p.start).Hours()/24 + 0.999999)
	var res chsql.Result
	k := res.Str("k")
	q := fmt.Sprintf("SELECT DISTINCT %s AS k FROM %s WHERE %s ORDER BY k", rawKeyExpr, src, chsql.Between(at, from, to))
	if err := res.ForRows(ctx, s.client, q, func(r int) { p.raw = append(p.raw, k.At(r)) }); err != nil {
		return nil, fmt.Errorf("price keys: %w", err)
	}
	for _, raw := range p.raw {
		f := strings.SplitN(raw, "\t", 3)
		for len(f) < 3 {
			f = append(f, "")
		}
		key := PriceKey{GPUModel: f[0], Cluster: f[1], Purchase: s.cfg.Purchase}
		if pu := Purchase(f[2]); pu.valid() {
			key.Purchase = pu
		}
		p.keys = append(p.keys, key)
		var kerr error
		for d := range p.days {
			dFrom := maxTime(p.start.AddDate(0, 0, d), from)
			dTo := minTime(p.start.AddDate(0, 0, d+1), to)
			c, err := book.Cost(key, dFrom, dTo)
			if err != nil {
				kerr = err
				c = math.NaN()
			}
			p.prices = append(p.prices, c/dTo.Sub(dFrom).Hours())
		}
		p.errs = append(p.errs, kerr)
	}
	return p, nil
}

// kiExpr is a row's price key index (1-based) and priceExpr its price,
// for a row whose time column is at.
func (p *dayPricing) kiExpr() string {
	return fmt.Sprintf("indexOf(%s, %s)", chsql.Strings(p.raw), rawKeyExpr)
}

func (p *dayPricing) priceExpr(ki, at string) string {
	if len(p.raw) == 0 {
		return "0"
	}
	return fmt.Sprintf("arrayElement(%s, (%s - 1) * %d + intDiv(toUInt32(toStartOfDay(%s)) - %d, 86400) + 1)",
		chsql.Floats(p.prices), ki, p.days, at, p.start.Unix())
}

// err returns why a priced sum came out NaN: the first key without a price.
func (p *dayPricing) err() error {
	for i, e := range p.errs {
		if e != nil {
			return fmt.Errorf("%s: %w", p.keys[i], e)
		}
	}
	return errors.New("a price is not a number")
}

// teamExpr is a held row's team, filled from its model's owner (Owners)
// where the pod carries no team label.
func (s *Store) teamExpr(ctx context.Context, src, at string, from, to time.Time) (string, error) {
	if s.Owners == nil {
		return "toString(team)", nil
	}
	var res chsql.Result
	m := res.Str("m")
	var models, teams []string
	q := fmt.Sprintf("SELECT DISTINCT toString(model) AS m FROM %s WHERE kind = 'held' AND team = '' AND model != '' AND %s", src, chsql.Between(at, from, to))
	if err := res.ForRows(ctx, s.client, q, func(r int) {
		if team, _, ok := s.Owners(m.At(r)); ok && team != "" {
			models, teams = append(models, m.At(r)), append(teams, team)
		}
	}); err != nil {
		return "", fmt.Errorf("owners: %w", err)
	}
	if len(models) == 0 {
		return "toString(team)", nil
	}
	return fmt.Sprintf("if(team = '', transform(toString(model), %s, %s, ''), toString(team))", chsql.Strings(models), chsql.Strings(teams)), nil
}

// rollupSeriesSQL returns the scope-day sums of the held rollup rows of
// [from, to) in table (time column at): cost priced in ClickHouse by p,
// GPU-hours, busy GPU-hours, the price keys (their ki, comma-separated: a
// string decodes far cheaper than an array) and a model's team.
func rollupSeriesSQL(table, at, team string, p *dayPricing, from, to time.Time) string {
	return fmt.Sprintf(`SELECT toDateTime(toStartOfDay(t)) AS d, tupleElement(s, 1) AS sk, tupleElement(s, 2) AS sn,
    sum(gh * price) AS cost, sum(gh) AS held, sum(busy) AS busy, arrayStringConcat(arrayMap(x -> toString(x), groupUniqArray(ki)), ',') AS keys, anyIf(tm, tm != '') AS tm
FROM
(
    SELECT %[2]s AS t, gpu_hours AS gh, busy_gpu_hours AS busy, %[3]s AS tm, %[4]s AS ki, %[5]s AS price,
        [('model', toString(model)), ('team', tm), ('job', toString(job))] AS scopes
    FROM %[1]s
    WHERE kind = 'held' AND %[6]s
) AS q1
ARRAY JOIN scopes AS s
WHERE sn != ''
GROUP BY d, sk, sn`, table, at, team, p.kiExpr(), p.priceExpr("ki", at), chsql.Between(at, from, to))
}

// rollupSeries is DailySeries from the rollup (the whole of [from, to)
// rolled up): priced in ClickHouse, rows per scope and day.
func (s *Store) rollupSeries(ctx context.Context, book *PriceBook, b *seriesBuilder, from, to time.Time) error {
	table, at := rollupTable(s.client.Config().Database, from, to)
	p, err := s.newDayPricing(ctx, book, table, at, from, to)
	if err != nil {
		return err
	}
	team, err := s.teamExpr(ctx, table, at, from, to)
	if err != nil {
		return err
	}
	var res chsql.Result
	d, sk, sn, tm := res.Time("d"), res.Str("sk"), res.Str("sn"), res.Str("tm")
	c, held, busy, keys := res.F64("cost"), res.F64("held"), res.F64("busy"), res.Str("keys")
	nan := false
	err = res.ForRows(ctx, s.client, rollupSeriesSQL(table, at, team, p, from, to), func(r int) {
		i := b.day(time.Unix(d.Seconds(r), 0).UTC())
		if i < 0 {
			return
		}
		sc := Scope{Kind: ScopeKind(sk.At(r)), Name: sn.At(r)}
		if sc.Kind == ScopeModel && tm.At(r) != "" {
			b.teamOf[sc.Name] = tm.At(r)
		}
		day := b.at(sc, i)
		day.Cost += c.At(r)
		day.GPUHours += held.At(r)
		day.BusyGPUHours += busy.At(r)
		nan = nan || math.IsNaN(c.At(r))
		ki := 0
		for _, ch := range keys.At(r) + "," {
			if ch >= '0' && ch <= '9' {
				ki = ki*10 + int(ch-'0')
				continue
			}
			if k := ki - 1; k >= 0 && k < len(p.keys) && !slices.Contains(day.PriceKeys, p.keys[k]) {
				day.PriceKeys = append(day.PriceKeys, p.keys[k])
			}
			ki = 0
		}
	})
	if err == nil && nan {
		err = p.err()
	}
	return err
}
