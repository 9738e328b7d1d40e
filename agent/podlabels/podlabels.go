// Package podlabels labels a GPU with the labels of the Kubernetes pod
// holding it, for cost attribution: the team, model, cost centre and
// environment a pod is labelled with become the GPU's workload labels
// (telemetry.WorkloadLabels), and the pod's UID its pod_uid. The kubelet's
// pod-resources API (agent/podres) says which pod holds a GPU but not its
// labels, so the agent reads each GPU-holding pod once from the API server
// (GET /api/v1/namespaces/NS/pods/NAME?resourceVersion=0, served from the
// API server's cache) with its service account (agent/kubeapi), keeps it in
// a bounded cache, reads it again every Refresh, and drops it when the pod
// no longer holds a GPU. The account needs RBAC "get" on "pods".
//
// Layer: stage (the agent's).
package podlabels

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/kubeapi"
	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Config says which pod labels to copy and how long to keep them.
type Config struct {
	// Labels are the pod labels copied onto the GPUs the pod holds. An
	// entry is a contract label (telemetry.WorkloadLabels: team, model,
	// model_version, cost_center, environment) copied from the pod label
	// of the same name, or LABEL=KEY to copy the pod label KEY as LABEL
	// (team=example.com/team). Empty turns the lookup off.
	Labels []string `yaml:"pod_labels"`
	// Refresh is how often a cached pod is read again.
	Refresh time.Duration `yaml:"pod_labels_refresh"`
	// MaxPods bounds the cache; pods beyond it go unlabelled (counted as
	// cache_full).
	MaxPods int `yaml:"pod_labels_max_pods"`
	// Timeout bounds one read of a pod.
	Timeout time.Duration `yaml:"pod_labels_timeout"`
}

// NewDefaultConfig copies team, model, cost_center and environment, keeps
// up to 1,024 pods and reads each again every 5 minutes.
func NewDefaultConfig() Config {
	return Config{
		Labels:  []string{telemetry.LabelTeam, telemetry.LabelModel, telemetry.LabelCostCenter, telemetry.LabelEnvironment},
		Refresh: 5 * time.Minute, MaxPods: 1024, Timeout: 5 * time.Second,
	}
}

// Enabled reports whether any label is to be copied.
func (c Config) Enabled() bool { return len(c.Labels) > 0 }

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	_, err := c.mapping()
	errs = append(errs, err)
	if c.Enabled() {
		if c.Refresh < 10*time.Second {
			errs = append(errs, fmt.Errorf("pod_resources.pod_labels_refresh %v is below 10s", c.Refresh))
		}
		if c.MaxPods < 1 {
			errs = append(errs, fmt.Errorf("pod_resources.pod_labels_max_pods %d must be at least 1", c.MaxPods))
		}
		if c.Timeout <= 0 {
			errs = append(errs, fmt.Errorf("pod_resources.pod_labels_timeout %v must be positive", c.Timeout))
		}
	}
	return errors.Join(errs...)
}

// copyRule copies the pod label key as the contract label label.
type copyRule struct{ label, key string }

func (c Config) mapping() ([]copyRule, error) {
	var out []copyRule
	var errs []error
	for _, e := range c.Labels {
		label, key, ok := strings.Cut(e, "=")
		if !ok {
			key = label
		}
		label, key = strings.TrimSpace(label), strings.TrimSpace(key)
		switch {
		case !slices.Contains(telemetry.WorkloadLabels, label):
			errs = append(errs, fmt.Errorf("pod_resources.pod_labels %q: %q is not one of the contract's workload labels %v (the collector keeps only those)", e, label, telemetry.WorkloadLabels))
		case key == "":
			errs = append(errs, fmt.Errorf("pod_resources.pod_labels %q: no pod label key", e))
		case slices.ContainsFunc(out, func(r copyRule) bool { return r.label == label }):
			errs = append(errs, fmt.Errorf("pod_resources.pod_labels: %q is copied twice", label))
		default:
			out = append(out, copyRule{label, key})
		}
	}
	return out, errors.Join(errs...)
}

