// Package fastotlp decodes an OTLP metrics export request (protobuf) straight
// into columns of number data points, without building pdata: the GPU
// telemetry's hot path, where the receiver's pdata tree is built only to be
// walked once and thrown away.
//
// Decode gives, for every gauge and sum data point, the fields the
// ClickHouse exporter stores: its metric (name, gauge or sum, temporality,
// monotonicity), its resource's attributes, its own attributes as
// key/value strings, its start time, time and value. It appends into
// slices a Columns reuses from request to request, and its strings alias
// the request's bytes, so a request of known series allocates nothing.
//
// For the same bytes it gives the same points as pdata's decoder
// (pmetricotlp.ExportRequest.UnmarshalProto, the receiver's), which the
// fuzz test FuzzDirectMatchesPdata checks: it rejects what pdata rejects
// (errors wrap ErrMalformed), and it answers ErrUnsupported for requests it
// does not take, which the caller hands to pdata instead:
//
//   - histograms, exponential histograms and summaries;
//   - a resource or data point attribute whose value is a double, bytes, an
//     array or a map (the GPU telemetry's are strings);
//   - attribute values nested deeper than maxDepth anywhere;
//   - a varint whose tenth byte is above 1, or a field number past
//     protobuf's range (2²⁹−1): pdata reads both, the receiver's pre-scan
//     (protowire) refuses them (wire.go).
//
// Protobuf's merge rules are pdata's: a repeated Resource message merges
// (its attributes add up), a metric's data (gauge, sum, ...) and a point's
// value are the last sent, and a resource's deprecated scope metrics
// (field 1000) count only when it has no scope metrics.
package fastotlp

