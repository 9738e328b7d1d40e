package kernels

import (
	"fmt"

	"github.com/apache/arrow/go/v17/arrow/array"
)

// Categories bins strings: each known category has its own bin, in the
// given order, and every other non-empty string falls into a final "other"
// bin. The empty string and nulls are missing. A Categories is immutable and
// safe for concurrent use.
type Categories struct {
	names []string
	index map[string]int
}

// NewCategories validates names (non-empty, unique) and indexes them.
func NewCategories(names []string) (*Categories, error) {
	c := &Categories{names: names, index: make(map[string]int, len(names))}
	for i, n := range names {
		if n == "" {
			return nil, fmt.Errorf("categories: name %d is empty (empty means missing)", i)
		}
		if _, dup := c.index[n]; dup {
			return nil, fmt.Errorf("categories: %q appears twice", n)
		}
		c.index[n] = i
	}
	return c, nil
}

// Bins is the number of bins: the categories plus "other".
func (c *Categories) Bins() int { return len(c.names) + 1 }

// Bin returns v's bin, len(names) for other, or -1 for missing.
func (c *Categories) Bin(v string) int {
	if v == "" {
		return -1
	}
	if i, ok := c.index[v]; ok {
		return i
	}
	return len(c.names)
}

// AddStrings counts vs into h, which must have Bins() bins.
func (c *Categories) AddStrings(h *Histogram, vs []string) {
	for _, v := range vs {
		if k := c.Bin(v); k >= 0 {
			h.Counts[k]++
		} else {
			h.Missing++
		}
	}
}

// AddArray counts a's values into h; nulls and empty strings are missing.
// Value(i) does not copy, so counting allocates nothing.
func (c *Categories) AddArray(h *Histogram, a *array.String) {
	for i := 0; i < a.Len(); i++ {
		k := -1
		if a.IsValid(i) {
			k = c.Bin(a.Value(i))
		}
		if k >= 0 {
			h.Counts[k]++
		} else {
			h.Missing++
		}
	}
}
