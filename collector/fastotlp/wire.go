package fastotlp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// The wire primitives below accept and reject exactly what pdata's
// (go.opentelemetry.io/collector/pdata/internal/proto) do, which is not
// quite what protowire's Consume functions do: pdata takes a tenth varint
// byte above 1 (dropping the bits past 64), truncates a tag's field number
// to 32 bits and checks only that it is positive, and skips groups of
// unknown fields without matching their field numbers. The decoder's
// promise is "the same answer as pdata for the same bytes", so it follows
// pdata here; protowire supplies the wire-type names. The receiver's
// pre-scan reads with protowire and refuses what pdata lets through, so the
// first two are ErrUnsupported (the request goes to the pre-scan and pdata)
// and a group makes Checked false.

// ErrMalformed is wrapped by every error about bytes that are not a valid
// OTLP metrics export request (the bytes pdata's decoder rejects too).
var ErrMalformed = errors.New("malformed OTLP metrics request")

var (
	errOverflow    = fmt.Errorf("%w: varint longer than 64 bits", ErrMalformed)
	errEOF         = fmt.Errorf("%w: unexpected end of data", ErrMalformed)
	errLength      = fmt.Errorf("%w: negative length", ErrMalformed)
	errFieldNumber = fmt.Errorf("%w: field number not positive", ErrMalformed)
	errWireType    = fmt.Errorf("%w: wrong wire type for a known field", ErrMalformed)
	errIllegalWire = fmt.Errorf("%w: illegal wire type", ErrMalformed)
	errEndGroup    = fmt.Errorf("%w: end of group without a start", ErrMalformed)
	errIDLength    = fmt.Errorf("%w: trace or span id of the wrong length", ErrMalformed)

	errLongVarint  = fmt.Errorf("%w: a tenth varint byte above 1", ErrUnsupported)
	errFieldNumTop = fmt.Errorf("%w: a field number past protobuf's range", ErrUnsupported)
)

// consumeVarint reads a varint at pos: up to ten bytes. pdata drops the bits
// of a tenth byte past 64; that is errLongVarint here.
func consumeVarint(b []byte, pos int) (uint64, int, error) {
	if pos < len(b) && b[pos] < 0x80 {
		return uint64(b[pos]), pos + 1, nil
	}
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= 64 {
			return 0, 0, errOverflow
		}
		if pos >= len(b) {
			return 0, 0, errEOF
		}
		c := b[pos]
		pos++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			if shift == 63 && c > 1 {
				return 0, 0, errLongVarint
			}
			return v, pos, nil
		}
	}
}

// consumeTag reads a field's tag: its number (the low 32 bits of tag>>3,
// which must be positive) and wire type.
func consumeTag(b []byte, pos int) (int32, protowire.Type, int, error) {
	tag, pos, err := consumeVarint(b, pos)
	if err != nil {
		return 0, 0, 0, err
	}
	num := int32(tag >> 3)
	if num <= 0 {
		return 0, 0, 0, errFieldNumber
	}
	if tag>>3 > uint64(protowire.MaxValidNumber) {
		return 0, 0, 0, errFieldNumTop
	}
	return num, protowire.Type(tag & 7), pos, nil
}

// consumeBytes reads a length-delimited field's contents.
func consumeBytes(b []byte, pos int, typ protowire.Type) ([]byte, int, error) {
	if typ != protowire.BytesType {
		return nil, 0, errWireType
	}
	n, pos, err := consumeVarint(b, pos)
	if err != nil {
		return nil, 0, err
	}
	l := int(n)
	if l < 0 {
		return nil, 0, errLength
	}
	end := pos + l
	if end < 0 || end > len(b) {
		return nil, 0, errEOF
	}
	return b[pos:end:end], end, nil
}

// consumeFixed64 reads an I64 field.
func consumeFixed64(b []byte, pos int, typ protowire.Type) (uint64, int, error) {
	if typ != protowire.Fixed64Type {
		return 0, 0, errWireType
	}
	if pos+8 > len(b) {
		return 0, 0, errEOF
	}
	return binary.LittleEndian.Uint64(b[pos:]), pos + 8, nil
}

// consumeVarintField reads a varint field.
func consumeVarintField(b []byte, pos int, typ protowire.Type) (uint64, int, error) {
	if typ != protowire.VarintType {
		return 0, 0, errWireType
	}
	return consumeVarint(b, pos)
}

// skipField skips an unknown field whose tag has been read; a group runs to
// its matching end, whatever the field numbers inside, and sets *group.
func skipField(b []byte, pos int, typ protowire.Type, group *bool) (int, error) {
	var err error
	depth := 0
	for pos < len(b) {
		switch typ {
		case protowire.VarintType:
			_, pos, err = consumeVarint(b, pos)
			return pos, err
		case protowire.Fixed64Type:
			_, pos, err = consumeFixed64(b, pos, typ)
			return pos, err
		case protowire.BytesType:
			_, pos, err = consumeBytes(b, pos, typ)
			return pos, err
		case protowire.Fixed32Type:
			if pos+4 > len(b) {
				return 0, errEOF
			}
			return pos + 4, nil
		case protowire.StartGroupType:
			*group = true
			depth++
		case protowire.EndGroupType:
			if depth == 0 {
				return 0, errEndGroup
			}
			depth--
		default:
			return 0, errIllegalWire
		}
		if depth == 0 {
			return pos, nil
		}
		if _, typ, pos, err = consumeTag(b, pos); err != nil {
			return 0, err
		}
	}
	return 0, errEOF
}
