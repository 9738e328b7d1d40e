package fastotlp

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// Builders of protobuf bytes, field by field, for requests no proto
// library would marshal (repeated singular fields, odd wire types).

func msg(fields ...[]byte) []byte {
	var b []byte
	for _, f := range fields {
		b = append(b, f...)
	}
	return b
}

func fBytes(num protowire.Number, fields ...[]byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg(fields...))
}

func fStr(num protowire.Number, s string) []byte { return fBytes(num, []byte(s)) }

func fFixed(num protowire.Number, v uint64) []byte {
	return protowire.AppendFixed64(protowire.AppendTag(nil, num, protowire.Fixed64Type), v)
}

func fVarint(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

// OTLP messages.

func request(rms ...[]byte) []byte { return msg(rms...) } // each rm built with fBytes(1, ...)
func rm(fields ...[]byte) []byte   { return fBytes(1, fields...) }
func resource(kvs ...[]byte) []byte {
	return fBytes(1, kvs...)
}
func scopeMetrics(metrics ...[]byte) []byte { return fBytes(2, metrics...) }
func metric(fields ...[]byte) []byte        { return fBytes(2, fields...) }
func gauge(dps ...[]byte) []byte            { return fBytes(5, dps...) }
func sum(fields ...[]byte) []byte           { return fBytes(7, fields...) }
func dp(fields ...[]byte) []byte            { return fBytes(1, fields...) }
func attr(num protowire.Number, k string, v ...[]byte) []byte {
	return fBytes(num, fStr(1, k), fBytes(2, v...))
}
func group(num protowire.Number) []byte {
	return protowire.AppendTag(protowire.AppendTag(nil, num, protowire.StartGroupType), num, protowire.EndGroupType)
}
func sv(s string) []byte { return fStr(1, s) }
func dbl(v float64) []byte {
	return fFixed(4, math.Float64bits(v))
}

func TestDecodeAgentRequests(t *testing.T) {
	today := agentRequest(t)
	for _, tc := range []struct {
		name      string
		data      []byte
		resources int
	}{
		{"labels on each point", marshal(t, today), 1},
		{"one resource per GPU", marshal(t, perGPU(today)), 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Columns
			if err := c.Decode(tc.data); err != nil {
				t.Fatal(err)
			}
			want, err := pdataRows(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) < 1000 || c.Resources() != tc.resources {
				t.Fatalf("%d points, %d resources; want more than 1000 points and %d resources", len(want), c.Resources(), tc.resources)
			}
			if got := directRows(&c); !reflect.DeepEqual(got, want) {
				t.Fatalf("direct rows differ from pdata's: %d and %d rows; first direct %+v, first pdata %+v", len(got), len(want), got[0], want[0])
			}
			// A second request into the same columns: the same rows.
			if err := c.Decode(tc.data); err != nil {
				t.Fatal(err)
			}
			if got := directRows(&c); !reflect.DeepEqual(got, want) {
				t.Fatal("reused columns give other rows")
			}
		})
	}
}

// edgeCase is a request and what the decoder should make of it.
type edgeCase struct {
	name   string
	data   []byte
	want   error // nil, ErrMalformed or ErrUnsupported
	points int   // with want nil: how many points the request holds
}

