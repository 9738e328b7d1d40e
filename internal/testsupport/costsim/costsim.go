// Package costsim simulates a GPU fleet's spend with ground truth, for the
// cost analysis of analytics/cost (issue 19 item 9): tenants (teams owning
// models), per-day allocations from an autoscaler, a price book, daily
// traffic with weekly seasonality and noise, and injectable cost faults of
// each of the five classes — a traffic surge, an efficiency regression (a
// new version needing more GPU-seconds per request), a resource leak
// (orphaned pods holding GPUs, growing daily), a price change on a pool, a
// configuration change (minimum replicas raised) — plus chronic waste on the
// last day: idle GPUs, idle-held GPUs, unallocated GPUs and zombie models,
// with decoys that must not be flagged (short lulls, short gaps).
//
// The world is daily: each day the autoscaler provisions the GPUs each
// model needs for the day (IDs carry the day), so a day's attribution reads
// only that day. The last day also has hourly usage rollups for the waste
// lists. Layer: test support.
package costsim

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/cost"
)

// Config sizes the world.
type Config struct {
	Seed          uint64
	Start         time.Time
	Days          int     // 60
	Teams         int     // 4
	ModelsPerTeam int     // 3
	Noise         float64 // daily traffic noise, relative σ (0.04)
	Weekly        float64 // weekend dip (0.10)
	// Faults: inject one of each class (on different models; pricing on
	// the pool with the fewest models) at random days in [FaultFrom, Days).
	Faults    bool
	FaultFrom int // 35
	// PriceFactor multiplies the faulted pool's price (2: a reserved
	// commitment expiring to on-demand).
	PriceFactor float64
	// Chronic waste, present every day and scored on the last day.
	Idle, IdleHeld, Unallocated, Zombies int
	// Jobs are long-running training jobs (8, 16 or 32 GPUs at 90 % busy,
	// no requests), scored by job; with Faults, one off the priced pool
	// gets a configuration fault (a sweep widened 2.5×) and one a leak
	// (a retry loop's GPUs held idle).
	Jobs int
}

// NewDefaultConfig is 4 teams × 3 models and 3 training jobs over 60 days
// with faults, 3 idle, 2 idle-held, 2 unallocated GPUs and 2 zombie models.
func NewDefaultConfig(seed uint64) Config {
	return Config{Seed: seed, Start: time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC), Days: 60, Teams: 4, ModelsPerTeam: 3,
		Noise: 0.04, Weekly: 0.10, Faults: true, FaultFrom: 35, PriceFactor: 2, Idle: 3, IdleHeld: 2, Unallocated: 2, Zombies: 2, Jobs: 3}
}

// Pools are the price keys of the simulated fleet, with base prices.
var Pools = []cost.Price{
	{PriceKey: cost.PriceKey{GPUModel: "H100", Cluster: "us-east", Purchase: cost.OnDemand}, PerGPUHour: 2.50},
	{PriceKey: cost.PriceKey{GPUModel: "A100", Cluster: "us-west", Purchase: cost.Reserved}, PerGPUHour: 1.10},
	{PriceKey: cost.PriceKey{GPUModel: "L4", Cluster: "eu-west", Purchase: cost.Spot}, PerGPUHour: 0.35},
}

// Truth is one injected cost anomaly.
type Truth struct {
	Scope cost.Scope
	Day   int
	Cause cost.Cause
}

// ScopeDay is a scope's name and a day of the world.
type ScopeDay struct {
	Scope string
	Day   int
}

// Injected returns the injected causes by scope name and day.
func (w *World) Injected() map[ScopeDay]cost.Cause {
	out := make(map[ScopeDay]cost.Cause, len(w.Truth))
	for _, tr := range w.Truth {
		out[ScopeDay{tr.Scope.Name, tr.Day}] = tr.Cause
	}
	return out
}

// Model is one simulated model or, with Job, a training job.
type Model struct {
	Name, Team string
	Pool       int
	Zombie     bool
	Job        bool
}

func (m Model) scope() cost.Scope {
	if m.Job {
		return cost.Scope{Kind: cost.ScopeJob, Name: m.Name}
	}
	return cost.Scope{Kind: cost.ScopeModel, Name: m.Name}
}

// Day is one simulated day.
type Day struct {
	Date        time.Time
	GPUs        []cost.GPU
	Allocations []cost.Allocation
	// Per model: requests, busy GPU-hours, p99 latency, a deployment
	// change (empty if none).
	Requests, Busy, Latency map[string]float64
	Change                  map[string]string
}

