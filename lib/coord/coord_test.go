package coord_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/fleetwatch/fleetwatch/internal/testsupport/netcut"
	"github.com/fleetwatch/fleetwatch/lib/coord"
	"github.com/fleetwatch/fleetwatch/lib/devcerts"
	"github.com/fleetwatch/fleetwatch/lib/netsec"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestOwnerSpreadsAndMovesOnlyTheLeaversUnits(t *testing.T) {
	members := []string{"analyzer-0", "analyzer-1", "analyzer-2"}
	var units []string
	for i := range 96 {
		units = append(units, fmt.Sprintf("unit%d", i))
	}
	count := map[string]int{}
	before := map[string]string{}
	for _, u := range units {
		before[u] = coord.Owner(u, members)
		count[before[u]]++
	}
	for _, m := range members {
		if count[m] < 16 { // a third is 32; rendezvous hashing spreads, not balances
			t.Errorf("%s owns %d of %d units", m, count[m], len(units))
		}
	}
	// Order does not matter.
	rev := slices.Clone(members)
	slices.Reverse(rev)
	for _, u := range units {
		if got := coord.Owner(u, rev); got != before[u] {
			t.Fatalf("owner of %s depends on the members' order: %s and %s", u, before[u], got)
		}
	}
	// analyzer-1 leaves: only its units move.
	left := []string{"analyzer-0", "analyzer-2"}
	for _, u := range units {
		after := coord.Owner(u, left)
		if before[u] != "analyzer-1" && after != before[u] {
			t.Errorf("%s moved from %s to %s though its owner stayed", u, before[u], after)
		}
	}
	if coord.Owner("x", nil) != "" {
		t.Error("an owner without members")
	}
}

