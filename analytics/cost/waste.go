package cost

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Resource is one resource of equation 13: its utilization (0–1) and its
// capacity (GPUs, GPU-hours, or any common unit).
type Resource struct {
	Utilization, Capacity float64
}

// PlatformUtilization is the design documents' equation 13, the
// capacity-weighted average utilization Σ Uᵢ·Capᵢ / Σ Capᵢ (0 without
// capacity). An idle eight-GPU node weighs eight times an idle single GPU.
func PlatformUtilization(rs []Resource) float64 {
	var num, den float64
	for _, r := range rs {
		num += r.Utilization * r.Capacity
		den += r.Capacity
	}
	if den == 0 {
		return 0
	}
	return num / den
}

// Usage is one GPU's hourly rollup: mean SM activity and the fraction of
// device memory in use over the hour starting at Hour.
type Usage struct {
	GPU              string
	Hour             time.Time
	SMActive, MemUse float64
}

// Spend is provisioned against useful spend over a period: Provisioned is
// what the GPUs cost, Useful the part converted into work (each GPU-hour's
// price × its SM activity), Utilization = Useful / Provisioned.
type Spend struct {
	Provisioned, Useful, Utilization float64
}

// UsefulSpend computes Spend over the GPUs' provisioned hours in [from,
// to); an hour without a usage rollup counts as provisioned and not useful.
// Periods are whole hours.
func UsefulSpend(book *PriceBook, gpus []GPU, usage []Usage, from, to time.Time) (Spend, error) {
	sm := map[string]map[int64]float64{}
	for _, u := range usage {
		m := sm[u.GPU]
		if m == nil {
			m = map[int64]float64{}
			sm[u.GPU] = m
		}
		m[u.Hour.Unix()] = u.SMActive
	}
	var s Spend
	for _, g := range gpus {
		for h := from; h.Before(to); h = h.Add(time.Hour) {
			if !g.provisioned(h) {
				continue
			}
			c, err := g.cost(book, h, h.Add(time.Hour))
			if err != nil {
				return Spend{}, fmt.Errorf("useful spend: GPU %s: %w", g.ID, err)
			}
			s.Provisioned += c
			s.Useful += c * sm[g.ID][h.Unix()]
		}
	}
	if s.Provisioned > 0 {
		s.Utilization = s.Useful / s.Provisioned
	}
	return s, nil
}

func (g GPU) provisioned(h time.Time) bool {
	return !h.Before(g.From) && (g.To.IsZero() || h.Before(g.To))
}

// WasteConfig sets the thresholds of the waste lists.
type WasteConfig struct {
	// IdleSM is the SM activity below which an allocated hour is idle.
	IdleSM float64 `yaml:"idle_sm"`
	// IdleHours is how many idle (or unallocated) hours in a row make a
	// finding.
	IdleHours int `yaml:"idle_hours"`
	// HeldMem is the mean memory use at or above which an idle run is
	// idle-held (a model loaded, no compute) rather than idle.
	HeldMem float64 `yaml:"held_mem"`
	// ZombieRequestsPerGPUHour: a model serving fewer requests per GPU-hour
	// it holds is a zombie.
	ZombieRequestsPerGPUHour float64 `yaml:"zombie_requests_per_gpu_hour"`
	// ZombieMinGPUHours is the GPU-hours a model must hold in the period to
	// be judged a zombie.
	ZombieMinGPUHours float64 `yaml:"zombie_min_gpu_hours"`
}

// NewDefaultWasteConfig: idle below 5 % SM activity for 6 hours in a row,
// held from 10 % memory, zombie below 1 request per GPU-hour over at least
// 6 GPU-hours.
func NewDefaultWasteConfig() WasteConfig {
	return WasteConfig{IdleSM: 0.05, IdleHours: 6, HeldMem: 0.10, ZombieRequestsPerGPUHour: 1, ZombieMinGPUHours: 6}
}

// Validate checks the thresholds.
func (c WasteConfig) Validate() error {
	var errs []error
	if !(c.IdleSM > 0 && c.IdleSM < 1) {
		errs = append(errs, fmt.Errorf("waste: idle_sm %v is not in (0, 1)", c.IdleSM))
	}
	if c.IdleHours < 1 {
		errs = append(errs, fmt.Errorf("waste: idle_hours %d is below 1", c.IdleHours))
	}
	if !(c.HeldMem > 0 && c.HeldMem <= 1) {
		errs = append(errs, fmt.Errorf("waste: held_mem %v is not in (0, 1]", c.HeldMem))
	}
	if !(c.ZombieRequestsPerGPUHour >= 0) {
		errs = append(errs, fmt.Errorf("waste: zombie_requests_per_gpu_hour %v is negative", c.ZombieRequestsPerGPUHour))
	}
	if !(c.ZombieMinGPUHours >= 0) {
		errs = append(errs, fmt.Errorf("waste: zombie_min_gpu_hours %v is negative", c.ZombieMinGPUHours))
	}
	return errors.Join(errs...)
}

// WasteKind names a waste list.
type WasteKind string

// The waste kinds.
const (
	Idle        WasteKind = "idle"
	IdleHeld    WasteKind = "idle_held"
	Unallocated WasteKind = "unallocated"
)

// Finding is one run of wasted hours on one GPU.
type Finding struct {
	Kind     WasteKind
	GPU      string
	Tags     Tags // the holder's (none for unallocated)
	From, To time.Time
	Cost     float64
	// MeanSM and MeanMem are the run's mean SM activity and memory use.
	MeanSM, MeanMem float64
}

