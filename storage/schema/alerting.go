package schema

// Alerting's tables (issue 7): incidents with their lifecycle state, the
// detections attached to each as evidence, and every notification attempt.
// Package alerting writes them through storage.Writer and reads incidents
// back on restart, so a restarted analyzer neither loses an open incident
// nor pages it again.

// alertingSteps is migration 8.
var alertingSteps = []Step{
	CreateTable{Incidents},
	CreateTable{IncidentEvidence},
	CreateTable{Notifications},
}

// Incidents holds one row per incident state change; the row with the
// highest version is the incident's current state.
var Incidents = Table{
	Name: "incidents",
	Doc:  "Incidents: one row per state change, the highest version is current (key, level, scope, class, status, owner, severity, state JSON).",
	Columns: []Column{
		str("key", "stable incident key, e.g. thermal/rack/dc-0/row-0-1/rack-03; also the PagerDuty dedup_key"),
		{Name: "version", Type: "UInt64", Comment: "state version (nanoseconds); the highest wins"},
		timeColumn("updated_at", "when this state was written (UTC)"),
		timeColumn("opened_at", "when the incident opened (paged); reopening after a flap keeps the key"),
		timeColumn("acked_at", "when it was acknowledged; 1970 if not"),
		timeColumn("resolved_at", "when it resolved; 1970 while open"),
		lcStr("status", "open, acknowledged or resolved"),
		lcStr("level", "gpu, node, rack, row, datacenter, fleet (hardware) or model, upstream, portfolio, fleet (models)"),
		str("scope", "what the level names: a topology path, a model, an upstream or a portfolio"),
		lcStr("family", "correlation family of the evidence classes, e.g. thermal or drift"),
		lcStr("class", "most frequent detection class among the evidence"),
		lcStr("severity", "info, warning, error or critical, from level, breadth and the evidence"),
		lcStr("team", "owning team (model catalog ownership.team)"),
		lcStr("oncall", "on-call rotation (model catalog ownership.oncall)"),
		lcStr("domain", "model domain / portfolio, for model incidents"),
		str("title", "one line for humans"),
		str("cause", "key of the incident this one is linked to as its probable cause (cross-layer) or merged into"),
		{Name: "evidence_count", Type: "UInt32", Comment: "detections attached as evidence"},
		{Name: "flaps", Type: "UInt32", Comment: "times the incident reopened within the flap window"},
		{Name: "silenced", Type: "UInt8", Comment: "1 while a silence or maintenance window matches its labels"},
		str("state", "the whole incident as JSON (evidence, suspects, counters), for restore and fleetctl"),
	},
	Engine:      ReplacingMergeTree,
	EngineArgs:  "version",
	OrderBy:     []string{"key"},
	ShardingKey: "cityHash64(key)",
}

// IncidentEvidence holds the detections attached to each incident.
var IncidentEvidence = Table{
	Name: "incident_evidence",
	Doc:  "Detections attached to incidents as evidence: one row per incident and detection key, latest sighting wins.",
	Columns: concat(
		[]Column{
			str("incident_key", "incident the detection explains"),
			str("detection_key", "the detection's stable key (detections.key)"),
			timeColumn("first_seen", "first window end the detection was active in this incident (UTC)"),
			timeColumn("last_seen", "last window end it was active (UTC)"),
			lcStr("detector", "detector that raised it"),
			lcStr("class", "detection class"),
			lcStr("severity", "detection severity"),
			lcStr("entity_type", "gpu, node, rack, model, feature, ..."),
			str("entity", "entity id"),
		},
		topologyColumns(),
		[]Column{
			lcStr("gpu_uuid", "GPU UUID, for GPU-level detections"),
			lcStr("model", "ML model, for model-level detections"),
			lcStr("feature", "feature, for drift detections"),
			{Name: "value", Type: "Float64", Comment: "the detector's statistic"},
			str("summary", "the detection's summary line"),
		},
	),
	Engine:        ReplacingMergeTree,
	EngineArgs:    "last_seen",
	TimeColumn:    "first_seen",
	Partition:     PartitionMonthly,
	OrderBy:       []string{"incident_key", "detection_key", "first_seen"},
	RetentionDays: 400,
	ShardingKey:   "cityHash64(incident_key)",
}

