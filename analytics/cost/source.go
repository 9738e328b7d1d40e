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

// StoreSource is the cost detector's DailySource over the Store
// (Store.DailySeries, summed per day and scope in ClickHouse): each day's
// direct cost and GPU-hours by model, team and job (shared cost is
// nobody's anomaly), busy GPU-hours (SM activity × each holder's share of
// the hour), requests and p99 latency from inference_events (a team's: its
// models', by the holders' model and team tags), deployment changes from
// model_deployments, and the configured budgets.
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
	return s.store.DailySeries(ctx, s.book, day.AddDate(0, 0, -s.days), day.AddDate(0, 0, 1))
}

// scopeDims are the dimensions of the daily series.
var scopeDims = []struct {
	kind ScopeKind
	dim  Dimension
}{{ScopeModel, ByModel}, {ScopeTeam, ByTeam}, {ScopeJob, ByJob}}

// seriesBuilder accumulates the days of every scope over [from, from +
// days).
type seriesBuilder struct {
	from   time.Time
	days   int
	scopes map[Scope][]Day
	order  []Scope
	teamOf map[string]string // a model's team, from its holders' tags
}

func newSeriesBuilder(from, to time.Time) *seriesBuilder {
	return &seriesBuilder{from: from, days: int(to.Sub(from).Hours() / 24), scopes: map[Scope][]Day{}, teamOf: map[string]string{}}
}

// day returns t's day index, or -1 outside the period.
func (b *seriesBuilder) day(t time.Time) int {
	d := int(t.Sub(b.from).Hours() / 24)
	if t.Before(b.from) || d >= b.days {
		return -1
	}
	return d
}

func (b *seriesBuilder) at(sc Scope, d int) *Day {
	days, ok := b.scopes[sc]
	if !ok {
		days = make([]Day, b.days)
		for i := range days {
			days[i].Date = b.from.AddDate(0, 0, i)
		}
		b.scopes[sc] = days
		b.order = append(b.order, sc)
	}
	return &days[d]
}

// held adds a holder's held GPU-hours on day d to its scopes.
func (b *seriesBuilder) held(d int, t Tags, key PriceKey, cost, gpuHours, busy float64) {
	if t.Model != "" && t.Team != "" {
		b.teamOf[t.Model] = t.Team
	}
	for _, dm := range scopeDims {
		v := dm.dim.of(t)
		if v == "" {
			continue
		}
		day := b.at(Scope{Kind: dm.kind, Name: v}, d)
		day.Cost += cost
		day.GPUHours += gpuHours
		day.BusyGPUHours += busy
		if !slices.Contains(day.PriceKeys, key) {
			day.PriceKeys = append(day.PriceKeys, key)
		}
	}
}

// traffic adds requests and changes to the models and their teams.
func (b *seriesBuilder) traffic(traffic []Traffic, changes []Change) {
	for _, t := range traffic {
		d := b.day(t.Day)
		if d < 0 {
			continue
		}
		for _, sc := range []Scope{{ScopeModel, t.Model}, {ScopeTeam, b.teamOf[t.Model]}} {
			if sc.Name == "" {
				continue
			}
			day := b.at(sc, d)
			day.Requests += t.Requests
			day.LatencyP99 = max(day.LatencyP99, t.LatencyP99)
		}
	}
	for _, c := range changes {
		d := b.day(c.Day)
		if d < 0 {
			continue
		}
		if c.Job != "" {
			b.at(Scope{ScopeJob, c.Job}, d).Change = c.What
			continue
		}
		for _, sc := range []Scope{{ScopeModel, c.Model}, {ScopeTeam, b.teamOf[c.Model]}} {
			if sc.Name != "" {
				b.at(sc, d).Change = c.What
			}
		}
	}
}

// series returns every scope from its first day with cost or requests,
// by kind and name.
func (b *seriesBuilder) series() []Series {
	out := make([]Series, 0, len(b.order))
	for _, sc := range b.order {
		days := b.scopes[sc]
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
	return out
}

// DailySeries builds each model's, team's and job's daily series over the
// period's whole UTC days from its held hours: cost and GPU-hours by
// Attribute (direct cost; concurrent holders share a GPU), busy GPU-hours
// as each held hour's SM activity split among its holders. A scope
// appears from its first day with cost or requests; days without any are
// zero days. Store.DailySeries computes the same in ClickHouse.
func DailySeries(book *PriceBook, p Period) ([]Series, error) {
	b := newSeriesBuilder(p.From, p.To)
	for d := range b.days {
		from := p.From.AddDate(0, 0, d)
		to := from.AddDate(0, 0, 1)
		for _, dm := range scopeDims {
			a, err := Attribute(book, AttributionConfig{GroupBy: []Dimension{dm.dim}, Shared: SharedSeparately},
				AttributeInput{GPUs: p.GPUs, Allocations: p.Allocations}, from, to)
			if err != nil {
				return nil, fmt.Errorf("daily series %s: %w", from.Format(time.DateOnly), err)
			}
			for _, r := range a.Rows {
				if r.Key == SharedKey || r.Key == UnlabelledValue || r.GPUHours == 0 {
					continue
				}
				day := b.at(Scope{Kind: dm.kind, Name: r.Key}, d)
				day.Cost += r.Direct
				day.GPUHours += r.GPUHours
			}
		}
	}
	keysOf := map[string]PriceKey{}
	for _, g := range p.GPUs {
		keysOf[g.ID] = g.PriceKey
	}
	type gpuHour struct {
		gpu  string
		hour int64
	}
	holders := map[gpuHour]int{}
	for _, h := range p.Hours {
		if h.Held() && !h.System {
			holders[gpuHour{h.GPU, h.Hour.Unix()}]++
		}
	}
	for _, h := range p.Hours {
		d := b.day(h.Hour)
		if !h.Held() || h.System || d < 0 {
			continue
		}
		share := 1.0
		if h.Fraction > 0 {
			share = h.Fraction
		}
		// cost and GPU-hours came from Attribute above
		b.held(d, h.Tags, keysOf[h.GPU], 0, 0, h.SMActive*share/float64(holders[gpuHour{h.GPU, h.Hour.Unix()}]))
	}
	b.traffic(p.Traffic, p.Changes)
	return b.series(), nil
}