// World is a simulated fleet with its ground truth.
type World struct {
	Config Config
	Book   *cost.PriceBook
	Models []Model
	Days   []Day
	Truth  []Truth
	// Usage is the last day's hourly rollups; the waste ground truth is
	// the GPU IDs (sorted) and zombie model names.
	Usage                             []cost.Usage
	WantIdle, WantIdleHeld, WantUnall []string
	WantZombies                       []string
}

// model state as the simulation runs
type mstate struct {
	Model
	base       float64 // requests per day
	gpuSecReq  float64 // busy GPU-seconds per request
	latency    float64
	minRep     int
	surge      float64
	leak       int // orphaned GPUs
	leakGrowth bool
	gpus       int // a job's GPUs
}

// Generate builds a world.
func Generate(cfg Config) (*World, error) {
	r := rand.New(rand.NewPCG(cfg.Seed, 0x19c057))
	w := &World{Config: cfg}
	var ms []*mstate
	for t := range cfg.Teams {
		team := fmt.Sprintf("team%d", t)
		for m := range cfg.ModelsPerTeam {
			s := &mstate{Model: Model{Name: fmt.Sprintf("%s-m%d", team, m), Team: team, Pool: r.IntN(len(Pools))},
				gpuSecReq: 0.02 + 0.08*r.Float64(), latency: 0.03 + 0.1*r.Float64(), minRep: 2}
			// 8–40 GPUs at 65 % busy
			n := 8 + r.Float64()*32
			s.base = n * 24 * 0.65 * 3600 / s.gpuSecReq
			ms = append(ms, s)
		}
	}
	for z := range cfg.Zombies {
		ms = append(ms, &mstate{Model: Model{Name: fmt.Sprintf("zombie%d", z), Team: fmt.Sprintf("team%d", z%cfg.Teams), Pool: r.IntN(len(Pools)), Zombie: true},
			base: 5, gpuSecReq: 0.05, latency: 0.05, minRep: 2})
	}
	for j := range cfg.Jobs {
		ms = append(ms, &mstate{Model: Model{Name: fmt.Sprintf("job%d", j), Team: fmt.Sprintf("team%d", j%cfg.Teams), Pool: r.IntN(len(Pools)), Job: true},
			gpus: 8 << r.IntN(3)})
	}
	for _, s := range ms {
		w.Models = append(w.Models, s.Model)
	}

	// Faults: a price change on one pool (every model on it), then one
	// model each for the other four classes, none on that pool.
	type fault struct {
		cause cost.Cause
		model *mstate
		day   int
	}
	var faults []fault
	prices := make([]float64, len(Pools))
	var bookPrices []cost.Price
	for i, p := range Pools {
		prices[i] = p.PerGPUHour
		p.Effective = cfg.Start.AddDate(-1, 0, 0)
		bookPrices = append(bookPrices, p)
	}
	pricedPool, priceDay := -1, -1
	if cfg.Faults {
		// the pool with the fewest models, so enough models stay off it
		count := make([]int, len(Pools))
		for _, s := range ms {
			if !s.Job {
				count[s.Pool]++
			}
		}
		pricedPool, priceDay = 0, cfg.FaultFrom+r.IntN(cfg.Days-cfg.FaultFrom)
		for i, c := range count {
			if c < count[pricedPool] {
				pricedPool = i
			}
		}
		p := Pools[pricedPool]
		p.Effective = cfg.Start.AddDate(0, 0, priceDay)
		p.PerGPUHour *= cfg.PriceFactor
		bookPrices = append(bookPrices, p)
		var free, freeJobs []*mstate
		for _, s := range ms {
			switch {
			case s.Pool == pricedPool:
				w.Truth = append(w.Truth, Truth{Scope: s.scope(), Day: priceDay, Cause: cost.CausePricing})
			case s.Job:
				freeJobs = append(freeJobs, s)
			case !s.Zombie:
				free = append(free, s)
			}
		}
		r.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
		for i, c := range []cost.Cause{cost.CauseTraffic, cost.CauseEfficiency, cost.CauseLeak, cost.CauseConfiguration} {
			if i >= len(free) {
				return nil, fmt.Errorf("costsim: seed %d: only %d models off the priced pool", cfg.Seed, len(free))
			}
			f := fault{cause: c, model: free[i], day: cfg.FaultFrom + r.IntN(cfg.Days-cfg.FaultFrom)}
			faults = append(faults, f)
			w.Truth = append(w.Truth, Truth{Scope: f.model.scope(), Day: f.day, Cause: c})
		}
		r.Shuffle(len(freeJobs), func(i, j int) { freeJobs[i], freeJobs[j] = freeJobs[j], freeJobs[i] })
		for i, c := range []cost.Cause{cost.CauseConfiguration, cost.CauseLeak} {
			if i < len(freeJobs) {
				f := fault{cause: c, model: freeJobs[i], day: cfg.FaultFrom + r.IntN(cfg.Days-cfg.FaultFrom)}
				faults = append(faults, f)
				w.Truth = append(w.Truth, Truth{Scope: f.model.scope(), Day: f.day, Cause: c})
			}
		}
	}
	var err error
	w.Book, err = cost.NewPriceBook(cost.PriceBookConfig{Currency: "USD", Prices: bookPrices})
	if err != nil {
		return nil, err
	}

	last := cfg.Days - 1
	for d := range cfg.Days {
		date := cfg.Start.AddDate(0, 0, d)
		day := Day{Date: date, Requests: map[string]float64{}, Busy: map[string]float64{}, Latency: map[string]float64{}, Change: map[string]string{}}
		for _, f := range faults {
			if f.day != d {
				continue
			}
			s := f.model
			switch f.cause {
			case cost.CauseTraffic:
				s.surge = 2.2
			case cost.CauseEfficiency:
				s.gpuSecReq *= 2.5
				s.latency *= 2.5
				day.Change[s.Name] = "version v1 → v2"
			case cost.CauseLeak:
				n := s.base * s.gpuSecReq / 3600 / 24 / 0.65
				if s.Job {
					n = float64(s.gpus)
				}
				s.leak, s.leakGrowth = int(math.Ceil(0.7*n)), true
			case cost.CauseConfiguration:
				if s.Job {
					old := s.gpus
					s.gpus = old * 5 / 2
					day.Change[s.Name] = fmt.Sprintf("sweep width %d → %d GPUs", old, s.gpus)
					break
				}
				n := s.base * s.gpuSecReq / 3600 / 24 / 0.65
				old := s.minRep
				s.minRep = int(math.Ceil(2.2 * n))
				day.Change[s.Name] = fmt.Sprintf("min replicas %d → %d", old, s.minRep)
			}
		}
		weekly := 1.0
		if wd := date.Weekday(); wd == time.Saturday || wd == time.Sunday {
			weekly -= cfg.Weekly
		}
		for _, s := range ms {
			req := s.base * weekly * (1 + cfg.Noise*r.NormFloat64())
			if s.surge > 0 {
				req *= s.surge
			}
			if s.Zombie {
				req = float64(r.IntN(10))
			}
			busy := req * s.gpuSecReq / 3600
			n := max(s.minRep, int(math.Ceil(busy/24/0.65)))
			if s.Job { // no requests; a few hours lost to restarts some days
				req, n = 0, s.gpus
				busy = float64(n) * 24 * 0.9 * (1 - 0.03*r.Float64())
			}
			if s.leakGrowth && d > 0 && day.Change[s.Name] == "" && !slices.ContainsFunc(faults, func(f fault) bool { return f.day == d && f.model == s }) {
				s.leak++
			}
			day.Requests[s.Name], day.Busy[s.Name], day.Latency[s.Name] = req, busy, s.latency*(1+0.02*r.NormFloat64())
			for k := range n + s.leak {
				id := fmt.Sprintf("%s-%03d-d%02d", s.Name, k, d)
				pod := fmt.Sprintf("%s-%d", s.Name, k)
				if k >= n {
					pod = fmt.Sprintf("%s-orphan-%d", s.Name, k-n)
				}
				day.GPUs = append(day.GPUs, cost.GPU{ID: id, PriceKey: Pools[s.Pool].PriceKey, From: date, To: date.AddDate(0, 0, 1)})
				tags := cost.Tags{Namespace: s.Team, Pod: pod, Team: s.Team, Model: s.Name, CostCenter: "CC-" + s.Team}
				if s.Job {
					tags.Model, tags.Job = "", s.Name
				}
				day.Allocations = append(day.Allocations, cost.Allocation{GPU: id, From: date, To: date.AddDate(0, 0, 1), Tags: tags})
				if d == last {
					held := 0.5
					sm := func(h int) float64 {
						if k >= n || s.Zombie {
							return 0.001 * float64(h%2)
						}
						if s.Job {
							return 0.9
						}
						return busy / float64(n) / 24 * (1 + 0.3*math.Sin(float64(h)/24*2*math.Pi))
					}
					// decoy: the first GPU of each model has a 3-hour lull
					lull := k == 0 && !s.Zombie
					for h := range 24 {
						u := cost.Usage{GPU: id, Hour: date.Add(time.Duration(h) * time.Hour), SMActive: sm(h), MemUse: held}
						if lull && h >= 2 && h < 5 {
							u.SMActive = 0.01
						}
						w.Usage = append(w.Usage, u)
					}
					if s.Zombie || k >= n {
						w.WantIdleHeld = append(w.WantIdleHeld, id)
					}
				}
			}
		}
		// chronic waste, on the last pool-0 GPUs of team0 (constant every day)
		chronic := func(kind string, i int, alloc bool, sm func(h int) (float64, float64), from int) {
			id := fmt.Sprintf("%s-%d-d%02d", kind, i, d)
			team := fmt.Sprintf("team%d", i%cfg.Teams)
			day.GPUs = append(day.GPUs, cost.GPU{ID: id, PriceKey: Pools[0].PriceKey, From: date, To: date.AddDate(0, 0, 1)})
			if alloc {
				day.Allocations = append(day.Allocations, cost.Allocation{GPU: id, From: date.Add(time.Duration(from) * time.Hour), To: date.AddDate(0, 0, 1),
					Tags: cost.Tags{Namespace: team + "-dev", Pod: fmt.Sprintf("%s-%d", kind, i), Team: team, CostCenter: "CC-" + team}})
			}
			if d == last {
				for h := range 24 {
					s, m := sm(h)
					w.Usage = append(w.Usage, cost.Usage{GPU: id, Hour: date.Add(time.Duration(h) * time.Hour), SMActive: s, MemUse: m})
				}
			}
		}
		for i := range cfg.Idle { // a notebook: nothing loaded for 12 hours, then work
			chronic("notebook", i, true, func(h int) (float64, float64) {
				if h < 12 {
					return 0.01, 0.02
				}
				return 0.6, 0.5
			}, 0)
			if d == last {
				w.WantIdle = append(w.WantIdle, fmt.Sprintf("notebook-%d-d%02d", i, d))
			}
		}
		for i := range cfg.IdleHeld { // a dev pod with a model loaded, no compute
			chronic("devpod", i, true, func(int) (float64, float64) { return 0, 0.7 }, 0)
			if d == last {
				w.WantIdleHeld = append(w.WantIdleHeld, fmt.Sprintf("devpod-%d-d%02d", i, d))
			}
		}
		for i := range cfg.Unallocated { // provisioned spare capacity
			chronic("spare", i, false, func(int) (float64, float64) { return 0, 0 }, 0)
			if d == last {
				w.WantUnall = append(w.WantUnall, fmt.Sprintf("spare-%d-d%02d", i, d))
			}
		}
		// decoy: a GPU unallocated for 3 hours, then busy
		chronic("gap", 0, true, func(h int) (float64, float64) {
			if h < 3 {
				return 0, 0
			}
			return 0.7, 0.6
		}, 3)
		w.Days = append(w.Days, day)
	}
	for _, s := range ms {
		if s.Zombie {
			w.WantZombies = append(w.WantZombies, s.Name)
		}
	}
	for _, l := range [][]string{w.WantIdle, w.WantIdleHeld, w.WantUnall, w.WantZombies} {
		slices.Sort(l)
	}
	slices.SortFunc(w.Truth, func(a, b Truth) int { return a.Day - b.Day })
	return w, nil
}

