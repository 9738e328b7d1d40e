package alerting

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting/correlate"
	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/alerting/route"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/fleet/catalog"
)

// Store keeps incident state (alerting/store implements it on ClickHouse).
type Store interface {
	// Save writes the incidents' current states.
	Save(ctx context.Context, incs []incident.Incident) error
	// Load returns the latest state of every incident open now or
	// resolved since since.
	Load(ctx context.Context, since time.Time) ([]incident.Incident, error)
	// Acked returns, of keys, those whose latest stored state is
	// acknowledged, with who acknowledged them.
	Acked(ctx context.Context, keys []string) (map[string]string, error)
	// Transitions returns, for each of keys that has one, the highest
	// incident transition the notification outbox holds a notification of.
	Transitions(ctx context.Context, keys []string) (map[string]int, error)
}

// Notifier delivers notifications through an outbox (route.Router
// implements it).
type Notifier interface {
	// Notify records ns in the outbox, then delivers what is due.
	Notify(ctx context.Context, ns []route.Notification) error
	// Enqueue only records ns; a delivery loop sends them.
	Enqueue(ctx context.Context, ns []route.Notification) error
	// Refresh re-sends firing incidents to Alertmanager.
	Refresh(ctx context.Context, firing []incident.Incident) error
}

// Deployments lists recent deployments of models (alerting/store reads
// model_deployments).
type Deployments interface {
	Recent(ctx context.Context, models []string, since, until time.Time) ([]incident.Suspect, error)
}

// Manager is the alerting stage: an fleet.Sink that keeps the active
// detections of every detector, correlates them into candidates on each
// evaluation, moves incidents through their lifecycle, persists them and
// notifies. Time is the evaluated window's end, so replays and tests are
// deterministic.
type Manager struct {
	cfg     LifecycleConfig
	corr    *correlate.Correlator
	cat     *catalog.Catalog
	store   Store
	notify  Notifier
	deploys Deployments
	silence []Silence
	log     *slog.Logger

	mu sync.Mutex
	// send serialises deliveries. Consume takes it before it releases mu,
	// so notifications leave in the order their windows were consumed,
	// while receivers that are slow or down hold up neither the other
	// detectors' windows nor readers of the incidents.
	send sync.Mutex
	// active holds each detector's detections from its last window.
	active    map[string]map[string]*fleet.Detection
	firstSeen map[string]time.Time
	incidents map[string]*incident.Incident
	// source maps each active detection to the engine detector whose
	// windows count for it (its Detector field may name a rule instead).
	source   map[*fleet.Detection]string
	version  uint64
	lastPoll time.Time
	// counted is, per incident and detector (a share counts as its
	// detector), the window end it last counted toward opening or
	// resolving: the shares of one detector evaluating the same window
	// count as one window, as the whole detector's evaluation would.
	counted map[string]map[string]time.Time
	// unsaved are incidents whose last save failed and held the
	// notifications of their transitions: both wait for the next save, so
	// a transition is never notified before it is stored (a restart finds
	// every notified transition) nor lost because a save failed.
	unsaved map[string]bool
	held    []route.Notification
}

// Deps are the manager's collaborators; any may be nil (memory only, no
// notifications, no suspects).
type Deps struct {
	Catalog     *catalog.Catalog
	Inventory   *correlate.Inventory
	Store       Store
	Notifier    Notifier
	Deployments Deployments
	Logger      *slog.Logger
}

// NewManager validates cfg and returns a manager. Call Restore before the
// first Consume when a Store is set.
func NewManager(cfg Config, deps Deps) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	corr, err := correlate.New(cfg.Correlation, deps.Inventory, deps.Catalog)
	if err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg.Lifecycle, corr: corr, cat: deps.Catalog, store: deps.Store, notify: deps.Notifier,
		deploys: deps.Deployments, silence: cfg.Silences, log: deps.Logger,
		active: map[string]map[string]*fleet.Detection{}, firstSeen: map[string]time.Time{}, incidents: map[string]*incident.Incident{},
		unsaved: map[string]bool{}, counted: map[string]map[string]time.Time{}}
	if m.log == nil {
		m.log = slog.Default()
	}
	return m, nil
}

