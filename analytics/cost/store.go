package cost

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Stored allocation intervals. Who held which GPU is already in ClickHouse:
// every GPU series in gpu_series carries its holder (namespace, pod,
// container, hpc_job → job, a Slurm job's hpc_user and hpc_account, and
// the pod labels team, model, model_version, cost_center), and a holder
// change starts a new series. The Store derives
// allocation intervals on read from the one-minute rollup gpu_samples_1m
// (kept 400 days) joined with gpu_series, on an hourly grid: a GPU is
// provisioned in an hour when any of its series reported in it, and held
// by every holder whose series reported in it. No table of intervals: it
// would repeat what gpu_series says, and a writer of its own would be one
// more thing to keep in step with the agents. (For fleet-scale periods the
// held GPU-hours per scope are rolled up hourly: hourly.go.)
//
// The grid is an hour: a holder that reported in an hour holds the GPU for
// that whole hour, and two holders in one hour (a pod replaced mid-hour,
// or time-slicing) share it equally (Attribute's rule for concurrent
// holders).

// The pod labels the Store reads from gpu_series' label_keys, and the one
// that sets a GPU's purchase type (on_demand, reserved, spot).
const (
	LabelTeam         = telemetry.LabelTeam
	LabelModel        = telemetry.LabelModel
	LabelModelVersion = telemetry.LabelModelVersion
	LabelCostCenter   = telemetry.LabelCostCenter
	LabelPurchase     = telemetry.LabelPurchase
)

// StoreConfig configures the Store.
type StoreConfig struct {
	// Purchase is the purchase type of a GPU whose series carry no
	// purchase label.
	Purchase Purchase `yaml:"purchase"`
	// SystemNamespaces are the namespaces of platform pods (device
	// plugins, monitoring): their GPU time is a shared cost.
	SystemNamespaces []string `yaml:"system_namespaces"`
	// Rollup is when the daily series and period totals are read from
	// the hourly rollup gpu_held_1h (auto: when it covers the period;
	// require: refuse a period it does not cover; off: raw samples).
	Rollup RollupMode `yaml:"rollup"`
}

// NewDefaultStoreConfig: on-demand prices; kube-system, gpu-operator and
// fleetwatch are system namespaces; the hourly rollup where it covers the
// period.
func NewDefaultStoreConfig() StoreConfig {
	return StoreConfig{Purchase: OnDemand, SystemNamespaces: []string{"kube-system", "gpu-operator", "fleetwatch"}, Rollup: RollupAuto}
}

// Validate checks the purchase type and the rollup mode (empty is auto).
func (c StoreConfig) Validate() error {
	if !c.Purchase.valid() {
		return fmt.Errorf("cost store: purchase %q is not on_demand, reserved or spot", c.Purchase)
	}
	switch c.Rollup {
	case "", RollupAuto, RollupRequire, RollupOff:
	default:
		return fmt.Errorf("cost store: rollup %q is not auto, require or off", c.Rollup)
	}
	return nil
}

// Store reads cost inputs from ClickHouse: held GPU-hours with their
// usage, traffic per model and deployment changes.
type Store struct {
	client *storage.Client
	cfg    StoreConfig
	// Owners, when set, fills a holder's missing team and cost centre
	// from its model's owner (the catalog) as Read reads the hours.
	Owners Owners
}

// NewStore validates cfg.
func NewStore(c *storage.Client, cfg StoreConfig) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Store{client: c, cfg: cfg}, nil
}

// HeldHour is one GPU's hour as stored, for one holder (an empty Tags:
// nobody held it): its price key, the share of the physical GPU it is, the
// mean SM activity (0–1; GPU utilization / 100 where SM activity is not
// reported) and device memory in use (0–1), and the minutes that reported.
type HeldHour struct {
	Hour     time.Time
	GPU      string // UUID, or UUID/instance for a MIG instance
	Key      PriceKey
	Fraction float64
	Tags
	System           bool
	SMActive, MemUse float64
	Minutes          int
}

