package collector_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/protobuf/proto"

	"github.com/fleetwatch/fleetwatch/agent/logtail"
	"github.com/fleetwatch/fleetwatch/agent/otlp"
	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Feature update times (issue 16 item 6) sent by an OTel SDK and written
// in a model-server log that the agent tails land as the same rows: valid
// entries (Unix seconds, RFC 3339) kept, sorted by feature; entries that are
// no time, or later than the event, dropped and counted; the events kept.
func TestFeatureUpdateTimesBothForms(t *testing.T) {
	db := chtest.NewDB(t)
	col := startCollector(t, colParams{DSN: db.Config().DSN()})
	now := time.Now().Truncate(time.Second)
	amount := now.Add(-90 * time.Minute)
	country := now.Add(-30 * time.Hour)
	client := plogotlp.NewGRPCClient(dial(t, col.endpoint))
	export := func(ld plog.Logs) {
		t.Helper()
		if _, err := client.Export(context.Background(), plogotlp.NewExportRequestFromLogs(ld)); err != nil {
			t.Fatal(err)
		}
	}

	// OTLP, as an SDK sends it.
	ld := plog.NewLogs()
	lr := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetEventName(telemetry.EventInference)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(now))
	a := lr.Attributes()
	a.PutStr(telemetry.AttrModel, "m")
	a.PutStr(telemetry.AttrRequestID, "otlp")
	fm := a.PutEmptyMap(telemetry.AttrFeatures)
	fm.PutDouble("amount", 3.5)
	fm.PutStr("country", "DE")
	um := a.PutEmptyMap(telemetry.AttrFeatureUpdatedAt)
	um.PutDouble("amount", float64(amount.Unix()))
	um.PutStr("country", country.Format(time.RFC3339))
	um.PutStr("bad", "yesterday")
	um.PutInt("future", now.Add(time.Hour).Unix())
	um.PutEmptyMap("obj").PutInt("x", 1)
	export(ld)

	// The same event as a JSON line, through the agent's parser and encoder.
	line := fmt.Sprintf(`{"ts":%d,"model":"m","request_id":"json","features":{"amount":3.5,"country":"DE"},`+
		`"feature_updated_at":{"amount":%d,"country":%q,"bad":"yesterday","future":%d,"obj":{"x":1}}}`,
		now.Unix(), amount.Unix(), country.Format(time.RFC3339), now.Add(time.Hour).Unix())
	item, err := logtail.ParseLine([]byte(line), now, logtail.Window{Past: time.Hour, Future: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	req := otlp.NewEncoder(now, "test").Logs(&record.Batch{Resource: &record.Resource{}, Time: now, Inferences: []record.Inference{*item.Inference}})
	raw, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	er := plogotlp.NewExportRequest()
	if err := er.UnmarshalProto(raw); err != nil {
		t.Fatal(err)
	}
	export(er.Logs())

	waitFor(t, 30*time.Second, "both events", func() bool { return count(t, db, "inference_events", "") == 2 })
	for _, id := range []string{"otlp", "json"} {
		var names []string
		var ts []float64
		if err := db.QueryScalar(context.Background(), "SELECT feature_update_names, feature_update_ts FROM inference_events WHERE request_id = '"+id+"'", &names, &ts); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(names, []string{"amount", "country"}) || !slices.Equal(ts, []float64{float64(amount.Unix()), float64(country.Unix())}) {
			t.Errorf("%s: update names %v times %v; want [amount country] [%d %d]", id, names, ts, amount.Unix(), country.Unix())
		}
	}
	if got := col.selfMetric(t, "fleetwatch_exporter_normalized_items", map[string]string{"reason": "feature_update_dropped"}); got != 6 {
		t.Errorf("normalized_items{reason=feature_update_dropped} = %v, want 6 (3 per event)", got)
	}
}
