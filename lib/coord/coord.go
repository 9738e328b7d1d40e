// Package coord lets several processes share a fixed set of work units
// through ZooKeeper (or ClickHouse Keeper, which speaks its protocol): the
// ensemble a replicated ClickHouse already needs. Nothing here is consensus
// of our own; ZooKeeper's sessions and ephemeral nodes are the whole
// mechanism:
//
//   - membership: each member holds an ephemeral node under <group>/members
//     for as long as its session lives;
//   - assignment: rendezvous (highest-random-weight) hashing of every unit
//     over the live members (Owner), so every member computes the same
//     owner from the same membership, and a member joining or leaving moves
//     only the units it gains or had;
//   - exclusion: a member works on a unit only while it holds the unit's
//     ephemeral lock node <group>/units/<unit> (creating a node that exists
//     fails, so two holders cannot be). It releases the locks of units it
//     should no longer own after their work in flight finished, and takes
//     the free locks of units it should own;
//   - leadership: one member at a time holds <group>/leader, an ephemeral
//     lock node of its own, and does the leader's work while it holds it;
//   - records: persistent nodes under <group>/records that any member reads
//     and writes and that outlive their writer (Member.Record), for what
//     the group must do once, whichever member does it.
//
// A member that dies stops renewing its session; ZooKeeper expires the
// session after the session timeout and deletes its nodes in one step, the
// other members see the membership change (a watch) and take its units and,
// if it led, the leadership. A member that loses its connection stops all
// work at once (it cannot know whether its session survives), so its locks
// never outlive its work; its client detects the loss after two thirds of
// the session timeout, before the server expires the session. The time to
// take over a dead member's share is therefore at most the session timeout
// plus one poll (Config.Poll), plus the ensemble's tick by which expiry is
// rounded.
//
// Layer: ground (docs/ARCHITECTURE.md, "Layers"); the analyzer app
// (internal/analyzer) wires it to its engine and alerting.
package coord

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/fleetwatch/fleetwatch/lib/netsec"
)

// Config is where and how a member coordinates.
type Config struct {
	// Servers are the ZooKeeper (or ClickHouse Keeper) client addresses,
	// host:port.
	Servers []string `yaml:"zookeeper"`
	// Root is the path under which groups keep their nodes (default
	// /fleetwatch).
	Root string `yaml:"root"`
	// MemberID names this member; it must be unique in its group and is
	// best stable across restarts (a StatefulSet pod's name), so that a
	// restarted member gets its units back (default: the host name).
	MemberID string `yaml:"member_id"`
	// SessionTimeout is how long after a member's last contact ZooKeeper
	// expires its session and frees its units (default 6s). The ensemble
	// bounds it to 2–20 ticks of its tickTime (ZooKeeper's default tick is
	// 2s: 4s–40s).
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// Poll is how often a member re-reads the membership and tries the
	// locks it wants; membership changes also wake it at once (default 1s).
	Poll time.Duration `yaml:"poll"`
	// AuthFile names a file holding "user:password" for ZooKeeper's digest
	// scheme (no server configuration needed). With it, a member
	// authenticates its session and creates every node it makes readable
	// and writable by that identity only, so no other client of the
	// ensemble (ClickHouse's replicas share it) can read the membership or
	// delete a lock. Without it nodes are open to every client (ZooKeeper's
	// world ACL): use that only on an ensemble nothing else can reach.
	AuthFile string `yaml:"auth_file"`
	// TLS, when any of its fields is set, connects to the servers' secure
	// client port (ZooKeeper 3.5+: secureClientPort, served by Netty):
	// ca_file is the CA that signs the servers' certificates, cert_file
	// and key_file a client certificate if the ensemble wants one
	// (ssl.clientAuth), server_name the name their certificates carry
	// when it is not the address's host.
	TLS netsec.ClientTLS `yaml:"tls"`
}