// Notifications records every notification attempt: sent, retried, failed,
// rate-limited or suppressed by a silence.
var Notifications = Table{
	Name: "notifications",
	Doc:  "Every notification attempt to PagerDuty, Alertmanager or a webhook, with its outcome.",
	Columns: []Column{
		timeColumn("ts", "when the attempt finished (UTC)"),
		str("incident_key", "incident notified; also the PagerDuty dedup_key"),
		lcStr("receiver", "receiver name from the routing config"),
		lcStr("receiver_type", "pagerduty, alertmanager or webhook"),
		lcStr("action", "trigger, acknowledge, resolve or refresh (Alertmanager re-send while firing)"),
		{Name: "attempt", Type: "UInt32", Comment: "1 for the first try, then retries"},
		lcStr("outcome", "sent, retry (429/5xx/network, tried again), failed, dropped (permanent 4xx) or silenced"),
		{Name: "http_status", Type: "UInt16", Comment: "HTTP status of the attempt; 0 when none came back"},
		str("error", "error text, if any"),
		{Name: "duration_ms", Type: "Float64", Comment: "time the attempt took"},
		lcStr("severity", "incident severity at the time"),
	},
	Engine:        MergeTree,
	TimeColumn:    "ts",
	Partition:     PartitionMonthly,
	OrderBy:       []string{"incident_key", "ts"},
	RetentionDays: 400,
	ShardingKey:   "cityHash64(incident_key)",
}

// notificationOutboxSteps is migration 12.
var notificationOutboxSteps = []Step{CreateTable{NotificationOutbox}}

// NotificationOutbox is alerting's outbox (issue 13): every notification
// to every receiver is recorded here before its first attempt and gets a
// new state after each attempt, until it is sent, dropped, expired or given
// up; a restarted analyzer resumes the pending ones. Notifications (above)
// keeps the attempts.
var NotificationOutbox = Table{
	Name: "notification_outbox",
	Doc:  "Notifications recorded before they are sent: one row per state of each notification to each receiver, the highest version is current; pending ones are resumed after a restart. A repeated insert of one (id, version) is folded.",
	Columns: []Column{
		str("id", "idempotency_key@receiver"),
		{Name: "version", Type: "UInt64", Comment: "state version: 1 when recorded, then one more per attempt; the highest is current"},
		timeColumn("created_at", "when the notification was recorded, before its first attempt (UTC)"),
		timeColumn("updated_at", "when this state was written (UTC)"),
		str("incident_key", "incident notified; also the PagerDuty dedup_key"),
		{Name: "transition", Type: "UInt32", Comment: "the incident's transition this notifies: 1 for its first trigger, one more per trigger, acknowledgement or resolve"},
		str("idempotency_key", "incident_key#transition/action: the same on every retry (webhook Idempotency-Key header)"),
		lcStr("receiver", "receiver name from the routing config"),
		lcStr("receiver_type", "pagerduty, alertmanager or webhook"),
		lcStr("action", "trigger, acknowledge or resolve"),
		lcStr("state", "pending (not delivered yet), sent, dropped (permanent 4xx), failed (max_attempts reached), expired (not delivered within expire_after) or silenced"),
		{Name: "attempts", Type: "UInt32", Comment: "attempts made so far"},
		timeColumn("next_at", "when the next attempt is due, while pending (UTC)"),
		timeColumn("expires_at", "when it expires if still not delivered (UTC)"),
		str("error", "the last attempt's error, if any"),
		str("incident", "the incident as JSON when the notification was recorded (what is sent); only on version 1"),
	},
	// Every state is kept (the sorting key holds the version) so that the
	// incident JSON of version 1 survives merges; ReplacingMergeTree folds
	// only a repeated insert of the same state.
	Engine:        ReplacingMergeTree,
	TimeColumn:    "created_at",
	Partition:     PartitionMonthly,
	OrderBy:       []string{"id", "version"},
	RetentionDays: 400,
	ShardingKey:   "cityHash64(id)",
}