// ModelOf returns the model named name.
func (w *World) ModelOf(name string) Model {
	for _, m := range w.Models {
		if m.Name == name {
			return m
		}
	}
	return Model{}
}

// Series builds each model's and job's daily cost series the way the
// analyzer would: cost and GPU-hours from cost.Attribute over the day's
// allocations (by model and job, direct cost only), busy GPU-hours, requests and latency from the
// day's telemetry, the deployment changes, and the model's price keys.
func (w *World) Series() ([]cost.Series, error) {
	byModel := map[string]*cost.Series{}
	var out []*cost.Series
	for _, m := range w.Models {
		s := &cost.Series{Scope: m.scope()}
		byModel[m.Name] = s
		out = append(out, s)
	}
	cfg := cost.AttributionConfig{GroupBy: []cost.Dimension{cost.ByModel, cost.ByJob}, Shared: cost.SharedSeparately}
	for _, d := range w.Days {
		a, err := cost.Attribute(w.Book, cfg, cost.AttributeInput{GPUs: d.GPUs, Allocations: d.Allocations}, d.Date, d.Date.AddDate(0, 0, 1))
		if err != nil {
			return nil, fmt.Errorf("costsim: day %s: %w", d.Date.Format(time.DateOnly), err)
		}
		for _, m := range w.Models {
			key := m.Name + "/" + cost.UnlabelledValue
			if m.Job {
				key = cost.UnlabelledValue + "/" + m.Name
			}
			row := a.Row(key)
			byModel[m.Name].Days = append(byModel[m.Name].Days, cost.Day{Date: d.Date, Cost: row.Direct, GPUHours: row.GPUHours,
				BusyGPUHours: d.Busy[m.Name], Requests: d.Requests[m.Name], LatencyP99: d.Latency[m.Name], Change: d.Change[m.Name],
				PriceKeys: []cost.PriceKey{Pools[m.Pool].PriceKey}})
		}
	}
	res := make([]cost.Series, len(out))
	for i, s := range out {
		res[i] = *s
	}
	return res, nil
}

