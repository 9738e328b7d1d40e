package analyzer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/alerting/route"
	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/analytics/health"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/internal/scoring"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/netcut"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/score"
	"github.com/fleetwatch/fleetwatch/lib/coord"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

// sharedFleet is three datacenters of four nodes, a training job in each,
// four served models, and GPU faults in every datacenter: a straggler
// (dc-0), a GPU off the bus (dc-1), a correctable-ECC ramp and an NVLink
// degradation (dc-2).
const sharedFleet = `
name: shared
seed: 17
duration: 12m
interval: 5s
fleet: {datacenters: 3, racks_per_row: 2, nodes_per_rack: 2, gpus_per_node: 8, nvlinks: 4}
jobs:
  - {name: pretrain-a, first_node: 0, nodes: 4, step_seconds: 1.1}
  - {name: pretrain-b, first_node: 4, nodes: 4, step_seconds: 1.1}
  - {name: finetune-c, first_node: 8, nodes: 4, step_seconds: 0.6, batch_per_rank: 16}
models:
  - {name: fraud, rps: 2, node: node-003, features: [{name: amount, mean: 120, sd: 40}]}
  - {name: churn, rps: 2, node: node-007, features: [{name: tenure, mean: 24, sd: 12}]}
  - {name: ranker, rps: 2, node: node-011, features: [{name: score, mean: 0.5, sd: 0.1}]}
  - {name: search, rps: 2, node: node-002, features: [{name: length, mean: 12, sd: 3}]}
faults:
  - {name: slow, type: straggler, target: {node: node-001, gpu: 6}, start: 2m10s, end: 7m}
  - {name: bus, type: xid79, target: {node: node-005, gpu: 4}, start: 4m15s}
  - {name: ecc, type: ecc_ramp, target: {node: node-010, gpu: 3}, start: 2m20s, end: 8m, magnitude: 0.3}
  - {name: link, type: nvlink_degradation, target: {node: node-009, gpu: 1}, start: 4m5s, end: 10m}
`

// evaluations records every evaluation an analyzer's engine hands its
// sinks, across analyzers: share → window end → analyzers.
type evaluations struct {
	mu sync.Mutex
	by map[string]map[int64][]string
}

func (e *evaluations) sink(member string) fleet.Sink {
	return fleet.SinkFunc(func(_ context.Context, ev fleet.Evaluation) error {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.by[ev.Detector] == nil {
			e.by[ev.Detector] = map[int64][]string{}
		}
		e.by[ev.Detector][ev.Window.End.Unix()] = append(e.by[ev.Detector][ev.Window.End.Unix()], member)
		return nil
	})
}

// hook is a webhook receiver: every message it answered, by idempotency key.
type hook struct {
	mu  sync.Mutex
	got map[string][]route.WebhookMessage
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var msg route.WebhookMessage
	if err := json.Unmarshal(body, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.got[r.Header.Get("Idempotency-Key")] = append(h.got[r.Header.Get("Idempotency-Key")], msg)
	h.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// triggers returns the trigger messages by incident key.
func (h *hook) triggers() map[string][]route.WebhookMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string][]route.WebhookMessage{}
	for _, msgs := range h.got {
		for _, m := range msgs {
			if m.Action == incident.ActionTrigger {
				out[m.Incident.Key] = append(out[m.Incident.Key], m)
			}
		}
	}
	return out
}

// member is one in-process analyzer whose ZooKeeper connection runs
// through a proxy the test can cut.
type member struct {
	id     string
	a      *Analyzer
	proxy  *netcut.Proxy
	cancel context.CancelFunc
	done   chan struct{}
}

