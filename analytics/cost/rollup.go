package cost

import (
	"fmt"
	"time"
)

// Rollups are per-GPU daily allocation rollups in columns, one row per GPU
// and day: the day (index from Start), the GPU's price key (index into
// Keys), the group that held it (index into Groups: a team, model, job…)
// and the hours it was held. They are what a daily cost pass reads instead
// of raw samples or intervals: 100,000 GPUs × 90 days is 9 M rows.
type Rollups struct {
	Start  time.Time // 00:00 UTC of day 0
	Days   int
	Keys   []PriceKey
	Groups []string
	Day    []uint16
	Key    []uint16
	Group  []uint32
	Hours  []float32
}

// Append adds one row.
func (r *Rollups) Append(day, key int, group int, hours float32) {
	r.Day = append(r.Day, uint16(day))
	r.Key = append(r.Key, uint16(key))
	r.Group = append(r.Group, uint32(group))
	r.Hours = append(r.Hours, hours)
}

// Len is the number of rows.
func (r *Rollups) Len() int { return len(r.Day) }

// DayPrices returns each key's mean price per GPU-hour on each day, indexed
// [key*Days+day]: the book integrated over the day / 24. A GPU held all day
// costs hours × this exactly; a partial day is priced at the day's mean
// (exact unless the price changes during that day).
func (r *Rollups) DayPrices(book *PriceBook, dst []float64) ([]float64, error) {
	dst = append(dst[:0], make([]float64, len(r.Keys)*r.Days)...)
	for k, key := range r.Keys {
		for d := range r.Days {
			from := r.Start.AddDate(0, 0, d)
			c, err := book.Cost(key, from, from.Add(24*time.Hour))
			if err != nil {
				return nil, fmt.Errorf("rollups: %w", err)
			}
			dst[k*r.Days+d] = c / 24
		}
	}
	return dst, nil
}

// DailyCost is the daily cost pass: cost per day and group, indexed
// [day*len(Groups)+group], appended into dst[:0]. prices is DayPrices'.
func (r *Rollups) DailyCost(prices []float64, dst []float64) ([]float64, error) {
	if len(prices) != len(r.Keys)*r.Days {
		return nil, fmt.Errorf("rollups: %d prices for %d keys × %d days", len(prices), len(r.Keys), r.Days)
	}
	n := len(r.Day)
	if len(r.Key) != n || len(r.Group) != n || len(r.Hours) != n {
		return nil, fmt.Errorf("rollups: columns of different lengths")
	}
	g := len(r.Groups)
	dst = append(dst[:0], make([]float64, r.Days*g)...)
	day, key, grp, hrs := r.Day[:n], r.Key[:n], r.Group[:n], r.Hours[:n]
	for i := range n {
		d := int(day[i])
		if d >= r.Days || int(grp[i]) >= g {
			return nil, fmt.Errorf("rollups: row %d: day %d or group %d out of range", i, d, grp[i])
		}
		dst[d*g+int(grp[i])] += float64(hrs[i]) * prices[int(key[i])*r.Days+d]
	}
	return dst, nil
}