// NewDefaultConfig returns the defaults, without servers.
func NewDefaultConfig() Config {
	return Config{Root: "/fleetwatch", SessionTimeout: 6 * time.Second, Poll: time.Second}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if len(c.Servers) == 0 {
		errs = append(errs, errors.New("zookeeper: no servers"))
	}
	for _, s := range c.Servers {
		if s == "" || strings.ContainsAny(s, " /") {
			errs = append(errs, fmt.Errorf("zookeeper: %q is not host:port", s))
		}
	}
	if !validPath(c.Root) {
		errs = append(errs, fmt.Errorf("root: %q is not an absolute ZooKeeper path", c.Root))
	}
	if strings.ContainsAny(c.MemberID, "/ ") {
		errs = append(errs, fmt.Errorf("member_id: %q must not contain '/' or spaces", c.MemberID))
	}
	if c.SessionTimeout < time.Second {
		errs = append(errs, fmt.Errorf("session_timeout: %v, want at least 1s", c.SessionTimeout))
	}
	if c.Poll <= 0 || c.Poll > c.SessionTimeout {
		errs = append(errs, fmt.Errorf("poll: %v, want more than 0 and at most the session timeout %v", c.Poll, c.SessionTimeout))
	}
	if c.AuthFile != "" {
		if _, _, err := readDigest(c.AuthFile); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// readDigest reads an auth_file: one line, "user:password".
func readDigest(file string) (user, password string, err error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", "", fmt.Errorf("auth_file: %w", err)
	}
	user, password, ok := strings.Cut(strings.TrimRight(string(b), "\r\n"), ":")
	if !ok || user == "" || password == "" || strings.ContainsAny(user, "\n") {
		return "", "", fmt.Errorf("auth_file %s: want one line \"user:password\"", file)
	}
	return user, password, nil
}

// TakeoverBound is the longest a dead member's units stay unowned: the
// session timeout, the rounding of its expiry to the ensemble's tick (at
// most half the timeout, since ZooKeeper's shortest session is two ticks;
// 0.5 s on a 500 ms tick) and one poll (membership watches usually wake the
// survivors at once).
func (c Config) TakeoverBound() time.Duration { return c.SessionTimeout + c.SessionTimeout/2 + c.Poll }

func validPath(p string) bool {
	return strings.HasPrefix(p, "/") && p == path.Clean(p) && p != "/" && !strings.Contains(p, " ")
}

// Owner returns the member that should own unit: the one with the highest
// rendezvous weight hash(member, unit); "" when there are no members.
func Owner(unit string, members []string) string {
	best, owner := uint64(0), ""
	for _, m := range members {
		if w := weight(m, unit); owner == "" || w > best || (w == best && m < owner) {
			best, owner = w, m
		}
	}
	return owner
}

// weight is FNV-1a of member and unit, mixed by SplitMix64's finalizer so
// that names differing in a last character still spread.
func weight(member, unit string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(member))
	h.Write([]byte{0})
	h.Write([]byte(unit))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Handler does a member's work.
type Handler interface {
	// Start begins work on unit; the member holds its lock. An error
	// releases the lock (tried again at the next poll).
	Start(unit string) error
	// Stop ends work on unit and returns once none is in flight. Work in
	// flight may finish while ctx lasts; once ctx ends it must be
	// abandoned (the lock is lost, or about to be).
	Stop(ctx context.Context, unit string)
	// Lead does the leader's work until ctx ends, then returns.
	Lead(ctx context.Context)
}

// Status is a member's view now.
type Status struct {
	ID string
	// Session reports whether the member holds a live ZooKeeper session.
	Session bool
	// Members are the live members it last read, sorted.
	Members []string
	// Units are the units it works on, sorted.
	Units []string
	// Leader reports whether it does the leader's work.
	Leader bool
	// Taken counts units it started; Released those it handed over to
	// their new owner; Lost those it dropped because its connection or
	// session was lost; LeaderTaken the times it became the leader.
	Taken, Released, Lost, LeaderTaken uint64
}

// Member is one process in a group sharing units.
type Member struct {
	cfg   Config
	group string // <root>/<group>
	units []string
	h     Handler
	log   *slog.Logger

	mu     sync.Mutex
	status Status

	conn *zk.Conn
	wake chan struct{}
	// live is canceled when the connection leaves StateHasSession (the
	// client's event callback): the leader's work and graceful stops end
	// at once, not at the next poll. Guarded by mu.
	live    context.Context
	cancel  context.CancelFunc
	session int64 // the session the held locks belong to
	held    map[string]bool
	lead    context.CancelFunc
	leadEnd chan struct{}
	warned  map[string]bool
	// auth is the digest credential ("user:password"), nil without one;
	// acl is what every node the member creates carries.
	auth []byte
	acl  []zk.ACL
}

// NewMember returns a member of group (a path element under cfg.Root)
// sharing units; Run connects and works.
func NewMember(cfg Config, group string, units []string, h Handler, log *slog.Logger) (*Member, error) {
	if cfg.MemberID == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("coord: member id: %w", err)
		}
		cfg.MemberID = host
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("coord: %w", err)
	}
	if group == "" || strings.ContainsAny(group, " ") || !validPath(path.Join(cfg.Root, group)) {
		return nil, fmt.Errorf("coord: bad group %q", group)
	}
	for _, u := range units {
		if u == "" || strings.Contains(u, "/") {
			return nil, fmt.Errorf("coord: bad unit name %q", u)
		}
	}
	if log == nil {
		log = slog.Default()
	}
	m := &Member{cfg: cfg, group: path.Join(cfg.Root, group), units: slices.Sorted(slices.Values(units)), h: h, log: log,
		status: Status{ID: cfg.MemberID}, held: map[string]bool{}, warned: map[string]bool{}, wake: make(chan struct{}, 1),
		acl: zk.WorldACL(zk.PermAll)}
	if cfg.AuthFile != "" {
		user, password, err := readDigest(cfg.AuthFile)
		if err != nil {
			return nil, fmt.Errorf("coord: %w", err)
		}
		m.auth = []byte(user + ":" + password)
		m.acl = zk.DigestACL(zk.PermAll, user, password)
	}
	return m, nil
}