// Restore reloads incidents open now or resolved within the restore
// lookback before now, so a restart neither loses nor re-pages them. A
// restored incident whose last transition is stored but whose notification
// never reached the outbox (the analyzer stopped in between) has it
// recorded now; the notifier's delivery loop sends it.
func (m *Manager) Restore(ctx context.Context, now time.Time) error {
	if m.store == nil {
		return nil
	}
	incs, err := m.store.Load(ctx, now.Add(-m.cfg.RestoreLookback))
	if err != nil {
		return fmt.Errorf("restore incidents: %w", err)
	}
	keys := make([]string, len(incs))
	for i := range incs {
		keys[i] = incs[i].Key
	}
	recorded, err := m.store.Transitions(ctx, keys)
	if err != nil {
		return fmt.Errorf("restore incidents: %w", err)
	}
	var missed []route.Notification
	m.mu.Lock()
	for i := range incs {
		inc := incs[i]
		m.incidents[inc.Key] = &inc
		m.version = max(m.version, inc.Version)
		if inc.Transitions > recorded[inc.Key] {
			missed = append(missed, route.Notification{Action: lastAction(inc.Status), Incident: inc.Clone()})
		}
	}
	m.mu.Unlock()
	m.log.Info("alerting restored incidents", "count", len(incs), "unrecorded_notifications", len(missed))
	if len(missed) > 0 && m.notify != nil {
		if err := m.notify.Enqueue(ctx, missed); err != nil {
			return fmt.Errorf("restore incidents: %w", err)
		}
	}
	return nil
}

// Prime takes over the active detections another alerting owner had: evs
// are each detector's (or share's) last evaluation it consumed. They only
// fill the active set — no incident moves and nothing is notified — so
// that the first windows after a takeover are correlated with the whole
// fleet's detections, not with the few evaluated since.
func (m *Manager) Prime(_ context.Context, evs []fleet.Evaluation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range evs {
		m.updateActive(ev)
	}
	return nil
}

// counts reports whether detector's window ending at now counts toward
// inc's opening or resolving: detector is one of the incident's, and no
// other share of its detector counted that window already.
func (m *Manager) counts(inc *incident.Incident, detector string, now time.Time) bool {
	if !slices.Contains(inc.Detectors, detector) {
		return false
	}
	base := fleet.BaseName(detector)
	c := m.counted[inc.Key]
	if c == nil {
		c = map[string]time.Time{}
		m.counted[inc.Key] = c
	}
	if t, ok := c[base]; ok && t.Equal(now) && base != detector {
		return false
	}
	c[base] = now
	return true
}

// lastAction is the notification of the transition that left an incident
// in status s.
func lastAction(s incident.Status) incident.Action {
	switch s {
	case incident.StatusAcknowledged:
		return incident.ActionAcknowledge
	case incident.StatusResolved:
		return incident.ActionResolve
	}
	return incident.ActionTrigger
}

// Incidents returns copies of the incidents known now (pending included),
// sorted by key.
func (m *Manager) Incidents() []incident.Incident {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]incident.Incident, 0, len(m.incidents))
	for _, k := range slices.Sorted(maps.Keys(m.incidents)) {
		out = append(out, m.incidents[k].Clone())
	}
	return out
}

// nextVersion returns a state version above every one seen and above the
// wall clock in nanoseconds, so fleetctl's acknowledgements order with ours.
func (m *Manager) nextVersion() uint64 {
	m.version = max(m.version+1, uint64(time.Now().UnixNano()))
	return m.version
}

// Consume implements fleet.Sink: it advances the incidents on ev, saves
// them, then records the notifications of their transitions in the
// notifier's outbox (which delivers them) and refreshes Alertmanager.
func (m *Manager) Consume(ctx context.Context, ev fleet.Evaluation) error {
	m.mu.Lock()
	notes, firing, err := m.advanceAll(ctx, ev)
	if err != nil || m.notify == nil {
		m.mu.Unlock()
		return err
	}
	m.send.Lock()
	m.mu.Unlock()
	defer m.send.Unlock()
	if len(notes) > 0 {
		if err := m.notify.Notify(ctx, notes); err != nil {
			m.log.Warn("alerting: notifications not delivered yet (kept in notification_outbox, retried)", "err", err)
		}
	}
	if err := m.notify.Refresh(ctx, firing); err != nil {
		m.log.Warn("alerting: alertmanager refresh failed", "err", err)
	}
	return nil
}

