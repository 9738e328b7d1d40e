package cost

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Purchase is how a GPU is bought.
type Purchase string

// The purchase types of the price book.
const (
	OnDemand Purchase = "on_demand"
	Reserved Purchase = "reserved"
	Spot     Purchase = "spot"
)

func (p Purchase) valid() bool { return p == OnDemand || p == Reserved || p == Spot }

// PriceKey says which price applies to a GPU.
type PriceKey struct {
	GPUModel string   `yaml:"gpu_model" json:"gpu_model"`
	Cluster  string   `yaml:"cluster" json:"cluster"` // a cluster or a region
	Purchase Purchase `yaml:"purchase" json:"purchase"`
}

func (k PriceKey) String() string {
	return k.GPUModel + "/" + k.Cluster + "/" + string(k.Purchase)
}

// Price is one entry of the price book: from Effective on, a GPU of Key
// costs PerGPUHour per hour until the next entry for the same key.
type Price struct {
	PriceKey   `yaml:",inline"`
	Effective  time.Time `yaml:"effective" json:"effective"`
	PerGPUHour float64   `yaml:"per_gpu_hour" json:"per_gpu_hour"`
}

// PriceBookConfig is the price book as configured (YAML: currency, prices).
type PriceBookConfig struct {
	Currency string  `yaml:"currency"`
	Prices   []Price `yaml:"prices"`
}

// NewDefaultPriceBookConfig returns an empty book in US dollars.
func NewDefaultPriceBookConfig() PriceBookConfig { return PriceBookConfig{Currency: "USD"} }

// Validate lists every problem of the book: missing fields, an unknown
// purchase type, a negative or non-finite price, a missing effective date
// and two entries for the same key and date.
func (c PriceBookConfig) Validate() error {
	var errs []error
	if c.Currency == "" {
		errs = append(errs, errors.New("price book: currency is empty"))
	}
	if len(c.Prices) == 0 {
		errs = append(errs, errors.New("price book: no prices"))
	}
	seen := map[string]int{}
	for i, p := range c.Prices {
		at := fmt.Sprintf("price book: prices[%d] (%s)", i, p.PriceKey)
		if p.GPUModel == "" {
			errs = append(errs, fmt.Errorf("%s: gpu_model is empty", at))
		}
		if p.Cluster == "" {
			errs = append(errs, fmt.Errorf("%s: cluster is empty", at))
		}
		if !p.Purchase.valid() {
			errs = append(errs, fmt.Errorf("%s: purchase %q is not on_demand, reserved or spot", at, p.Purchase))
		}
		if p.Effective.IsZero() {
			errs = append(errs, fmt.Errorf("%s: effective date is missing", at))
		}
		if !(p.PerGPUHour >= 0) || p.PerGPUHour > 1e6 {
			errs = append(errs, fmt.Errorf("%s: per_gpu_hour %v is not a price", at, p.PerGPUHour))
		}
		id := p.PriceKey.String() + "@" + p.Effective.UTC().Format(time.RFC3339)
		if j, dup := seen[id]; dup {
			errs = append(errs, fmt.Errorf("%s: same key and effective date as prices[%d]", at, j))
		}
		seen[id] = i
	}
	return errors.Join(errs...)
}

// PriceChange is a change of a key's price at a time: a root cause.
type PriceChange struct {
	PriceKey
	At       time.Time
	Old, New float64
}

// Ratio is New/Old (0 when Old is 0).
func (c PriceChange) Ratio() float64 {
	if c.Old == 0 {
		return 0
	}
	return c.New / c.Old
}

func (c PriceChange) String() string {
	return fmt.Sprintf("price of %s changed %g → %g per GPU-hour at %s", c.PriceKey, c.Old, c.New, c.At.UTC().Format(time.RFC3339))
}

// PriceBook answers what a GPU costs at a time. It is immutable and safe
// for concurrent use.
type PriceBook struct {
	currency string
	byKey    map[PriceKey][]Price // sorted by Effective
}

// ErrNoPrice is returned for a key the book does not price at that time.
var ErrNoPrice = errors.New("no price")

// NewPriceBook validates c and builds the book.
func NewPriceBook(c PriceBookConfig) (*PriceBook, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b := &PriceBook{currency: c.Currency, byKey: map[PriceKey][]Price{}}
	for _, p := range c.Prices {
		p.Effective = p.Effective.UTC()
		b.byKey[p.PriceKey] = append(b.byKey[p.PriceKey], p)
	}
	for _, ps := range b.byKey {
		slices.SortFunc(ps, func(a, b Price) int { return a.Effective.Compare(b.Effective) })
	}
	return b, nil
}

// ReadPriceBook decodes a YAML price book and builds it.
func ReadPriceBook(r io.Reader) (*PriceBook, error) {
	c := NewDefaultPriceBookConfig()
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("price book: decode: %w", err)
	}
	return NewPriceBook(c)
}

// LoadPriceBook reads a YAML price book file.
func LoadPriceBook(path string) (*PriceBook, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("price book: %w", err)
	}
	defer f.Close()
	b, err := ReadPriceBook(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// Currency is the book's currency.
func (b *PriceBook) Currency() string { return b.currency }

// At returns the price per GPU-hour of k at t.
func (b *PriceBook) At(k PriceKey, t time.Time) (float64, error) {
	ps := b.byKey[k]
	i := b.index(ps, t)
	if i < 0 {
		return 0, fmt.Errorf("%s at %s: %w", k, t.UTC().Format(time.RFC3339), ErrNoPrice)
	}
	return ps[i].PerGPUHour, nil
}

// index returns the entry of ps in force at t, -1 if none.
func (b *PriceBook) index(ps []Price, t time.Time) int {
	// the last entry with Effective <= t
	i, _ := slices.BinarySearchFunc(ps, t, func(p Price, t time.Time) int {
		if p.Effective.After(t) {
			return 1
		}
		return -1
	})
	return i - 1
}

// Cost returns what one GPU of k costs from from to to, integrating across
// the price changes in between.
func (b *PriceBook) Cost(k PriceKey, from, to time.Time) (float64, error) {
	if !to.After(from) {
		return 0, nil
	}
	ps := b.byKey[k]
	i := b.index(ps, from)
	if i < 0 {
		return 0, fmt.Errorf("%s at %s: %w", k, from.UTC().Format(time.RFC3339), ErrNoPrice)
	}
	var sum float64
	for t := from; t.Before(to); i++ {
		end := to
		if i+1 < len(ps) && ps[i+1].Effective.Before(to) {
			end = ps[i+1].Effective
		}
		sum += end.Sub(t).Hours() * ps[i].PerGPUHour
		t = end
	}
	return sum, nil
}

// Changes returns the price changes with from <= At < to, by time then key.
// A key's first entry is not a change.
func (b *PriceBook) Changes(from, to time.Time) []PriceChange {
	var out []PriceChange
	for k, ps := range b.byKey {
		for i := 1; i < len(ps); i++ {
			if at := ps[i].Effective; !at.Before(from) && at.Before(to) {
				out = append(out, PriceChange{PriceKey: k, At: at, Old: ps[i-1].PerGPUHour, New: ps[i].PerGPUHour})
			}
		}
	}
	slices.SortFunc(out, func(a, b PriceChange) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.PriceKey.String(), b.PriceKey.String())
	})
	return out
}