func TestConfigValidate(t *testing.T) {
	badAuth := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(badAuth, []byte("no-colon-here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := coord.NewDefaultConfig()
	good.Servers = []string{"zk-0:2181", "zk-1:2181"}
	if err := good.Validate(); err != nil {
		t.Fatalf("defaults with servers: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*coord.Config)
		want string
	}{
		"no servers":   {func(c *coord.Config) { c.Servers = nil }, "no servers"},
		"bad server":   {func(c *coord.Config) { c.Servers = []string{"zk /x"} }, "not host:port"},
		"relative":     {func(c *coord.Config) { c.Root = "fleetwatch" }, "root"},
		"slash member": {func(c *coord.Config) { c.MemberID = "a/b" }, "member_id"},
		"short":        {func(c *coord.Config) { c.SessionTimeout = 100 * time.Millisecond }, "session_timeout"},
		"slow poll":    {func(c *coord.Config) { c.Poll = time.Minute }, "poll"},
		"no auth file": {func(c *coord.Config) { c.AuthFile = "/nonexistent/zk-auth" }, "auth_file"},
		"bad auth":     {func(c *coord.Config) { c.AuthFile = badAuth }, "user:password"},
	} {
		c := good
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v, want an error about %s", name, err, tc.want)
		}
	}
}

// work records what every member works on, across members, and fails on
// a unit worked on by two at once or on two leaders.
type work struct {
	t       *testing.T
	mu      sync.Mutex
	on      map[string]string // unit → member working on it
	leaders map[string]bool
	overlap []string
}

func (w *work) member(id string) coord.Handler { return &handler{w: w, id: id} }

type handler struct {
	w  *work
	id string
}

func (h *handler) Start(unit string) error {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	if other := h.w.on[unit]; other != "" {
		h.w.overlap = append(h.w.overlap, fmt.Sprintf("%s started %s while %s worked on it", h.id, unit, other))
	}
	h.w.on[unit] = h.id
	return nil
}

func (h *handler) Stop(_ context.Context, unit string) {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	if h.w.on[unit] == h.id {
		delete(h.w.on, unit)
	}
}

func (h *handler) Lead(ctx context.Context) {
	h.w.mu.Lock()
	if len(h.w.leaders) > 0 {
		h.w.overlap = append(h.w.overlap, fmt.Sprintf("%s leads while %v lead", h.id, h.w.leaders))
	}
	h.w.leaders[h.id] = true
	h.w.mu.Unlock()
	<-ctx.Done()
	h.w.mu.Lock()
	delete(h.w.leaders, h.id)
	h.w.mu.Unlock()
}

// snapshot returns how many units are worked on, the leaders and the
// overlaps seen.
func (w *work) snapshot() (int, []string, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var leaders []string
	for l := range w.leaders {
		leaders = append(leaders, l)
	}
	return len(w.on), leaders, slices.Clone(w.overlap)
}

func (w *work) units(id string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for u, m := range w.on {
		if m == id {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not after %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// Three members share twelve units through a real ZooKeeper; one is cut
// off as if killed (its connection dies, its session is left to expire):
// its units and its leadership move to the others within the stated
// bound, never to two members at once; when it comes back, units move
// back to it the same way.
func TestMembersShareAndTakeOver(t *testing.T) {
	zk := chtest.StartZooKeeper(t)
	cfg := coord.NewDefaultConfig()
	cfg.SessionTimeout, cfg.Poll = 2*time.Second, 200*time.Millisecond
	var units []string
	for i := range 12 {
		units = append(units, fmt.Sprintf("u%d", i))
	}
	w := &work{t: t, on: map[string]string{}, leaders: map[string]bool{}}
	type running struct {
		m      *coord.Member
		proxy  *netcut.Proxy
		cancel context.CancelFunc
		done   chan struct{}
	}
	start := func(id string) *running {
		p := netcut.New(t, zk.Addr())
		c := cfg
		c.Servers, c.MemberID = []string{p.Addr()}, id
		m, err := coord.NewMember(c, "test", units, w.member(id), chtest.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := &running{m: m, proxy: p, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(r.done)
			_ = m.Run(ctx, 5*time.Second)
		}()
		t.Cleanup(func() { cancel(); <-r.done })
		return r
	}
	ms := map[string]*running{}
	for _, id := range []string{"a", "b", "c"} {
		ms[id] = start(id)
	}
	settled := func() bool {
		n, leaders, _ := w.snapshot()
		if n != len(units) || len(leaders) != 1 {
			return false
		}
		for _, r := range ms {
			if st := r.m.Status(); len(st.Members) != len(ms) {
				return false
			}
		}
		return true
	}
	waitFor(t, "units shared by three members", 30*time.Second, settled)
	for id, r := range ms {
		st := r.m.Status()
		var want []string
		for _, u := range units {
			if coord.Owner(u, []string{"a", "b", "c"}) == id {
				want = append(want, u)
			}
		}
		slices.Sort(want)
		if !slices.Equal(st.Units, want) || !slices.Equal(w.units(id), want) {
			t.Errorf("%s holds %v and works on %v, want %v", id, st.Units, w.units(id), want)
		}
	}
	_, leaders, _ := w.snapshot()
	victim := leaders[0]

	// A blip: the leader's connection drops and comes back within the
	// session timeout. It stops working while cut off, then takes up its
	// units and the lead again: its session, and so its locks, survived.
	before := w.units(victim)
	ms[victim].proxy.Cut()
	time.Sleep(cfg.SessionTimeout / 4)
	ms[victim].proxy.Resume()
	waitFor(t, "the leader back at work after a blip", 10*time.Second, func() bool {
		_, leaders, _ := w.snapshot()
		return settled() && len(leaders) == 1 && leaders[0] == victim && slices.Equal(w.units(victim), before)
	})
	lost := w.units(victim)
	t.Logf("members a, b, c; cutting the leader %s, which works on %v", victim, lost)

	lostBefore := ms[victim].m.Status().Lost
	killed := time.Now()
	ms[victim].proxy.Cut()
	// The victim stops on its own as soon as its connection is gone.
	waitFor(t, "the victim stops its work", cfg.SessionTimeout, func() bool { return len(w.units(victim)) == 0 })
	if st := ms[victim].m.Status(); st.Leader || st.Lost-lostBefore != uint64(len(lost)) {
		t.Errorf("victim after the cut: leader %v, %d units lost, want %d", st.Leader, st.Lost-lostBefore, len(lost))
	}
	waitFor(t, "the survivors take the victim's units and lead", 3*cfg.TakeoverBound(), func() bool {
		n, leaders, _ := w.snapshot()
		return n == len(units) && len(leaders) == 1 && leaders[0] != victim
	})
	took := time.Since(killed)
	t.Logf("taken over %v after the cut (session timeout %v, stated bound %v)", took.Round(time.Millisecond), cfg.SessionTimeout, cfg.TakeoverBound())
	if took < cfg.SessionTimeout/2 {
		t.Errorf("taken over after %v: before the victim's session could have expired", took)
	}
	if took > cfg.TakeoverBound() {
		t.Errorf("taken over after %v, beyond the stated bound %v", took, cfg.TakeoverBound())
	}
	ms[victim].cancel()
	<-ms[victim].done
	// Hand-overs before this point (members joining one after another at
	// the start) are not the victim's units coming back.
	releasedBefore := uint64(0)
	for id, r := range ms {
		if id != victim {
			releasedBefore += r.m.Status().Released
		}
	}

	// The victim comes back under its id: its units move back to it,
	// each released by its holder before it is taken.
	ms[victim] = start(victim)
	waitFor(t, "units back with the returning member", 30*time.Second, func() bool {
		return settled() && len(w.units(victim)) == len(lost)
	})
	if got := w.units(victim); !slices.Equal(got, lost) {
		t.Errorf("%s came back to %v, had %v", victim, got, lost)
	}
	var released uint64
	for id, r := range ms {
		if id != victim {
			released += r.m.Status().Released
		}
	}
	if released-releasedBefore != uint64(len(lost)) {
		t.Errorf("%d units handed back, want %d", released-releasedBefore, len(lost))
	}
	if _, _, overlap := w.snapshot(); len(overlap) > 0 {
		t.Errorf("work done twice at once: %v", overlap)
	}

	// A clean stop releases at once: no session timeout to wait for.
	stopped := time.Now()
	ms[victim].cancel()
	<-ms[victim].done
	waitFor(t, "units taken over after a clean stop", cfg.SessionTimeout, func() bool {
		n, _, _ := w.snapshot()
		return n == len(units)
	})
	t.Logf("taken over %v after a clean stop", time.Since(stopped).Round(time.Millisecond))
}

// With an auth_file, every node a member creates is the analyzers' own
// (ZooKeeper's digest scheme): a client of the same ensemble without the
// credential, or with a wrong password, can neither read the membership
// nor delete a lock; a member with the wrong password takes no unit.
func TestDigestAuthKeepsOtherClientsOut(t *testing.T) {
	server := chtest.StartZooKeeper(t)
	dir := t.TempDir()
	writeAuth := func(name, cred string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(cred+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := coord.NewDefaultConfig()
	cfg.Servers, cfg.Root = []string{server.Addr()}, "/authtest"
	cfg.SessionTimeout, cfg.Poll = 2*time.Second, 200*time.Millisecond
	units := []string{"u0", "u1", "u2", "u3"}
	w := &work{t: t, on: map[string]string{}, leaders: map[string]bool{}}
	run := func(id, authFile string) *coord.Member {
		c := cfg
		c.MemberID, c.AuthFile = id, authFile
		return runMember(t, c, units, w)
	}
	run("a", writeAuth("good", "fleetwatch:s3cret"))
	waitFor(t, "the authenticated member holds every unit", 20*time.Second, func() bool {
		n, leaders, _ := w.snapshot()
		return n == len(units) && len(leaders) == 1
	})

	client := func(cred string) *zk.Conn { return zkClient(t, server.Addr(), cred) }
	for name, cred := range map[string]string{"no credential": "", "wrong password": "fleetwatch:guess"} {
		c := client(cred)
		if _, _, err := c.Children("/authtest/g/members"); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("%s: listing the members: %v, want %v", name, err, zk.ErrNoAuth)
		}
		if _, _, err := c.Get("/authtest/g/units/u0"); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("%s: reading a lock: %v, want %v", name, err, zk.ErrNoAuth)
		}
		if err := c.Delete("/authtest/g/units/u0", -1); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("%s: deleting a lock: %v, want %v", name, err, zk.ErrNoAuth)
		}
	}
	if data, _, err := client("fleetwatch:s3cret").Get("/authtest/g/units/u0"); err != nil || string(data) != "a" {
		t.Errorf("with the credential: lock holds %q, %v; want a", data, err)
	}

	// A member with the wrong password joins nothing and takes nothing.
	intruder := run("b", writeAuth("bad", "fleetwatch:guess"))
	time.Sleep(5 * cfg.Poll)
	if got := w.units("b"); len(got) != 0 {
		t.Errorf("member with a wrong password works on %v", got)
	}
	if st := intruder.Status(); len(st.Units) != 0 || st.Leader {
		t.Errorf("member with a wrong password: %+v", st)
	}
	if got := w.units("a"); len(got) != len(units) {
		t.Errorf("the authenticated member lost units to an intruder: holds %v", got)
	}
}

// With tls set, a member speaks TLS to the ensemble and verifies its
// certificate against ca_file: through a TLS terminator in front of
// Debian's ZooKeeper it holds a session and its units. A member speaking
// plaintext to that port, or trusting another CA, never gets a session.
func TestTLSToZooKeeper(t *testing.T) {
	certs, err := devcerts.Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := devcerts.Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	server := chtest.StartZooKeeper(t)
	cfg := coord.NewDefaultConfig()
	cfg.Servers, cfg.Root = []string{tlsTerminator(t, certs, server.Addr())}, "/tlstest"
	cfg.SessionTimeout, cfg.Poll = 2*time.Second, 200*time.Millisecond
	units := []string{"u0", "u1"}
	w := &work{t: t, on: map[string]string{}, leaders: map[string]bool{}}
	run := func(id string, tc netsec.ClientTLS) *coord.Member {
		c := cfg
		c.MemberID, c.TLS = id, tc
		return runMember(t, c, units, w)
	}
	good := run("a", netsec.ClientTLS{CAFile: certs.CA})
	waitFor(t, "the TLS member holds every unit", 20*time.Second, func() bool {
		n, leaders, _ := w.snapshot()
		return n == len(units) && len(leaders) == 1 && good.Status().Session
	})
	plain := run("b", netsec.ClientTLS{})
	wrongCA := run("c", netsec.ClientTLS{CAFile: other.CA})
	time.Sleep(cfg.SessionTimeout)
	for name, m := range map[string]*coord.Member{"plaintext": plain, "another CA": wrongCA} {
		if st := m.Status(); st.Session || len(st.Units) != 0 {
			t.Errorf("%s member on the TLS port: %+v, want no session", name, st)
		}
	}
	if st := good.Status(); len(st.Members) != 1 {
		t.Errorf("members seen over TLS: %v, want only a", st.Members)
	}
}

// tlsTerminator serves TLS with certs' server certificate on a loopback
// port and relays every connection to backend in plaintext (what stunnel
// or a ZooKeeper's own secureClientPort does); it returns its address.
func tlsTerminator(t *testing.T, certs devcerts.Files, backend string) string {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return // plaintext or an untrusting client: nothing reaches ZooKeeper
				}
				b, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				defer b.Close()
				go func() { _, _ = io.Copy(b, c); b.Close() }()
				_, _ = io.Copy(c, b)
			}()
		}
	}()
	return ln.Addr().String()
}

// runMember runs a member c.MemberID of group "g" until the test ends.
func runMember(t *testing.T, c coord.Config, units []string, w *work) *coord.Member {
	t.Helper()
	m, err := coord.NewMember(c, "g", units, w.member(c.MemberID), chtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	startMember(t, m)
	return m
}

// startMember runs m until the test ends or the returned stop is called.
func startMember(t *testing.T, m *coord.Member) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx, time.Second) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}