import (
	"errors"
	"math"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrUnsupported means the request is well-formed as far as the decoder
// looked but holds something it does not decode (see the package comment):
// decode it with pdata.
var ErrUnsupported = errors.New("OTLP metrics request needs the general decoder")

// maxDepth bounds the nesting of attribute values the decoder checks (1
// is a plain value): the receiver refuses deeper requests before decoding
// (max_attribute_depth, 8 by default).
const maxDepth = 64

// MetricType is a metric's data type, as far as the decoder keeps it.
type MetricType uint8

// Metric types. A metric with no data is MetricEmpty and has no points.
const (
	MetricEmpty MetricType = iota
	MetricGauge
	MetricSum
)

// ValueType is which of a data point's values was sent.
type ValueType uint8

// Value types. ValueEmpty is a point without a value (read as 0).
const (
	ValueEmpty ValueType = iota
	ValueDouble
	ValueInt
)

// Metric is one metric of the request.
type Metric struct {
	Name string
	Type MetricType
	// Temporality is the sum's aggregation temporality as sent (1 delta,
	// 2 cumulative); 0 for a gauge.
	Temporality int32
	Monotonic   bool
	// Resource is the index of the metric's resource.
	Resource int32
}

// Columns holds a decoded request: resources, metrics, and one row per data
// point. Its strings alias the request's bytes (and a scratch buffer of the
// Columns for integer and boolean attribute values): they are valid while
// the request's bytes are unchanged and until the next Decode.
type Columns struct {
	// Resources: resource r's attributes are ResKeys[i], ResValues[i] for
	// i in [resStart[r], resStart[r+1]) (the last runs to the end).
	resStart  []int32
	ResKeys   []string
	ResValues []string

	Metrics []Metric

	// Points, one element each.
	Metric    []int32 // index in Metrics
	Start     []uint64
	Time      []uint64
	Value     []float64 // an integer value converted
	ValueType []ValueType
	// attrStart: point i's attributes are AttrKeys[j], AttrValues[j] for j
	// in [attrStart[i], attrStart[i+1]) (the last runs to the end).
	attrStart  []int32
	AttrKeys   []string
	AttrValues []string

	scratch []byte
	// unchecked: the request holds what the receiver's checks look at but
	// the columns do not keep (see Checked).
	unchecked bool
	// walked counts the number data points decoded, those a later field
	// replaced included; deepest is the deepest attribute nesting seen.
	walked, deepest int
}

// Walked is the number of NumberDataPoint messages in the request as
// sent, those a repeated field replaced included: at least the count of
// the receiver's pre-scan, which counts every data point message.
func (c *Columns) Walked() int { return c.walked }

// Depth is the deepest nesting of attribute values in the request (1: a
// plain value; 0: none), in the columns or in the parts only checked.
func (c *Columns) Depth() int { return c.deepest }

// Checked reports whether everything of the request that the receiver's
// checks look at is in the columns: no scope has attributes, and the
// scopes' names and versions and the metrics' names, descriptions and
// units are valid UTF-8; and whether it holds no group (a deprecated wire
// type no OTLP sender uses, which pdata and the receiver's pre-scan read
// differently: pdata no further than its first field, the pre-scan to its
// end). When it is false the columns are still right, but only the
// pre-scan and pdata's checks can tell what they would refuse, reject or
// repair.
func (c *Columns) Checked() bool { return !c.unchecked }

// Len is the number of data points.
func (c *Columns) Len() int { return len(c.Metric) }

// Resources is the number of resources.
func (c *Columns) Resources() int { return len(c.resStart) }

// ResourceAttrs returns resource r's attributes in the order they came.
func (c *Columns) ResourceAttrs(r int) (keys, values []string) {
	lo, hi := span(c.resStart, r, len(c.ResKeys))
	return c.ResKeys[lo:hi], c.ResValues[lo:hi]
}

// PointAttrs returns point i's attributes in the order they came.
func (c *Columns) PointAttrs(i int) (keys, values []string) {
	lo, hi := span(c.attrStart, i, len(c.AttrKeys))
	return c.AttrKeys[lo:hi], c.AttrValues[lo:hi]
}

func span(starts []int32, i, end int) (int, int) {
	if i+1 < len(starts) {
		return int(starts[i]), int(starts[i+1])
	}
	return int(starts[i]), end
}

// Reset empties c, keeping its memory.
func (c *Columns) Reset() {
	c.resStart, c.ResKeys, c.ResValues = c.resStart[:0], c.ResKeys[:0], c.ResValues[:0]
	c.Metrics = c.Metrics[:0]
	c.rollback(mark{})
	c.scratch = c.scratch[:0]
	c.unchecked = false
	c.walked, c.deepest = 0, 0
}

// mark is a position in the point columns to roll back to.
type mark struct{ metrics, points, attrs int }

func (c *Columns) mark() mark { return mark{len(c.Metrics), len(c.Metric), len(c.AttrKeys)} }

// rollback forgets the metrics and points added after m.
func (c *Columns) rollback(m mark) {
	c.Metrics = c.Metrics[:m.metrics]
	c.rollbackPoints(m)
}

func (c *Columns) rollbackPoints(m mark) {
	c.Metric, c.Start, c.Time = c.Metric[:m.points], c.Start[:m.points], c.Time[:m.points]
	c.Value, c.ValueType, c.attrStart = c.Value[:m.points], c.ValueType[:m.points], c.attrStart[:m.points]
	c.AttrKeys, c.AttrValues = c.AttrKeys[:m.attrs], c.AttrValues[:m.attrs]
}

// Decode resets c and decodes the export request b into it. On an error c
// holds a part of the request: Reset it or decode the next one.
func (c *Columns) Decode(b []byte) error {
	c.Reset()
	return forFields(b, func(num int32, typ protowire.Type, b []byte, pos int) (int, error) {
		if num != 1 { // resource_metrics
			return skipField(b, pos, typ, &c.unchecked)
		}
		msg, pos, err := consumeBytes(b, pos, typ)
		if err != nil {
			return 0, err
		}
		return pos, c.resourceMetrics(msg)
	})
}

// forFields calls field for each field of the message b, with the position
// after its tag; field returns the position after the field.
func forFields(b []byte, field func(num int32, typ protowire.Type, b []byte, pos int) (int, error)) error {
	for pos := 0; pos < len(b); {
		num, typ, p, err := consumeTag(b, pos)
		if err != nil {
			return err
		}
		if pos, err = field(num, typ, b, p); err != nil {
			return err
		}
	}
	return nil
}

// str returns b's bytes as a string that aliases them.
func str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func (c *Columns) resourceMetrics(b []byte) error {
	res := int32(len(c.resStart))
	c.resStart = append(c.resStart, int32(len(c.ResKeys)))
	start := c.mark()
	sawScope := false
	return forFields(b, func(num int32, typ protowire.Type, b []byte, pos int) (int, error) {
		var fn func([]byte) error
		switch num {
		case 1: // resource
			fn = c.resource
		case 2: // scope_metrics: those of field 1000 before it do not count
			if !sawScope {
				c.rollback(start)
				sawScope = true
			}
			fn = func(b []byte) error { return c.scopeMetrics(b, res) }
		case 1000: // deprecated scope_metrics: count only without any of field 2
			fn = func(b []byte) error {
				m := c.mark()
				err := c.scopeMetrics(b, res)
				if sawScope {
					c.rollback(m)
				}
				return err
			}
		case 3: // schema_url
			fn = nil
		default:
			return skipField(b, pos, typ, &c.unchecked)
		}
		msg, pos, err := consumeBytes(b, pos, typ)
		if err != nil || fn == nil {
			return pos, err
		}
		return pos, fn(msg)
	})
}

func (c *Columns) resource(b []byte) error {
	return forFields(b, func(num int32, typ protowire.Type, b []byte, pos int) (int, error) {
		switch num {
		case 1: // attributes
			msg, pos, err := consumeBytes(b, pos, typ)
			if err != nil {
				return 0, err
			}
			k, v, err := c.keyValue(msg)
			c.ResKeys, c.ResValues = append(c.ResKeys, k), append(c.ResValues, v)
			return pos, err
		case 2: // dropped_attributes_count
			_, pos, err := consumeVarintField(b, pos, typ)
			return pos, err
		case 3: // entity_refs
			return c.checkMessage(b, pos, typ, entityRefSchema)
		}
		return skipField(b, pos, typ, &c.unchecked)
	})
}

func (c *Columns) scopeMetrics(b []byte, res int32) error {
	return forFields(b, func(num int32, typ protowire.Type, b []byte, pos int) (int, error) {
		switch num {
		case 1: // scope
			end, err := c.checkMessage(b, pos, typ, scopeSchema)
			if err == nil {
				msg, _, _ := consumeBytes(b, pos, typ) // checked
				c.scope(msg)
			}
			return end, err
		case 2: // metrics
			msg, pos, err := consumeBytes(b, pos, typ)
			if err != nil {
				return 0, err
			}
			return pos, c.metric(msg, res)
		case 3: // schema_url
			_, pos, err := consumeBytes(b, pos, typ)
			return pos, err
		}
		return skipField(b, pos, typ, &c.unchecked)
	})
}

// scope notes whether a scope (checked against its schema) holds
// attributes or a name or version that is not valid UTF-8.
func (c *Columns) scope(b []byte) {
	_ = forFields(b, func(num int32, typ protowire.Type, b []byte, pos int) (int, error) {
		switch num {
		case 1, 2: // name, version
			s, pos, err := consumeBytes(b, pos, typ)
			c.unchecked = c.unchecked || !utf8.Valid(s)
			return pos, err
		case 3: // attributes
			c.unchecked = true
		}
		return skipField(b, pos, typ, &c.unchecked)
	})
}

func (c *Columns) metric(b []byte, res int32) error {
	mi := int32(len(c.Metrics))
	c.Metrics = append(c.Metrics, Metric{Resource: res})
	start := c.mark()
	return forFields(b, func(num int32, typ protowire.Type, b []byte, pos int) (int, error) {
		switch num {
		case 1, 2, 3: // name, description, unit
			s, pos, err := consumeBytes(b, pos, typ)
			if err == nil {
				c.unchecked = c.unchecked || !utf8.Valid(s)
				if num == 1 {
					c.Metrics[mi].Name = str(s)
				}
			}
			return pos, err
		case 5, 7: // gauge, sum: the last data sent replaces any before
			msg, pos, err := consumeBytes(b, pos, typ)
			if err != nil {
				return 0, err
			}
			c.rollbackPoints(start)
			m := &c.Metrics[mi]
			m.Type, m.Temporality, m.Monotonic = MetricGauge, 0, false
			if num == 7 {
				m.Type = MetricSum
			}
			return pos, c.numberData(msg, mi)
		case 9, 10, 11: // histogram, exponential_histogram, summary
			return 0, ErrUnsupported
		case 12: // metadata
			return c.checkMessage(b, pos, typ, keyValueSchema)
		}
		return skipField(b, pos, typ, &c.unchecked)
	})
}

// numberData decodes a Gauge or a Sum (the same field 1 for data points;
// a gauge has no fields 2 and 3).
func (c *Columns) numberData(b []byte, mi int32) error {
	sum := c.Metrics[mi].Type == MetricSum
	return forFields(b, func(num int32, typ protowire.Type, b []byte, pos int) (int, error) {
		switch {
		case num == 1: // data_points
			msg, pos, err := consumeBytes(b, pos, typ)
			if err != nil {
				return 0, err
			}
			return pos, c.dataPoint(msg, mi)
		case num == 2 && sum: // aggregation_temporality
			v, pos, err := consumeVarintField(b, pos, typ)
			c.Metrics[mi].Temporality = int32(v)
			return pos, err
		case num == 3 && sum: // is_monotonic
			v, pos, err := consumeVarintField(b, pos, typ)
			c.Metrics[mi].Monotonic = v != 0
			return pos, err
		}
		return skipField(b, pos, typ, &c.unchecked)
	})
}

// dataPoint decodes a NumberDataPoint. It does not use forFields: this is
// the loop every sample goes through.
func (c *Columns) dataPoint(b []byte, mi int32) error {
	c.walked++
	attrs := int32(len(c.AttrKeys))
	var start, ts uint64
	var value float64
	var vt ValueType
	for pos := 0; pos < len(b); {
		num, typ, p, err := consumeTag(b, pos)
		if err != nil {
			return err
		}
		pos = p
		switch num {
		case 7: // attributes
			msg, p, err := consumeBytes(b, pos, typ)
			if err != nil {
				return err
			}
			pos = p
			k, v, err := c.keyValue(msg)
			if err != nil {
				return err
			}
			c.AttrKeys, c.AttrValues = append(c.AttrKeys, k), append(c.AttrValues, v)
		case 2, 3, 4, 6: // start_time_unix_nano, time_unix_nano, as_double, as_int
			v, p, err := consumeFixed64(b, pos, typ)
			if err != nil {
				return err
			}
			pos = p
			switch num {
			case 2:
				start = v
			case 3:
				ts = v
			case 4:
				value, vt = math.Float64frombits(v), ValueDouble
			case 6:
				value, vt = float64(int64(v)), ValueInt
			}
		case 5: // exemplars
			if pos, err = c.checkMessage(b, pos, typ, exemplarSchema); err != nil {
				return err
			}
		case 8: // flags
			if _, pos, err = consumeVarintField(b, pos, typ); err != nil {
				return err
			}
		default:
			if pos, err = skipField(b, pos, typ, &c.unchecked); err != nil {
				return err
			}
		}
	}
	c.Metric = append(c.Metric, mi)
	c.Start, c.Time = append(c.Start, start), append(c.Time, ts)
	c.Value, c.ValueType = append(c.Value, value), append(c.ValueType, vt)
	c.attrStart = append(c.attrStart, attrs)
	return nil
}

// keyValue decodes an attribute: its key and its value as pdata's
// Value.AsString gives it. Repeated fields merge as pdata merges them: the
// last key, the last value sent in any of the value messages.
func (c *Columns) keyValue(b []byte) (key, value string, err error) {
	for pos := 0; pos < len(b); {
		num, typ, p, err := consumeTag(b, pos)
		if err != nil {
			return "", "", err
		}
		pos = p
		switch num {
		case 1: // key
			s, p, err := consumeBytes(b, pos, typ)
			if err != nil {
				return "", "", err
			}
			key, pos = str(s), p
		case 2: // value
			msg, p, err := consumeBytes(b, pos, typ)
			if err != nil {
				return "", "", err
			}
			pos = p
			c.deepest = max(c.deepest, 1)
			if value, err = c.anyValue(msg, value); err != nil {
				return "", "", err
			}
		case 3: // key_strindex
			if _, pos, err = consumeVarintField(b, pos, typ); err != nil {
				return "", "", err
			}
		default:
			if pos, err = skipField(b, pos, typ, &c.unchecked); err != nil {
				return "", "", err
			}
		}
	}
	return key, value, nil
}

// anyValue decodes a scalar AnyValue into its string form; value is the
// string form so far (a value message merges into the one before).
func (c *Columns) anyValue(b []byte, value string) (string, error) {
	err := forFields(b, func(num int32, typ protowire.Type, b []byte, pos int) (int, error) {
		switch num {
		case 1: // string_value
			s, pos, err := consumeBytes(b, pos, typ)
			value = str(s)
			return pos, err
		case 2, 3, 8: // bool_value, int_value, string_value_strindex
			v, pos, err := consumeVarintField(b, pos, typ)
			switch num {
			case 2:
				value = strconv.FormatBool(v != 0)
			case 3:
				value = c.formatInt(int64(v))
			case 8:
				value = "" // pdata's Value has no type for it: AsString is ""
			}
			return pos, err
		case 4, 5, 6, 7: // double_value, array_value, kvlist_value, bytes_value
			return 0, ErrUnsupported
		}
		return skipField(b, pos, typ, &c.unchecked)
	})
	return value, err
}

// formatInt formats v into c's scratch buffer.
func (c *Columns) formatInt(v int64) string {
	if v >= 0 && v < 10 {
		return digits[v : v+1]
	}
	n := len(c.scratch)
	c.scratch = strconv.AppendInt(c.scratch, v, 10)
	s := c.scratch[n:len(c.scratch):len(c.scratch)]
	return str(s)
}

const digits = "0123456789"