// advanceAll moves every incident on ev and saves the changes; it returns
// the notifications to send and, when there is a notifier, the incidents
// firing now. m.mu is held.
func (m *Manager) advanceAll(ctx context.Context, ev fleet.Evaluation) ([]route.Notification, []incident.Incident, error) {
	now := ev.Window.End
	m.updateActive(ev)
	cands := m.corr.Correlate(m.activeList())
	var changed []*incident.Incident
	var notes []route.Notification
	seen := map[string]*correlate.Candidate{}
	for i := range cands {
		cd := &cands[i]
		seen[cd.Key] = cd
		inc, ch, note := m.advance(ctx, cd, ev.Detector, now)
		if ch {
			changed = append(changed, inc)
		}
		if note != "" {
			notes = append(notes, transition(inc, note))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m.incidents)) {
		inc := m.incidents[k]
		if seen[k] != nil {
			continue
		}
		ch, note := m.clear(inc, ev.Detector, now, cands)
		if ch {
			changed = append(changed, inc)
		}
		if note != "" {
			notes = append(notes, transition(inc, note))
		}
	}
	changed = append(changed, m.linkCauses()...)
	acks, err := m.pollAcks(ctx, now)
	if err != nil {
		m.log.Warn("alerting: reading acknowledgements failed", "err", err)
	}
	for _, inc := range acks {
		changed = append(changed, inc)
		notes = append(notes, transition(inc, incident.ActionAcknowledge))
	}
	for _, k := range slices.Sorted(maps.Keys(m.unsaved)) {
		if inc := m.incidents[k]; inc != nil {
			changed = append(changed, inc)
		}
	}
	if err := m.save(ctx, changed, now); err != nil {
		for _, inc := range changed {
			m.unsaved[inc.Key] = true
		}
		m.held = append(m.held, notes...)
		return nil, nil, err
	}
	clear(m.unsaved)
	notes, m.held = append(m.held, notes...), nil
	for i := range notes {
		notes[i].Incident.Silenced = m.silenced(&notes[i].Incident, now)
		if inc := m.incidents[notes[i].Incident.Key]; inc != nil {
			notes[i].Incident.Version = inc.Version
		}
	}
	var firing []incident.Incident
	if m.notify != nil {
		firing = m.firing(now)
	}
	for _, k := range slices.Sorted(maps.Keys(m.incidents)) {
		if inc := m.incidents[k]; inc.Status == incident.StatusResolved && now.Sub(inc.ResolvedAt) > m.cfg.FlapWindow {
			delete(m.incidents, k)
		}
	}
	for k := range m.counted {
		if m.incidents[k] == nil {
			delete(m.counted, k)
		}
	}
	return notes, firing, nil
}

// transition counts a notifying transition of inc and returns its
// notification, which carries the transition's number.
func transition(inc *incident.Incident, a incident.Action) route.Notification {
	inc.Transitions++
	return route.Notification{Action: a, Incident: inc.Clone()}
}

// updateActive replaces ev.Detector's active detections with ev's.
func (m *Manager) updateActive(ev fleet.Evaluation) {
	minRank := incident.SeverityRank(m.cfg.MinSeverity)
	cur := map[string]*fleet.Detection{}
	for i := range ev.Detections {
		d := ev.Detections[i] // a copy: the slice is the engine's
		if incident.SeverityRank(d.Severity) < minRank {
			continue
		}
		k := ev.Detector + "\x00" + d.Key
		if _, ok := m.firstSeen[k]; !ok {
			m.firstSeen[k] = d.Time
		}
		cur[d.Key] = &d
	}
	for k := range m.active[ev.Detector] {
		if cur[k] == nil {
			delete(m.firstSeen, ev.Detector+"\x00"+k)
		}
	}
	m.active[ev.Detector] = cur
}

// activeList flattens the active detections in a fixed order.
func (m *Manager) activeList() []*fleet.Detection {
	var out []*fleet.Detection
	m.source = map[*fleet.Detection]string{}
	for _, det := range slices.Sorted(maps.Keys(m.active)) {
		for _, k := range slices.Sorted(maps.Keys(m.active[det])) {
			d := m.active[det][k]
			m.source[d] = det
			out = append(out, d)
		}
	}
	return out
}

