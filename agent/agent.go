// Package agent is Fleetwatch's node agent: it runs the telemetry sources
// (NVML, a dcgm-exporter scrape, model-server log tailing, or the fleet
// simulator), encodes what they collect as OTLP, queues it in a bounded disk
// buffer, ships it to the collector, and serves the latest GPU values and its
// own health on /metrics. cmd/fleetwatch-agent is a thin wrapper around it.
//
// Layer: stage (docs/ARCHITECTURE.md, "Layers"). The agent's packages import
// the ground (fleet, lib/, telemetry) and each other, never another stage;
// the agent never imports storage either.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/proto"

	"github.com/fleetwatch/fleetwatch/agent/buffer"
	"github.com/fleetwatch/fleetwatch/agent/cgroupres"
	"github.com/fleetwatch/fleetwatch/agent/dcgmsrc"
	"github.com/fleetwatch/fleetwatch/agent/kubeapi"
	"github.com/fleetwatch/fleetwatch/agent/logtail"
	"github.com/fleetwatch/fleetwatch/agent/nvmlsrc"
	"github.com/fleetwatch/fleetwatch/agent/otlp"
	"github.com/fleetwatch/fleetwatch/agent/podlabels"
	"github.com/fleetwatch/fleetwatch/agent/podres"
	"github.com/fleetwatch/fleetwatch/agent/promexp"
	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/agent/ship"
	"github.com/fleetwatch/fleetwatch/lib/buildinfo"
	"github.com/fleetwatch/fleetwatch/lib/netsec"
)

// ResourceConfig places the node in the fleet.
type ResourceConfig struct {
	Datacenter string `yaml:"datacenter"`
	Row        string `yaml:"row"`
	Rack       string `yaml:"rack"`
	Cluster    string `yaml:"cluster"`
	// Host defaults to the Kubernetes node name when there is one (K8sNode),
	// else the machine's host name (in a pod that is the pod's name, which
	// changes with every rollout).
	Host string `yaml:"host"`
	// K8sNode is the Kubernetes node name (default $NODE_NAME, the downward API's usual variable).
	K8sNode string `yaml:"k8s_node"`
	// NodeLabels, under Kubernetes, names the node labels the fields above
	// are taken from (FromNode); a field whose label is unnamed or absent on
	// the node keeps its configured value.
	NodeLabels NodeLabels `yaml:"node_labels"`
}

// NodeLabels names, per topology field, the Kubernetes node label that
// holds it (e.g. rack: example.com/rack); "" takes nothing from the node.
type NodeLabels struct {
	Datacenter string `yaml:"datacenter"`
	Row        string `yaml:"row"`
	Rack       string `yaml:"rack"`
	Cluster    string `yaml:"cluster"`
}

// fields pairs each label name with the field it fills.
func (r *ResourceConfig) fields() []struct {
	name, label string
	dst         *string
} {
	return []struct {
		name, label string
		dst         *string
	}{
		{"datacenter", r.NodeLabels.Datacenter, &r.Datacenter},
		{"row", r.NodeLabels.Row, &r.Row},
		{"rack", r.NodeLabels.Rack, &r.Rack},
		{"cluster", r.NodeLabels.Cluster, &r.Cluster},
	}
}

// Any reports whether any field is taken from a node label.
func (n NodeLabels) Any() bool { return n.Datacenter+n.Row+n.Rack+n.Cluster != "" }

// FromNode fills the topology from the labels of the agent's Kubernetes
// node, read once with get (k8snode.Labels). It logs what it took,
// and each named label the node lacks (the configured value stays). Without
// node_labels it does nothing; an error from get is returned: an agent told
// to place itself by its node's labels does not guess.
func (r *ResourceConfig) FromNode(ctx context.Context, get func(ctx context.Context, node string) (map[string]string, error), log *slog.Logger) error {
	if !r.NodeLabels.Any() {
		return nil
	}
	labels, err := get(ctx, r.K8sNode)
	if err != nil {
		return fmt.Errorf("resource.node_labels: %w", err)
	}
	var took, missing []any
	for _, f := range r.fields() {
		if f.label == "" {
			continue
		}
		if v, ok := labels[f.label]; ok && v != "" {
			*f.dst = v
			took = append(took, f.name, v)
		} else {
			missing = append(missing, f.name, fmt.Sprintf("%s (kept %q)", f.label, *f.dst))
		}
	}
	log.Info("topology from the node's labels", append([]any{"node", r.K8sNode}, took...)...)
	if len(missing) > 0 {
		log.Warn("the node lacks labels the agent places itself by; label the node, or the configured values are used",
			append([]any{"node", r.K8sNode}, missing...)...)
	}
	return nil
}