// TeamSeries sums the model series (not the jobs') by team: requests, busy
// GPU-hours and cost add up; latency is the largest; a change on any model
// is the team's.
func (w *World) TeamSeries(models []cost.Series) []cost.Series {
	idx := map[string]int{}
	var out []cost.Series
	for _, s := range models {
		if s.Scope.Kind != cost.ScopeModel {
			continue
		}
		m := w.ModelOf(s.Scope.Name)
		i, ok := idx[m.Team]
		if !ok {
			i = len(out)
			idx[m.Team] = i
			out = append(out, cost.Series{Scope: cost.Scope{Kind: cost.ScopeTeam, Name: m.Team}, Days: make([]cost.Day, len(s.Days))})
		}
		for j, d := range s.Days {
			t := &out[i].Days[j]
			t.Date = d.Date
			t.Cost += d.Cost
			t.GPUHours += d.GPUHours
			t.BusyGPUHours += d.BusyGPUHours
			t.Requests += d.Requests
			t.LatencyP99 = max(t.LatencyP99, d.LatencyP99)
			if d.Change != "" {
				t.Change = d.Change
			}
			if !slices.Contains(t.PriceKeys, d.PriceKeys[0]) {
				t.PriceKeys = append(t.PriceKeys, d.PriceKeys...)
			}
		}
	}
	return out
}

