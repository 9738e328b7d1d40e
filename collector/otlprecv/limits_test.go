package otlprecv

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	fwtelemetry "github.com/fleetwatch/fleetwatch/telemetry"
)

// deepValue is the protobuf of an AnyValue nested n levels deep (n-1
// kvlist values around a string), written without recursion.
func deepValue(n int) []byte {
	// Sizes from the inside out: av[i] is the AnyValue at depth i+1.
	av, kv, kvl := make([]int, n), make([]int, n), make([]int, n)
	av[n-1] = 3 // string_value "x"
	for i := n - 2; i >= 0; i-- {
		kv[i] = 3 + 1 + protowire.SizeVarint(uint64(av[i+1])) + av[i+1] // key "k", value
		kvl[i] = 1 + protowire.SizeVarint(uint64(kv[i])) + kv[i]        // values
		av[i] = 1 + protowire.SizeVarint(uint64(kvl[i])) + kvl[i]       // kvlist_value
	}
	b := make([]byte, 0, av[0])
	for i := 0; i < n-1; i++ {
		b = protowire.AppendTag(b, 6, protowire.BytesType) // AnyValue.kvlist_value
		b = protowire.AppendVarint(b, uint64(kvl[i]))
		b = protowire.AppendTag(b, 1, protowire.BytesType) // KeyValueList.values
		b = protowire.AppendVarint(b, uint64(kv[i]))
		b = protowire.AppendTag(b, 1, protowire.BytesType) // KeyValue.key
		b = protowire.AppendString(b, "k")
		b = protowire.AppendTag(b, 2, protowire.BytesType) // KeyValue.value
		b = protowire.AppendVarint(b, uint64(av[i+1]))
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType) // AnyValue.string_value
	return protowire.AppendString(b, "x")
}

// wrap is a message with b as its field num.
func wrap(num protowire.Number, b []byte) []byte {
	out := protowire.AppendTag(make([]byte, 0, len(b)+12), num, protowire.BytesType)
	return protowire.AppendBytes(out, b)
}

// deepMetricsProto is an ExportMetricsServiceRequest whose resource has an
// attribute nested n levels deep.
func deepMetricsProto(n int) []byte {
	kv := append(protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "deep"), wrap(2, deepValue(n))...)
	return wrap(1, wrap(1, wrap(1, kv))) // request.resource_metrics.resource.attributes
}