// advance moves the incident of a present candidate; it returns the
// incident, whether its stored state changed and the action to notify.
func (m *Manager) advance(ctx context.Context, cd *correlate.Candidate, detector string, now time.Time) (*incident.Incident, bool, incident.Action) {
	inc := m.incidents[cd.Key]
	if inc == nil {
		inc = &incident.Incident{Key: cd.Key, Status: incident.StatusPending, FirstSeen: now}
		m.incidents[cd.Key] = inc
	}
	if inc.Status == incident.StatusResolved {
		// Back within the flap window: same key, counted as a flap.
		inc.Status, inc.Seen, inc.Flaps, inc.Resolved, inc.Cause = incident.StatusPending, 0, inc.Flaps+1, "", ""
	}
	before := len(inc.Evidence)
	sevBefore := inc.Severity
	m.refresh(inc, cd, now)
	pageable := incident.SeverityRank(inc.Severity) >= incident.SeverityRank(m.cfg.OpenSeverity)
	if m.counts(inc, detector, now) {
		// Seen counts consecutive windows at open severity (Prometheus's
		// "for"): a single out-of-control point never pages.
		if pageable {
			inc.Seen++
		} else {
			inc.Seen = 0
		}
	}
	if inc.Status.Active() && inc.Clear >= m.resolveAfter(inc) {
		inc.Flaps++ // back while held open: a flap, without a page
	}
	inc.Clear = 0
	if inc.Status == incident.StatusPending && pageable && (inc.Seen >= m.cfg.OpenAfter || m.definitive(cd)) {
		inc.Status, inc.OpenedAt = incident.StatusOpen, now
		inc.AckedAt, inc.AckedBy, inc.ResolvedAt = time.Time{}, "", time.Time{}
		inc.PageLabels = maps.Clone(inc.Labels)
		m.attachSuspects(ctx, inc, now)
		return inc, true, incident.ActionTrigger
	}
	changed := inc.Status.Active() && (len(inc.Evidence) != before || inc.Severity != sevBefore)
	return inc, changed, ""
}

// definitive reports whether cd holds a critical detection of a class that
// reports events rather than statistics (LifecycleConfig.OpenAtOnce).
func (m *Manager) definitive(cd *correlate.Candidate) bool {
	for _, d := range cd.Evidence {
		if d.Severity == "critical" && slices.Contains(m.cfg.OpenAtOnce, d.Class) {
			return true
		}
	}
	return false
}

// clear counts a window without the incident's candidate and resolves it
// after ResolveAfter (doubled per flap) such windows, or at once when a
// broader incident now explains all its evidence.
func (m *Manager) clear(inc *incident.Incident, detector string, now time.Time, cands []correlate.Candidate) (bool, incident.Action) {
	if inc.Status == incident.StatusResolved {
		return false, ""
	}
	if parent := coveredBy(inc, cands); parent != "" {
		if inc.Status == incident.StatusPending {
			delete(m.incidents, inc.Key)
			return false, ""
		}
		m.resolve(inc, now, "merged into "+parent)
		inc.Cause = parent
		return true, incident.ActionResolve
	}
	if !m.counts(inc, detector, now) {
		return false, ""
	}
	inc.Clear++
	if inc.Clear < m.resolveAfter(inc) {
		return false, ""
	}
	if inc.Status == incident.StatusPending {
		delete(m.incidents, inc.Key)
		return false, ""
	}
	if now.Sub(inc.LastSeen) < m.cfg.KeepFiringFor {
		return false, "" // held: it may come back (LifecycleConfig.KeepFiringFor)
	}
	m.resolve(inc, now, fmt.Sprintf("clear for %d windows", inc.Clear))
	return true, incident.ActionResolve
}

// resolveAfter is how many clear windows inc needs: ResolveAfter,
// doubled per flap, up to MaxResolveAfter.
func (m *Manager) resolveAfter(inc *incident.Incident) int {
	return min(m.cfg.MaxResolveAfter, m.cfg.ResolveAfter<<min(inc.Flaps, 16))
}

func (m *Manager) resolve(inc *incident.Incident, now time.Time, reason string) {
	inc.Status, inc.ResolvedAt, inc.Resolved = incident.StatusResolved, now, reason
}

// coveredBy returns the key of a broader candidate of the same family
// whose evidence includes all of inc's current evidence.
func coveredBy(inc *incident.Incident, cands []correlate.Candidate) string {
	if len(inc.Evidence) == 0 {
		return ""
	}
	for i := range cands {
		cd := &cands[i]
		if cd.Family != inc.Family || !broader(cd, inc) {
			continue
		}
		keys := map[string]bool{}
		for _, d := range cd.Evidence {
			keys[d.Key] = true
		}
		all := true
		for _, e := range inc.Evidence {
			if !keys[e.Key] {
				all = false
				break
			}
		}
		if all {
			return cd.Key
		}
	}
	return ""
}

// broader reports whether cd sits above inc: a higher level or, for the
// telemetry pipeline (one level, scoped by topology), a scope that contains
// inc's.
func broader(cd *correlate.Candidate, inc *incident.Incident) bool {
	if cd.Level == incident.LevelPipeline && inc.Level == incident.LevelPipeline {
		return cd.Scope != inc.Scope && (cd.Scope == "all" || strings.HasPrefix(inc.Scope, cd.Scope+"/"))
	}
	return cd.Level.Rank() > inc.Level.Rank()
}