// Hours is the run's length.
func (f Finding) Hours() float64 { return f.To.Sub(f.From).Hours() }

// Zombie is a model holding GPUs with negligible traffic.
type Zombie struct {
	Model, Team string
	GPUs        []string
	GPUHours    float64
	Requests    float64
	Cost        float64
}

// WasteInput is what Waste reads: the GPUs, who held them, hourly usage and
// each model's requests in the period.
type WasteInput struct {
	GPUs        []GPU
	Allocations []Allocation
	Usage       []Usage
	Requests    map[string]float64 // by model
}

// WasteReport lists the waste of a period.
type WasteReport struct {
	Findings []Finding // by kind, GPU, start
	Zombies  []Zombie  // by model
	Spend    Spend
}

// GPUs returns the sorted GPU IDs of the findings of kind k.
func (r WasteReport) GPUs(k WasteKind) []string {
	var out []string
	for _, f := range r.Findings {
		if f.Kind == k {
			out = append(out, f.GPU)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Waste finds idle, idle-held and unallocated runs of at least IdleHours
// whole hours in [from, to), and zombie models. An hour is allocated when an
// allocation covers its midpoint; hours held by system pods are shared
// cost, never waste; an allocated hour without a
// usage rollup ends a run (no data is not idleness).
func Waste(book *PriceBook, cfg WasteConfig, in WasteInput, from, to time.Time) (WasteReport, error) {
	if err := cfg.Validate(); err != nil {
		return WasteReport{}, err
	}
	type hourUse struct{ sm, mem float64 }
	use := map[string]map[int64]hourUse{}
	for _, u := range in.Usage {
		m := use[u.GPU]
		if m == nil {
			m = map[int64]hourUse{}
			use[u.GPU] = m
		}
		m[u.Hour.Unix()] = hourUse{u.SMActive, u.MemUse}
	}
	per := map[string][]int{}
	for i, a := range in.Allocations {
		per[a.GPU] = append(per[a.GPU], i)
	}
	var rep WasteReport
	zombies := map[string]*Zombie{}
	var err error
	rep.Spend, err = UsefulSpend(book, in.GPUs, in.Usage, from, to)
	if err != nil {
		return WasteReport{}, err
	}
	for _, g := range in.GPUs {
		var run *Finding
		var n int
		flush := func() {
			if run != nil && n >= cfg.IdleHours {
				run.MeanSM /= float64(n)
				run.MeanMem /= float64(n)
				if run.Kind == Idle && run.MeanMem >= cfg.HeldMem {
					run.Kind = IdleHeld
				}
				c, cerr := g.cost(book, run.From, run.To)
				if cerr != nil && err == nil {
					err = fmt.Errorf("waste: GPU %s: %w", g.ID, cerr)
				}
				run.Cost = c
				rep.Findings = append(rep.Findings, *run)
			}
			run, n = nil, 0
		}
		for h := from; h.Before(to); h = h.Add(time.Hour) {
			if !g.provisioned(h) {
				flush()
				continue
			}
			mid := h.Add(30 * time.Minute)
			holder := -1
			for _, ai := range per[g.ID] {
				if a := in.Allocations[ai]; !a.From.After(mid) && a.To.After(mid) {
					holder = ai
					break
				}
			}
			u, have := use[g.ID][h.Unix()]
			kind := WasteKind("")
			var tags Tags
			switch {
			case holder < 0:
				kind = Unallocated
			case in.Allocations[holder].System: // platform pods: shared cost, not waste
			case have && u.sm < cfg.IdleSM:
				kind, tags = Idle, in.Allocations[holder].Tags
			}
			if holder >= 0 {
				a := in.Allocations[holder]
				if a.Model != "" && !a.System {
					z := zombies[a.Model]
					if z == nil {
						z = &Zombie{Model: a.Model, Team: a.Team}
						zombies[a.Model] = z
					}
					z.GPUHours += g.share()
					if !slices.Contains(z.GPUs, g.ID) {
						z.GPUs = append(z.GPUs, g.ID)
					}
					c, cerr := g.cost(book, h, h.Add(time.Hour))
					if cerr != nil && err == nil {
						err = fmt.Errorf("waste: GPU %s: %w", g.ID, cerr)
					}
					z.Cost += c
				}
			}
			if kind == "" || (run != nil && (run.Kind != kind || run.Tags != tags)) {
				flush()
			}
			if kind == "" {
				continue
			}
			if run == nil {
				run = &Finding{Kind: kind, GPU: g.ID, Tags: tags, From: h}
			}
			run.To = h.Add(time.Hour)
			run.MeanSM += u.sm
			run.MeanMem += u.mem
			n++
		}
		flush()
	}
	if err != nil {
		return WasteReport{}, err
	}
	for _, z := range zombies {
		z.Requests = in.Requests[z.Model]
		if z.GPUHours >= cfg.ZombieMinGPUHours && z.Requests < cfg.ZombieRequestsPerGPUHour*z.GPUHours {
			slices.Sort(z.GPUs)
			rep.Zombies = append(rep.Zombies, *z)
		}
	}
	slices.SortFunc(rep.Zombies, func(a, b Zombie) int { return strings.Compare(a.Model, b.Model) })
	slices.SortFunc(rep.Findings, func(a, b Finding) int {
		if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
			return c
		}
		if c := strings.Compare(a.GPU, b.GPU); c != 0 {
			return c
		}
		return a.From.Compare(b.From)
	})
	return rep, nil
}