// deepMetricsJSON is the same request in OTLP/JSON, with array values.
func deepMetricsJSON(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"resourceMetrics":[{"resource":{"attributes":[{"key":"deep","value":`)
	b.WriteString(strings.Repeat(`{"arrayValue":{"values":[`, n-1))
	b.WriteString(`{"stringValue":"x"}`)
	b.WriteString(strings.Repeat(`]}}`, n-1))
	b.WriteString(`}]}}]}`)
	return []byte(b.String())
}

// nested puts key in m with a value n levels deep.
func nested(m pcommon.Map, key string, n int) {
	for ; n > 1; n-- {
		m = m.PutEmptyMap(key)
	}
	m.PutStr(key, "x")
}

// sendRaw sends body over gRPC as the metrics service's request.
func sendRaw(ctx context.Context, conn *grpc.ClientConn, body []byte) error {
	return conn.Invoke(ctx, "/"+grpcMetricsService+"/Export", body, new([]byte), grpc.ForceCodecV2(bytesCodec{}))
}

// The pre-scan's depth agrees with pdata's structure: depth 8 passes, 9 is
// refused, in protobuf and JSON alike.
func TestScanDepthLimit(t *testing.T) {
	lim := DefaultLimits()
	for _, depth := range []int{1, 8, 9} {
		md := pmetric.NewMetrics()
		p := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty().SetEmptyGauge().DataPoints().AppendEmpty()
		nested(p.Attributes(), "a", depth)
		req := pmetricotlp.NewExportRequestFromMetrics(md)
		pb, _ := req.MarshalProto()
		js, _ := req.MarshalJSON()
		want := depth <= lim.MaxAttributeDepth
		if err := metricsShape.scanProto(pb, lim.scan()); (err == nil) != want {
			t.Errorf("protobuf, depth %d: %v", depth, err)
		}
		if err := scanJSON(js, lim.scan()); (err == nil) != want {
			t.Errorf("JSON, depth %d: %v", depth, err)
		}
	}
	if err := metricsShape.scanProto(deepMetricsProto(9), lim.scan()); err != errTooDeep {
		t.Errorf("hand-made protobuf, depth 9: %v", err)
	}
	if err := metricsShape.scanProto(deepMetricsProto(8), lim.scan()); err != nil {
		t.Errorf("hand-made protobuf, depth 8: %v", err)
	}
}

// The request that used to crash the collector: an attribute nested a
// million levels deep (pdata's decoder overflowed the goroutine stack). It
// is refused with a reason over HTTP (protobuf and JSON, gzip) and gRPC,
// even with the size limits out of its way, and the receiver still takes
// the next request.
func TestMillionDeepRequestIsRefused(t *testing.T) {
	h := start(t, func(c *Config) {
		c.Protocols.HTTP.Get().ServerConfig.MaxRequestBodySize = 256 << 20
		c.Protocols.GRPC.Get().MaxRecvMsgSizeMiB = 256
	})
	const n = 1_000_000
	pb := deepMetricsProto(n)
	url := h.httpURL + h.cfg.Protocols.HTTP.Get().MetricsURLPath
	refused := func(transport string) int64 {
		return h.counter(t, "fleetwatch_receiver_refused_requests", map[string]string{"reason": RefusedTooDeep, "transport": transport})
	}
	for _, tc := range []struct {
		name, contentType string
		body              []byte
	}{
		{"protobuf+gzip", "application/x-protobuf", pb},
		{"json+gzip", "application/json", deepMetricsJSON(n)},
	} {
		before := refused("http")
		resp, body := post(t, url, tc.contentType, "gzip", compress(t, "gzip", tc.body))
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(rpcStatus(t, resp, body).GetMessage(), "max_attribute_depth") {
			t.Errorf("%s: %s %q, want 400 naming max_attribute_depth", tc.name, resp.Status, body)
		}
		if got := refused("http"); got != before+1 {
			t.Errorf("%s: refused{too_deep,http} went from %d to %d", tc.name, before, got)
		}
	}
	conn := h.dial(t)
	err := sendRaw(t.Context(), conn, pb)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "max_attribute_depth") {
		t.Errorf("gRPC: %v, want InvalidArgument naming max_attribute_depth", err)
	}
	if got := refused("grpc"); got != 1 {
		t.Errorf("refused{too_deep,grpc} = %d, want 1", got)
	}
	// Still running: the next good request is taken over both transports.
	if n, _, err := testSignals[0].grpc(t.Context(), conn, ""); err != nil || n != 0 {
		t.Fatalf("a good request over gRPC after the deep one: %d rejected, %v", n, err)
	}
	c := httpCases[0]
	if resp, body := post(t, url, c.contentType(), "", c.body(t, metricsRequest(""))); resp.StatusCode != http.StatusOK {
		t.Fatalf("a good request over HTTP after the deep one: %s %q", resp.Status, body)
	}
	if got := h.sink.keptOf(signalMetrics); got != 2 {
		t.Errorf("the pipeline kept %d points, want the 2 good ones", got)
	}
}

// Items per request: over the limit the request is refused whole.
func TestTooManyItemsIsRefused(t *testing.T) {
	h := start(t, func(c *Config) { c.Limits.MaxItemsPerRequest = 10 })
	conn := h.dial(t)
	if _, _, err := testSignals[0].grpc(t.Context(), conn, make([]string, 11)...); status.Code(err) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), "max_items_per_request") {
		t.Errorf("11 points over gRPC: %v, want InvalidArgument", err)
	}
	url := h.httpURL + h.cfg.Protocols.HTTP.Get().LogsURLPath
	for _, c := range httpCases[:2] {
		resp, body := post(t, url, c.contentType(), "", c.body(t, logsRequest(make([]string, 11)...)))
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("11 log records over HTTP %s: %s %q", c.name, resp.Status, body)
		}
	}
	if n, _, err := testSignals[0].grpc(t.Context(), conn, make([]string, 10)...); err != nil || n != 0 {
		t.Errorf("10 points: %d rejected, %v", n, err)
	}
	if got := h.counter(t, "fleetwatch_receiver_refused_requests", map[string]string{"reason": RefusedTooManyItems}); got != 3 {
		t.Errorf("refused{too_many_items} = %d, want 3", got)
	}
	if got := h.sink.keptOf(signalMetrics) + h.sink.keptOf(signalLogs); got != 10 {
		t.Errorf("the pipeline kept %d items, want 10", got)
	}
}

// Items over an attribute limit or against the identifier policy are
// rejected alone, through partial success, with their reason; the others
// are kept.
func TestItemLimitsRejectWithPartialSuccess(t *testing.T) {
	h := start(t, nil)
	conn := h.dial(t)
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr(fwtelemetry.AttrHostName, "node-1")
	records := rl.ScopeLogs().AppendEmpty().LogRecords()
	add := func(edit func(pcommon.Map)) {
		lr := records.AppendEmpty()
		lr.SetEventName(fwtelemetry.EventInference)
		lr.Attributes().PutStr(fwtelemetry.AttrModel, "fraud-detector")
		lr.Attributes().PutStr(fwtelemetry.AttrRequestID, strconv.Itoa(records.Len()))
		edit(lr.Attributes())
	}
	add(func(pcommon.Map) {}) // good
	add(func(m pcommon.Map) { // 100k attributes
		for i := range 100_000 {
			m.PutInt("a"+strconv.Itoa(i), int64(i))
		}
	})
	add(func(m pcommon.Map) { m.PutStr(strings.Repeat("k", DefaultMaxKeyBytes+1), "v") })
	add(func(m pcommon.Map) { m.PutStr("long", strings.Repeat("v", DefaultMaxValueBytes+1)) })
	add(func(m pcommon.Map) {
		m.PutStr(fwtelemetry.AttrModel, `\') UNION ALL SELECT name FROM system.databases -- `)
	})
	add(func(m pcommon.Map) { m.PutEmptyMap(fwtelemetry.AttrFeatures).PutDouble("x') --", 1) })
	add(func(m pcommon.Map) { // a slice value over max_nested_values
		s := m.PutEmptySlice("big")
		for i := range DefaultMaxNestedValues + 1 {
			s.AppendEmpty().SetInt(int64(i))
		}
	})
	add(func(m pcommon.Map) { m.PutStr("note", "it's fine: only identifiers are checked") }) // good

	resp, err := plogotlp.NewGRPCClient(conn).Export(t.Context(), plogotlp.NewExportRequestFromLogs(ld))
	if err != nil {
		t.Fatal(err)
	}
	ps := resp.PartialSuccess()
	if ps.RejectedLogRecords() != 6 {
		t.Errorf("%d rejected, want 6: %s", ps.RejectedLogRecords(), ps.ErrorMessage())
	}
	want := map[string]int64{RejectedTooManyAttributes: 2, RejectedKeyTooLong: 1, RejectedValueTooLong: 1, RejectedBadIdentifier: 2}
	for reason, n := range want {
		if !strings.Contains(ps.ErrorMessage(), strconv.FormatInt(n, 10)+" "+reason) {
			t.Errorf("the message lacks %d %s: %s", n, reason, ps.ErrorMessage())
		}
		if got := h.counter(t, "fleetwatch_receiver_partial_rejected_items", map[string]string{"reason": reason, "signal": signalLogs}); got != n {
			t.Errorf("partial_rejected_items{%s} = %d, want %d", reason, got, n)
		}
	}
	if got := h.sink.keptOf(signalLogs); got != 2 {
		t.Errorf("the pipeline kept %d records, want 2", got)
	}

	// A bad identifier on the resource rejects all its items.
	md := metricsRequest("", "").Metrics()
	md.ResourceMetrics().At(0).Resource().Attributes().PutStr(fwtelemetry.AttrRack, "rack'7")
	mresp, err := pmetricotlp.NewGRPCClient(conn).Export(t.Context(), pmetricotlp.NewExportRequestFromMetrics(md))
	if err != nil || mresp.PartialSuccess().RejectedDataPoints() != 2 || !strings.Contains(mresp.PartialSuccess().ErrorMessage(), RejectedBadIdentifier) {
		t.Errorf("a bad rack: %v %d %q", err, mresp.PartialSuccess().RejectedDataPoints(), mresp.PartialSuccess().ErrorMessage())
	}
}

