package route

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
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
}

// Recorder stores attempts (alerting/store writes the notifications
// table). The slice is the recorder's to read until Record returns.
type Recorder interface {
	Record(ctx context.Context, attempts []Attempt) error
}

// Router routes notifications to receivers. It is safe for concurrent use.
type Router struct {
	cfg    Config
	recvs  map[string]*receiver
	client *http.Client
	rec    Recorder
	log    *slog.Logger
	// sleep and now are the clock, replaceable in tests.
	sleep func(ctx context.Context, d time.Duration) error
	now   func() time.Time

	mu sync.Mutex
	// lastSent is when each firing incident was last sent to each
	// Alertmanager receiver (receiver + "\x00" + key).
	lastSent map[string]time.Time
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

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(r *Router) { r.log = l } }

// WithClock replaces the wall clock and sleeping (tests).
func WithClock(now func() time.Time, sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(r *Router) { r.now, r.sleep = now, sleep }
}

// New validates cfg and returns a router.
func New(cfg Config, opts ...Option) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Router{cfg: cfg, recvs: map[string]*receiver{}, client: &http.Client{}, log: slog.Default(),
		sleep: sleepCtx, now: time.Now, lastSent: map[string]time.Time{}}
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

// Notify delivers each notification to the receivers its labels route to,
// records every attempt, and returns the deliveries that failed for good.
func (r *Router) Notify(ctx context.Context, ns []Notification) error {
	var attempts []Attempt
	var errs []error
	for i := range ns {
		n := &ns[i]
		for _, name := range r.cfg.route(n.Incident.RouteLabels()) {
			rv := r.recvs[name]
			if !handles(rv.cfg.Type, n.Action) {
				continue
			}
			if n.Incident.Silenced {
				attempts = append(attempts, Attempt{At: r.now(), IncidentKey: n.Incident.Key, Receiver: name, Type: rv.cfg.Type,
					Action: n.Action, Attempt: 1, Outcome: OutcomeSilenced, Severity: n.Incident.Severity})
				continue
			}
			var err error
			attempts, err = r.deliver(ctx, rv, n, attempts)
			if err != nil {
				errs = append(errs, err)
			}
			if rv.cfg.Type == TypeAlertmanager {
				r.mu.Lock()
				if n.Action == incident.ActionResolve {
					delete(r.lastSent, name+"\x00"+n.Incident.Key)
				} else if err == nil {
					r.lastSent[name+"\x00"+n.Incident.Key] = r.now()
				}
				r.mu.Unlock()
			}
		}
	}
	if r.rec != nil && len(attempts) > 0 {
		if err := r.rec.Record(ctx, attempts); err != nil {
			errs = append(errs, fmt.Errorf("record notification attempts: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Refresh re-sends firing incidents to the Alertmanager receivers they
// route to when their resend interval has passed, so Alertmanager keeps
// them firing (and resolves them by itself if Fleetwatch stops).
func (r *Router) Refresh(ctx context.Context, firing []incident.Incident) error {
	var due []Notification
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
			due = append(due, Notification{Action: incident.ActionRefresh, Incident: *inc})
			break
		}
	}
	r.mu.Unlock()
	if len(due) == 0 {
		return nil
	}
	return r.Notify(ctx, due)
}

// deliver posts one notification with retries, appending its attempts.
func (r *Router) deliver(ctx context.Context, rv *receiver, n *Notification, attempts []Attempt) ([]Attempt, error) {
	body, err := rv.encode(rv, n, r.now())
	if err != nil {
		return attempts, fmt.Errorf("encode %s for %s: %w", n.Incident.Key, rv.cfg.Name, err)
	}
	url := rv.cfg.URL
	if rv.cfg.Type == TypeAlertmanager {
		url = trimSlash(url) + "/api/v2/alerts"
	}
	backoff := rv.cfg.InitialBackoff
	for try := 1; ; try++ {
		if rv.bucket != nil {
			if err := r.sleep(ctx, rv.bucket.take(r.now())); err != nil {
				return attempts, err
			}
		}
		t0 := r.now()
		status, retryAfter, err := r.post(ctx, rv, url, body)
		a := Attempt{At: r.now(), IncidentKey: n.Incident.Key, Receiver: rv.cfg.Name, Type: rv.cfg.Type, Action: n.Action,
			Attempt: try, HTTPStatus: status, Duration: r.now().Sub(t0), Severity: n.Incident.Severity}
		retryable := err != nil || status == http.StatusTooManyRequests || status >= 500
		switch {
		case err == nil && status >= 200 && status < 300:
			a.Outcome = OutcomeSent
			return append(attempts, a), nil
		case !retryable:
			a.Outcome, a.Err = OutcomeDropped, fmt.Sprintf("permanent: HTTP %d", status)
			return append(attempts, a), fmt.Errorf("%s to %s for %s: HTTP %d (not retried)", n.Action, rv.cfg.Name, n.Incident.Key, status)
		case try >= rv.cfg.MaxAttempts:
			a.Outcome, a.Err = OutcomeFailed, errText(err, status)
			return append(attempts, a), fmt.Errorf("%s to %s for %s: giving up after %d attempts: %s", n.Action, rv.cfg.Name, n.Incident.Key, try, a.Err)
		}
		a.Outcome, a.Err = OutcomeRetry, errText(err, status)
		attempts = append(attempts, a)
		wait := time.Duration(float64(backoff) * (0.5 + rand.Float64()/2))
		if retryAfter > 0 {
			wait = max(wait, retryAfter)
		}
		if err := r.sleep(ctx, min(wait, rv.cfg.MaxBackoff)); err != nil {
			return attempts, err
		}
		backoff = min(2*backoff, rv.cfg.MaxBackoff)
	}
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

// post sends one request and returns its status and Retry-After.
func (r *Router) post(ctx context.Context, rv *receiver, url string, body []byte) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, rv.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "fleetwatch-alerting")
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
