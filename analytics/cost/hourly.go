package cost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
// no record (a pass that died between the two inserts) is refused: drop
// its rows before rolling it up again.
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
			"ALTER TABLE %s DELETE WHERE %s, then roll it up again", span, n, chsql.Ident(db, "gpu_held_1h"), chsql.Between("hour", from, to))
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

// DailyRollupSQL returns the query of the daily held GPU-hours of [from,
// to) from the rollup (gpu_held_1d for whole days), in DailyHeldSQL's
// columns (prof is empty: gpu_hours already counts MIG instances by their
// share).
func DailyRollupSQL(database string, from, to time.Time) string {
	table, at := rollupTable(database, from, to)
	return fmt.Sprintf(`SELECT toDateTime(toStartOfDay(%[3]s)) AS d, toString(model_name) AS gmod, toString(cluster) AS clus, '' AS prof,
    toString(model) AS mdl, toString(team) AS team, toString(job) AS jb, toString(purchase) AS pur,
    sum(gpu_hours) AS held, sum(busy_gpu_hours) AS busy
FROM %[1]s
WHERE kind = 'held' AND %[2]s
GROUP BY d, gmod, clus, mdl, team, jb, pur`, table, chsql.Between(at, from, to), at)
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

// totalsSQL returns the per-day, kind, price key and model version sums
// of [from, to) over src (a rollup table, or RollupSelectSQL as a
// subquery), whose time column is at.
func totalsSQL(src, at string, from, to time.Time) string {
	return fmt.Sprintf(`SELECT toDateTime(toStartOfDay(%[3]s)) AS d, toString(kind) AS k, toString(model_name) AS gmod, toString(cluster) AS clus,
    toString(purchase) AS pur, toString(model) AS mdl, toString(model_version) AS ver,
    sum(gpu_hours) AS gh, sum(busy_gpu_hours) AS busy, sum(idle_gpu_hours) AS idle
FROM %[1]s
WHERE %[2]s
GROUP BY d, k, gmod, clus, pur, mdl, ver
ORDER BY d, k, gmod, clus, pur, mdl, ver`, src, chsql.Between(at, from, to), at)
}

// Totals reads [from, to) (whole hours) from the rollup (the daily one
// for whole days) — or,
// where RollupMode allows, computes the same rows from the raw samples —
// and prices each day at its mean price per GPU-hour. Cost per 1,000
// requests of each model version uses Traffic's requests.
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
	t := Totals{From: from, To: to, Currency: book.Currency()}
	var res chsql.Result
	d, k, gm, cl, pur, mdl, ver := res.Time("d"), res.Str("k"), res.Str("gmod"), res.Str("clus"), res.Str("pur"), res.Str("mdl"), res.Str("ver")
	gh, busy, idle := res.F64("gh"), res.F64("busy"), res.F64("idle")
	type keyDay struct {
		k PriceKey
		d int64
	}
	prices := map[keyDay]float64{}
	versions := map[[2]string]*VersionCost{}
	var order [][2]string
	var perr error
	err = res.ForRows(ctx, s.client, totalsSQL(src, at, from, to), func(r int) {
		if perr != nil {
			return
		}
		day := time.Unix(d.Seconds(r), 0).UTC()
		key := PriceKey{GPUModel: gm.At(r), Cluster: cl.At(r), Purchase: s.cfg.Purchase}
		if p := Purchase(pur.At(r)); p.valid() {
			key.Purchase = p
		}
		price, ok := prices[keyDay{key, day.Unix()}]
		if !ok {
			// the day's mean price, over the part of the day in the period
			dFrom, dTo := maxTime(day, from), minTime(day.AddDate(0, 0, 1), to)
			c, err := book.Cost(key, dFrom, dTo)
			if err != nil {
				perr = err
				return
			}
			price = c / dTo.Sub(dFrom).Hours()
			prices[keyDay{key, day.Unix()}] = price
		}
		h := gh.At(r)
		c := h * price
		t.ProvisionedHours += h
		t.ProvisionedCost += c
		switch k.At(r) {
		case KindHeld:
			t.HeldHours += h
			t.HeldCost += c
			t.BusyHours += busy.At(r)
			t.IdleHeldHours += idle.At(r)
			vk := [2]string{mdl.At(r), ver.At(r)}
			v, ok := versions[vk]
			if !ok {
				v = &VersionCost{Model: vk[0], Version: vk[1]}
				versions[vk] = v
				order = append(order, vk)
			}
			v.GPUHours += h
			v.BusyGPUHours += busy.At(r)
			v.Cost += c
		case KindSystem:
			t.SystemHours += h
			t.SystemCost += c
		default:
			t.UnallocatedHours += h
			t.UnallocatedCost += c
		}
	})
	if err == nil {
		err = perr
	}
	if err != nil {
		return Totals{}, fmt.Errorf("cost totals: %w", err)
	}
	traffic, err := s.Traffic(ctx, from, to)
	if err != nil {
		return Totals{}, err
	}
	for _, tr := range traffic {
		vk := [2]string{tr.Model, tr.Version}
		v, ok := versions[vk]
		if !ok {
			v = &VersionCost{Model: vk[0], Version: vk[1]}
			versions[vk] = v
			order = append(order, vk)
		}
		v.Requests += tr.Requests
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
