package fastotlp

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// FuzzDirectMatchesPdata checks the decoder against pdata's on the same
// bytes, twice per input: the input as a request, and a request generated
// from it (the input's bytes as the generator's choices), which reaches
// the merge rules (repeated resources, replaced data, merged values) that
// random bytes rarely form. For each: what pdata rejects the decoder
// rejects (ErrMalformed) or leaves to pdata (ErrUnsupported); what pdata
// accepts the decoder decodes to the same points, or leaves to pdata.
//
//	go test -run '^$' -fuzz FuzzDirectMatchesPdata -fuzztime 3m -fuzzminimizetime 5s ./collector/fastotlp/
//
// (-fuzzminimizetime: the seeds are whole agent requests, and minimizing a
// new input of that size for the default minute leaves little time to fuzz)
func FuzzDirectMatchesPdata(f *testing.F) {
	small := agentRequest(f)
	ms := small.ResourceMetrics[0].ScopeMetrics[0]
	ms.Metrics = ms.Metrics[:2]
	f.Add(marshal(f, small))
	f.Add(marshal(f, perGPU(small)))
	for _, tc := range edgeCases() {
		f.Add(tc.data)
	}
	for seed := range uint64(16) {
		f.Add(randomChoices(seed))
	}
	var c Columns // reused, as the receiver would
	f.Fuzz(func(t *testing.T, b []byte) {
		compareWithPdata(t, &c, b)
		compareWithPdata(t, &c, generate(&choices{b: b}))
	})
}

// TestGeneratedMatchesPdata compares the decoder with pdata on generated
// requests: 20,000 by default, FASTOTLP_GENERATED of them when set.
func TestGeneratedMatchesPdata(t *testing.T) {
	n := 20_000
	if s := os.Getenv("FASTOTLP_GENERATED"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	var c Columns
	outcomes := map[string]int{}
	for seed := range uint64(n) {
		outcomes[compareWithPdata(t, &c, generate(&choices{b: randomChoices(seed)}))]++
	}
	t.Logf("%d generated requests: %v", n, outcomes)
	// The generator must reach every outcome, or the comparison tests little.
	for _, o := range []string{"same points", "malformed", "unsupported"} {
		if outcomes[o] < n/50 {
			t.Errorf("only %d of %d generated requests are %s", outcomes[o], n, o)
		}
	}
}

// compareWithPdata decodes b with c and with pdata and fails t where they
// disagree. It returns the outcome: same points, no points, malformed or
// unsupported.
func compareWithPdata(t *testing.T, c *Columns, b []byte) string {
	t.Helper()
	err := c.Decode(b)
	want, perr := pdataRows(b)
	switch {
	case errors.Is(err, ErrUnsupported):
		return "unsupported"
	case err != nil:
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("Decode(%x): an error neither malformed nor unsupported: %v", b, err)
		}
		if perr == nil {
			t.Fatalf("Decode(%x) rejects what pdata accepts: %v", b, err)
		}
		return "malformed"
	case perr != nil:
		t.Fatalf("Decode(%x) accepts what pdata rejects: %v", b, perr)
	}
	if got := directRows(c); !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode(%x): other points than pdata's:\n direct %+v\n pdata  %+v", b, got, want)
	}
	if len(want) == 0 {
		return "no points"
	}
	return "same points"
}

func randomChoices(seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 18))
	b := make([]byte, 256+r.IntN(2048))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// choices reads a generator's decisions from bytes; past their end every
// decision is 0, which ends every list.
type choices struct {
	b []byte
	i int
}

func (c *choices) n(k int) int {
	if c.i >= len(c.b) {
		return 0
	}
	c.i++
	return int(c.b[c.i-1]) % k
}

func (c *choices) u64() uint64 {
	var v uint64
	for range 8 {
		v = v<<8 | uint64(c.n(256))
	}
	return v
}

// pick returns one of few values, so that values repeat across fields.
func (c *choices) pick(vals ...string) string { return vals[c.n(len(vals))] }

// generate builds an export request from c's decisions: mostly well-formed
// protobuf in the shape of OTLP, with every field that may repeat repeated
// now and then, fields out of order, unknown fields, and rarely a wrong wire
// type, a histogram, a double attribute or cut bytes.
func generate(c *choices) []byte {
	var out []byte
	for range 1 + c.n(3) {
		out = append(out, genResourceMetrics(c)...)
	}
	switch c.n(16) {
	case 0:
		if len(out) > 0 {
			out = out[:c.n(len(out))]
		}
	case 1:
		if len(out) > 0 {
			out[c.n(len(out))] ^= byte(1 + c.n(255))
		}
	}
	return out
}

func genResourceMetrics(c *choices) []byte {
	var fields [][]byte
	for range 1 + c.n(5) {
		switch c.n(8) {
		case 0, 2, 3, 4:
			fields = append(fields, fBytes(2, genScopeMetrics(c)))
		case 1, 6:
			fields = append(fields, fBytes(1, genResource(c)))
		case 5:
			fields = append(fields, fBytes(1000, genScopeMetrics(c)))
		case 7:
			if c.n(2) == 0 {
				fields = append(fields, fStr(3, "https://schema"))
			} else {
				fields = append(fields, genOdd(c))
			}
		}
	}
	return fBytes(1, fields...)
}