// Status returns the member's view now.
func (m *Member) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.status
	s.Members, s.Units = slices.Clone(s.Members), slices.Clone(s.Units)
	return s
}

// Run connects to ZooKeeper and takes part until ctx ends; then it stops
// the work (grace is how long work in flight may take to finish), which
// releases everything it held at once, and closes the session.
func (m *Member) Run(ctx context.Context, grace time.Duration) error {
	opts := options(zk.WithLogger(zkLogger{m.log}), zk.WithLogInfo(false),
		zk.WithEventCallback(func(ev zk.Event) { m.onEvent(ctx, ev) }))
	if m.cfg.TLS.IsSet() {
		tc, err := m.cfg.TLS.Build()
		if err != nil {
			return fmt.Errorf("coord: zookeeper %w", err)
		}
		opts = append(opts, zk.WithDialer(func(network, address string, timeout time.Duration) (net.Conn, error) {
			return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, network, address, tc)
		}))
	}
	conn, _, err := zk.Connect(m.cfg.Servers, m.cfg.SessionTimeout, opts...)
	if err != nil {
		return fmt.Errorf("coord: connect to %v: %w", m.cfg.Servers, err)
	}
	m.mu.Lock()
	m.conn = conn
	m.mu.Unlock()
	if m.auth != nil {
		// The request waits for a connection; the client sends the
		// credential again on every reconnect, before anything else.
		// A connection lost before the request is answered fails it: try
		// again until it is answered or ctx ends.
		if err := m.authenticate(ctx, conn); err != nil {
			conn.Close()
			return nil // ctx ended
		}
	}
	m.log.Info("coordination: joining", "member", m.cfg.MemberID, "group", m.group, "zookeeper", m.cfg.Servers,
		"session_timeout", m.cfg.SessionTimeout, "units", len(m.units), "authenticated", m.auth != nil, "tls", m.cfg.TLS.IsSet())
	tick := time.NewTicker(m.cfg.Poll)
	defer tick.Stop()
	var watch <-chan zk.Event
	for ctx.Err() == nil {
		watch = m.step(watch)
		select {
		case <-ctx.Done():
		case <-tick.C:
		case <-watch:
			watch = nil
		case <-m.wake:
		}
	}
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	m.stopAll(gctx, "shutdown")
	conn.Close() // ZooKeeper deletes the member's nodes with its session
	m.setSession(false)
	m.log.Info("coordination: left", "member", m.cfg.MemberID)
	return nil
}