// Config is the agent's configuration (the YAML file of fleetwatch-agent).
type Config struct {
	// DataDir holds the disk buffer and the log tailer's state.
	DataDir  string         `yaml:"data_dir"`
	Resource ResourceConfig `yaml:"resource"`
	NVML     struct {
		Enabled        bool `yaml:"enabled"`
		nvmlsrc.Config `yaml:",inline"`
	} `yaml:"nvml"`
	DCGM struct {
		Enabled        bool `yaml:"enabled"`
		dcgmsrc.Config `yaml:",inline"`
	} `yaml:"dcgm"`
	Logs struct {
		Enabled        bool `yaml:"enabled"`
		logtail.Config `yaml:",inline"`
	} `yaml:"logs"`
	// PodResources labels NVML's GPU series with the Kubernetes pod holding
	// each GPU, from the kubelet's pod-resources socket.
	// Its pod_labels copies the holding pods' labels (team, model, cost
	// centre, environment) onto the GPU series, read from the API server
	// (agent/podlabels).
	PodResources struct {
		Enabled       bool `yaml:"enabled"`
		podres.Config `yaml:",inline"`
		Labels        podlabels.Config `yaml:",inline"`
	} `yaml:"pod_resources"`
	// Processes labels NVML's GPU series, off Kubernetes, with the Slurm
	// job or systemd unit of the processes on each GPU (agent/cgroupres).
	// With pod_resources also on, pod_resources labels them.
	Processes struct {
		Enabled          bool `yaml:"enabled"`
		cgroupres.Config `yaml:",inline"`
	} `yaml:"processes"`
	Ship   ship.Config   `yaml:"ship"`
	Buffer buffer.Config `yaml:"buffer"`
	// Listen is the address of /metrics and /healthz (default
	// 127.0.0.1:9401; empty turns them off). A non-loopback address needs
	// Web's TLS and authentication, or web.insecure.
	Listen string `yaml:"listen"`
	// Web secures /metrics: TLS (mutual optional) and a bearer token file.
	Web netsec.ServerConfig `yaml:"web"`
	// StaleAfter drops a series from /metrics after this long without a value.
	StaleAfter time.Duration `yaml:"stale_after"`
	// Queue is how many batches may wait for the disk buffer.
	Queue int `yaml:"queue"`
}

// NewDefaultConfig returns the defaults: NVML on, dcgm-exporter scrape and log
// tailing off, shipping to a collector on localhost.
func NewDefaultConfig() Config {
	var c Config
	c.DataDir = "/var/lib/fleetwatch-agent"
	c.NVML.Enabled = true
	c.NVML.Config = nvmlsrc.NewDefaultConfig()
	c.DCGM.Config = dcgmsrc.NewDefaultConfig()
	c.Logs.Config = logtail.NewDefaultConfig("")
	c.Logs.StateFile, c.Logs.DeadLetter = "", "" // derived from data_dir by Resolve
	c.PodResources.Config = podres.NewDefaultConfig()
	c.PodResources.Labels = podlabels.NewDefaultConfig()
	c.Processes.Config = cgroupres.NewDefaultConfig()
	c.Ship = ship.NewDefaultConfig()
	c.Buffer = buffer.NewDefaultConfig("")
	c.Listen = "127.0.0.1:9401"
	c.StaleAfter = 5 * time.Minute
	c.Queue = 1024
	return c
}