// Three analyzers share a stored fleet of three datacenters and four
// models through a real ZooKeeper, on one virtual clock that the test
// moves a health window at a time once everything due is evaluated and
// consumed. Partway, the alerting owner — which also evaluates the health
// of dc-1, where a GPU falls off the bus later — dies: its ZooKeeper
// connection is cut and it stops, leaving its session to expire, as after
// a SIGKILL (killed between windows: a window in flight at a kill is
// evaluated again by the new owner, its rows collapsing). Its
// shares and the alerting lease move to the other two within the stated
// bound, never to two analyzers at once; every share's windows are then
// evaluated exactly once over the whole run (contiguous, none twice), the
// alerting owners consume each exactly once, and every injected fault
// pages exactly once at its level, none twice, none lost.
func TestThreeAnalyzersShareTheFleetAndSurviveALoss(t *testing.T) {
	ctx := context.Background()
	zk := chtest.StartZooKeeper(t)
	sc, err := sim.Parse([]byte(sharedFleet))
	if err != nil {
		t.Fatal(err)
	}
	sc.Start = time.Now().UTC().Add(-10 * 24 * time.Hour).Truncate(time.Hour)
	db := chtest.NewDB(t)
	truths, err := score.Store(ctx, sc, db, score.StoreOptions{QueueDir: t.TempDir(), MaxAge: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	from, to := sc.Start, sc.Start.Add(sc.Duration)
	checkHealthShardsPartition(t, db, from)

	rec := &hook{got: map[string][]route.WebhookMessage{}}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	cfg := NewDefaultConfig()
	cfg.Listen = ""
	cfg.Engine.StartAt, cfg.Engine.EndAt, cfg.Engine.MaxCatchUp = from, to, 1000
	cfg.Engine.RetryBackoff = time.Second
	cfg.Drift.DeploymentReference = 5 * time.Minute
	cfg.SPCLabels.Enabled = false // an hour late: past the run
	cfg.Alerting.Enabled = true
	cfg.Alerting.Routing = route.Config{Default: []string{"hook"}, Receivers: []route.ReceiverConfig{{Name: "hook", Type: route.TypeWebhook, URL: srv.URL,
		InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}}}
	co := &cfg.Coordination
	co.Enabled, co.SessionTimeout, co.Poll, co.DatacenterShards, co.ModelShards = true, 2*time.Second, 200*time.Millisecond, 4, 4
	clock := engine.NewManualClock(from)
	evs := &evaluations{by: map[string]map[int64][]string{}}
	members := map[string]*member{}
	start := func(id string) *member {
		p := netcut.New(t, zk.Addr())
		c := cfg
		c.Coordination.Servers, c.Coordination.MemberID = []string{p.Addr()}, id
		a, err := New(ctx, c, db, chtest.Logger(t).With("member", id), WithClock(clock), WithSink(evs.sink(id)))
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		m := &member{id: id, a: a, proxy: p, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(m.done)
			if err := a.Run(rctx); err != nil {
				t.Error(err)
			}
		}()
		t.Cleanup(func() { cancel(); <-m.done })
		return m
	}
	// The victim is the analyzer that rendezvous hashing gives the health
	// share of dc-1, whose GPU falls off the bus after the loss; it starts
	// first, so that it also owns alerting (and hands the other shares
	// over as the others join).
	ids := []string{"analyzer-0", "analyzer-1", "analyzer-2"}
	dc1 := fleet.ShareName(cfg.Health.Name, "dc"+fleet.Shard{Index: chsql.ShardOf("dc-1", 4), Of: 4}.String())
	first := coord.Owner(dc1, ids)
	members[first] = start(first)
	waitFor(t, first+" owns alerting", 30*time.Second, func() bool { st, _ := members[first].a.Coordination(); return st.Leader })
	for _, id := range ids {
		if id != first {
			members[id] = start(id)
		}
	}
	waitFor(t, "the shares spread over three analyzers", 30*time.Second, func() bool {
		n := 0
		for _, m := range members {
			st, _ := m.a.Coordination()
			if len(st.Members) != 3 {
				return false
			}
			n += len(st.Units)
		}
		return n == len(members[first].a.share.specs)
	})
	shares := slices.Sorted(maps.Keys(members["analyzer-0"].a.share.specs))
	t.Logf("%d shares: %v", len(shares), shares)

	// At most one alerting owner at any time.
	var mu sync.Mutex // guards members for the sampler
	stopSampling := make(chan struct{})
	var overlaps []string
	var sampled sync.WaitGroup
	sampled.Add(1)
	go func() {
		defer sampled.Done()
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(2 * time.Millisecond):
			}
			var now []string
			mu.Lock()
			for id, m := range members {
				if st, _ := m.a.Coordination(); st.Leader {
					now = append(now, id)
				}
			}
			mu.Unlock()
			if len(now) > 1 {
				overlaps = append(overlaps, strings.Join(now, "+"))
			}
		}
	}()

	intervals := map[string]time.Duration{cfg.Health.Name: cfg.Health.Interval, cfg.Drift.Name: cfg.Drift.Interval, cfg.SPCModels.Name: cfg.SPCModels.Interval, cfg.Jobs.Name: cfg.Jobs.Interval}
	// due is the end of the last window a share must have evaluated by
	// the clock's time now (zero: none yet).
	due := func(share string, now time.Time) time.Time {
		iv := intervals[fleet.BaseName(share)]
		end := now.Add(-cfg.Engine.Lateness)
		if end.After(to) {
			end = to
		}
		end = fleet.Align(end, iv).Start
		if end.Before(from.Add(iv)) {
			return time.Time{}
		}
		return end
	}
	// caughtUp reports whether every share, and the alerting owner's feed,
	// got to its due window.
	caughtUp := func() (bool, string) {
		last := map[string]time.Time{}
		var res chsql.Result
		det, end := res.Str("detector"), res.Time("e")
		q := "SELECT detector, max(window_end) AS e FROM " + chsql.Ident(db.Config().Database, "analyzer_windows") + " GROUP BY detector"
		if err := res.ForRows(ctx, db, q, func(r int) { last[det.At(r)] = time.Unix(end.Seconds(r), 0).UTC() }); err != nil {
			return false, err.Error()
		}
		now := clock.Now()
		for _, s := range shares {
			want := due(s, now)
			if want.IsZero() {
				continue
			}
			if last[s].Before(want) {
				return false, fmt.Sprintf("%s at %v, due %v", s, last[s], want)
			}
			if last["alerting>"+s].Before(want) {
				return false, fmt.Sprintf("alerting consumed %s up to %v, due %v", s, last["alerting>"+s], want)
			}
		}
		return true, ""
	}
	advanceTo := func(until time.Time) {
		for clock.Now().Before(until) {
			clock.Advance(cfg.Health.Interval)
			began := time.Now()
			for {
				ok, why := caughtUp()
				if ok {
					break
				}
				if time.Since(began) > time.Minute {
					t.Fatalf("at %v: not caught up after a minute: %s", clock.Now(), why)
				}
				time.Sleep(20 * time.Millisecond)
				clock.Advance(0) // fire waiters of retries due now
			}
		}
	}

	// Until the first incident has paged (windows are evaluated two
	// minutes late: the lateness allowance).
	advanceTo(from.Add(6 * time.Minute))
	victim := members[first]
	vst, _ := victim.a.Coordination()
	lost := vst.Units
	if !vst.Leader || !slices.Contains(lost, dc1) {
		t.Fatalf("%s: leader %v, shares %v; want the alerting owner evaluating %s", victim.id, vst.Leader, lost, dc1)
	}
	pagedBefore := len(rec.triggers())
	if pagedBefore == 0 {
		t.Fatal("nothing paged before the loss: the new owner's restore of open incidents would go untested")
	}
	t.Logf("killing the alerting owner %s at %v: it evaluates %v; %d incident(s) paged so far", victim.id, clock.Now().Format(time.TimeOnly), lost, pagedBefore)

	killed := time.Now()
	victim.proxy.Cut() // its session is left to expire
	victim.cancel()
	<-victim.done
	mu.Lock()
	delete(members, victim.id)
	mu.Unlock()
	took := waitTakeover(t, members, lost, 3*co.TakeoverBound())
	t.Logf("%s's shares and the alerting lease taken over %v after it died (session timeout %v, stated bound %v)",
		victim.id, took.Sub(killed).Round(time.Millisecond), co.SessionTimeout, co.TakeoverBound())
	if d := took.Sub(killed); d > co.TakeoverBound() {
		t.Errorf("taken over after %v, beyond the stated bound %v", d, co.TakeoverBound())
	}

	advanceTo(to.Add(cfg.Engine.Lateness + cfg.Health.Interval))
	// The notifications of every incident the owner opened are delivered.
	var owner *member
	for _, m := range members {
		if st, _ := m.a.Coordination(); st.Leader {
			owner = m
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var undelivered []string
		trig := rec.triggers()
		for _, inc := range owner.a.Incidents() {
			if !inc.OpenedAt.IsZero() && len(trig[inc.Key]) == 0 {
				undelivered = append(undelivered, inc.Key)
			}
		}
		if len(undelivered) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("incidents opened but not paged: %v", undelivered)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stopSampling)
	sampled.Wait()
	if len(overlaps) > 0 {
		t.Errorf("two alerting owners at once: %v", overlaps[:min(len(overlaps), 5)])
	}

	// Every share's windows: contiguous from the start to the end, each
	// evaluated once by one analyzer, and recorded once.
	evs.mu.Lock()
	for _, s := range shares {
		iv := intervals[fleet.BaseName(s)]
		got := evs.by[s]
		var twice []string
		for end, who := range got {
			if len(who) > 1 {
				twice = append(twice, fmt.Sprintf("%s by %v", time.Unix(end, 0).UTC().Format(time.TimeOnly), who))
			}
		}
		want := int(due(s, to.Add(cfg.Engine.Lateness)).Sub(from) / iv)
		missing := 0
		for k := 1; k <= want; k++ {
			if _, ok := got[from.Add(time.Duration(k)*iv).Unix()]; !ok {
				missing++
			}
		}
		if len(twice) > 0 || missing > 0 || len(got) != want {
			t.Errorf("%s: %d windows evaluated, want %d; %d missing; twice: %v", s, len(got), want, missing, twice)
		}
	}
	evs.mu.Unlock()
	q := fmt.Sprintf(`SELECT detector, count() AS n, uniqExact(window_end) AS u FROM %s WHERE detector LIKE '%%@%%' GROUP BY detector ORDER BY detector`,
		chsql.Ident(db.Config().Database, "analyzer_windows"))
	var res chsql.Result
	det, n, u := res.Str("detector"), res.Int("n"), res.Int("u")
	rows := 0
	if err := res.ForRows(ctx, db, q, func(r int) {
		rows++
		if n.At(r) != u.At(r) {
			t.Errorf("ledger: %s has %d rows for %d windows", det.At(r), n.At(r), u.At(r))
		}
	}); err != nil {
		t.Fatal(err)
	}
	if rows != 2*len(shares) {
		t.Errorf("ledger: %d series, want %d shares and their alerting cursors", rows, 2*len(shares))
	}

	checkRunbookShareQuery(t, db, from, len(shares))

	// Every fault pages once, at its level; no page twice.
	trig := rec.triggers()
	var pages []scoring.Page
	for key, msgs := range trig {
		if len(msgs) > 1 {
			t.Errorf("%s paged %d times", key, len(msgs))
		}
		pages = append(pages, scoring.Page{Time: msgs[0].Incident.OpenedAt, Incident: msgs[0].Incident})
	}
	sort.Slice(pages, func(i, j int) bool { return pages[i].Time.Before(pages[j].Time) })
	rep := scoring.Pages(truths, pages, scoring.Options{Interval: cfg.Health.Interval, Grace: 2 * cfg.Health.Interval, RunEnd: to})
	t.Logf("pages (%d before the loss):\n%s", pagedBefore, rep.Markdown())
	for _, c := range rep.Causes {
		if c.Pages != 1 || !c.LevelOK {
			t.Errorf("%s: %d pages at %v, want one at %s", c.Fault, c.Pages, c.Levels, c.WantLevel)
		}
	}
	if len(rep.Unexplained) > 0 {
		t.Errorf("pages matching no fault: %v", rep.Unexplained)
	}
}

// checkRunbookShareQuery runs docs/RUNBOOK.md's query of how far each share
// is evaluated and consumed: at the end of the run, every share's windows
// are all consumed.
func checkRunbookShareQuery(t *testing.T, db *storage.Client, from time.Time, shares int) {
	t.Helper()
	doc, err := os.ReadFile("../../docs/RUNBOOK.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, _ := strings.Cut(string(doc), "**Who evaluates what, and how far behind.**")
	_, after, _ = strings.Cut(after, "```sql\n")
	q, _, ok := strings.Cut(after, "```")
	if !ok {
		t.Fatal("docs/RUNBOOK.md: the shares' query is missing")
	}
	q = strings.ReplaceAll(q, "now() - INTERVAL 1 DAY", chsql.Time(from.Add(-time.Hour)))
	q = strings.ReplaceAll(q, "FROM analyzer_windows", "FROM "+chsql.Ident(db.Config().Database, "analyzer_windows"))
	var res chsql.Result
	share, evaluated, consumed := res.Str("share"), res.Time("evaluated_to"), res.Time("alerting_consumed_to")
	rows := 0
	if err := res.ForRows(context.Background(), db, q, func(r int) {
		rows++
		if evaluated.Seconds(r) != consumed.Seconds(r) {
			t.Errorf("runbook query: %s evaluated to %d, consumed to %d", share.At(r), evaluated.Seconds(r), consumed.Seconds(r))
		}
	}); err != nil {
		t.Fatalf("docs/RUNBOOK.md's shares query: %v", err)
	}
	if rows != shares {
		t.Errorf("runbook query: %d shares, want %d", rows, shares)
	}
}

// waitFor polls cond until it holds, failing the test after limit.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitTakeover waits until the members left hold every share in lost and
// one of them owns alerting; it returns when that was first seen.
func waitTakeover(t *testing.T, members map[string]*member, lost []string, limit time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		held, leaders := map[string]int{}, 0
		for _, m := range members {
			st, _ := m.a.Coordination()
			for _, u := range st.Units {
				held[u]++
			}
			if st.Leader {
				leaders++
			}
		}
		all := leaders == 1
		for _, u := range lost {
			all = all && held[u] == 1
		}
		if all {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("not taken over within %v: held %v, %d owner(s)", limit, held, leaders)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkHealthShardsPartition checks that the datacenter shards of fleet
// health read, together, exactly what the whole detector reads: every GPU
// once.
func checkHealthShardsPartition(t *testing.T, db *storage.Client, from time.Time) {
	t.Helper()
	ctx := context.Background()
	w := fleet.Window{Start: from.Add(5 * time.Minute), End: from.Add(5*time.Minute + 30*time.Second)}
	gpus := func(in *health.Input) []string {
		var out []string
		for _, r := range in.Rows {
			out = append(out, r.GPU.UUID+"/"+r.Metric)
		}
		for _, e := range in.Events {
			out = append(out, e.GPU.UUID+"/"+e.Kind)
		}
		slices.Sort(out)
		return out
	}
	cfg := health.NewDefaultConfig()
	whole, err := health.NewSource(db, cfg).Read(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	var union []string
	dcs := map[string]int{}
	for k := range 4 {
		cfg.Shard = fleet.Shard{Index: k, Of: 4}
		in, err := health.NewSource(db, cfg).Read(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		union = append(union, gpus(in)...)
		seen := map[string]bool{}
		for _, r := range in.Rows {
			if !seen[r.GPU.Datacenter] {
				seen[r.GPU.Datacenter] = true
				dcs[r.GPU.Datacenter]++
			}
			if chsql.ShardOf(r.GPU.Datacenter, 4) != k {
				t.Fatalf("shard %d read a GPU of %s", k, r.GPU.Datacenter)
			}
		}
	}
	slices.Sort(union)
	if w := gpus(whole); len(w) == 0 || !slices.Equal(union, w) {
		t.Fatalf("the shards read %d GPU rows, the whole %d", len(union), len(w))
	}
	if len(dcs) != 3 {
		t.Fatalf("datacenters read: %v", dcs)
	}
	for dc, n := range dcs {
		if n != 1 {
			t.Errorf("%s read by %d shards", dc, n)
		}
	}
}