// Held reports whether someone held the GPU in the hour.
func (h HeldHour) Held() bool {
	return h.Namespace != "" || h.Pod != "" || h.Job != ""
}

// the metrics the held-hours query reads
var heldMetrics = []string{telemetry.SMActive, telemetry.GPUUtil, telemetry.FBUsed, telemetry.FBFree}

func labelExpr(key string) string {
	return fmt.Sprintf("any(label_values[indexOf(label_keys, %s)])", chsql.String(key))
}

// HeldHoursSQL returns the query of the held GPU-hours in [from, to).
func HeldHoursSQL(database string, from, to time.Time) string {
	return heldRowsSQL(database, from, to) + "\nORDER BY uuid, gi, h, ns, pd, jb"
}

// heldRowsSQL is HeldHoursSQL unordered: one row per GPU, hour and holder.
func heldRowsSQL(database string, from, to time.Time) string {
	sum := func(metric, what string) string {
		return fmt.Sprintf("sumIf(%s, metric = %s)", what, chsql.String(metric))
	}
	return fmt.Sprintf(`SELECT h, uuid, gi, gp, gm, cl, ns, pd, jb, team, mdl, ver, cc, pur, usr, acct,
    %s AS sm_s, %s AS sm_n, %s AS u_s, %s AS u_n, %s AS used_s, %s AS used_n, %s AS free_s, %s AS free_n, toInt64(max(m)) AS minutes
FROM
(
    SELECT toStartOfHour(minute) AS h, metric, series, sumMerge(sum) AS s, toFloat64(countMerge(samples)) AS n, uniqExact(minute) AS m
    FROM %s
    WHERE metric IN %s AND %s
    GROUP BY h, metric, series
) AS q1
ANY INNER JOIN
(
    SELECT series, toString(any(uuid)) AS uuid, toString(any(gpu_instance)) AS gi, toString(any(gpu_profile)) AS gp,
        toString(any(model_name)) AS gm, toString(any(cluster)) AS cl, toString(any(namespace)) AS ns, toString(any(pod)) AS pd,
        toString(any(job)) AS jb, %s AS team, %s AS mdl, %s AS ver, %s AS cc, %s AS pur, %s AS usr, %s AS acct
    FROM %s
    WHERE metric IN %s
    GROUP BY series
) AS q2 USING series
GROUP BY h, uuid, gi, gp, gm, cl, ns, pd, jb, team, mdl, ver, cc, pur, usr, acct`,
		sum(telemetry.SMActive, "s"), sum(telemetry.SMActive, "n"), sum(telemetry.GPUUtil, "s"), sum(telemetry.GPUUtil, "n"),
		sum(telemetry.FBUsed, "s"), sum(telemetry.FBUsed, "n"), sum(telemetry.FBFree, "s"), sum(telemetry.FBFree, "n"),
		chsql.Ident(database, "gpu_samples_1m"), chsql.In(heldMetrics), chsql.Between("minute", from, to),
		labelExpr(LabelTeam), labelExpr(LabelModel), labelExpr(LabelModelVersion), labelExpr(LabelCostCenter), labelExpr(LabelPurchase),
		labelExpr(telemetry.LabelHPCUser), labelExpr(telemetry.LabelHPCAccount),
		chsql.Ident(database, "gpu_series"), chsql.In(heldMetrics))
}