// Resolve fills paths derived from DataDir and the host name.
func (c *Config) Resolve() {
	if c.Buffer.Dir == "" {
		c.Buffer.Dir = filepath.Join(c.DataDir, "buffer")
	}
	if c.Logs.StateFile == "" {
		c.Logs.StateFile = filepath.Join(c.DataDir, "logtail-state.json")
	}
	if c.Logs.DeadLetter == "" {
		c.Logs.DeadLetter = filepath.Join(c.DataDir, "dead-letter.jsonl")
	}
	if c.Resource.K8sNode == "" {
		c.Resource.K8sNode = os.Getenv("NODE_NAME")
	}
	if c.Resource.Host == "" {
		c.Resource.Host = c.Resource.K8sNode
	}
	if c.Resource.Host == "" {
		c.Resource.Host, _ = os.Hostname()
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is required"))
	}
	if c.NVML.Enabled {
		errs = append(errs, c.NVML.Config.Validate())
	}
	if c.DCGM.Enabled {
		errs = append(errs, c.DCGM.Config.Validate())
	}
	if c.Logs.Enabled {
		errs = append(errs, c.Logs.Config.Validate())
	}
	if c.PodResources.Enabled {
		errs = append(errs, c.PodResources.Config.Validate(), c.PodResources.Labels.Validate())
	}
	if c.Processes.Enabled {
		errs = append(errs, c.Processes.Config.Validate())
	}
	errs = append(errs, c.Ship.Validate(), c.Buffer.Validate())
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("listen %q: %w", c.Listen, err))
		} else {
			errs = append(errs, c.Web.Validate("web", c.Listen))
		}
	}
	if c.StaleAfter <= 0 {
		errs = append(errs, fmt.Errorf("stale_after %v must be positive", c.StaleAfter))
	}
	if c.Queue < 1 {
		errs = append(errs, fmt.Errorf("queue %d must be at least 1", c.Queue))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid agent config: %w", err)
	}
	return nil
}

// Source is anything that collects into the agent until its context ends.
type Source interface {
	Name() string
	Run(ctx context.Context, sink record.Sink) error
}

// Option adjusts New.
type Option func(*Agent)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(a *Agent) { a.log = l } }

// WithNVML replaces the NVML library (tests pass go-nvml's mock).
func WithNVML(lib nvml.Interface) Option { return func(a *Agent) { a.nvml = lib } }

// WithKubeAPI sets how the agent reaches the Kubernetes API server for
// pod labels (default: in-cluster, from the service account).
func WithKubeAPI(c kubeapi.Client) Option { return func(a *Agent) { a.kube = &c } }

// WithSource adds a source, e.g. the fleet simulator.
func WithSource(s Source) Option { return func(a *Agent) { a.extra = append(a.extra, s) } }

// WithCounterStart sets the start time the agent sends with cumulative
// counters (OTLP StartTimeUnixNano) until it sees one reset. The default is
// the host's boot time: NVML's counters (energy, ECC, NVLink errors, XIDs)
// run since the driver loaded, so the start must not move when the agent
// restarts — a collector takes a new start time for a counter reset. A
// simulated fleet passes its scenario's start.
func WithCounterStart(t time.Time) Option { return func(a *Agent) { a.counterStart = t } }

// Agent runs the sources and ships what they collect.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	nvml     nvml.Interface
	extra    []Source
	kube     *kubeapi.Client
	resource record.Resource
	// counterStart is the start time sent with cumulative counters.
	counterStart time.Time

	buf      *buffer.Buffer
	shipper  *ship.Shipper
	enc      *otlp.Encoder
	exporter *promexp.Exporter
	reg      *prometheus.Registry
	in       chan *record.Batch
	stopped  chan struct{}

	srcMu   sync.Mutex
	srcIdx  map[string]byte
	srcName [256]string
	counts  [256]sourceCounts
	errFns  map[string]func() map[string]uint64 // per-source error counters, by source name
	// unsupported counts, per source and field, the GPUs that lack the field.
	unsupported map[string]func() map[string]int

	web      *netsec.Server // nil without a listener
	listener net.Listener
	ready    atomic.Bool
	// blocked is 1 while the pipeline holds a batch the disk buffer refused
	// (a full disk) and retries it; sources block meanwhile.
	blocked atomic.Int32
	// dropLogged is set once a refused batch was dropped while stopping.
	dropLogged atomic.Bool
}

type sourceCounts struct {
	samples, records                           atomic.Uint64
	droppedEncode, droppedBuf, droppedDiskFull atomic.Uint64
}