func genResource(c *choices) []byte {
	var fields [][]byte
	for range c.n(5) {
		switch c.n(8) {
		case 0:
			fields = append(fields, fVarint(2, uint64(c.n(3))))
		case 1:
			fields = append(fields, fBytes(3, fStr(2, "host"), fStr(3, "host.name")))
		default:
			fields = append(fields, fBytes(1, genKeyValue(c)))
		}
	}
	return msg(fields...)
}

func genScopeMetrics(c *choices) []byte {
	var fields [][]byte
	for range 1 + c.n(3) {
		switch c.n(6) {
		case 5:
			fields = append(fields, fBytes(1, fStr(1, "scope"), fStr(2, "v1"), fBytes(3, genKeyValue(c)), fVarint(4, 1)))
		case 1:
			fields = append(fields, fStr(3, "https://schema"))
		default:
			fields = append(fields, fBytes(2, genMetric(c)))
		}
	}
	return msg(fields...)
}

func genMetric(c *choices) []byte {
	var fields [][]byte
	for range 1 + c.n(4) {
		switch c.n(12) {
		case 11, 1, 2:
			fields = append(fields, fStr(1, c.pick("DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE", "m", "")))
		case 3:
			fields = append(fields, fStr(2, "help"), fStr(3, "W"))
		case 0, 5, 6:
			fields = append(fields, fBytes(5, genPoints(c)...))
		case 7, 8:
			sum := genPoints(c)
			if c.n(2) == 0 {
				sum = append(sum, fVarint(2, uint64(c.n(4))))
			}
			if c.n(2) == 0 {
				sum = append(sum, fVarint(3, uint64(c.n(3))))
			}
			fields = append(fields, fBytes(7, sum...))
		case 9:
			fields = append(fields, fBytes(12, genKeyValue(c)))
		case 10:
			if c.n(4) == 0 {
				fields = append(fields, fBytes(protowire.Number(9+c.n(3))))
			}
		case 4:
			fields = append(fields, genOdd(c))
		}
	}
	return msg(fields...)
}

func genPoints(c *choices) [][]byte {
	var dps [][]byte
	for range 1 + c.n(4) {
		var fields [][]byte
		for range c.n(8) {
			switch c.n(12) {
			case 0, 1, 2, 3:
				fields = append(fields, fBytes(7, genKeyValue(c)))
			case 4, 5:
				fields = append(fields, fFixed(protowire.Number(2+c.n(2)), c.u64()))
			case 6:
				fields = append(fields, dbl(math.Float64frombits(c.u64())))
			case 7:
				fields = append(fields, fFixed(6, c.u64()))
			case 8:
				id := fBytes(4, make([]byte, 8)) // span id; rarely a trace id, empty or of the wrong size
				if c.n(8) == 0 {
					id = fBytes(protowire.Number(4+c.n(2)), make([]byte, []int{0, 8, 16}[c.n(3)]))
				}
				fields = append(fields, fBytes(5, fFixed(2, 1), id, fBytes(7, genKeyValue(c))))
			case 9:
				fields = append(fields, fVarint(8, uint64(c.n(2))))
			default:
				fields = append(fields, genOdd(c))
			}
		}
		dps = append(dps, fBytes(1, fields...))
	}
	return dps
}

func genKeyValue(c *choices) []byte {
	fields := [][]byte{fStr(1, c.pick("UUID", "gpu", "Hostname", "link", "k", ""))}
	for range c.n(3) {
		switch c.n(8) {
		case 0:
			fields = append(fields, fStr(1, c.pick("UUID", "pod")))
		case 1:
			fields = append(fields, fVarint(3, 1))
		default:
			fields = append(fields, fBytes(2, genAnyValue(c, 0)))
		}
	}
	return msg(fields...)
}

func genAnyValue(c *choices, depth int) []byte {
	var fields [][]byte
	for range c.n(3) {
		switch k := c.n(64); {
		case k == 0:
			fields = append(fields, dbl(0.5))
		case k == 1:
			fields = append(fields, fStr(7, "raw"))
		case k == 2 && depth < 3:
			fields = append(fields, fBytes(protowire.Number(5+c.n(2)), fBytes(1, genAnyValue(c, depth+1))))
		case k < 6:
			fields = append(fields, genOdd(c))
		case k < 10:
			fields = append(fields, fVarint(2, uint64(c.n(3))))
		case k < 20:
			fields = append(fields, fVarint(3, c.u64()))
		case k == 20:
			fields = append(fields, fVarint(8, 2))
		default:
			fields = append(fields, sv(c.pick("GPU-0001", "0", "node-1", "")))
		}
	}
	return msg(fields...)
}

// genOdd is an unknown field, or now and then a known field number with
// another wire type than its own.
func genOdd(c *choices) []byte {
	num := protowire.Number(50 + c.n(2000))
	if c.n(16) == 0 {
		num = protowire.Number(1 + c.n(12))
	}
	switch c.n(5) {
	case 0:
		return fVarint(num, c.u64())
	case 1:
		return fFixed(num, c.u64())
	case 2:
		return protowire.AppendFixed32(protowire.AppendTag(nil, num, protowire.Fixed32Type), uint32(c.u64()))
	case 3:
		return group(num)
	}
	return fStr(num, "x")
}
