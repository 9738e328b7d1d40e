package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/analytics/canary"
	"github.com/fleetwatch/fleetwatch/analytics/canary/action"
)

// rollouts is the demo's rollout controller for the scenario's canaries
// (issue 20): the receiver of the analyzer's rollback webhook, which
// prints the failed canary's evidence and rolls the simulated model back,
// and a poller of the analyzer's verdicts (GET /canary/v1/verdict, the
// Argo Rollouts web metric) that promotes a canary once it passes. The
// canary judge decides; the demo only acts on its decisions, as Argo
// Rollouts or Flagger would.
type rollouts struct {
	d   *Demo
	srv *http.Server
	// url is the rollback webhook; verdicts the analyzer's verdict URL.
	url, verdicts string
	client        *http.Client

	mu      sync.Mutex
	serving *sim.Serving // nil until the fleet runs
	// canaries are the scenario's canaries not decided yet, by model.
	canaries map[string]sim.DeploymentSpec
	seen     map[string]bool // rollback keys received
	rolled   []string        // "model version", in order
	passed   []string
}

// startRollouts starts the rollback webhook receiver for the scenario's
// canaries (none when it has none).
func startRollouts(d *Demo, deps []sim.DeploymentSpec) (*rollouts, error) {
	r := &rollouts{d: d, canaries: map[string]sim.DeploymentSpec{}, seen: map[string]bool{}, client: &http.Client{Timeout: 5 * time.Second}}
	for _, dep := range deps {
		if dep.Change == sim.ChangeCanary {
			r.canaries[dep.Model] = dep
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo rollback receiver: %w", err)
	}
	r.url = "http://" + ln.Addr().String() + "/rollback"
	r.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(r.rollback)}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *rollouts) stop() { _ = r.srv.Close() }

// rollback receives one action.RollbackRequest: it prints the verdict's
// evidence, rule by rule, and rolls the simulated model back (once per
// Idempotency-Key, as a receiver must).
func (r *rollouts) rollback(w http.ResponseWriter, req *http.Request) {
	var rb action.RollbackRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, 1<<20)).Decode(&rb); err != nil {
		http.Error(w, "rollback request: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	dup := r.seen[rb.Key]
	r.seen[rb.Key] = true
	if !dup {
		delete(r.canaries, rb.Canary.Model)
		r.rolled = append(r.rolled, rb.Canary.Model+" "+rb.Canary.Version)
		if r.serving != nil {
			r.serving.Rollback(rb.Canary.Model, rb.Canary.Version)
		}
	}
	r.mu.Unlock()
	if dup {
		return // already rolled back: the key says so
	}
	r.d.say("  CANARY rolled back %s %s to %s after %v: failed %s\n%s", rb.Canary.Model, rb.Canary.Version, rb.Target,
		time.Duration(rb.ElapsedSeconds*float64(time.Second)).Round(time.Second), strings.Join(rb.Rules, ", "), evidenceLines(rb.Evidence))
}

// evidenceLines is each rule's evidence (effect, interval, samples) on a
// line of its own, rules without data (n/a) left out.
func evidenceLines(ev []canary.Evidence) string {
	lines := make([]string, 0, len(ev))
	for _, e := range ev {
		if e.Outcome != canary.NotApplicable {
			lines = append(lines, "           "+e.String())
		}
	}
	return strings.Join(lines, "\n")
}

// run polls the verdict of each canary that has started, every interval,
// until ctx ends: a pass promotes it. Failed canaries are the rollback
// webhook's.
func (r *rollouts) run(ctx context.Context, serving *sim.Serving, start time.Time, interval time.Duration) {
	r.mu.Lock()
	r.serving = serving
	r.mu.Unlock()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.mu.Lock()
		var due []sim.DeploymentSpec
		for _, c := range r.canaries {
			if time.Since(start) >= c.At {
				due = append(due, c)
			}
		}
		r.mu.Unlock()
		for _, c := range due {
			wv, ok := r.verdict(ctx, c)
			if !ok || wv.Outcome != canary.Pass {
				continue
			}
			r.mu.Lock()
			_, open := r.canaries[c.Model]
			delete(r.canaries, c.Model)
			if open {
				r.passed = append(r.passed, c.Model+" "+c.Version)
				serving.Promote(c.Model, c.Version)
			}
			r.mu.Unlock()
			if open {
				r.d.say("  CANARY %s %s passed after %v against %s: promoted\n%s", c.Model, c.Version,
					time.Duration(wv.ElapsedSeconds*float64(time.Second)).Round(time.Second), wv.BaselineVersion, evidenceLines(wv.Evidence))
			}
		}
	}
}

// verdict reads a canary's verdict from the analyzer (false while it has
// none: not judged yet).
func (r *rollouts) verdict(ctx context.Context, c sim.DeploymentSpec) (action.WebVerdict, bool) {
	var wv action.WebVerdict
	u := r.verdicts + "?" + url.Values{"model": {c.Model}, "version": {c.Version}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return wv, false
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return wv, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return wv, false
	}
	if err := json.NewDecoder(resp.Body).Decode(&wv); err != nil {
		r.d.log.Warn("canary verdict", "url", u, "err", err)
		return wv, false
	}
	return wv, true
}

// summary is one line per canary: rolled back, passed or undecided.
func (r *rollouts) summary() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.rolled {
		out = append(out, "rolled back "+s)
	}
	for _, s := range r.passed {
		out = append(out, "passed "+s)
	}
	for _, c := range r.canaries {
		out = append(out, "undecided "+c.Model+" "+c.Version)
	}
	return out
}