// set sets w's contract label label.
func set(w *record.Workload, label, v string) {
	switch label {
	case telemetry.LabelTeam:
		w.Team = v
	case telemetry.LabelModel:
		w.Model = v
	case telemetry.LabelModelVersion:
		w.ModelVersion = v
	case telemetry.LabelCostCenter:
		w.CostCenter = v
	case telemetry.LabelEnvironment:
		w.Environment = v
	}
}

// Holders maps GPUs to the pods holding them (agent/podres.Mapper).
type Holders interface {
	// Holders are the GPU's holders (several for a shared GPU); the
	// caller does not modify them.
	Holders(uuid string) []record.Workload
	// Pods are the pods holding a GPU now (Namespace and Pod set).
	Pods() []record.Workload
}

type podKey struct{ ns, name string }

// entry is one cached pod: its labels as the GPU gets them (only the
// contract labels and PodUID set), and when it was last read (after a
// failed read, set so that it is due again in retryFailed).
type entry struct {
	w    record.Workload
	read time.Time
}

// retryFailed is how soon a pod whose read failed is tried again.
const retryFailed = time.Minute

// Labeller adds the holding pods' labels to Holders' workloads. It
// implements nvmlsrc.SharedWorkloads.
type Labeller struct {
	cfg   Config
	rules []copyRule
	api   *kubeapi.API
	src   Holders
	log   *slog.Logger
	now   func() time.Time
	kick  chan struct{}

	mu   sync.RWMutex
	pods map[podKey]*entry

	errMu  sync.Mutex
	errs   map[string]uint64
	logged map[string]bool
}

// New prepares a labeller reading pods with c.
func New(cfg Config, c kubeapi.Client, src Holders, log *slog.Logger) (*Labeller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rules, _ := cfg.mapping()
	c.Timeout, c.Attempts = cfg.Timeout, 1 // a failed read is tried again later, not now
	api, err := c.Connect()
	if err != nil {
		return nil, fmt.Errorf("pod labels: %w", err)
	}
	return &Labeller{cfg: cfg, rules: rules, api: api, src: src, log: log, now: time.Now, kick: make(chan struct{}, 1),
		pods: map[podKey]*entry{}, errs: map[string]uint64{}, logged: map[string]bool{}}, nil
}

// Workload is the GPU's (first) holder with its pod's labels, once read.
func (l *Labeller) Workload(uuid string) record.Workload {
	hs := l.src.Holders(uuid)
	if len(hs) == 0 {
		return record.Workload{}
	}
	return l.label(hs[0])
}

// Holders are the GPU's holders with their pods' labels, once read.
func (l *Labeller) Holders(uuid string) []record.Workload {
	hs := l.src.Holders(uuid)
	if len(hs) == 0 {
		return nil
	}
	out := make([]record.Workload, len(hs))
	for i, w := range hs {
		out[i] = l.label(w)
	}
	return out
}

// label adds w's pod's labels to w.
func (l *Labeller) label(w record.Workload) record.Workload {
	if w.Pod == "" {
		return w
	}
	l.mu.RLock()
	e := l.pods[podKey{w.Namespace, w.Pod}]
	full := len(l.pods) >= l.cfg.MaxPods
	l.mu.RUnlock()
	if e == nil {
		if full {
			return w
		}
		select { // read it now rather than at the next tick
		case l.kick <- struct{}{}:
		default:
		}
		return w
	}
	if w.PodUID == "" {
		w.PodUID = e.w.PodUID
	}
	w.Team, w.Model, w.ModelVersion, w.CostCenter, w.Environment = e.w.Team, e.w.Model, e.w.ModelVersion, e.w.CostCenter, e.w.Environment
	return w
}

// Errors returns the failed reads by reason (kubeapi's: forbidden,
// not_found, timeout, ...), and cache_full, for the agent's error metric.
func (l *Labeller) Errors() map[string]uint64 {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return maps.Clone(l.errs)
}

