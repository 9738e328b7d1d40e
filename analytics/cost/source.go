package cost

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// BudgetConfig is one monthly budget: a scope ("team/search", "model/ranking",
// "job/train-7") and its amount per calendar month.
type BudgetConfig struct {
	Scope   string  `yaml:"scope"`
	Monthly float64 `yaml:"monthly"`
}

// ParseScope reads "kind/name".
func ParseScope(s string) (Scope, error) {
	k, n, ok := strings.Cut(s, "/")
	sc := Scope{Kind: ScopeKind(k), Name: n}
	if !ok || n == "" || (sc.Kind != ScopeModel && sc.Kind != ScopeTeam && sc.Kind != ScopeJob) {
		return Scope{}, fmt.Errorf("scope %q is not model/NAME, team/NAME or job/NAME", s)
	}
	return sc, nil
}

// StoreSource is the cost detector's DailySource over the Store: each day's
// cost and GPU-hours by model, team and job (Attribute over the day's held
// hours, direct cost: shared cost is nobody's anomaly), busy GPU-hours (SM
// activity × each holder's share of the hour), requests and p99 latency from
// inference_events (a team's: its models', by the holders' model and team
// tags), deployment changes from model_deployments, and the configured
// budgets.
type StoreSource struct {
	store   *Store
	book    *PriceBook
	days    int // the days read before the judged one
	budgets []Budget
}

// NewStoreSource reads baselineDays days before each judged day.
func NewStoreSource(store *Store, book *PriceBook, baselineDays int, budgets []BudgetConfig) (*StoreSource, error) {
	if book == nil {
		return nil, errors.New("cost source: no price book")
	}
	src := &StoreSource{store: store, book: book, days: baselineDays}
	var errs []error
	for _, b := range budgets {
		sc, err := ParseScope(b.Scope)
		if err != nil {
			errs = append(errs, fmt.Errorf("budget: %w", err))
			continue
		}
		if !(b.Monthly > 0) {
			errs = append(errs, fmt.Errorf("budget %s: monthly %v is not positive", b.Scope, b.Monthly))
		}
		src.budgets = append(src.budgets, Budget{Scope: sc, Amount: b.Monthly})
	}
	return src, errors.Join(errs...)
}

// Budgets implements DailySource.
func (s *StoreSource) Budgets(_ context.Context, day time.Time) ([]Budget, error) {
	month := time.Date(day.Year(), day.Month(), 1, 0, 0, 0, 0, time.UTC)
	out := make([]Budget, len(s.budgets))
	for i, b := range s.budgets {
		out[i] = Budget{Scope: b.Scope, Month: month, Amount: b.Amount}
	}
	return out, nil
}

// Series implements DailySource: the days from day − baselineDays to day.
func (s *StoreSource) Series(ctx context.Context, day time.Time) ([]Series, error) {
	from := day.AddDate(0, 0, -s.days)
	p, err := s.store.Read(ctx, from, day.AddDate(0, 0, 1))
	if err != nil {
		return nil, err
	}
	return DailySeries(s.book, p)
}