// Invalid UTF-8 is replaced with U+FFFD, the item kept and counted.
func TestInvalidUTF8IsReplacedAndCounted(t *testing.T) {
	var got pmetric.Metrics
	h := start(t, nil)
	h.sink.inspect = func(md pmetric.Metrics) { got = md }
	md := metricsRequest("", "").Metrics()
	m := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0)
	m.SetName("gauge\xff")
	p := m.Gauge().DataPoints().At(1)
	p.Attributes().PutStr("k\xfe", "v\xc3")
	p.Attributes().PutEmptyMap("m").PutStr("inner", "\xff\xff")
	if _, _, err := sendMetrics(t, h, md); err != nil {
		t.Fatal(err)
	}
	if n := h.counter(t, "fleetwatch_receiver_normalized_items", map[string]string{"reason": NormalizedInvalidUTF8, "signal": signalMetrics}); n != 2 {
		t.Errorf("normalized_items{invalid_utf8} = %d, want 2 (the metric's name covers both points)", n)
	}
	gm := got.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0)
	attrs := gm.Gauge().DataPoints().At(1).Attributes()
	v, ok := attrs.Get("k\uFFFD")
	inner, _ := attrs.Get("m")
	innerV, _ := inner.Map().Get("inner")
	if gm.Name() != "gauge\uFFFD" || !ok || v.Str() != "v\uFFFD" || innerV.Str() != "\uFFFD" {
		t.Errorf("not repaired: name %q, attributes %v", gm.Name(), attrs.AsRaw())
	}
	if h.sink.keptOf(signalMetrics) != 2 {
		t.Errorf("kept %d points, want 2", h.sink.keptOf(signalMetrics))
	}
}

func sendMetrics(t *testing.T, h *harness, md pmetric.Metrics) (int64, string, error) {
	t.Helper()
	resp, err := pmetricotlp.NewGRPCClient(h.dial(t)).Export(t.Context(), pmetricotlp.NewExportRequestFromMetrics(md))
	return resp.PartialSuccess().RejectedDataPoints(), resp.PartialSuccess().ErrorMessage(), err
}

func TestLimitsValidate(t *testing.T) {
	good := DefaultLimits()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*Limits){
		"max_attribute_depth":   func(l *Limits) { l.MaxAttributeDepth = 0 },
		"at most 64":            func(l *Limits) { l.MaxAttributeDepth = 65 },
		"max_attributes":        func(l *Limits) { l.MaxAttributes = -1 },
		"max_nested_values":     func(l *Limits) { l.MaxNestedValues = 0 },
		"max_key_bytes":         func(l *Limits) { l.MaxKeyBytes = 0 },
		"max_value_bytes":       func(l *Limits) { l.MaxValueBytes = 0 },
		"max_items_per_request": func(l *Limits) { l.MaxItemsPerRequest = 0 },
	} {
		l := DefaultLimits()
		edit(&l)
		if err := l.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