// New prepares an agent: it opens the disk buffer (recovering what a previous
// run left in it) and the shipper; Run starts everything.
func New(cfg Config, opts ...Option) (*Agent, error) {
	cfg.Resolve()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: slog.Default(), srcIdx: map[string]byte{}, stopped: make(chan struct{}),
		errFns: map[string]func() map[string]uint64{}, unsupported: map[string]func() map[string]int{}}
	for _, o := range opts {
		o(a)
	}
	r := cfg.Resource
	a.resource = record.Resource{Datacenter: r.Datacenter, Row: r.Row, Rack: r.Rack, Cluster: r.Cluster, Host: r.Host, K8sNode: r.K8sNode}
	buf, err := buffer.Open(cfg.Buffer)
	if err != nil {
		return nil, err
	}
	a.buf = buf
	if st := buf.Stats(); st.Pending > 0 {
		a.log.Info("disk buffer holds data from an earlier run; shipping it first", "records", st.Pending, "bytes", st.Bytes)
	}
	a.shipper, err = ship.New(cfg.Ship, buf, a.log)
	if err != nil {
		buf.Close()
		return nil, err
	}
	if cfg.Listen != "" {
		if a.web, err = netsec.NewServer(cfg.Web); err != nil {
			buf.Close()
			return nil, fmt.Errorf("web: %w", err)
		}
	}
	if a.counterStart.IsZero() {
		if a.counterStart, err = bootTime(); err != nil {
			a.counterStart = time.Now()
			a.log.Warn("cannot read the host's boot time; counters are sent as starting now, so a restart of the agent looks like a counter reset", "error", err)
		}
	}
	a.enc = otlp.NewEncoder(a.counterStart, buildinfo.Version)
	a.enc.Form, _ = otlp.ParseForm(cfg.Ship.GPUIdentity) // validated with cfg
	a.exporter = promexp.New(cfg.StaleAfter)
	a.in = make(chan *record.Batch, cfg.Queue)
	a.reg = prometheus.NewRegistry()
	a.reg.MustRegister(a.exporter, &healthCollector{a: a})
	for _, n := range []string{"nvml", "dcgm", "logs", "train", "serving"} {
		a.sourceIndex(n)
	}
	return a, nil
}

// sourceIndex assigns each source name a byte for the buffer's per-source counts.
func (a *Agent) sourceIndex(name string) byte {
	a.srcMu.Lock()
	defer a.srcMu.Unlock()
	if i, ok := a.srcIdx[name]; ok {
		return i
	}
	i := byte(len(a.srcIdx))
	if len(a.srcIdx) >= 255 {
		i = 255 // everything past 255 sources shares the last slot
	} else {
		a.srcIdx[name] = i
	}
	a.srcName[i] = name
	return i
}

// Put hands a batch to the pipeline; it blocks while the queue is full
// (backpressure) and drops, counting, once the agent is stopping.
func (a *Agent) Put(b *record.Batch) {
	select {
	case a.in <- b:
	case <-a.stopped:
		c := &a.counts[a.sourceIndex(b.Source)]
		c.droppedBuf.Add(uint64(b.Len()))
	}
}

// Registry is the Prometheus registry behind /metrics.
func (a *Agent) Registry() *prometheus.Registry { return a.reg }

// Addr is the address /metrics listens on, once Run has started.
func (a *Agent) Addr() string {
	if a.listener == nil {
		return ""
	}
	return a.listener.Addr().String()
}

// Buffer exposes the disk buffer's statistics.
func (a *Agent) Buffer() buffer.Stats { return a.buf.Stats() }

// Shipper exposes the shipper's statistics.
func (a *Agent) Shipper() *ship.Stats { return &a.shipper.Stats }

// Run starts the HTTP server, the sources, the pipeline and the shipper, and
// runs until ctx ends. On the way out it stops the sources, writes what they
// produced to the disk buffer, and gives the shipper a few seconds to send it;
// whatever is left is shipped on the next start.
func (a *Agent) Run(ctx context.Context) error {
	defer a.buf.Close()
	sources, err := a.sources()
	if err != nil {
		return err
	}
	if a.cfg.Listen != "" {
		if err := a.serve(); err != nil {
			return err
		}
		defer a.listener.Close()
	}
	srcCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()
	var srcWG sync.WaitGroup
	for _, s := range sources {
		srcWG.Add(1)
		go func(s Source) {
			defer srcWG.Done()
			if err := s.Run(srcCtx, a); err != nil {
				if errors.Is(err, nvmlsrc.ErrNoDriver) {
					a.log.Warn("no NVIDIA driver on this machine: the NVML source is off, the other sources keep running", "err", err)
					return
				}
				a.log.Error("source stopped", "source", s.Name(), "err", err)
			}
		}(s)
	}
	pipeDone := make(chan struct{})
	go func() {
		defer close(pipeDone)
		a.pipeline(ctx)
	}()
	shipCtx, stopShip := context.WithCancel(context.Background())
	shipDone := make(chan error, 1)
	go func() { shipDone <- a.shipper.Run(shipCtx) }()
	a.ready.Store(true)
	a.log.Info("agent running", "sources", len(sources), "collector", a.cfg.Ship.Endpoint, "collector_tls", !a.cfg.Ship.Plaintext(),
		"metrics", a.Addr(), "buffer", a.cfg.Buffer.Dir)

	<-ctx.Done()
	a.ready.Store(false)
	srcWG.Wait()
	close(a.stopped)
	close(a.in)
	<-pipeDone
	// Drain what the collector will take, briefly.
	deadline := time.Now().Add(5 * time.Second)
	for a.buf.Stats().Pending > 0 && time.Now().Before(deadline) && a.shipper.Stats.Connected.Load() == 1 {
		time.Sleep(20 * time.Millisecond)
	}
	stopShip()
	if err := <-shipDone; err != nil {
		a.log.Error("shipper", "err", err)
	}
	if st := a.buf.Stats(); st.Pending > 0 {
		a.log.Info("stopping with data still buffered on disk; it is shipped on the next start", "records", st.Pending)
	}
	return nil
}

