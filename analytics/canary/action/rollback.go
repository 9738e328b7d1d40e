package action

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/canary"
)

// Canary identifies one canary deployment (canary.Deployment; its Key is
// the idempotency key).
type Canary = canary.Deployment

// RollbackRequest is the body POSTed to the rollback webhook (JSON), with
// the header Idempotency-Key set to Key: a receiver that sees a key again
// must not roll back again.
type RollbackRequest struct {
	Key    string `json:"key"`
	Canary Canary `json:"canary"`
	// Target is the version to roll back to: the baseline.
	Target string `json:"rollback_to"`
	// LastKnownGood is the catalog's last-known-good version of the model
	// (evaluation.last_known_good), for a receiver whose baseline is gone
	// or also suspect; empty when the catalog names none.
	LastKnownGood string `json:"last_known_good,omitempty"`
	// Rules are the rules that failed; Reason says it in one line.
	Rules  []string `json:"failed_rules"`
	Reason string   `json:"reason"`
	// Elapsed is how long the canary had run at the fail verdict.
	ElapsedSeconds float64           `json:"elapsed_seconds"`
	Evidence       []canary.Evidence `json:"evidence"`
	RequestedAt    time.Time         `json:"requested_at"`
}

// Ledger remembers rollback requests by key: Pending when one is being
// sent, Done when the receiver accepted it.
type Ledger interface {
	State(key string) (State, error)
	Set(key string, s State) error
}

// State of a key in a Ledger.
type State int

// States.
const (
	None State = iota
	Pending
	Done
)

var stateNames = map[State]string{None: "none", Pending: "pending", Done: "done"}

// String is the state's word in a ledger: none, pending or done.
func (s State) String() string {
	if w, ok := stateNames[s]; ok {
		return w
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// ParseState is the inverse of String for pending and done, the states a
// ledger records.
func ParseState(word string) (State, error) {
	switch word {
	case "pending":
		return Pending, nil
	case "done":
		return Done, nil
	}
	return None, fmt.Errorf("rollback ledger: %q is not pending or done", word)
}

// MemLedger is a Ledger in memory: one process, no restarts.
type MemLedger struct {
	mu sync.Mutex
	m  map[string]State
}

// State implements Ledger.
func (l *MemLedger) State(key string) (State, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[key], nil
}

// Set implements Ledger.
func (l *MemLedger) Set(key string, s State) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]State{}
	}
	l.m[key] = s
	return nil
}

// FileLedger is a Ledger in an append-only file, one "pending KEY" or
// "done KEY" line per change, synced before Set returns; OpenFileLedger
// replays it. It survives restarts of one analyzer; analyzers sharing the
// fleet keep theirs in ZooKeeper instead (internal/analyzer).
type FileLedger struct {
	mem MemLedger
	mu  sync.Mutex
	f   *os.File
}

// OpenFileLedger opens (creating) the ledger at path and replays it.
func OpenFileLedger(path string) (*FileLedger, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("rollback ledger: %w", err)
	}
	l := &FileLedger{f: f}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		word, key, ok := strings.Cut(sc.Text(), " ")
		state, err := ParseState(word)
		if !ok || err != nil {
			f.Close()
			return nil, fmt.Errorf("rollback ledger %s, line %d: %q is not \"pending KEY\" or \"done KEY\"", path, line, sc.Text())
		}
		l.mem.Set(key, state) // a MemLedger cannot fail
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return nil, fmt.Errorf("rollback ledger %s: %w", path, err)
	}
	return l, nil
}

// State implements Ledger.
func (l *FileLedger) State(key string) (State, error) { return l.mem.State(key) }