// refresh copies a candidate's view into the incident.
func (m *Manager) refresh(inc *incident.Incident, cd *correlate.Candidate, now time.Time) {
	old := map[string]incident.Evidence{}
	for _, e := range inc.Evidence {
		old[e.Key] = e
	}
	inc.Level, inc.Scope, inc.Family, inc.Topology, inc.Models = cd.Level, cd.Scope, cd.Family, cd.Topology, cd.Models
	inc.Team, inc.Oncall, inc.Domain, inc.Runbook = cd.Team, cd.Oncall, cd.Domain, cd.Runbook
	inc.LastSeen = now
	inc.Evidence = inc.Evidence[:0]
	inc.Detectors = inc.Detectors[:0]
	classes := map[string]int{}
	entities := map[string]int{}
	maxSev := 0
	for _, d := range cd.Evidence {
		e := incident.FromDetection(d)
		if o, ok := old[e.Key]; ok {
			e.FirstSeen = o.FirstSeen
		} else if fs, ok := m.firstSeen[m.source[d]+"\x00"+d.Key]; ok {
			e.FirstSeen = fs
		}
		inc.Evidence = append(inc.Evidence, e)
		if src := m.source[d]; !slices.Contains(inc.Detectors, src) {
			inc.Detectors = append(inc.Detectors, src)
		}
		classes[d.Class]++
		entities[d.EntityType+"/"+d.Entity+"/"+d.GPUUUID]++
		maxSev = max(maxSev, incident.SeverityRank(d.Severity))
	}
	slices.Sort(inc.Detectors)
	inc.Class = ""
	for _, c := range slices.Sorted(maps.Keys(classes)) {
		if inc.Class == "" || classes[c] > classes[inc.Class] {
			inc.Class = c
		}
	}
	inc.Severity = severity(cd.Level, len(entities), maxSev)
	inc.Title = title(inc, len(entities))
	inc.Labels = labels(inc)
}

// severity grows with the level (a rack is worse than a GPU) and breadth
// (four or more entities add one step), and is never below the strongest
// detection's.
func severity(level incident.Level, entities, maxDetection int) string {
	score := level.Rank()
	if entities >= 4 {
		score++
	}
	return incident.SeverityName(max(maxDetection, min(score, 3)))
}

func title(inc *incident.Incident, entities int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s %s", inc.Family, inc.Level, inc.Scope)
	switch {
	case len(inc.Models) > 1:
		fmt.Fprintf(&b, " — %d models (%s)", len(inc.Models), strings.Join(firstN(inc.Models, 5), ", "))
	case entities > 1:
		fmt.Fprintf(&b, " — %d detections on %d entities", len(inc.Evidence), entities)
		if n := nodes(inc.Evidence); n > 1 {
			fmt.Fprintf(&b, " of %d nodes", n)
		}
	case len(inc.Evidence) == 1:
		b.WriteString(" — " + inc.Evidence[0].Summary)
	}
	return b.String()
}

// nodes counts the distinct nodes of the evidence.
func nodes(ev []incident.Evidence) int {
	seen := map[string]bool{}
	for i := range ev {
		if ev[i].Node != "" {
			seen[ev[i].Datacenter+"/"+ev[i].Row+"/"+ev[i].Rack+"/"+ev[i].Node] = true
		}
	}
	return len(seen)
}

func firstN(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(slices.Clip(s[:n]), "…")
}

func labels(inc *incident.Incident) map[string]string {
	return map[string]string{
		"key": inc.Key, "class": inc.Class, "family": inc.Family, "level": string(inc.Level), "scope": inc.Scope,
		"severity": inc.Severity, "team": inc.Team, "oncall": inc.Oncall, "domain": inc.Domain,
		"datacenter": inc.Topology.Datacenter, "row": inc.Topology.Row, "rack": inc.Topology.Rack, "node": inc.Topology.Node,
	}
}

// attachSuspects adds recent deployments of the incident's models (and of
// an upstream that is itself a model).
func (m *Manager) attachSuspects(ctx context.Context, inc *incident.Incident, now time.Time) {
	if m.deploys == nil || len(inc.Models) == 0 {
		return
	}
	models := slices.Clone(inc.Models)
	if inc.Level == incident.LevelUpstream && !slices.Contains(models, inc.Scope) {
		models = append(models, inc.Scope)
	}
	sus, err := m.deploys.Recent(ctx, models, now.Add(-m.cfg.SuspectLookback), now)
	if err != nil {
		m.log.Warn("alerting: reading deployments failed", "incident", inc.Key, "err", err)
		return
	}
	inc.Suspects = sus
}

