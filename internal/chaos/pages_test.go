package chaos_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// pager is a webhook receiver that can hang: while hung it holds every
// request open without answering. It records what it answered 2xx, by the
// notification's Idempotency-Key.
type pager struct {
	mu       sync.Mutex
	hung     bool
	release  chan struct{}
	seen     int            // requests that arrived, answered or not
	answered map[string]int // 2xx answers by Idempotency-Key
}

func newPager() *pager {
	return &pager{hung: true, release: make(chan struct{}), answered: map[string]int{}}
}

func (p *pager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	p.mu.Lock()
	p.seen++
	hung, release := p.hung, p.release
	p.mu.Unlock()
	if hung {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return // no answer: the sender's attempt times out or its process dies
	}
	key := r.Header.Get("Idempotency-Key")
	p.mu.Lock()
	p.answered[key]++
	p.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (p *pager) unhang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hung {
		p.hung = false
		close(p.release)
	}
}

func (p *pager) state() (seen int, answered map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.answered {
		out[k] = v
	}
	return p.seen, out
}

// The analyzer pages through a webhook that hangs, and is killed with
// SIGKILL while its first page is in flight. Its replacement resumes from
// the notification outbox: every incident transition reaches the receiver
// exactly once (one 2xx answer per Idempotency-Key), the hung one included.
func TestAnalyzerKilledWhileThePagerHangs(t *testing.T) {
	ref := reference(t, "60s")
	srv := chtest.StartServer(t)
	p := newPipeline(t, chtest.OpenDB(t, srv, true), pipelineOpts{duration: "60s", fast: true})
	p.collector.start()
	p.agent.start()
	converge(t, p.db, ref, 2*time.Minute, p.agent, p.collector)

	pg := newPager()
	hook := httptest.NewServer(pg)
	t.Cleanup(hook.Close)
	t.Cleanup(pg.unhang)
	listen := promtest.FreePort(t)
	cfg := filepath.Join(t.TempDir(), "analyzer.yaml")
	write(t, cfg, fmt.Sprintf(`clickhouse:
  addrs: [%q]
  database: %s
analyzer:
  listen: 127.0.0.1:%d
  engine:
    lateness: 5s
    start_at: %s
    max_catch_up: 1000
  drift: {enabled: false}
  spc_models: {enabled: false}
  health:
    enabled: true
    interval: 30s
  alerting:
    enabled: true
    catalog: ""
    lifecycle: {open_after: 1}
    default: [hook]
    receivers:
      - name: hook
        type: webhook
        url: %s
        timeout: 60s
        initial_backoff: 200ms
        max_backoff: 1s
`, srv.Addr(), p.db.Config().Database, listen, simStart.Format(time.RFC3339), hook.URL))
	analyzer := newProc(t, "fleetwatch-analyzer", "--config", cfg, "--log-level", "warn")
	analyzer.start()
	deadline := time.Now().Add(2 * time.Minute)
	for seen, _ := pg.state(); seen == 0; seen, _ = pg.state() {
		if time.Now().After(deadline) {
			t.Fatalf("no page was sent:\n%s", analyzer.tail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	analyzer.kill() // mid-delivery: the receiver has not answered
	pg.unhang()
	analyzer.start()
	// The replacement catches up on every window and empties the outbox.
	deadline = time.Now().Add(3 * time.Minute)
	for {
		end, ok1 := scrape(listen, "fleetwatch_analyzer_last_window_end_seconds", nil)
		pending, ok2 := scrape(listen, "fleetwatch_alerting_outbox_pending", nil)
		if ok1 && ok2 && end >= float64(time.Now().Add(-2*time.Minute).Unix()) && pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted analyzer did not catch up and deliver (window end %v, pending %v):\n%s", end, pending, analyzer.tail(30))
		}
		time.Sleep(500 * time.Millisecond)
	}
	seen, answered := pg.state()
	var keys []string
	triggers := 0
	for k, n := range answered {
		keys = append(keys, fmt.Sprintf("%s×%d", k, n))
		if n != 1 {
			t.Errorf("transition %s was delivered %d times, want once", k, n)
		}
		if strings.HasSuffix(k, "/trigger") {
			triggers++
		}
	}
	sort.Strings(keys)
	if triggers == 0 {
		t.Fatalf("no incident was paged (the scenario has a GPU falling off the bus); answered %v", keys)
	}
	// What the outbox recorded as sent is what the receiver answered.
	var sent uint64
	if err := p.db.QueryScalar(t.Context(), "SELECT uniqExact(incident_key, transition, action) FROM notification_outbox FINAL WHERE state = 'sent'", &sent); err != nil {
		t.Logf("cannot read notification_outbox: %v", err)
	} else if int(sent) != len(answered) {
		t.Errorf("the outbox says %d notifications were sent, the receiver answered %d: %v", sent, len(answered), keys)
	}
	t.Logf("%d requests reached the pager (the hung one included); delivered once each: %v", seen, keys)
}
