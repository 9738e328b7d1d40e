package collector_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
	"github.com/fleetwatch/fleetwatch/lib/devcerts"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// xid79 is a GPU event as the agent sends it: XID 79 (GPU fallen off the
// bus), which pages critical.
func xid79(uuid string) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr(telemetry.AttrHostName, "node-7")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetEventName(telemetry.EventGPU)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	lr.Attributes().PutStr(telemetry.LabelUUID, uuid)
	lr.Attributes().PutStr(telemetry.AttrGPUEvent, telemetry.GPUEventXID)
	lr.Attributes().PutInt(telemetry.AttrCode, 79)
	lr.Body().SetStr("GPU has fallen off the bus")
	return ld
}

// A forged XID 79 without the token, or with a wrong one, is refused over
// gRPC (Unauthenticated) and HTTP (401) and never reaches gpu_events; with
// the token, over TLS, the same event lands. A model name built to break out
// of a dashboard's string literal is rejected at ingest and counted.
func TestForgedEventsNeedTheTokenAndTLS(t *testing.T) {
	files, err := devcerts.Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(files.Token)
	if err != nil {
		t.Fatal(err)
	}
	db := chtest.NewDB(t)
	col := startCollector(t, colParams{DSN: db.Config().DSN(), HTTPPort: promtest.FreePort(t),
		TLSCert: files.ServerCert, TLSKey: files.ServerKey, TokenFile: files.Token})
	pem, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate")
	}
	tlsConf := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	dial := func(creds credentials.TransportCredentials) plogotlp.GRPCClient {
		conn, err := grpc.NewClient(col.endpoint, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return plogotlp.NewGRPCClient(conn)
	}
	withToken := func(tok string) context.Context {
		ctx := t.Context()
		if tok != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
		}
		return ctx
	}
	good := strings.TrimSpace(string(token))
	client := dial(credentials.NewTLS(tlsConf))
	for name, tok := range map[string]string{"no token": "", "wrong token": "0123456789abcdef"} {
		_, err := client.Export(withToken(tok), plogotlp.NewExportRequestFromLogs(xid79("GPU-forged")))
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("gRPC, %s: %v, want Unauthenticated", name, err)
		}
	}
	if _, err := dial(insecure.NewCredentials()).Export(withToken(good), plogotlp.NewExportRequestFromLogs(xid79("GPU-forged"))); err == nil {
		t.Error("gRPC without TLS was accepted")
	}
	httpClient := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}, Timeout: 10 * time.Second}
	postLogs := func(tok string, ld plog.Logs) (*http.Response, plogotlp.ExportResponse) {
		body, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest(http.MethodPost, col.httpURL+"/v1/logs", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-protobuf")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		out := plogotlp.NewExportResponse()
		if resp.StatusCode == http.StatusOK {
			if err := out.UnmarshalProto(buf.Bytes()); err != nil {
				t.Fatal(err)
			}
		}
		return resp, out
	}
	for name, tok := range map[string]string{"no token": "", "wrong token": "0123456789abcdef"} {
		if resp, _ := postLogs(tok, xid79("GPU-forged")); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("HTTP, %s: %s, want 401", name, resp.Status)
		}
	}

	// With the token, over TLS: stored.
	if _, err := client.Export(withToken(good), plogotlp.NewExportRequestFromLogs(xid79("GPU-real-grpc"))); err != nil {
		t.Fatalf("gRPC with the token: %v", err)
	}
	if resp, out := postLogs(good, xid79("GPU-real-http")); resp.StatusCode != http.StatusOK || out.PartialSuccess().RejectedLogRecords() != 0 {
		t.Fatalf("HTTP with the token: %s, %d rejected", resp.Status, out.PartialSuccess().RejectedLogRecords())
	}
	// A hostile model name: rejected with a reason, the rest of the request kept.
	ld := plog.NewLogs()
	lrs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	for i, model := range []string{`\') UNION ALL SELECT name FROM system.databases -- `, "fraud-detector"} {
		lr := lrs.AppendEmpty()
		lr.SetEventName(telemetry.EventInference)
		lr.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
		lr.Attributes().PutStr(telemetry.AttrModel, model)
		lr.Attributes().PutStr(telemetry.AttrRequestID, "req-"+string(rune('a'+i)))
	}
	resp, err := client.Export(withToken(good), plogotlp.NewExportRequestFromLogs(ld))
	if err != nil {
		t.Fatal(err)
	}
	if ps := resp.PartialSuccess(); ps.RejectedLogRecords() != 1 || !strings.Contains(ps.ErrorMessage(), "1 bad_identifier") {
		t.Errorf("the hostile model: %d rejected, %q", ps.RejectedLogRecords(), ps.ErrorMessage())
	}

	waitFor(t, 30*time.Second, "the real events", func() bool {
		return count(t, db, "gpu_events", "uuid LIKE 'GPU-real-%' AND code = 79") == 2 && count(t, db, "inference_events", "") == 1
	})
	if n := count(t, db, "gpu_events", "uuid = 'GPU-forged'"); n != 0 {
		t.Errorf("%d forged XID events stored", n)
	}
	if n := count(t, db, "inference_events", "model != 'fraud-detector'"); n != 0 {
		t.Errorf("%d hostile inference events stored", n)
	}
	for transport, want := range map[string]float64{"grpc": 2, "http": 2} {
		if got := col.selfMetric(t, "fleetwatch_receiver_refused_requests", map[string]string{"reason": "unauthenticated", "transport": transport}); got != want {
			t.Errorf("refused_requests{unauthenticated,%s} = %v, want %v", transport, got, want)
		}
	}
	if got := col.selfMetric(t, "fleetwatch_receiver_partial_rejected_items", map[string]string{"reason": "bad_identifier"}); got != 1 {
		t.Errorf("partial_rejected_items{bad_identifier} = %v, want 1", got)
	}
}