// edgeCases are requests at the corners of protobuf and OTLP: merge rules,
// pdata's own leniencies, malformed bytes, what the decoder leaves to pdata.
func edgeCases() []edgeCase {
	const ts = 1_700_000_000_000_000_000
	point := func(v float64, kvs ...[]byte) []byte { return dp(msg(kvs...), fFixed(3, ts), dbl(v)) }
	gpu := attr(7, "UUID", sv("GPU-1"))
	return []edgeCase{
		{"empty request", nil, nil, 0},
		{"a gauge", request(rm(resource(attr(1, "host.name", sv("n1"))), scopeMetrics(metric(fStr(1, "g"), gauge(point(1, gpu), point(2, gpu)))))), nil, 2},
		{"name after the data", request(rm(scopeMetrics(metric(gauge(point(1, gpu)), fStr(1, "late"))))), nil, 1},
		{"the last name wins", request(rm(scopeMetrics(metric(fStr(1, "a"), gauge(point(1)), fStr(1, "b"))))), nil, 1},
		{"a later sum replaces a gauge", request(rm(scopeMetrics(metric(fStr(1, "m"), gauge(point(1), point(2)),
			sum(point(3), fVarint(2, 2), fVarint(3, 1)))))), nil, 1},
		{"a second gauge replaces the first", request(rm(scopeMetrics(metric(fStr(1, "m"), gauge(point(1)), gauge(point(2), point(3)))))), nil, 2},
		{"a repeated resource merges", request(rm(resource(attr(1, "a", sv("1"))), scopeMetrics(metric(fStr(1, "m"), gauge(point(1)))),
			resource(attr(1, "b", sv("2"))))), nil, 1},
		{"resource after its points, two resources", request(
			rm(scopeMetrics(metric(fStr(1, "m"), gauge(point(1)))), resource(attr(1, "r", sv("1")))),
			rm(resource(attr(1, "r", sv("2"))), scopeMetrics(metric(fStr(1, "m"), gauge(point(2)))))), nil, 2},
		{"deprecated scope metrics alone count", request(rm(fBytes(1000, metric(fStr(1, "old"), gauge(point(1)))))), nil, 1},
		{"deprecated scope metrics with new ones do not", request(rm(
			fBytes(1000, metric(fStr(1, "old"), gauge(point(1)))),
			scopeMetrics(metric(fStr(1, "new"), gauge(point(2)))),
			fBytes(1000, metric(fStr(1, "old2"), gauge(point(3)))))), nil, 1},
		{"a value message merges into the one before", request(rm(scopeMetrics(metric(fStr(1, "m"), gauge(
			dp(fBytes(7, fStr(1, "k"), fBytes(2, sv("a")), fBytes(2)))))))), nil, 1},
		{"int, bool and empty values as strings", request(rm(scopeMetrics(metric(fStr(1, "m"), gauge(
			point(1, attr(7, "i", fVarint(3, 42)), attr(7, "n", fVarint(3, uint64(1<<64-7))), attr(7, "d", fVarint(3, 7)),
				attr(7, "b", fVarint(2, 1)), attr(7, "e"), attr(7, "s", fVarint(8, 3)))))))), nil, 1},
		{"integer value, no value, the last value wins", request(rm(scopeMetrics(metric(fStr(1, "m"), gauge(
			dp(fFixed(6, uint64(1<<64-5))), dp(), dp(dbl(1), fFixed(6, 9), fFixed(2, 5))))))), nil, 3},
		{"unknown fields and empty groups are skipped", request(rm(fVarint(9, 1), scopeMetrics(metric(fStr(1, "m"), fVarint(99, 5),
			gauge(dp(fFixed(3, ts), group(20), fFixed(31, 1), dbl(4))))))), nil, 1},
		{"an exemplar, metadata, a scope and an entity ref are checked and skipped", request(rm(
			resource(attr(1, "a", sv("1")), fBytes(3, fStr(2, "t"), fStr(3, "id"))),
			scopeMetrics(
				fBytes(1, fStr(1, "scope"), attr(3, "sa", fVarint(2, 1)), fVarint(4, 2)),
				metric(fStr(1, "m"),
					fBytes(12, fStr(1, "k"), fBytes(2, fBytes(5, fBytes(1, sv("x")), fBytes(1, dbl(1))))),
					gauge(dp(dbl(1), fBytes(5, fFixed(2, 1), fBytes(5, make([]byte, 16)), fBytes(4, make([]byte, 8)),
						fBytes(7, fStr(1, "k"), fBytes(2, fBytes(6, fBytes(1, fStr(1, "n"))))))))),
			))), nil, 1},
		{"a ten-byte varint pdata accepts (and protowire, the receiver's pre-scan, does not)", request(rm(scopeMetrics(metric(fStr(1, "m"), sum(fVarint(2, 0)[:1],
			[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, point(1)))))), ErrUnsupported, 0},

		{"a field number past 32 bits, which pdata reads by its low 32 bits (and protowire refuses)", protowire.AppendBytes(
			protowire.AppendVarint(nil, (1<<32+1)<<3|uint64(protowire.BytesType)),
			msg(scopeMetrics(metric(fStr(1, "wide"), gauge(dp(fFixed(3, ts), dbl(1))))))), ErrUnsupported, 0},

		{"truncated", request(rm(scopeMetrics(metric(fStr(1, "g"), gauge(point(1))))))[:20], ErrMalformed, 0},
		{"a varint time", request(rm(scopeMetrics(metric(fStr(1, "g"), gauge(dp(fVarint(3, 1))))))), ErrMalformed, 0},
		{"a fixed64 name", request(rm(scopeMetrics(metric(fFixed(1, 1), gauge(point(1)))))), ErrMalformed, 0},
		{"field number 0", request(rm(scopeMetrics(metric(fStr(1, "g"), gauge(dp([]byte{0x02, 0x00})))))), ErrMalformed, 0},
		{"an eleven-byte varint", request(rm(fVarint(9, 0)[:1], []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})), ErrMalformed, 0},
		{"an exemplar span id of 7 bytes", request(rm(scopeMetrics(metric(fStr(1, "g"), gauge(dp(fBytes(5, fBytes(4, make([]byte, 7))))))))), ErrMalformed, 0},
		{"an end group without a start", request(rm(scopeMetrics(metric(protowire.AppendTag(nil, 30, protowire.EndGroupType), fStr(1, "g"))))), ErrMalformed, 0},
		{"a bad nested value in metadata", request(rm(scopeMetrics(metric(fStr(1, "g"), fBytes(12, fBytes(2, fBytes(5, fBytes(1, fFixed(1, 0))))))))), ErrMalformed, 0},
		{"a group with a field in it (pdata reads no further than its first field)", request(rm(scopeMetrics(metric(fStr(1, "m"),
			gauge(dp(protowire.AppendTag(nil, 20, protowire.StartGroupType), fVarint(21, 1), protowire.AppendTag(nil, 20, protowire.EndGroupType))))))), ErrMalformed, 0},
		{"wire type 7", request(rm(scopeMetrics(metric(fStr(1, "g"), []byte{0x7f})))), ErrMalformed, 0},

		{"a histogram", request(rm(scopeMetrics(metric(fStr(1, "h"), fBytes(9))))), ErrUnsupported, 0},
		{"a double attribute", request(rm(scopeMetrics(metric(fStr(1, "g"), gauge(point(1, attr(7, "d", dbl(0.5)))))))), ErrUnsupported, 0},
		{"a map resource attribute", request(rm(resource(attr(1, "m", fBytes(6))))), ErrUnsupported, 0},
	}
}

func TestDecodeMatchesPdata(t *testing.T) {
	for _, tc := range edgeCases() {
		t.Run(tc.name, func(t *testing.T) {
			var c Columns
			err := c.Decode(tc.data)
			want, perr := pdataRows(tc.data)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("Decode: %v", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("Decode: %v, want %v", err, tc.want)
			case errors.Is(tc.want, ErrMalformed) && perr == nil:
				t.Fatal("pdata accepts what the test takes for malformed")
			case tc.want == ErrUnsupported && perr != nil:
				t.Fatalf("pdata rejects a request the test takes for unsupported: %v", perr)
			case tc.want == nil && perr != nil:
				t.Fatalf("pdata rejects it: %v", perr)
			}
			if tc.want == nil {
				if c.Len() != tc.points {
					t.Fatalf("%d points, want %d", c.Len(), tc.points)
				}
				if got := directRows(&c); !reflect.DeepEqual(got, want) {
					t.Fatalf("rows:\n direct %+v\n pdata  %+v", got, want)
				}
			}
		})
	}
}
