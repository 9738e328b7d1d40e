package otlprecv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The pre-scan reads a request's bytes before pdata decodes them. pdata's
// decoders recurse once per level of a nested attribute value (AnyValue ->
// KeyValueList -> KeyValue -> AnyValue ...); a request nested a million
// levels deep overflows the goroutine stack, which kills the process. The
// pre-scan walks the same structure with an explicit stack, so the depth is
// checked with constant Go stack, and counts the request's items on the way.

// Errors of the pre-scan, each with its refusal reason.
var (
	errTooDeep      = errors.New("attribute values nested too deep")
	errTooManyItems = errors.New("too many items in one request")
	errMalformed    = errors.New("malformed request")
)

// scanLimits are the limits the pre-scan enforces.
type scanLimits struct {
	depth int // AnyValue nesting, 1 for a plain attribute value
	items int // data points, log records or spans
}

// wireShape is the part of an export request's schema the protobuf pre-scan
// needs: per message, the fields that lead to an AnyValue or an item, and
// whether the message is an AnyValue or an item.
type wireShape struct {
	nodes []wireNode
}

type wireNode struct {
	anyValue, item bool
	children       map[protowire.Number]int // field -> node, message fields worth entering
}

// Item messages: what the limit on items per request counts.
var itemMessages = map[protoreflect.FullName]bool{
	"opentelemetry.proto.metrics.v1.NumberDataPoint":               true,
	"opentelemetry.proto.metrics.v1.HistogramDataPoint":            true,
	"opentelemetry.proto.metrics.v1.ExponentialHistogramDataPoint": true,
	"opentelemetry.proto.metrics.v1.SummaryDataPoint":              true,
	"opentelemetry.proto.logs.v1.LogRecord":                        true,
	"opentelemetry.proto.trace.v1.Span":                            true,
}

const anyValueName protoreflect.FullName = "opentelemetry.proto.common.v1.AnyValue"

// newWireShape builds the shape of the request message m from its descriptor.
func newWireShape(m proto.Message) *wireShape {
	s := &wireShape{}
	index := map[protoreflect.FullName]int{}
	// relevant: the message is an AnyValue or an item, or leads to one.
	relevant := map[protoreflect.FullName]bool{}
	var reaches func(d protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool
	reaches = func(d protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
		if d.FullName() == anyValueName || itemMessages[d.FullName()] {
			return true
		}
		if r, ok := relevant[d.FullName()]; ok {
			return r
		}
		if seen[d.FullName()] {
			return false
		}
		seen[d.FullName()] = true
		fields := d.Fields()
		for i := range fields.Len() {
			if f := fields.Get(i); f.Message() != nil && reaches(f.Message(), seen) {
				relevant[d.FullName()] = true
				return true
			}
		}
		return false
	}
	var add func(d protoreflect.MessageDescriptor) int
	add = func(d protoreflect.MessageDescriptor) int {
		if i, ok := index[d.FullName()]; ok {
			return i
		}
		i := len(s.nodes)
		index[d.FullName()] = i
		s.nodes = append(s.nodes, wireNode{anyValue: d.FullName() == anyValueName, item: itemMessages[d.FullName()],
			children: map[protowire.Number]int{}})
		fields := d.Fields()
		for j := range fields.Len() {
			f := fields.Get(j)
			if f.Message() != nil && reaches(f.Message(), map[protoreflect.FullName]bool{}) {
				c := add(f.Message())
				s.nodes[i].children[f.Number()] = c
			}
		}
		return i
	}
	add(m.ProtoReflect().Descriptor())
	return s
}

var (
	metricsShape = newWireShape(&colmetricspb.ExportMetricsServiceRequest{})
	logsShape    = newWireShape(&collogspb.ExportLogsServiceRequest{})
	tracesShape  = newWireShape(&coltracepb.ExportTraceServiceRequest{})
)

// scanProto walks the protobuf export request b. It returns errTooDeep or
// errTooManyItems when b exceeds lim, errMalformed when b is not well-formed
// protobuf where the walk looks, and nil otherwise (pdata's decoder still
// checks the rest). It does not recurse: the Go stack it uses is constant.
func (s *wireShape) scanProto(b []byte, lim scanLimits) error {
	type frame struct{ node, end int }
	stack := []frame{{0, len(b)}}
	depth, items, pos := 0, 0, 0
	for len(stack) > 0 {
		top := stack[len(stack)-1]
		if pos >= top.end {
			if s.nodes[top.node].anyValue {
				depth--
			}
			stack = stack[:len(stack)-1]
			continue
		}
		num, typ, n := protowire.ConsumeTag(b[pos:top.end])
		if n < 0 {
			return errMalformed
		}
		pos += n
		if child, ok := s.nodes[top.node].children[num]; ok && typ == protowire.BytesType {
			l, n := protowire.ConsumeVarint(b[pos:top.end])
			if n < 0 || l > uint64(top.end-pos-n) {
				return errMalformed
			}
			pos += n
			stack = append(stack, frame{child, pos + int(l)})
			if s.nodes[child].anyValue {
				if depth++; depth > lim.depth {
					return errTooDeep
				}
			}
			if s.nodes[child].item {
				if items++; items > lim.items {
					return errTooManyItems
				}
			}
			continue
		}
		// Anything else, groups included (protowire bounds their nesting).
		n = protowire.ConsumeFieldValue(num, typ, b[pos:top.end])
		if n < 0 {
			return errMalformed
		}
		pos += n
	}
	return nil
}

// JSON keys (protojson accepts both spellings) of the values that nest an
// AnyValue one level deeper, and of the arrays whose elements are items.
var (
	jsonNestingKeys = map[string]bool{"kvlistValue": true, "kvlist_value": true, "arrayValue": true, "array_value": true}
	jsonItemKeys    = map[string]bool{"dataPoints": true, "data_points": true, "logRecords": true, "log_records": true, "spans": true}
)

// jsonMaxDepth bounds the JSON nesting of any kind: the schema's own levels
// (at most 15 above an attribute value: an exemplar's filtered attributes)
// plus 4 per level of attribute nesting.
func jsonMaxDepth(attrDepth int) int { return 16 + 4*attrDepth }

// scanJSON tokenizes the JSON export request b (encoding/json's decoder
// keeps its state on the heap) and checks the attribute nesting, the JSON
// nesting and the item count against lim.
func scanJSON(b []byte, lim scanLimits) error {
	type frame struct {
		key     string // the key this object or array is the value of
		array   bool
		nesting bool // the value of a kvlistValue or arrayValue
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var stack []frame
	nesting, items := 0, 0
	key, expectKey := "", false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", errMalformed, err)
		}
		inObject := len(stack) > 0 && !stack[len(stack)-1].array
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				f := frame{array: t == '[', nesting: inObject && jsonNestingKeys[key]}
				if inObject {
					f.key = key
				}
				if len(stack) > 0 && stack[len(stack)-1].array && t == '{' && jsonItemKeys[stack[len(stack)-1].key] {
					if items++; items > lim.items {
						return errTooManyItems
					}
				}
				if f.nesting {
					if nesting++; nesting >= lim.depth {
						return errTooDeep
					}
				}
				stack = append(stack, f)
				if len(stack) > jsonMaxDepth(lim.depth) {
					return errTooDeep
				}
				expectKey = !f.array
			case '}', ']':
				if stack[len(stack)-1].nesting {
					nesting--
				}
				stack = stack[:len(stack)-1]
				expectKey = len(stack) > 0 && !stack[len(stack)-1].array
			}
			continue
		case string:
			if inObject && expectKey {
				key, expectKey = t, false
				continue
			}
		}
		expectKey = inObject
	}
}