// DailySeries builds each model's, team's and job's daily series over the
// period's whole UTC days. A scope appears from its first day with cost
// or requests; days without any are zero days.
func DailySeries(book *PriceBook, p Period) ([]Series, error) {
	dims := []struct {
		kind ScopeKind
		dim  Dimension
	}{{ScopeModel, ByModel}, {ScopeTeam, ByTeam}, {ScopeJob, ByJob}}
	type acc struct{ days []Day }
	nDays := int(p.To.Sub(p.From).Hours() / 24)
	scopes := map[Scope]*acc{}
	var order []Scope
	at := func(sc Scope, d int) *Day {
		a, ok := scopes[sc]
		if !ok {
			a = &acc{days: make([]Day, nDays)}
			for i := range a.days {
				a.days[i].Date = p.From.AddDate(0, 0, i)
			}
			scopes[sc] = a
			order = append(order, sc)
		}
		return &a.days[d]
	}
	// a model's team, from its holders' tags
	teamOf := map[string]string{}
	for _, al := range p.Allocations {
		if al.Model != "" && al.Team != "" {
			teamOf[al.Model] = al.Team
		}
	}
	keysOf := map[string]PriceKey{}
	for _, g := range p.GPUs {
		keysOf[g.ID] = g.PriceKey
	}
	// busy GPU-hours: each held hour's SM activity, split among its holders
	type gpuHour struct {
		gpu  string
		hour int64
	}
	holders := map[gpuHour]int{}
	hourKey := func(h HeldHour) gpuHour { return gpuHour{h.GPU, h.Hour.Unix()} }
	for _, h := range p.Hours {
		if h.Held() && !h.System {
			holders[hourKey(h)]++
		}
	}
	for d := range nDays {
		from := p.From.AddDate(0, 0, d)
		to := from.AddDate(0, 0, 1)
		for _, dm := range dims {
			a, err := Attribute(book, AttributionConfig{GroupBy: []Dimension{dm.dim}, Shared: SharedSeparately},
				AttributeInput{GPUs: p.GPUs, Allocations: p.Allocations}, from, to)
			if err != nil {
				return nil, fmt.Errorf("daily series %s: %w", from.Format(time.DateOnly), err)
			}
			for _, r := range a.Rows {
				if r.Key == SharedKey || r.Key == UnlabelledValue || r.GPUHours == 0 {
					continue
				}
				day := at(Scope{Kind: dm.kind, Name: r.Key}, d)
				day.Cost += r.Direct
				day.GPUHours += r.GPUHours
			}
		}
	}
	dayIndex := func(t time.Time) int { return int(t.Sub(p.From).Hours() / 24) }
	// busy GPU-hours and price keys, one pass over the hours
	for _, h := range p.Hours {
		d := dayIndex(h.Hour)
		if !h.Held() || h.System || d < 0 || d >= nDays {
			continue
		}
		share := 1.0
		if h.Fraction > 0 {
			share = h.Fraction
		}
		busy := h.SMActive * share / float64(holders[hourKey(h)])
		for _, dm := range dims {
			if v := dm.dim.of(h.Tags); v != "" {
				day := at(Scope{Kind: dm.kind, Name: v}, d)
				day.BusyGPUHours += busy
				if k := keysOf[h.GPU]; !slices.Contains(day.PriceKeys, k) {
					day.PriceKeys = append(day.PriceKeys, k)
				}
			}
		}
	}
	for _, t := range p.Traffic {
		d := dayIndex(t.Day)
		if d < 0 || d >= nDays {
			continue
		}
		for _, sc := range []Scope{{ScopeModel, t.Model}, {ScopeTeam, teamOf[t.Model]}} {
			if sc.Name == "" {
				continue
			}
			day := at(sc, d)
			day.Requests += t.Requests
			day.LatencyP99 = max(day.LatencyP99, t.LatencyP99)
		}
	}
	for _, c := range p.Changes {
		d := dayIndex(c.Day)
		if d < 0 || d >= nDays {
			continue
		}
		for _, sc := range []Scope{{ScopeModel, c.Model}, {ScopeTeam, teamOf[c.Model]}} {
			if sc.Name != "" {
				at(sc, d).Change = c.What
			}
		}
	}
	out := make([]Series, 0, len(order))
	for _, sc := range order {
		days := scopes[sc].days
		first := slices.IndexFunc(days, func(d Day) bool { return d.Cost > 0 || d.Requests > 0 })
		if first < 0 {
			continue
		}
		out = append(out, Series{Scope: sc, Days: days[first:]})
	}
	slices.SortFunc(out, func(a, b Series) int {
		if a.Scope.Kind != b.Scope.Kind {
			return strings.Compare(string(a.Scope.Kind), string(b.Scope.Kind))
		}
		return strings.Compare(a.Scope.Name, b.Scope.Name)
	})
	return out, nil
}