// options collects the client's options (their type is unexported).
func options[O any](o ...O) []O { return o }

// authenticate sends the digest credential until ZooKeeper answers it or
// ctx ends (ctx's error then).
func (m *Member) authenticate(ctx context.Context, conn *zk.Conn) error {
	for {
		authed := make(chan error, 1)
		go func() { authed <- conn.AddAuth("digest", m.auth) }()
		select {
		case err := <-authed:
			if err == nil {
				return nil
			}
			m.log.Warn("coordination: authentication not answered; trying again", "zookeeper", m.cfg.Servers, "err", err)
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case <-time.After(m.cfg.Poll):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// onEvent keeps live in step with the connection's state and wakes Run.
func (m *Member) onEvent(ctx context.Context, ev zk.Event) {
	if ev.Type == zk.EventSession {
		m.mu.Lock()
		switch {
		case ev.State == zk.StateHasSession && m.live == nil:
			m.live, m.cancel = context.WithCancel(ctx)
		case ev.State != zk.StateHasSession && m.live != nil:
			m.cancel()
			m.live, m.cancel = nil, nil
		}
		m.mu.Unlock()
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// liveCtx returns the context of the session now; nil without one.
func (m *Member) liveCtx() context.Context {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.live == nil || m.live.Err() != nil || m.conn.State() != zk.StateHasSession {
		return nil
	}
	return m.live
}

// step brings the member in line with ZooKeeper once; it returns the
// membership watch to wait on.
func (m *Member) step(watch <-chan zk.Event) <-chan zk.Event {
	c := m.conn
	live := m.liveCtx()
	if live == nil {
		if len(m.held) > 0 || m.lead != nil {
			m.log.Warn("coordination: lost the ZooKeeper connection; stopping all shared work until it is back",
				"member", m.cfg.MemberID, "units", len(m.held), "leader", m.lead != nil)
			m.stopAll(canceled, "lost")
		}
		m.setSession(false)
		return watch
	}
	sid := c.SessionID()
	if sid != m.session {
		// A new session: whatever the old one held is gone.
		if len(m.held) > 0 || m.lead != nil {
			m.stopAll(canceled, "lost")
		}
		m.session = sid
		for _, p := range []string{m.cfg.Root, m.group, m.group + "/members", m.group + "/units"} {
			if err := m.ensure(p); err != nil {
				m.log.Warn("coordination: cannot create the group's nodes", "path", p, "err", err)
				m.session = 0
				return watch
			}
		}
	}
	m.setSession(true)
	if ok, err := m.lock(m.group+"/members/"+m.cfg.MemberID, sid); err != nil || !ok {
		if err == nil && !m.warned["member"] {
			m.warned["member"] = true
			m.log.Warn("coordination: another live session uses this member id; waiting for it to end (set a unique member_id)",
				"member", m.cfg.MemberID)
		}
		return watch
	}
	members, _, w, err := c.ChildrenW(m.group + "/members")
	if err != nil {
		m.log.Warn("coordination: read members", "err", err)
		return watch
	}
	slices.Sort(members)
	m.mu.Lock()
	m.status.Members = members
	m.mu.Unlock()
	m.stepLeader(live, sid)
	m.stepUnits(live, sid, members)
	return w
}

// canceled is an ended context: work stopped with it is abandoned at once.
var canceled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// stepLeader takes the leader lock when it is free.
func (m *Member) stepLeader(ctx context.Context, sid int64) {
	if m.lead != nil {
		select {
		case <-m.leadEnd:
			// The leader's work ended with a connection that came back
			// (same session) before a step saw it gone: lead again if the
			// lock is still this session's.
			m.lead, m.leadEnd = nil, nil
		default:
			return
		}
	}
	ok, err := m.lock(m.group+"/leader", sid)
	if err != nil || !ok {
		return
	}
	lctx, cancel := context.WithCancel(ctx)
	m.lead, m.leadEnd = cancel, make(chan struct{})
	m.mu.Lock()
	m.status.Leader = true
	m.status.LeaderTaken++
	m.mu.Unlock()
	m.log.Info("coordination: leading", "member", m.cfg.MemberID)
	go func(done chan struct{}) {
		defer close(done)
		m.h.Lead(lctx)
		m.mu.Lock()
		m.status.Leader = false
		m.mu.Unlock()
	}(m.leadEnd)
}

// stepUnits hands over the units another member should own and takes the
// free ones this member should.
func (m *Member) stepUnits(ctx context.Context, sid int64, members []string) {
	for _, u := range m.units {
		want := Owner(u, members) == m.cfg.MemberID
		switch {
		case m.held[u] && !want:
			m.h.Stop(ctx, u)
			delete(m.held, u)
			if err := m.unlock(m.group+"/units/"+u, sid); err != nil {
				m.log.Warn("coordination: release unit", "unit", u, "err", err)
			}
			m.count(func(s *Status) { s.Released++ })
			m.log.Info("coordination: handed over", "unit", u, "to", Owner(u, members))
		case !m.held[u] && want:
			ok, err := m.lock(m.group+"/units/"+u, sid)
			if err != nil || !ok {
				continue // still held by its previous owner, who releases it after its work in flight
			}
			if err := m.h.Start(u); err != nil {
				m.log.Warn("coordination: start unit", "unit", u, "err", err)
				_ = m.unlock(m.group+"/units/"+u, sid)
				continue
			}
			m.held[u] = true
			m.count(func(s *Status) { s.Taken++ })
			m.log.Info("coordination: took unit", "unit", u)
		}
	}
	m.mu.Lock()
	m.status.Units = slices.Sorted(func(yield func(string) bool) {
		for u := range m.held {
			if !yield(u) {
				return
			}
		}
	})
	m.mu.Unlock()
}

// stopAll stops every unit and the leader's work; reason is "lost" or
// "shutdown".
func (m *Member) stopAll(ctx context.Context, reason string) {
	if m.lead != nil {
		m.lead()
		<-m.leadEnd
		m.lead, m.leadEnd = nil, nil
		m.log.Info("coordination: stopped leading", "member", m.cfg.MemberID, "reason", reason)
	}
	for _, u := range slices.Sorted(func(yield func(string) bool) {
		for u := range m.held {
			if !yield(u) {
				return
			}
		}
	}) {
		m.h.Stop(ctx, u)
		delete(m.held, u)
		if reason == "lost" {
			m.count(func(s *Status) { s.Lost++ })
		}
	}
	m.mu.Lock()
	m.status.Units, m.status.Leader = nil, false
	m.mu.Unlock()
}

func (m *Member) count(f func(*Status)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(&m.status)
}

func (m *Member) setSession(ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.status.Session = ok
	if !ok {
		m.status.Members = nil
	}
}

// ensure creates a persistent node if it is missing.
func (m *Member) ensure(p string) error {
	_, err := m.conn.Create(p, nil, 0, m.acl)
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return err
	}
	return nil
}

// lock creates the ephemeral node p for session sid; it reports whether sid
// holds it (created now, or earlier by the same session).
func (m *Member) lock(p string, sid int64) (bool, error) {
	_, err := m.conn.Create(p, []byte(m.cfg.MemberID), zk.FlagEphemeral, m.acl)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, zk.ErrNodeExists) {
		return false, err
	}
	_, st, err := m.conn.Get(p)
	if errors.Is(err, zk.ErrNoNode) {
		return false, nil // freed in between; the next poll takes it
	}
	if err != nil {
		return false, err
	}
	return st.EphemeralOwner == sid, nil
}

// unlock deletes p if session sid holds it.
func (m *Member) unlock(p string, sid int64) error {
	_, st, err := m.conn.Get(p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.EphemeralOwner != sid {
		return nil
	}
	if err := m.conn.Delete(p, st.Version); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	return nil
}

// zkLogger sends the client's messages to slog at debug level.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, a ...any) {
	l.log.Debug("zookeeper: " + fmt.Sprintf(format, a...))
}