// HeldHours reads the held GPU-hours in [from, to), by GPU and hour.
func (s *Store) HeldHours(ctx context.Context, from, to time.Time) ([]HeldHour, error) {
	var res chsql.Result
	h, uuid, gi, gp, gm, cl := res.Time("h"), res.Str("uuid"), res.Str("gi"), res.Str("gp"), res.Str("gm"), res.Str("cl")
	ns, pd, jb, team, mdl, ver, cc, pur := res.Str("ns"), res.Str("pd"), res.Str("jb"), res.Str("team"), res.Str("mdl"), res.Str("ver"), res.Str("cc"), res.Str("pur")
	usr, acct := res.Str("usr"), res.Str("acct")
	smS, smN, uS, uN := res.F64("sm_s"), res.F64("sm_n"), res.F64("u_s"), res.F64("u_n")
	usedS, usedN, freeS, freeN, minutes := res.F64("used_s"), res.F64("used_n"), res.F64("free_s"), res.F64("free_n"), res.Int("minutes")
	var out []HeldHour
	err := res.ForRows(ctx, s.client, HeldHoursSQL(s.client.Config().Database, from, to), func(r int) {
		hh := HeldHour{
			Hour:     time.Unix(h.Seconds(r), 0).UTC(),
			GPU:      uuid.At(r),
			Key:      PriceKey{GPUModel: gm.At(r), Cluster: cl.At(r), Purchase: s.cfg.Purchase},
			Fraction: migFraction(gp.At(r)),
			Tags: Tags{Namespace: ns.At(r), Pod: pd.At(r), Job: jb.At(r), Team: team.At(r), Model: mdl.At(r),
				ModelVersion: ver.At(r), CostCenter: cc.At(r), User: usr.At(r), Account: acct.At(r)},
			Minutes: int(minutes.At(r)),
		}
		if i := gi.At(r); i != "" {
			hh.GPU += "/" + i
		}
		if p := Purchase(pur.At(r)); p.valid() {
			hh.Key.Purchase = p
		}
		hh.System = hh.Namespace != "" && slices.Contains(s.cfg.SystemNamespaces, hh.Namespace)
		switch {
		case smN.At(r) > 0:
			hh.SMActive = smS.At(r) / smN.At(r)
		case uN.At(r) > 0:
			hh.SMActive = uS.At(r) / uN.At(r) / 100
		}
		if usedN.At(r) > 0 && freeN.At(r) > 0 {
			used, free := usedS.At(r)/usedN.At(r), freeS.At(r)/freeN.At(r)
			if used+free > 0 {
				hh.MemUse = used / (used + free)
			}
		}
		out = append(out, hh)
	})
	if err != nil {
		return nil, fmt.Errorf("held GPU-hours %s to %s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	return out, nil
}

// migFraction is a MIG profile's share of its GPU: "3g.40gb" is 3 of the 7
// compute slices of an A100 or H100; 0 (a whole GPU) when not a profile.
func migFraction(profile string) float64 {
	n, _, ok := strings.Cut(profile, "g.")
	if !ok {
		return 0
	}
	k, err := strconv.Atoi(n)
	if err != nil || k < 1 || k > 7 {
		return 0
	}
	return float64(k) / 7
}

// Traffic is one model version's requests on one UTC day: the rows of
// inference_events weighted by 1/sample_rate, and the p99 latency.
type Traffic struct {
	Day            time.Time
	Model, Version string
	Requests       float64
	LatencyP99     float64 // seconds
}

// TrafficSQL returns the query of daily traffic per model version in
// [from, to).
func TrafficSQL(database string, from, to time.Time) string {
	return fmt.Sprintf(`SELECT toDateTime(toStartOfDay(ts)) AS d, toString(model) AS m, toString(model_version) AS v,
    sum(1 / sample_rate) AS n, quantileExact(0.99)(latency_ms) / 1000 AS p99
FROM %s
WHERE %s
GROUP BY d, m, v
ORDER BY d, m, v`, chsql.Ident(database, "inference_events"), chsql.Between("ts", from, to))
}

// Traffic reads the daily traffic per model version in [from, to).
func (s *Store) Traffic(ctx context.Context, from, to time.Time) ([]Traffic, error) {
	var res chsql.Result
	d, m, v, n, p := res.Time("d"), res.Str("m"), res.Str("v"), res.F64("n"), res.F64("p99")
	var out []Traffic
	err := res.ForRows(ctx, s.client, TrafficSQL(s.client.Config().Database, from, to), func(r int) {
		out = append(out, Traffic{Day: time.Unix(d.Seconds(r), 0).UTC(), Model: m.At(r), Version: v.At(r), Requests: n.At(r), LatencyP99: p.At(r)})
	})
	if err != nil {
		return nil, fmt.Errorf("daily traffic: %w", err)
	}
	return out, nil
}

// Change is a deployment change of a model, or a configuration change of
// a job (its working width, see WidthStep), on a UTC day.
type Change struct {
	Day         time.Time
	Model, What string
	// Job is set, and Model empty, for a job's change.
	Job string
}

// ChangesSQL returns the query of deployment changes in [from, to).
func ChangesSQL(database string, from, to time.Time) string {
	return fmt.Sprintf(`SELECT toDateTime(toStartOfDay(ts)) AS d, toString(model) AS m,
    arrayStringConcat(groupArray(concat(toString(change), ' ', toString(previous_version), ' -> ', toString(model_version))), '; ') AS w
FROM %s
WHERE %s
GROUP BY d, m
ORDER BY d, m`, chsql.Ident(database, "model_deployments"), chsql.Between("ts", from, to))
}

// Changes reads the deployment changes in [from, to), per model and day.
func (s *Store) Changes(ctx context.Context, from, to time.Time) ([]Change, error) {
	var res chsql.Result
	d, m, w := res.Time("d"), res.Str("m"), res.Str("w")
	var out []Change
	err := res.ForRows(ctx, s.client, ChangesSQL(s.client.Config().Database, from, to), func(r int) {
		out = append(out, Change{Day: time.Unix(d.Seconds(r), 0).UTC(), Model: m.At(r), What: w.At(r)})
	})
	if err != nil {
		return nil, fmt.Errorf("deployment changes: %w", err)
	}
	return out, nil
}

// Period is what the store holds for a period, in the shapes Attribute
// and Waste read.
type Period struct {
	From, To    time.Time
	Hours       []HeldHour
	GPUs        []GPU
	Allocations []Allocation
	Usage       []Usage
	Traffic     []Traffic
	Changes     []Change
}

// Read reads [from, to) (whole hours).
func (s *Store) Read(ctx context.Context, from, to time.Time) (Period, error) {
	if !to.After(from) {
		return Period{}, fmt.Errorf("cost store: empty period %v to %v", from, to)
	}
	hours, err := s.HeldHours(ctx, from, to)
	if err != nil {
		return Period{}, err
	}
	if s.Owners != nil {
		for i := range hours {
			hours[i].Tags.fill(s.Owners)
		}
	}
	p := PeriodOf(hours, from, to)
	if p.Traffic, err = s.Traffic(ctx, from, to); err != nil {
		return Period{}, err
	}
	if p.Changes, err = s.Changes(ctx, from, to); err != nil {
		return Period{}, err
	}
	p.Changes = append(p.Changes, jobWidthsOf(hours)...)
	return p, nil
}

// PeriodOf turns held hours (in HeldHours' order: by GPU, then hour) into
// GPUs, allocations and usage. A GPU is provisioned from its first
// reported hour to the end of its last; a holder's consecutive hours on a
// GPU are one allocation; an hour's usage is the minute-weighted mean over
// its rows.
func PeriodOf(hours []HeldHour, from, to time.Time) Period {
	p := Period{From: from, To: to, Hours: hours}
	gpuIdx := map[string]int{}
	last := map[string]int{} // allocation key → index into p.Allocations
	for i := 0; i < len(hours); {
		h := hours[i]
		gi, ok := gpuIdx[h.GPU]
		if !ok {
			gi = len(p.GPUs)
			gpuIdx[h.GPU] = gi
			p.GPUs = append(p.GPUs, GPU{ID: h.GPU, PriceKey: h.Key, From: h.Hour, To: h.Hour.Add(time.Hour), Fraction: h.Fraction})
		}
		g := &p.GPUs[gi]
		g.To = maxTime(g.To, h.Hour.Add(time.Hour))
		// the rows of this GPU and hour
		j := i
		var sm, mem, w float64
		for ; j < len(hours) && hours[j].GPU == h.GPU && hours[j].Hour.Equal(h.Hour); j++ {
			r := hours[j]
			m := float64(max(r.Minutes, 1))
			sm += r.SMActive * m
			mem += r.MemUse * m
			w += m
			if !r.Held() {
				continue
			}
			key := r.GPU + "\x00" + fmt.Sprint(r.Tags, r.System)
			if k, ok := last[key]; ok && p.Allocations[k].To.Equal(r.Hour) {
				p.Allocations[k].To = r.Hour.Add(time.Hour)
				continue
			}
			last[key] = len(p.Allocations)
			p.Allocations = append(p.Allocations, Allocation{GPU: r.GPU, From: r.Hour, To: r.Hour.Add(time.Hour), Tags: r.Tags, System: r.System})
		}
		p.Usage = append(p.Usage, Usage{GPU: h.GPU, Hour: h.Hour, SMActive: sm / w, MemUse: mem / w})
		i = j
	}
	return p
}

// Requests returns the period's requests by model.
func (p Period) Requests() map[string]float64 {
	out := map[string]float64{}
	for _, t := range p.Traffic {
		out[t.Model] += t.Requests
	}
	return out
}

// Waste runs Waste over the period.
func (p Period) Waste(book *PriceBook, cfg WasteConfig) (WasteReport, error) {
	return Waste(book, cfg, WasteInput{GPUs: p.GPUs, Allocations: p.Allocations, Usage: p.Usage, Requests: p.Requests()}, p.From, p.To)
}

// Attribute runs Attribute over the period; under SharedByQueryVolume the
// volume is each model's requests (GroupBy must then be by model).
func (p Period) Attribute(book *PriceBook, cfg AttributionConfig) (Attribution, error) {
	in := AttributeInput{GPUs: p.GPUs, Allocations: p.Allocations}
	if cfg.Shared == SharedByQueryVolume {
		if !slices.Equal(cfg.GroupBy, []Dimension{ByModel}) {
			return Attribution{}, errors.New("attribution: query_volume from the store needs group_by [model]")
		}
		in.Volume = p.Requests()
	}
	return Attribute(book, cfg, in, p.From, p.To)
}

// DailyHeldSQL returns the query of the held GPU-hours of [from, to)
// summed per UTC day, GPU model, cluster, MIG profile, purchase label and
// holder scope (model, team, job): held is the GPU-hours, each GPU-hour
// split equally among its concurrent holders outside the system
// namespaces, busy the same weighted by the hour's SM activity (GPU
// utilization / 100 where SM activity is not reported). It is the
// ClickHouse side of DailySeries: rows per scope and day, not per GPU-hour.
func DailyHeldSQL(database string, from, to time.Time, system []string) string {
	notSystem := "1"
	if len(system) > 0 {
		notSystem = "ns NOT IN " + chsql.In(system)
	}
	return fmt.Sprintf(`SELECT toDateTime(toStartOfDay(h)) AS d, gmod, clus, prof, tupleElement(x, 1) AS mdl, tupleElement(x, 2) AS team,
    tupleElement(x, 3) AS jb, tupleElement(x, 4) AS pur, sum(1 / length(hs)) AS held, sum(tupleElement(x, 5) / length(hs)) AS busy
FROM
(
    SELECT h, uuid, gi, any(gp) AS prof, any(gm) AS gmod, any(cl) AS clus,
        groupArray(tuple(mdl, team, jb, pur, if(sm_n > 0, sm_s / sm_n, if(u_n > 0, u_s / u_n / 100, 0)))) AS hs
    FROM
    (
%s
    ) AS q3
    WHERE (ns != '' OR pd != '' OR jb != '') AND %s
    GROUP BY h, uuid, gi
) AS q4
ARRAY JOIN hs AS x
GROUP BY d, gmod, clus, prof, mdl, team, jb, pur`, heldRowsSQL(database, from, to), notSystem)
}

// DailySeries is DailySeries(book, Read(from, to)) computed in
// ClickHouse: the held GPU-hours come summed per day and holder scope
// (DailyRollupSQL from the hourly rollup where it covers the period, see
// RollupMode; DailyHeldSQL from the raw samples otherwise), and are priced
// at the day's mean price per GPU-hour (exact unless a price changes
// during the day). It reads rows per scope and day instead of per
// GPU-hour.
func (s *Store) DailySeries(ctx context.Context, book *PriceBook, from, to time.Time) ([]Series, error) {
	roll, err := s.useRollup(ctx, from, to)
	if err != nil {
		return nil, fmt.Errorf("daily held GPU-hours: %w", err)
	}
	b := newSeriesBuilder(from, to)
	if roll {
		if err := s.rollupSeries(ctx, book, b, from, to); err != nil {
			return nil, fmt.Errorf("daily held GPU-hours from the rollup: %w", err)
		}
		return s.withTraffic(ctx, b, true, from, to)
	}
	var res chsql.Result
	d, gm, cl, prof, mdl, team, jb, pur := res.Time("d"), res.Str("gmod"), res.Str("clus"), res.Str("prof"), res.Str("mdl"), res.Str("team"), res.Str("jb"), res.Str("pur")
	held, busy := res.F64("held"), res.F64("busy")
	type keyDay struct {
		k PriceKey
		d int64
	}
	prices := map[keyDay]float64{}
	var perr error
	err = res.ForRows(ctx, s.client, DailyHeldSQL(s.client.Config().Database, from, to, s.cfg.SystemNamespaces), func(r int) {
		day := time.Unix(d.Seconds(r), 0).UTC()
		i := b.day(day)
		if i < 0 || perr != nil {
			return
		}
		key := PriceKey{GPUModel: gm.At(r), Cluster: cl.At(r), Purchase: s.cfg.Purchase}
		if p := Purchase(pur.At(r)); p.valid() {
			key.Purchase = p
		}
		price, ok := prices[keyDay{key, day.Unix()}]
		if !ok {
			c, err := book.Cost(key, day, day.AddDate(0, 0, 1))
			if err != nil {
				perr = err
				return
			}
			price = c / 24
			prices[keyDay{key, day.Unix()}] = price
		}
		share := 1.0
		if f := migFraction(prof.At(r)); f > 0 {
			share = f
		}
		t := Tags{Model: mdl.At(r), Team: team.At(r), Job: jb.At(r)}
		if s.Owners != nil {
			t.fill(s.Owners)
		}
		h := held.At(r) * share
		b.held(i, t, key, h*price, h, busy.At(r)*share)
	})
	if err == nil {
		err = perr
	}
	if err != nil {
		return nil, fmt.Errorf("daily held GPU-hours: %w", err)
	}
	return s.withTraffic(ctx, b, false, from, to)
}

// withTraffic adds the period's traffic and changes (the models'
// deployments, the jobs' widths from the rollup or the raw samples) to b's
// series.
func (s *Store) withTraffic(ctx context.Context, b *seriesBuilder, roll bool, from, to time.Time) ([]Series, error) {
	traffic, err := s.Traffic(ctx, from, to)
	if err != nil {
		return nil, err
	}
	changes, err := s.Changes(ctx, from, to)
	if err != nil {
		return nil, err
	}
	jobs, err := s.jobChanges(ctx, roll, from, to)
	if err != nil {
		return nil, err
	}
	b.traffic(traffic, append(changes, jobs...))
	return b.series(), nil
}
