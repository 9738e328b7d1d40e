package route

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting/incident"
)

// Notification asks receivers to act on an incident.
type Notification struct {
	Action   incident.Action
	Incident incident.Incident
}

// Attempt outcomes.
const (
	OutcomeSent     = "sent"
	OutcomeRetry    = "retry"
	OutcomeFailed   = "failed"
	OutcomeDropped  = "dropped"
	OutcomeSilenced = "silenced"
)

// Attempt is one try to deliver one notification to one receiver.
type Attempt struct {
	At          time.Time
	IncidentKey string
	Receiver    string
	Type        string
	Action      incident.Action
	Attempt     int
	Outcome     string
	HTTPStatus  int
	Err         string
	Duration    time.Duration
	Severity    string
	// reason classifies a failed attempt for the metrics.
	reason string
}

// Recorder stores attempts (alerting/store writes the notifications
// table). The slice is the recorder's to read until Record returns.
type Recorder interface {
	Record(ctx context.Context, attempts []Attempt) error
}

// Router routes notifications to receivers through its outbox. It is safe
// for concurrent use.
type Router struct {
	cfg    Config
	recvs  map[string]*receiver
	client *http.Client
	rec    Recorder
	outbox Outbox
	log    *slog.Logger
	// sleep and now are the clock, replaceable in tests.
	sleep func(ctx context.Context, d time.Duration) error
	now   func() time.Time
	// maxExpire is the longest ExpireAfter: how far back Resume looks.
	maxExpire time.Duration

	// pass lets one delivery pass run at a time; wake asks Run for one;
	// running is set while Run runs.
	pass    sync.Mutex
	wake    chan struct{}
	running atomic.Bool

	mu sync.Mutex
	// queue holds the pending entries in the order they were recorded.
	queue []*Entry
	// known is every entry ID this router recorded or resumed, with when,
	// so that a notification is recorded once (pruned after maxExpire).
	known map[string]time.Time
	// lastSent is when each firing incident was last sent to each
	// Alertmanager receiver (receiver + "\x00" + key).
	lastSent map[string]time.Time
	stats    Stats
}

type receiver struct {
	cfg ReceiverConfig
	// link is where a notification points on-call: the receiver's
	// dashboard_url, else the routing section's external_url.
	link   string
	encode func(r *receiver, n *Notification, now time.Time) ([]byte, error)
	bucket *bucket
}

// Option adjusts New.
type Option func(*Router)

// WithHTTPClient sets the HTTP client (default: http.DefaultTransport,
// per-attempt timeouts from the receivers).
func WithHTTPClient(c *http.Client) Option { return func(r *Router) { r.client = c } }

// WithRecorder sets where attempts are recorded.
func WithRecorder(rec Recorder) Option { return func(r *Router) { r.rec = rec } }

// WithOutbox sets where notifications are recorded before they are sent
// (without one they live in memory only and a restart loses the pending).
func WithOutbox(o Outbox) Option { return func(r *Router) { r.outbox = o } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(r *Router) { r.log = l } }

// WithClock replaces the wall clock and, unless sleep is nil, sleeping
// (tests).
func WithClock(now func() time.Time, sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(r *Router) {
		r.now = now
		if sleep != nil {
			r.sleep = sleep
		}
	}
}

// New validates cfg and returns a router.
func New(cfg Config, opts ...Option) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Router{cfg: cfg, recvs: map[string]*receiver{}, client: &http.Client{}, log: slog.Default(),
		sleep: sleepCtx, now: time.Now, wake: make(chan struct{}, 1), known: map[string]time.Time{},
		lastSent: map[string]time.Time{}, stats: newStats()}
	for _, o := range opts {
		o(r)
	}
	buckets := map[string]*bucket{}
	for _, rc := range cfg.Receivers {
		rc = rc.withDefaults()
		rv := &receiver{cfg: rc, link: rc.DashboardURL}
		if rv.link == "" {
			rv.link = cfg.externalURL()
		}
		switch rc.Type {
		case TypePagerDuty:
			rv.encode = encodePagerDuty
			if buckets[rc.RoutingKey] == nil {
				buckets[rc.RoutingKey] = newBucket(rc.RatePerMinute, r.now())
			}
			rv.bucket = buckets[rc.RoutingKey]
		case TypeAlertmanager:
			rv.encode = encodeAlertmanager
		case TypeWebhook:
			rv.encode = encodeWebhook
		}
		r.recvs[rc.Name] = rv
		r.maxExpire = max(r.maxExpire, rc.ExpireAfter)
	}
	return r, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// handles reports whether a receiver type acts on an action: PagerDuty
// and webhooks on trigger, acknowledge and resolve; Alertmanager, which
// has no acknowledgement, on trigger, refresh and resolve.
func handles(typ string, a incident.Action) bool {
	switch typ {
	case TypeAlertmanager:
		return a != incident.ActionAcknowledge
	default:
		return a != incident.ActionRefresh
	}
}

// Notify records ns in the outbox, one entry per receiver they route to,
// and delivers what is due: by waking Run while it runs, else itself. It
// returns the recording errors and the deliveries that ended undelivered
// in this pass.
func (r *Router) Notify(ctx context.Context, ns []Notification) error {
	err := r.Enqueue(ctx, ns)
	if r.running.Load() {
		r.signal()
		return err
	}
	return errors.Join(err, r.Dispatch(ctx))
}

