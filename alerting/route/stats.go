package route

import (
	"context"
	"errors"
	"maps"
	"net/http"
)

// Reasons a delivery attempt failed, as the metrics count them.
const (
	ReasonTimeout = "timeout"  // no answer within the receiver's timeout
	ReasonNetwork = "network"  // connection refused, reset, DNS, ...
	Reason429     = "http_429" // rate limited (retried)
	Reason5xx     = "http_5xx" // server error (retried)
	Reason4xx     = "http_4xx" // refused for good (dropped)
	ReasonEncode  = "encode"   // the notification could not be encoded (dropped)
)

// Stats are the router's counters since it started, for /metrics.
type Stats struct {
	// Attempts by receiver and outcome (sent, retry, failed, dropped,
	// silenced).
	Attempts map[Key]uint64
	// Failures are the attempts that did not deliver, by receiver and
	// reason (timeout, network, http_429, http_5xx, http_4xx, encode).
	Failures map[Key]uint64
	// Expired counts, by receiver, notifications not delivered within
	// expire_after.
	Expired map[string]uint64
	// Pending is, by receiver, how many notifications wait in the outbox
	// now (filled in by Stats).
	Pending map[string]int
	// OutboxErrors counts failed writes to the outbox (retried).
	OutboxErrors uint64
}

// Key is a receiver and one more label: an outcome or a reason.
type Key struct{ Receiver, Label string }

func newStats() Stats {
	return Stats{Attempts: map[Key]uint64{}, Failures: map[Key]uint64{}, Expired: map[string]uint64{}}
}

// Stats returns a copy of the counters with the pending notifications of
// each receiver.
func (r *Router) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{Attempts: maps.Clone(r.stats.Attempts), Failures: maps.Clone(r.stats.Failures), Expired: maps.Clone(r.stats.Expired),
		Pending: map[string]int{}, OutboxErrors: r.stats.OutboxErrors}
	for name := range r.recvs {
		s.Pending[name] = 0
	}
	for _, e := range r.queue {
		s.Pending[e.Receiver]++
	}
	return s
}

// count adds an attempt to the counters.
func (r *Router) count(a *Attempt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Attempts[Key{a.Receiver, a.Outcome}]++
	if a.Outcome != OutcomeSent && a.Outcome != OutcomeSilenced {
		r.stats.Failures[Key{a.Receiver, a.reason}]++
	}
}

// reason classifies a failed attempt.
func reason(err error, status int) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout
	case err != nil:
		return ReasonNetwork
	case status == http.StatusTooManyRequests:
		return Reason429
	case status >= 500:
		return Reason5xx
	case status >= 400 || status < 200:
		return Reason4xx
	}
	return ""
}