// Set implements Ledger.
func (l *FileLedger) Set(key string, s State) error {
	word := s.String()
	if (s != Pending && s != Done) || strings.ContainsAny(key, "\n") {
		return fmt.Errorf("rollback ledger: cannot record state %d of %q", s, key)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := fmt.Fprintf(l.f, "%s %s\n", word, key); err != nil {
		return fmt.Errorf("rollback ledger: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("rollback ledger: %w", err)
	}
	return l.mem.Set(key, s)
}

// Close closes the file.
func (l *FileLedger) Close() error { return l.f.Close() }

// RollbackConfig configures the Rollbacker.
type RollbackConfig struct {
	// URL is the rollback webhook.
	URL string `yaml:"url"`
	// BearerTokenFile, when set, holds the token sent as Authorization:
	// Bearer (read when the Rollbacker is made); BearerToken is the token
	// itself, for programs that hold it already.
	BearerTokenFile string `yaml:"bearer_token_file"`
	BearerToken     string `yaml:"-"`
	// Timeout bounds one attempt; Attempts and Backoff the retries (the
	// backoff doubles after each failed attempt).
	Timeout  time.Duration `yaml:"timeout"`
	Attempts int           `yaml:"attempts"`
	Backoff  time.Duration `yaml:"backoff"`
}

// NewDefaultRollbackConfig returns 5 s attempts, 5 of them, from 1 s
// backoff: a rollback is asked for within about 40 s even when the
// receiver is slow to answer, well inside the 5 minutes of issue 20.
func NewDefaultRollbackConfig() RollbackConfig {
	return RollbackConfig{Timeout: 5 * time.Second, Attempts: 5, Backoff: time.Second}
}

// Validate reports every problem at once.
func (c RollbackConfig) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
		errs = append(errs, fmt.Errorf("rollback url %q: want http:// or https://", c.URL))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("rollback timeout %v: want > 0", c.Timeout))
	}
	if c.Attempts < 1 {
		errs = append(errs, fmt.Errorf("rollback attempts %d: want >= 1", c.Attempts))
	}
	if c.Backoff < 0 {
		errs = append(errs, fmt.Errorf("rollback backoff %v: want >= 0", c.Backoff))
	}
	return errors.Join(errs...)
}

// Rollbacker asks for rollbacks, once per failed canary.
type Rollbacker struct {
	cfg    RollbackConfig
	ledger Ledger
	client *http.Client
	log    *slog.Logger
	mu     sync.Mutex // one request at a time: a key is claimed once
}

// NewRollbacker returns a Rollbacker; a nil ledger is a MemLedger.
func NewRollbacker(cfg RollbackConfig, ledger Ledger, log *slog.Logger) (*Rollbacker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("rollback config: %w", err)
	}
	if cfg.BearerTokenFile != "" {
		tok, err := os.ReadFile(cfg.BearerTokenFile)
		if err != nil {
			return nil, fmt.Errorf("rollback bearer token: %w", err)
		}
		cfg.BearerToken = strings.TrimSpace(string(tok))
	}
	if ledger == nil {
		ledger = &MemLedger{}
	}
	if log == nil {
		log = slog.Default()
	}
	return &Rollbacker{cfg: cfg, ledger: ledger, client: &http.Client{Timeout: cfg.Timeout}, log: log}, nil
}

// NewRequest builds the rollback request for a failed verdict.
func NewRequest(c Canary, v canary.Verdict, now time.Time) RollbackRequest {
	r := RollbackRequest{Key: c.Key(), Canary: c, Target: c.BaselineVersion, LastKnownGood: c.LastKnownGood, Rules: v.Failed(),
		ElapsedSeconds: v.Elapsed.Seconds(), Evidence: canary.JSONSafe(v.Evidence), RequestedAt: now.UTC()}
	var parts []string
	for _, e := range v.Evidence {
		if e.Outcome == canary.Fail {
			parts = append(parts, e.String())
		}
	}
	r.Reason = strings.Join(parts, "; ")
	return r
}

// Request sends r unless its key is already done, and reports whether
// this call sent it. A request left pending by a crash is sent again with
// the same key, which the receiver dedupes.
func (rb *Rollbacker) Request(ctx context.Context, r RollbackRequest) (sent bool, err error) {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	st, err := rb.ledger.State(r.Key)
	if err != nil {
		return false, err
	}
	if st == Done {
		return false, nil
	}
	if st == None {
		if err := rb.ledger.Set(r.Key, Pending); err != nil {
			return false, err
		}
	}
	body, err := json.Marshal(r)
	if err != nil {
		return false, fmt.Errorf("rollback %s: %w", r.Key, err)
	}
	backoff := rb.cfg.Backoff
	for attempt := 1; ; attempt++ {
		err = rb.post(ctx, r.Key, body)
		if err == nil {
			break
		}
		rb.log.Warn("rollback request failed", "key", r.Key, "attempt", attempt, "err", err)
		if attempt >= rb.cfg.Attempts {
			return false, fmt.Errorf("rollback %s: %d attempts: %w", r.Key, attempt, err)
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("rollback %s: %w", r.Key, ctx.Err())
		case <-time.After(backoff):
		}
		backoff *= 2
	}
	if err := rb.ledger.Set(r.Key, Done); err != nil {
		return true, err
	}
	rb.log.Info("rollback requested", "key", r.Key, "rules", r.Rules)
	return true, nil
}

func (rb *Rollbacker) post(ctx context.Context, key string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rb.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	if rb.cfg.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+rb.cfg.BearerToken)
	}
	resp, err := rb.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