func (a *Agent) sources() ([]Source, error) {
	var out []Source
	if a.cfg.NVML.Enabled {
		lib := a.nvml
		if lib == nil {
			lib = nvml.New()
		}
		cfg := a.cfg.NVML.Config
		res := a.resource
		var workloads nvmlsrc.Workloads
		if a.cfg.PodResources.Enabled {
			m, err := podres.New(a.cfg.PodResources.Config, a.log.With("source", podResourcesSource))
			if err != nil {
				return nil, err
			}
			a.errFns[podResourcesSource] = m.Errors
			out = append(out, mapperSource{m})
			workloads = m
			if l, err := a.podLabeller(m); err != nil {
				return nil, err
			} else if l != nil {
				a.errFns[podLabelsSource] = l.Errors
				out = append(out, labellerSource{l, a.cfg.PodResources.Interval})
				workloads = l
			}
		} else if a.cfg.Processes.Enabled {
			m, err := cgroupres.NewMapper(lib, a.cfg.Processes.Config)
			if err != nil {
				return nil, err
			}
			workloads = cgroupres.Shared{Mapper: m}
		}
		src, err := nvmlsrc.New(lib, cfg, &res, workloads, a.log)
		if err != nil {
			return nil, err
		}
		a.errFns[src.Name()] = src.Errors
		a.unsupported[src.Name()] = src.Unsupported
		out = append(out, src)
	}
	if a.cfg.PodResources.Enabled && !a.cfg.NVML.Enabled {
		a.log.Warn("pod_resources is on but the NVML source is off: there are no GPU series to label (a dcgm-exporter scrape brings its own pod labels)")
	}
	if a.cfg.DCGM.Enabled {
		src, err := dcgmsrc.New(a.cfg.DCGM.Config, a.resource, a.log)
		if err != nil {
			return nil, err
		}
		a.errFns[src.Name()] = src.Errors
		out = append(out, src)
	}
	if a.cfg.Logs.Enabled {
		res := a.resource
		src, err := logtail.New(a.cfg.Logs.Config, res, a.log)
		if err != nil {
			return nil, err
		}
		a.errFns[src.Name()] = func() map[string]uint64 {
			out := map[string]uint64{}
			for r, n := range src.Stats().Malformed {
				out["malformed_"+r] = n
			}
			return out
		}
		out = append(out, src)
	}
	for _, s := range a.extra {
		if u, ok := s.(unsupportedReporter); ok {
			a.unsupported[s.Name()] = u.Unsupported
		}
	}
	return append(out, a.extra...), nil
}

// podResourcesSource names the pod-resources mapper among the sources.
const podResourcesSource = "pod_resources"

// mapperSource runs the pod-resources mapper beside the sources; it
// collects no samples of its own.
type mapperSource struct{ *podres.Mapper }

func (mapperSource) Name() string { return podResourcesSource }

func (m mapperSource) Run(ctx context.Context, _ record.Sink) error { return m.Mapper.Run(ctx) }

// podLabelsSource names the pod-labels lookup among the sources.
const podLabelsSource = "pod_labels"

// podLabeller returns the labeller of m's pods, or nil when pod_labels is
// empty or the agent is not in a Kubernetes pod (logged).
func (a *Agent) podLabeller(m *podres.Mapper) (*podlabels.Labeller, error) {
	cfg := a.cfg.PodResources.Labels
	if !cfg.Enabled() {
		return nil, nil
	}
	c := a.kube
	if c == nil {
		in, err := kubeapi.InCluster()
		if err != nil {
			a.log.Warn("pod_resources.pod_labels is set but the API server is unknown: GPU series go without the pods' team, model and cost centre labels", "err", err)
			return nil, nil
		}
		c = &in
	}
	return podlabels.New(cfg, *c, m, a.log.With("source", podLabelsSource))
}

