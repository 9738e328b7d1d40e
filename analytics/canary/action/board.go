package action

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/canary"
)

// Board holds the latest verdict of every running canary, by model and
// version, and serves it to deployment tools. It is safe for concurrent
// use.
type Board struct {
	mu sync.RWMutex
	m  map[[2]string]entry
}

type entry struct {
	c  Canary
	v  canary.Verdict
	at time.Time
}

// Set records canary c's verdict v, judged at.
func (b *Board) Set(c Canary, v canary.Verdict, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[[2]string]entry{}
	}
	b.m[[2]string{c.Model, c.Version}] = entry{c: c, v: v, at: at}
}

// Remove forgets a canary (promoted or rolled back).
func (b *Board) Remove(model, version string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, [2]string{model, version})
}

func (b *Board) get(model, version string) (entry, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	e, ok := b.m[[2]string{model, version}]
	return e, ok
}

// WebVerdict is the JSON document GET /canary/v1/verdict returns, shaped
// for Argo Rollouts' web metric provider:
//
//	provider:
//	  web:
//	    url: http://fleetwatch-analyzer:9464/canary/v1/verdict?model=ranker&version=v7
//	    jsonPath: "{$.outcome}"
//	successCondition: result == "pass"
//	failureCondition: result == "fail"
//
// An inconclusive verdict meets neither condition, which Argo records as
// an Inconclusive measurement (the rollout pauses). Pass, Fail and
// Inconclusive are the same as booleans for conditions on "{$}".
type WebVerdict struct {
	Canary
	Outcome canary.Outcome `json:"outcome"`
	// Gate is the evaluation gate on the first requests: "{$.gate.outcome}"
	// == "pass" lets a rollout widen the canary's traffic.
	Gate             canary.GateVerdict `json:"gate"`
	Pass             bool               `json:"pass"`
	Fail             bool               `json:"fail"`
	Inconclusive     bool               `json:"inconclusive"`
	FailedRules      []string           `json:"failed_rules"`
	ElapsedSeconds   float64            `json:"elapsed_seconds"`
	TimeLeftSeconds  float64            `json:"time_left_seconds"`
	JudgedAt         time.Time          `json:"judged_at"`
	Evidence         []canary.Evidence  `json:"evidence"`
	RollbackRequired bool               `json:"rollback_required"`
}

func webVerdict(e entry) WebVerdict {
	w := WebVerdict{Canary: e.c, Outcome: e.v.Outcome, Gate: e.v.Gate, Pass: e.v.Outcome == canary.Pass, Fail: e.v.Outcome == canary.Fail,
		Inconclusive: e.v.Outcome == canary.Inconclusive, FailedRules: e.v.Failed(), ElapsedSeconds: e.v.Elapsed.Seconds(),
		TimeLeftSeconds: e.v.TimeLeft.Seconds(), JudgedAt: e.at.UTC(), Evidence: canary.JSONSafe(e.v.Evidence)}
	if e.v.TimeLeft < 0 {
		w.TimeLeftSeconds = -1
	}
	w.RollbackRequired = w.Fail
	if w.FailedRules == nil {
		w.FailedRules = []string{}
	}
	return w
}

// Handler serves:
//
//	GET  /canary/v1/verdict?model=M&version=V   the WebVerdict (404 if unknown)
//	POST /canary/v1/flagger/rollback            Flagger "rollback" hook: 200 when the canary failed, else 409
//	POST /canary/v1/flagger/confirm             Flagger "confirm-traffic-increase" / "confirm-promotion" hook: 200 when it passed, else 409
//	POST /canary/v1/flagger/gate                Flagger "confirm-traffic-increase" hook on the evaluation gate: 200 when the gate passed (and the canary has not failed), else 409
//
// Flagger's hooks post {"name","namespace","phase","checksum","metadata"};
// the canary is metadata.model and metadata.version (model defaults to
// name). Flagger rolls back when a rollback hook answers 2xx, and keeps
// the canary paused, without counting a failed check, while a confirm
// hook answers anything else.
func (b *Board) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /canary/v1/verdict", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		e, ok := b.get(q.Get("model"), q.Get("version"))
		if !ok {
			http.Error(w, fmt.Sprintf("no canary for model %q version %q", q.Get("model"), q.Get("version")), http.StatusNotFound)
			return
		}
		writeJSON(w, http.StatusOK, webVerdict(e))
	})
	flagger := func(decides func(canary.Verdict) bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var hook struct {
				Name      string            `json:"name"`
				Namespace string            `json:"namespace"`
				Phase     string            `json:"phase"`
				Checksum  string            `json:"checksum"`
				Metadata  map[string]string `json:"metadata"`
			}
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&hook); err != nil {
				http.Error(w, "flagger webhook body: "+err.Error(), http.StatusBadRequest)
				return
			}
			model := hook.Metadata["model"]
			if model == "" {
				model = hook.Name
			}
			e, ok := b.get(model, hook.Metadata["version"])
			if !ok {
				http.Error(w, fmt.Sprintf("no canary for model %q version %q (set metadata.model and metadata.version on the webhook)", model, hook.Metadata["version"]), http.StatusNotFound)
				return
			}
			wv := webVerdict(e)
			status := http.StatusConflict
			if decides(e.v) {
				status = http.StatusOK
			}
			writeJSON(w, status, wv)
		}
	}
	mux.HandleFunc("POST /canary/v1/flagger/rollback", flagger(func(v canary.Verdict) bool { return v.Outcome == canary.Fail }))
	mux.HandleFunc("POST /canary/v1/flagger/confirm", flagger(func(v canary.Verdict) bool { return v.Outcome == canary.Pass }))
	mux.HandleFunc("POST /canary/v1/flagger/gate", flagger(func(v canary.Verdict) bool {
		return v.Gate.Outcome == canary.Pass && v.Outcome != canary.Fail
	}))
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // an error means the client went away
}