// Refresh re-sends firing incidents to the Alertmanager receivers they
// route to when their resend interval has passed, so Alertmanager keeps
// them firing (and resolves them by itself if Fleetwatch stops). A refresh
// is one attempt, not an outbox entry: the next refresh is the retry. A
// receiver that fails is not tried again in the same call.
func (r *Router) Refresh(ctx context.Context, firing []incident.Incident) error {
	type due struct {
		rv *receiver
		n  Notification
	}
	var dues []due
	now := r.now()
	r.mu.Lock()
	for i := range firing {
		inc := &firing[i]
		if inc.Silenced || !inc.Status.Active() {
			continue
		}
		for _, name := range r.cfg.route(inc.RouteLabels()) {
			rv := r.recvs[name]
			if rv.cfg.Type != TypeAlertmanager {
				continue
			}
			if last, ok := r.lastSent[name+"\x00"+inc.Key]; ok && now.Sub(last) < rv.cfg.ResendInterval {
				continue
			}
			dues = append(dues, due{rv, Notification{Action: incident.ActionRefresh, Incident: *inc}})
		}
	}
	r.mu.Unlock()
	var attempts []Attempt
	down := map[string]bool{}
	for i := range dues {
		d := &dues[i]
		if down[d.rv.cfg.Name] || ctx.Err() != nil {
			continue
		}
		a, _ := r.attempt(ctx, d.rv, &d.n, "", 1)
		attempts = append(attempts, a)
		if a.Outcome == OutcomeSent {
			r.mu.Lock()
			r.lastSent[d.rv.cfg.Name+"\x00"+d.n.Incident.Key] = r.now()
			r.mu.Unlock()
		} else {
			down[d.rv.cfg.Name] = true
		}
	}
	return r.record(ctx, attempts)
}

// record hands attempts to the recorder.
func (r *Router) record(ctx context.Context, attempts []Attempt) error {
	if r.rec == nil || len(attempts) == 0 {
		return nil
	}
	if err := r.rec.Record(ctx, attempts); err != nil {
		return fmt.Errorf("record notification attempts: %w", err)
	}
	return nil
}

// attempt makes one try to deliver n to rv and returns it with its outcome
// (sent, retry or dropped) and the receiver's Retry-After. idem, when set,
// is sent as the Idempotency-Key header.
func (r *Router) attempt(ctx context.Context, rv *receiver, n *Notification, idem string, try int) (Attempt, time.Duration) {
	a := Attempt{IncidentKey: n.Incident.Key, Receiver: rv.cfg.Name, Type: rv.cfg.Type, Action: n.Action, Attempt: try,
		Severity: n.Incident.Severity}
	body, err := rv.encode(rv, n, r.now())
	if err != nil {
		a.At, a.Outcome, a.Err, a.reason = r.now(), OutcomeDropped, fmt.Sprintf("encode: %v", err), ReasonEncode
		r.count(&a)
		return a, 0
	}
	if rv.bucket != nil {
		if err := r.sleep(ctx, rv.bucket.take(r.now())); err != nil {
			a.At, a.Outcome, a.Err, a.reason = r.now(), OutcomeRetry, err.Error(), reason(err, 0)
			return a, 0
		}
	}
	url := rv.cfg.URL
	if rv.cfg.Type == TypeAlertmanager {
		url = trimSlash(url) + "/api/v2/alerts"
	}
	t0 := r.now()
	status, retryAfter, err := r.post(ctx, rv, url, body, idem)
	a.At, a.HTTPStatus, a.Duration = r.now(), status, r.now().Sub(t0)
	switch {
	case err == nil && status >= 200 && status < 300:
		a.Outcome = OutcomeSent
	case err == nil && status != http.StatusTooManyRequests && status < 500:
		a.Outcome, a.Err = OutcomeDropped, fmt.Sprintf("permanent: HTTP %d", status)
	default:
		a.Outcome, a.Err = OutcomeRetry, errText(err, status)
	}
	a.reason = reason(err, status)
	if ctx.Err() == nil {
		// An attempt cut short by our own shutdown says nothing about the
		// receiver.
		r.count(&a)
	}
	return a, retryAfter
}

func errText(err error, status int) string {
	if err != nil {
		return err.Error()
	}
	return "HTTP " + strconv.Itoa(status)
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// post sends one request, bounded by the receiver's timeout, and returns
// its status and Retry-After.
func (r *Router) post(ctx context.Context, rv *receiver, url string, body []byte, idem string) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, rv.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "fleetwatch-alerting")
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	for k, v := range rv.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	var ra time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		ra = time.Duration(s) * time.Second
	}
	return resp.StatusCode, ra, nil
}

// bucket is a token bucket: perMinute tokens a minute, as many at once.
type bucket struct {
	mu     sync.Mutex
	tokens float64
	cap    float64
	rate   float64 // tokens per second
	last   time.Time
}

func newBucket(perMinute int, now time.Time) *bucket {
	return &bucket{tokens: float64(perMinute), cap: float64(perMinute), rate: float64(perMinute) / 60, last: now}
}

// take reserves a token and returns how long to wait before using it.
func (b *bucket) take(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.After(b.last) {
		b.tokens = min(b.cap, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
	b.tokens--
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}
