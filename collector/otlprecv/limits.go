package otlprecv

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"

	fwtelemetry "github.com/fleetwatch/fleetwatch/telemetry"
)

// Default input limits (docs/TELEMETRY.md, "Input limits"). The Collector's
// own size limits get defaults of ours too: DefaultMaxRequestBodySize for
// OTLP/HTTP (max_request_body_size, as sent and decompressed) and
// DefaultMaxRecvMsgSizeMiB for gRPC (max_recv_msg_size_mib, decompressed).
const (
	DefaultMaxAttributeDepth  = 8
	DefaultMaxAttributes      = 128
	DefaultMaxNestedValues    = 1024
	DefaultMaxKeyBytes        = 256
	DefaultMaxValueBytes      = 16 << 10
	DefaultMaxItemsPerRequest = 100_000
	DefaultMaxRequestBodySize = 8 << 20
	DefaultMaxRecvMsgSizeMiB  = 8
)

// Reasons an item is rejected by the receiver itself (reported through
// partial success like the exporter's, counted in
// fleetwatch_receiver_partial_rejected_items).
const (
	RejectedTooManyAttributes = "too_many_attributes" // a map over max_attributes or max_nested_values entries
	RejectedKeyTooLong        = "attribute_key_too_long"
	RejectedValueTooLong      = "attribute_value_too_long"
	RejectedBadIdentifier     = "bad_identifier" // an identifier attribute against fwtelemetry.CheckIdentifier
)

// NormalizedInvalidUTF8 is the reason items are counted in
// fleetwatch_receiver_normalized_items when their strings held invalid
// UTF-8, which the receiver replaces with U+FFFD.
const NormalizedInvalidUTF8 = "invalid_utf8"

// Limits bound what one request may hold. A request over max_attribute_depth
// or max_items_per_request is refused whole, before it is decoded; an item
// (data point, log record, span) over another limit is rejected alone and
// reported through partial success, and the rest of the request is kept.
// Attributes of a resource or scope count for each of its items.
type Limits struct {
	// MaxAttributeDepth is the deepest attribute value: 1 is a plain value,
	// each map or array value around it adds one.
	MaxAttributeDepth int `mapstructure:"max_attribute_depth"`
	// MaxAttributes bounds the keys of one attribute map: a resource's, a
	// scope's, a data point's, a log record's, a span's or its events' and links'.
	MaxAttributes int `mapstructure:"max_attributes"`
	// MaxNestedValues bounds the entries of one map or array nested in an
	// attribute value (such as fleetwatch.features).
	MaxNestedValues int `mapstructure:"max_nested_values"`
	// MaxKeyBytes bounds an attribute key, at any depth.
	MaxKeyBytes int `mapstructure:"max_key_bytes"`
	// MaxValueBytes bounds a string or bytes attribute value, at any depth.
	MaxValueBytes int `mapstructure:"max_value_bytes"`
	// MaxItemsPerRequest bounds the data points, log records or spans of one request.
	MaxItemsPerRequest int `mapstructure:"max_items_per_request"`

	_ struct{}
}

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{
		MaxAttributeDepth:  DefaultMaxAttributeDepth,
		MaxAttributes:      DefaultMaxAttributes,
		MaxNestedValues:    DefaultMaxNestedValues,
		MaxKeyBytes:        DefaultMaxKeyBytes,
		MaxValueBytes:      DefaultMaxValueBytes,
		MaxItemsPerRequest: DefaultMaxItemsPerRequest,
	}
}

// Validate checks that every limit is positive and the depth sane.
func (l *Limits) Validate() error {
	var errs []error
	for _, f := range []struct {
		key string
		v   int
	}{
		{"max_attribute_depth", l.MaxAttributeDepth}, {"max_attributes", l.MaxAttributes},
		{"max_nested_values", l.MaxNestedValues}, {"max_key_bytes", l.MaxKeyBytes},
		{"max_value_bytes", l.MaxValueBytes}, {"max_items_per_request", l.MaxItemsPerRequest},
	} {
		if f.v <= 0 {
			errs = append(errs, fmt.Errorf("limits: %s must be positive, got %d", f.key, f.v))
		}
	}
	if l.MaxAttributeDepth > 64 {
		errs = append(errs, fmt.Errorf("limits: max_attribute_depth must be at most 64, got %d", l.MaxAttributeDepth))
	}
	return errors.Join(errs...)
}

func (l *Limits) scan() scanLimits {
	return scanLimits{depth: l.MaxAttributeDepth, items: l.MaxItemsPerRequest}
}

// checker applies the item limits, the identifier policy and the UTF-8
// repair to decoded data, counting what it rejects and repairs.
type checker struct {
	lim        *Limits
	rejected   map[string]int64
	normalized int64 // items with invalid UTF-8 replaced
	repaired   bool  // set by the current item's checks
}

