package fastotlp

import "google.golang.org/protobuf/encoding/protowire"

// The parts of a request the columns do not keep (scopes, entity
// references, exemplars, metadata, nested attribute values) are still
// checked as pdata's decoder checks them: a known field must come with its
// wire type, a trace or span id must be empty or of its size, and every
// length must fit. A schema lists, per message, the known fields.

// schema is the known fields of one message.
type schema struct {
	fields []rule
	// anyValue: entering this message is one level of attribute nesting.
	anyValue bool
}

// rule is what pdata expects of one field.
type rule struct {
	num   int32
	typ   protowire.Type
	msg   *schema // a message to check, for a BytesType field
	idLen int     // a trace (16) or span (8) id: empty or this long
}

var (
	anyValueSchema   = &schema{anyValue: true}
	arrayValueSchema = &schema{}
	kvListSchema     = &schema{}
	keyValueSchema   = &schema{}
	scopeSchema      = &schema{}
	entityRefSchema  = &schema{}
	exemplarSchema   = &schema{}
)

func init() {
	const (
		bytes  = protowire.BytesType
		varint = protowire.VarintType
		i64    = protowire.Fixed64Type
	)
	// opentelemetry.proto.common.v1 and metrics.v1, with pdata's extra fields
	// (string_value_strindex, key_strindex).
	anyValueSchema.fields = []rule{{num: 1, typ: bytes}, {num: 2, typ: varint}, {num: 3, typ: varint},
		{num: 4, typ: i64}, {num: 5, typ: bytes, msg: arrayValueSchema}, {num: 6, typ: bytes, msg: kvListSchema},
		{num: 7, typ: bytes}, {num: 8, typ: varint}}
	arrayValueSchema.fields = []rule{{num: 1, typ: bytes, msg: anyValueSchema}}
	kvListSchema.fields = []rule{{num: 1, typ: bytes, msg: keyValueSchema}}
	keyValueSchema.fields = []rule{{num: 1, typ: bytes}, {num: 2, typ: bytes, msg: anyValueSchema}, {num: 3, typ: varint}}
	scopeSchema.fields = []rule{{num: 1, typ: bytes}, {num: 2, typ: bytes}, {num: 3, typ: bytes, msg: keyValueSchema},
		{num: 4, typ: varint}}
	entityRefSchema.fields = []rule{{num: 1, typ: bytes}, {num: 2, typ: bytes}, {num: 3, typ: bytes}, {num: 4, typ: bytes}}
	exemplarSchema.fields = []rule{{num: 7, typ: bytes, msg: keyValueSchema}, {num: 2, typ: i64}, {num: 3, typ: i64},
		{num: 6, typ: i64}, {num: 5, typ: bytes, idLen: 16}, {num: 4, typ: bytes, idLen: 8}}
}

// checkMessage checks the message field whose tag has been read at pos
// and returns the position after it, noting the deepest attribute nesting
// in it.
func (c *Columns) checkMessage(b []byte, pos int, typ protowire.Type, s *schema) (int, error) {
	msg, pos, err := consumeBytes(b, pos, typ)
	if err != nil {
		return 0, err
	}
	return pos, check(msg, s, 0, &c.deepest, &c.unchecked)
}

// check checks message b, depth levels of attribute nesting deep, raising
// deepest to the deepest level in it and setting *group if it holds a group.
func check(b []byte, s *schema, depth int, deepest *int, group *bool) error {
	if s.anyValue {
		if depth++; depth > maxDepth {
			return ErrUnsupported
		}
		*deepest = max(*deepest, depth)
	}
	return forFields(b, func(num int32, typ protowire.Type, b []byte, pos int) (int, error) {
		r := s.rule(num)
		if r == nil {
			return skipField(b, pos, typ, group)
		}
		if typ != r.typ {
			return 0, errWireType
		}
		switch typ {
		case protowire.VarintType:
			_, pos, err := consumeVarint(b, pos)
			return pos, err
		case protowire.Fixed64Type:
			_, pos, err := consumeFixed64(b, pos, typ)
			return pos, err
		}
		msg, pos, err := consumeBytes(b, pos, typ)
		switch {
		case err != nil:
		case r.idLen > 0 && len(msg) != 0 && len(msg) != r.idLen:
			err = errIDLength
		case r.msg != nil:
			err = check(msg, r.msg, depth, deepest, group)
		}
		return pos, err
	})
}

func (s *schema) rule(num int32) *rule {
	for i := range s.fields {
		if s.fields[i].num == num {
			return &s.fields[i]
		}
	}
	return nil
}