// linkCauses links active model incidents of the cross-layer families to
// an active hardware incident on their serving GPUs or nodes.
func (m *Manager) linkCauses() []*incident.Incident {
	if m.cat == nil {
		return nil
	}
	var hw []*incident.Incident
	for _, k := range slices.Sorted(maps.Keys(m.incidents)) {
		if inc := m.incidents[k]; inc.Status.Active() && len(inc.Models) == 0 {
			hw = append(hw, inc)
		}
	}
	var changed []*incident.Incident
	for _, k := range slices.Sorted(maps.Keys(m.incidents)) {
		inc := m.incidents[k]
		if !inc.Status.Active() || len(inc.Models) == 0 || !slices.Contains(m.cfg.CrossLayerFamilies, inc.Family) {
			continue
		}
		cause := ""
		for _, h := range hw {
			if m.serves(inc.Models, h) {
				cause = h.Key
				break
			}
		}
		if cause != inc.Cause {
			inc.Cause = cause
			changed = append(changed, inc)
		}
	}
	return changed
}

// serves reports whether any of models is served on hardware h covers.
func (m *Manager) serves(models []string, h *incident.Incident) bool {
	for _, name := range models {
		mm := m.cat.Model(name)
		if mm == nil {
			continue
		}
		for _, t := range mm.Serving.Targets {
			for _, e := range h.Evidence {
				if (t.GPUUUID != "" && t.GPUUUID == e.GPUUUID) || (t.Node != "" && t.Node == e.Node && t.GPUUUID == "") {
					return true
				}
			}
			ht := h.Topology
			if (h.Level == incident.LevelRack && t.Rack != "" && t.Rack == ht.Rack && t.Datacenter == ht.Datacenter) ||
				(h.Level == incident.LevelDatacenter && t.Datacenter != "" && t.Datacenter == ht.Datacenter) {
				return true
			}
		}
	}
	return false
}

// pollAcks reads acknowledgements of open incidents written by fleetctl.
func (m *Manager) pollAcks(ctx context.Context, now time.Time) ([]*incident.Incident, error) {
	if m.store == nil || now.Sub(m.lastPoll) < m.cfg.AckPoll {
		return nil, nil
	}
	m.lastPoll = now
	var keys []string
	for _, k := range slices.Sorted(maps.Keys(m.incidents)) {
		if m.incidents[k].Status == incident.StatusOpen {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	acked, err := m.store.Acked(ctx, keys)
	if err != nil {
		return nil, err
	}
	var out []*incident.Incident
	for _, k := range keys {
		if by, ok := acked[k]; ok {
			inc := m.incidents[k]
			inc.Status, inc.AckedAt, inc.AckedBy = incident.StatusAcknowledged, now, by
			out = append(out, inc)
		}
	}
	return out, nil
}

func (m *Manager) silenced(inc *incident.Incident, now time.Time) bool {
	for i := range m.silence {
		if m.silence[i].Active(now, inc.Labels) {
			return true
		}
	}
	return false
}

// firing lists active incidents, with their silence state now.
func (m *Manager) firing(now time.Time) []incident.Incident {
	var out []incident.Incident
	for _, k := range slices.Sorted(maps.Keys(m.incidents)) {
		if inc := m.incidents[k]; inc.Status.Active() {
			c := inc.Clone()
			c.Silenced = m.silenced(&c, now)
			out = append(out, c)
		}
	}
	return out
}

// save persists the changed incidents that have ever opened; pending
// incidents live in memory only.
func (m *Manager) save(ctx context.Context, changed []*incident.Incident, now time.Time) error {
	var rows []incident.Incident
	done := map[string]bool{}
	for _, inc := range changed {
		if done[inc.Key] || inc.OpenedAt.IsZero() {
			continue
		}
		done[inc.Key] = true
		inc.UpdatedAt = now
		inc.Silenced = m.silenced(inc, now)
		inc.Version = m.nextVersion()
		rows = append(rows, inc.Clone())
	}
	if m.store == nil || len(rows) == 0 {
		return nil
	}
	if err := m.store.Save(ctx, rows); err != nil {
		return fmt.Errorf("save incidents: %w", err)
	}
	return nil
}