// labellerSource runs the pod-labels lookup beside the sources.
type labellerSource struct {
	*podlabels.Labeller
	interval time.Duration
}

func (labellerSource) Name() string { return podLabelsSource }

func (l labellerSource) Run(ctx context.Context, _ record.Sink) error {
	return l.Labeller.Run(ctx, l.interval)
}

// unsupportedReporter is a source that knows which fields its GPUs lack
// (the NVML source, the simulator).
type unsupportedReporter interface {
	Unsupported() map[string]int
}

// pipeline encodes batches and appends them to the disk buffer.
func (a *Agent) pipeline(ctx context.Context) {
	for b := range a.in {
		a.process(ctx, b)
	}
}

func (a *Agent) process(ctx context.Context, b *record.Batch) {
	if b.Resource == nil {
		res := a.resource
		b.Resource = &res
	}
	idx := a.sourceIndex(b.Source)
	c := &a.counts[idx]
	c.samples.Add(uint64(len(b.Samples)))
	c.records.Add(uint64(b.Len() - len(b.Samples)))
	a.exporter.Observe(b)
	ok := true
	if req := a.enc.Metrics(b); req != nil {
		ok = a.append(ctx, ship.KindMetrics, idx, len(b.Samples), req) && ok
	}
	if req := a.enc.Logs(b); req != nil {
		ok = a.append(ctx, ship.KindLogs, idx, b.Len()-len(b.Samples), req) && ok
	}
	if ok && b.Commit != nil {
		b.Commit()
	}
}

// Retry bounds for a batch the disk buffer refused.
const (
	appendRetryMin = 50 * time.Millisecond
	appendRetryMax = 2 * time.Second
)

// append writes one encoded request to the disk buffer. A refused append (a
// full disk, a failing write) is retried until it succeeds, holding the batch
// in memory: the queue in front fills and sources block in Put, so a full
// disk pushes back instead of losing data, and the agent recovers by itself
// when space returns. Only once the agent is stopping is a batch the buffer
// still refuses dropped, counted by reason.
func (a *Agent) append(ctx context.Context, kind, idx byte, items int, m proto.Message) bool {
	c := &a.counts[idx]
	data, err := proto.Marshal(m)
	if err != nil {
		c.droppedEncode.Add(uint64(items))
		a.log.Error("cannot encode a batch; dropped", "source", a.srcName[idx], "items", items, "err", err)
		return false
	}
	meta := buffer.Meta{Kind: kind, Source: idx, Items: uint32(items)}
	wait := appendRetryMin
	var since time.Time
	for {
		err := a.buf.Append(meta, data)
		if err == nil {
			if !since.IsZero() {
				a.blocked.Store(0)
				a.log.Info("disk buffer accepts data again; sources resume", "held_for", time.Since(since).Round(time.Millisecond))
			}
			return true
		}
		if ctx.Err() != nil || errors.Is(err, buffer.ErrClosed) {
			a.blocked.Store(0)
			if errors.Is(err, buffer.ErrDiskFull) {
				c.droppedDiskFull.Add(uint64(items))
			} else {
				c.droppedBuf.Add(uint64(items))
			}
			if !a.dropLogged.Swap(true) { // once: the queue may hold many more
				a.log.Error("stopping while the disk buffer refuses data; the batches still queued are dropped and counted",
					"source", a.srcName[idx], "items", items, "err", err)
			}
			return false
		}
		if since.IsZero() {
			since = time.Now()
			a.blocked.Store(1)
			a.log.Warn("cannot write to the disk buffer; holding the batch and blocking sources until it can",
				"source", a.srcName[idx], "items", items, "err", err, "buffer", a.cfg.Buffer.Dir)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, appendRetryMax)
	}
}

// serve starts /metrics (behind the bearer token, when configured) and
// /healthz (open: it says only whether the agent runs), over TLS when
// configured.
func (a *Agent) serve() error {
	l, err := a.web.Listen(a.cfg.Listen, a.log)
	if err != nil {
		return fmt.Errorf("listen on %s for /metrics: %w", a.cfg.Listen, err)
	}
	a.listener = l
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "starting or stopping", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Handler: a.web.Handler(mux, "/healthz"), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelDebug)}
	go func() { _ = srv.Serve(l) }()
	return nil
}
