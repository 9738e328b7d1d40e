package route_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/alerting/route"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
)

func TestRealAlertmanagerForwardsToWebhook(t *testing.T) {
	am, hook := promtest.AlertmanagerWithWebhook(t)
	base := am.URL
	seen := func(status string, inc *incident.Incident) func() bool {
		return func() bool {
			return hook.Has(func(a promtest.Notified) bool {
				return a.Status == status && a.Labels["incident_key"] == inc.Key && a.Labels["team"] == "dc-ops" &&
					a.Annotations["runbook_url"] == "https://runbooks.example/cdu"
			})
		}
	}
	rec := &recorder{}
	r, err := route.New(route.Config{Default: []string{"am"},
		Receivers: []route.ReceiverConfig{{Name: "am", Type: route.TypeAlertmanager, URL: base, ResendInterval: time.Minute}}},
		route.WithRecorder(rec))
	if err != nil {
		t.Fatal(err)
	}
	inc := sample("thermal/rack/dc-0/row-0-0/rack-03")
	ctx := context.Background()
	if err := r.Notify(ctx, []route.Notification{{Action: incident.ActionTrigger, Incident: inc}}); err != nil {
		t.Fatal(err)
	}
	promtest.WaitFor(t, 30*time.Second, "the firing alert at the webhook", seen("firing", &inc))
	// Within the resend interval a refresh sends nothing.
	if err := r.Refresh(ctx, []incident.Incident{inc}); err != nil {
		t.Fatal(err)
	}
	inc.Status = incident.StatusResolved
	if err := r.Notify(ctx, []route.Notification{{Action: incident.ActionResolve, Incident: inc}}); err != nil {
		t.Fatal(err)
	}
	promtest.WaitFor(t, 30*time.Second, "the resolved alert at the webhook", seen("resolved", &inc))
	want := []string{"am:trigger:sent", "am:resolve:sent"}
	if got := rec.outcomes(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("attempts %v, want %v", got, want)
	}
}