// Source is the world as the cost detector's cost.DailySource: the model
// and job series up to a day, and a monthly budget per model and job of
// Headroom × its mean daily cost over the first 30 days × the month's days.
type Source struct {
	series   []cost.Series
	budgets  []cost.Budget
	Headroom float64
}

// Source builds the world's DailySource with the given budget headroom.
func (w *World) Source(headroom float64) (*Source, error) {
	ss, err := w.Series()
	if err != nil {
		return nil, err
	}
	src := &Source{series: ss, Headroom: headroom}
	for _, s := range ss {
		var sum float64
		n := min(30, len(s.Days))
		for _, d := range s.Days[:n] {
			sum += d.Cost
		}
		if sum > 0 {
			src.budgets = append(src.budgets, cost.Budget{Scope: s.Scope, Amount: headroom * sum / float64(n)})
		}
	}
	return src, nil
}

// Series implements cost.DailySource.
func (s *Source) Series(_ context.Context, day time.Time) ([]cost.Series, error) {
	out := make([]cost.Series, 0, len(s.series))
	for _, ser := range s.series {
		i := slices.IndexFunc(ser.Days, func(d cost.Day) bool { return d.Date.Equal(day) })
		if i < 0 {
			continue
		}
		out = append(out, cost.Series{Scope: ser.Scope, Days: ser.Days[:i+1]})
	}
	return out, nil
}

// Budgets implements cost.DailySource: each budget for day's month.
func (s *Source) Budgets(_ context.Context, day time.Time) ([]cost.Budget, error) {
	month := time.Date(day.Year(), day.Month(), 1, 0, 0, 0, 0, time.UTC)
	days := float64(month.AddDate(0, 1, 0).Sub(month).Hours() / 24)
	out := make([]cost.Budget, len(s.budgets))
	for i, b := range s.budgets {
		out[i] = cost.Budget{Scope: b.Scope, Month: month, Amount: b.Amount * days}
	}
	return out, nil
}