func newChecker(lim *Limits) *checker {
	return &checker{lim: lim, rejected: map[string]int64{}}
}

// reject counts n items rejected for reason; it reports whether reason is set.
func (c *checker) reject(reason string, n int) bool {
	if reason == "" {
		return false
	}
	c.rejected[reason] += int64(n)
	return true
}

// endItem counts the item as normalized when its checks repaired a string.
func (c *checker) endItem(n int) {
	if c.repaired {
		c.normalized += int64(n)
	}
	c.repaired = false
}

// fix returns s with invalid UTF-8 replaced by U+FFFD, noting the repair.
func (c *checker) fix(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	c.repaired = true
	return strings.ToValidUTF8(s, "\uFFFD")
}

// fixStr repairs a string field through its getter and setter.
func (c *checker) fixStr(get func() string, set func(string)) {
	if s := get(); !utf8.ValidString(s) {
		set(c.fix(s))
	}
}

// attrs checks a top-level attribute map: it repairs invalid UTF-8 and
// returns the reason to reject its item, or "".
func (c *checker) attrs(m pcommon.Map) string {
	if m.Len() > c.lim.MaxAttributes {
		return RejectedTooManyAttributes
	}
	return c.mapEntries(m, true)
}

// mapEntries checks a map's keys and values; top marks an item's own map,
// whose identifier attributes the policy covers.
func (c *checker) mapEntries(m pcommon.Map, top bool) string {
	c.fixKeys(m)
	reason := ""
	for k, v := range m.All() {
		if len(k) > c.lim.MaxKeyBytes {
			return RejectedKeyTooLong
		}
		if reason = c.value(v); reason != "" {
			return reason
		}
		if !top {
			continue
		}
		if fwtelemetry.IsIdentifierAttribute(k) && v.Type() == pcommon.ValueTypeStr && fwtelemetry.CheckIdentifier(v.Str()) != nil {
			return RejectedBadIdentifier
		}
		if (k == fwtelemetry.AttrFeatures || k == fwtelemetry.AttrFeatureUpdatedAt) && v.Type() == pcommon.ValueTypeMap {
			for name := range v.Map().All() {
				if fwtelemetry.CheckIdentifier(name) != nil {
					return RejectedBadIdentifier
				}
			}
		}
	}
	return ""
}

// value checks one attribute value and what it nests (the pre-scan bounds
// the depth of the recursion).
func (c *checker) value(v pcommon.Value) string {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		if len(v.Str()) > c.lim.MaxValueBytes {
			return RejectedValueTooLong
		}
		c.fixStr(v.Str, v.SetStr)
	case pcommon.ValueTypeBytes:
		if v.Bytes().Len() > c.lim.MaxValueBytes {
			return RejectedValueTooLong
		}
	case pcommon.ValueTypeMap:
		if v.Map().Len() > c.lim.MaxNestedValues {
			return RejectedTooManyAttributes
		}
		return c.mapEntries(v.Map(), false)
	case pcommon.ValueTypeSlice:
		s := v.Slice()
		if s.Len() > c.lim.MaxNestedValues {
			return RejectedTooManyAttributes
		}
		for i := range s.Len() {
			if r := c.value(s.At(i)); r != "" {
				return r
			}
		}
	}
	return ""
}

// fixKeys rebuilds m when one of its keys is invalid UTF-8.
func (c *checker) fixKeys(m pcommon.Map) {
	bad := false
	for k := range m.All() {
		if !utf8.ValidString(k) {
			bad = true
			break
		}
	}
	if !bad {
		return
	}
	fixed := pcommon.NewMap()
	fixed.EnsureCapacity(m.Len())
	for k, v := range m.All() {
		v.CopyTo(fixed.PutEmpty(c.fix(k)))
	}
	fixed.MoveTo(m)
}

// body repairs the strings of a log record's body (not size-limited: the
// request's size bounds it).
func (c *checker) body(v pcommon.Value) {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		c.fixStr(v.Str, v.SetStr)
	case pcommon.ValueTypeMap:
		c.fixKeys(v.Map())
		for _, e := range v.Map().All() {
			c.body(e)
		}
	case pcommon.ValueTypeSlice:
		for i := range v.Slice().Len() {
			c.body(v.Slice().At(i))
		}
	}
}

// scope checks a resource's or scope's attributes and repairs the scope's
// name and version.
func (c *checker) scope(sc pcommon.InstrumentationScope) string {
	c.fixStr(sc.Name, sc.SetName)
	c.fixStr(sc.Version, sc.SetVersion)
	return c.attrs(sc.Attributes())
}
