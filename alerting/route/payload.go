package route

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting/incident"
)

// PagerDutyEvent is an Events API v2 event.
type PagerDutyEvent struct {
	RoutingKey  string            `json:"routing_key"`
	EventAction string            `json:"event_action"`
	DedupKey    string            `json:"dedup_key"`
	Payload     *PagerDutyPayload `json:"payload,omitempty"`
	Client      string            `json:"client,omitempty"`
	ClientURL   string            `json:"client_url,omitempty"`
	Links       []PagerDutyLink   `json:"links,omitempty"`
}

// PagerDutyPayload is the payload of a trigger event.
type PagerDutyPayload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"`
	Timestamp     string         `json:"timestamp,omitempty"`
	Component     string         `json:"component,omitempty"`
	Group         string         `json:"group,omitempty"`
	Class         string         `json:"class,omitempty"`
	CustomDetails map[string]any `json:"custom_details,omitempty"`
}

// PagerDutyLink is a link shown with the incident.
type PagerDutyLink struct {
	Href string `json:"href"`
	Text string `json:"text,omitempty"`
}

// maxEvidence is how many evidence items go into a notification.
const maxEvidence = 20

// details is the evidence chain as notifications carry it.
func details(inc *incident.Incident) map[string]any {
	ev := make([]map[string]any, 0, min(len(inc.Evidence), maxEvidence))
	for i := range inc.Evidence {
		if i == maxEvidence {
			break
		}
		e := &inc.Evidence[i]
		item := map[string]any{"key": e.Key, "detector": e.Detector, "class": e.Class, "severity": e.Severity,
			"entity": e.Entity, "summary": e.Summary, "first_seen": e.FirstSeen.UTC().Format(time.RFC3339)}
		if e.ModelVersion != "" {
			item["model_version"] = e.ModelVersion
		}
		if e.Action != "" {
			item["action"] = e.Action
		}
		if e.Detail != "" {
			if json.Valid([]byte(e.Detail)) {
				item["detail"] = json.RawMessage(e.Detail)
			} else {
				item["detail"] = e.Detail
			}
		}
		ev = append(ev, item)
	}
	d := map[string]any{
		"incident_key": inc.Key, "level": inc.Level, "scope": inc.Scope, "family": inc.Family, "status": inc.Status,
		"team": inc.Team, "oncall": inc.Oncall, "domain": inc.Domain, "evidence_count": len(inc.Evidence),
		"evidence": ev, "flaps": inc.Flaps, "first_seen": inc.FirstSeen.UTC().Format(time.RFC3339),
	}
	if len(inc.Models) > 0 {
		d["models"] = inc.Models
	}
	if len(inc.Suspects) > 0 {
		d["suspects"] = inc.Suspects
	}
	if inc.Cause != "" {
		d["probable_cause"] = inc.Cause
	}
	if inc.Runbook != "" {
		d["runbook"] = inc.Runbook
	}
	return d
}

// truncate cuts s to n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

func encodePagerDuty(rv *receiver, n *Notification, _ time.Time) ([]byte, error) {
	inc := &n.Incident
	ev := PagerDutyEvent{RoutingKey: rv.cfg.RoutingKey, EventAction: string(n.Action), DedupKey: inc.Key}
	if n.Action == incident.ActionTrigger {
		ev.Client = "Fleetwatch"
		ev.ClientURL = rv.link
		ev.Payload = &PagerDutyPayload{
			Summary:       truncate(inc.Title, 1024),
			Source:        rv.cfg.Source,
			Severity:      incident.SeverityName(incident.SeverityRank(inc.Severity)),
			Timestamp:     inc.OpenedAt.UTC().Format(time.RFC3339),
			Component:     inc.Scope,
			Group:         string(inc.Level),
			Class:         inc.Class,
			CustomDetails: details(inc),
		}
		if inc.Runbook != "" {
			ev.Links = append(ev.Links, PagerDutyLink{Href: inc.Runbook, Text: "runbook"})
		}
		ev.Links = append(ev.Links, PagerDutyLink{Href: rv.link, Text: "Fleetwatch"})
	}
	return json.Marshal(ev)
}

// AlertmanagerAlert is one alert of Alertmanager's API v2 postableAlerts.
type AlertmanagerAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     string            `json:"startsAt,omitempty"`
	EndsAt       string            `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// amLabel keeps label names Prometheus-legal.
func amLabel(k string) string {
	b := []byte(k)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// encodeAlertmanager posts the incident as one alert. Its labels, which
// are the alert's identity in Alertmanager, are the incident's labels as
// it opened (incident.RouteLabels): a class or severity that changes later
// goes into the annotations, so re-sends and the resolve address the very
// alert the trigger created instead of firing a second one.
func encodeAlertmanager(rv *receiver, n *Notification, now time.Time) ([]byte, error) {
	inc := &n.Incident
	labels := map[string]string{"alertname": "FleetwatchIncident", "incident_key": inc.Key}
	for k, v := range inc.RouteLabels() {
		if v != "" && k != "key" {
			labels[amLabel(k)] = v
		}
	}
	ends := now.Add(4 * rv.cfg.ResendInterval)
	if n.Action == incident.ActionResolve {
		ends = now
	}
	ev, err := json.Marshal(details(inc)["evidence"])
	if err != nil {
		return nil, err
	}
	ann := map[string]string{"summary": inc.Title, "evidence": string(ev), "severity": inc.Severity, "class": inc.Class,
		"description": fmt.Sprintf("%d detection(s) at %s level; status %s; severity %s now", len(inc.Evidence), inc.Level, inc.Status, inc.Severity)}
	if inc.Runbook != "" {
		ann["runbook_url"] = inc.Runbook
	}
	if inc.Cause != "" {
		ann["probable_cause"] = inc.Cause
	}
	start := inc.OpenedAt
	if start.IsZero() {
		start = now
	}
	a := AlertmanagerAlert{Labels: labels, Annotations: ann, StartsAt: start.UTC().Format(time.RFC3339),
		EndsAt: ends.UTC().Format(time.RFC3339), GeneratorURL: rv.link}
	return json.Marshal([]AlertmanagerAlert{a})
}

// WebhookMessage is what a generic webhook receives. IdempotencyKey (also
// the Idempotency-Key header) is the same on every retry of one
// notification: a receiver that has seen it already should answer 2xx and
// do nothing.
type WebhookMessage struct {
	Version        string            `json:"version"`
	Action         incident.Action   `json:"action"`
	IdempotencyKey string            `json:"idempotency_key"`
	Incident       incident.Incident `json:"incident"`
}

func encodeWebhook(_ *receiver, n *Notification, _ time.Time) ([]byte, error) {
	return json.Marshal(WebhookMessage{Version: "1", Action: n.Action, IdempotencyKey: IdempotencyKey(n), Incident: n.Incident})
}