// Cached is how many pods the cache holds.
func (l *Labeller) Cached() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.pods)
}

// Run syncs every interval (and soon after a GPU's pod is first seen)
// until ctx ends.
func (l *Labeller) Run(ctx context.Context, interval time.Duration) error {
	defer l.api.Close()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		l.Sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-l.kick:
		}
	}
}

// Sync drops the pods that hold no GPU any more, and reads the pods not
// cached yet and those due for a refresh.
func (l *Labeller) Sync(ctx context.Context) {
	now := l.now()
	holding := map[podKey]bool{}
	for _, w := range l.src.Pods() {
		holding[podKey{w.Namespace, w.Pod}] = true
	}
	var due []podKey
	l.mu.Lock()
	for k := range l.pods {
		if !holding[k] {
			delete(l.pods, k)
		}
	}
	full, added := 0, 0
	for k := range holding {
		e, ok := l.pods[k]
		switch {
		case !ok && len(l.pods)+added >= l.cfg.MaxPods:
			full++
		case !ok:
			added++
			due = append(due, k)
		case !now.Before(e.read.Add(l.cfg.Refresh)):
			due = append(due, k)
		}
	}
	l.mu.Unlock()
	if full > 0 {
		l.fail("cache_full", fmt.Errorf("%d GPU-holding pods beyond pod_labels_max_pods %d go unlabelled", full, l.cfg.MaxPods), uint64(full))
	}
	slices.SortFunc(due, func(a, b podKey) int { return strings.Compare(a.ns+"/"+a.name, b.ns+"/"+b.name) })
	for _, k := range due {
		if ctx.Err() != nil {
			return
		}
		w, err := l.read(ctx, k)
		now := l.now()
		l.mu.Lock()
		e, ok := l.pods[k]
		if !ok {
			e = &entry{}
			l.pods[k] = e
		}
		if err == nil {
			e.w, e.read = w, now
		} else {
			// Keep what an earlier read found; try again in a minute
			// (the entry is due when read + Refresh has passed).
			e.read = now.Add(min(retryFailed, l.cfg.Refresh) - l.cfg.Refresh)
		}
		l.mu.Unlock()
		if err != nil {
			l.fail(kubeapi.Reason(err), err, 1)
		}
	}
}

// read reads one pod's UID and copied labels.
func (l *Labeller) read(ctx context.Context, k podKey) (record.Workload, error) {
	var pod kubeapi.Object
	path := "/api/v1/namespaces/" + url.PathEscape(k.ns) + "/pods/" + url.PathEscape(k.name) + "?resourceVersion=0"
	if err := l.api.Get(ctx, path, &pod); err != nil {
		return record.Workload{}, err
	}
	w := record.Workload{PodUID: pod.Metadata.UID}
	for _, r := range l.rules {
		set(&w, r.label, pod.Metadata.Labels[r.key])
	}
	return w, nil
}

// fail counts n failures of reason and logs the first of each reason.
func (l *Labeller) fail(reason string, err error, n uint64) {
	l.errMu.Lock()
	l.errs[reason] += n
	first := !l.logged[reason]
	l.logged[reason] = true
	l.errMu.Unlock()
	if !first {
		return
	}
	msg := "cannot read the labels of a GPU-holding pod: its GPUs go without team, model and cost centre labels until a read succeeds (counted in fleetwatch_agent_source_errors_total{source=\"pod_labels\"}; logged once per reason)"
	switch reason {
	case kubeapi.ReasonForbidden:
		msg += "; the agent's service account needs RBAC get on pods (Helm: agent.podLabels non-empty)"
	case kubeapi.ReasonNotFound:
		msg += "; the pod is gone (it was deleted between the kubelet's answer and the read)"
	case "cache_full":
		msg = "more GPU-holding pods than pod_resources.pod_labels_max_pods; the rest go unlabelled"
	}
	l.log.Warn(msg, "reason", reason, "server", l.api.Server(), "err", err)
}
