// Package loadgen sends GPU telemetry to an OTLP/gRPC endpoint as fast as it
// is accepted, to measure a collector end to end.
//
// The requests are what the node agent sends: a simulated fleet (agent/sim)
// read through the agent's NVML source and OTLP encoder, one request per node
// per interval with every DCGM field of docs/TELEMETRY.md. Building and
// marshalling them for every send would cost the generator more CPU than the
// collector spends receiving them, so each node's requests are marshalled
// once per variant (distinct simulated values) before the run, and every send
// only writes the request's timestamp into the marshalled bytes. Every
// (series, timestamp) pair sent is therefore distinct, and the number of rows
// that must land is exactly Stats.Samples.
package loadgen

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // registers the "gzip" compressor
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/fleetwatch/fleetwatch/agent/otlp"
	"github.com/fleetwatch/fleetwatch/agent/sim"
)

// Config says what to send and how hard.
type Config struct {
	// Endpoint is the collector's OTLP/gRPC address, host:port.
	Endpoint string
	// Nodes is the number of simulated 8-GPU nodes (default 125: 1,000 GPUs).
	Nodes int
	// GPUsPerNode (default 8).
	GPUsPerNode int
	// Samples to send in all (default 10,000,000); rounded up to whole rounds
	// of one request per node.
	Samples int64
	// Interval between a node's timestamps (default 1s). The last round is
	// stamped now; the first Samples/(samples per round) intervals earlier.
	Interval time.Duration
	// Workers is the number of concurrent senders (default 4); each owns a
	// share of the nodes and sends their requests in timestamp order.
	Workers int
	// Variants is the number of distinct simulated value sets per node,
	// cycled through (default 4).
	Variants int
	// Compression is "none" (default) or "gzip".
	Compression string
	// Seed of the simulated fleet (default 1).
	Seed uint64
	// Pace, when positive, starts one round (a request per node) every Pace,
	// like a fleet polling at that interval; 0 sends as fast as the
	// collector answers.
	Pace time.Duration
	// Form is where the requests carry each GPU's labels (default
	// otlp.PerGPU, the agent's; otlp.PerPoint as agents before issue 18).
	Form otlp.Form
}

// NewDefaultConfig returns the defaults for a local collector.
func NewDefaultConfig() Config {
	return Config{Endpoint: "127.0.0.1:4317", Nodes: 125, GPUsPerNode: 8, Samples: 10_000_000,
		Interval: time.Second, Workers: 4, Variants: 4, Compression: "none", Seed: 1}
}

// Validate lists every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.Endpoint == "" {
		errs = append(errs, errors.New("endpoint is required"))
	}
	if c.Nodes < 1 || c.GPUsPerNode < 1 || c.Workers < 1 || c.Variants < 1 {
		errs = append(errs, fmt.Errorf("nodes (%d), gpus per node (%d), workers (%d) and variants (%d) must be at least 1",
			c.Nodes, c.GPUsPerNode, c.Workers, c.Variants))
	}
	if c.Samples < 1 {
		errs = append(errs, fmt.Errorf("samples must be at least 1, got %d", c.Samples))
	}
	if c.Pace < 0 {
		errs = append(errs, fmt.Errorf("pace must not be negative, got %v", c.Pace))
	}
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("interval must be positive, got %v", c.Interval))
	}
	if c.Compression != "none" && c.Compression != "gzip" {
		errs = append(errs, fmt.Errorf("compression must be none or gzip, got %q", c.Compression))
	}
	return errors.Join(errs...)
}

// Stats counts what was sent. Samples counts accepted data points; Rejected
// those the collector refused in a partial success; Retries the sends
// repeated after the collector pushed back (Unavailable, ResourceExhausted).
type Stats struct {
	Requests, Samples, Rejected, Retries, Bytes int64
	Elapsed                                     time.Duration
}

// template is one node's marshalled request with the offsets of its
// data points' timestamps.
type template struct {
	data    []byte
	stamps  []int
	samples int
}

// Generator holds the marshalled requests. Build it before timing a run.
type Generator struct {
	cfg       Config
	nodes     [][]template // [node][variant]
	perRound  int          // samples in one round (one request per node)
	rounds    int
	firstTime time.Time
	log       *slog.Logger
}

// sentinel marks data-point timestamps in a marshalled template: the field
// tag of NumberDataPoint.time_unix_nano (field 3, fixed64) and an instant no
// real value takes.
var sentinel = time.Unix(0, 0x1A5E_17E1_A5E1_0F00)

const timeTag = 3<<3 | 1

// New simulates the fleet, encodes and marshals every template.
func New(cfg Config, log *slog.Logger) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	sc, err := sim.Parse(fmt.Appendf(nil, "seed: %d\ninterval: %s\nfleet: {racks_per_row: %d, nodes_per_rack: 1, gpus_per_node: %d}\njobs: [{name: load, nodes: %d}]\n",
		cfg.Seed, cfg.Interval, cfg.Nodes, cfg.GPUsPerNode, cfg.Nodes))
	if err != nil {
		return nil, fmt.Errorf("loadgen: scenario: %w", err)
	}
	runner, err := sim.New(sc, log)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	defer runner.Close()
	g := &Generator{cfg: cfg, nodes: make([][]template, cfg.Nodes), log: log}
	encoders := make(map[string]*otlp.Encoder, cfg.Nodes)
	// The first poll lacks the fields that are rates over two polls.
	runner.Step(sc.Start.Add(cfg.Interval))
	for v := 0; v < cfg.Variants; v++ {
		node := 0
		for _, b := range runner.Step(sc.Start.Add(time.Duration(v+2) * cfg.Interval)) {
			if b.Source != "nvml" || node >= cfg.Nodes {
				continue
			}
			enc := encoders[b.Resource.Host]
			if enc == nil {
				enc = otlp.NewEncoder(sc.Start, "loadgen")
				enc.Form = cfg.Form
				encoders[b.Resource.Host] = enc
			}
			b.Time = sentinel
			tp, err := newTemplate(enc.Metrics(b))
			if err != nil {
				return nil, fmt.Errorf("loadgen: node %s: %w", b.Resource.Host, err)
			}
			if v > 0 && tp.samples != g.nodes[node][0].samples {
				return nil, fmt.Errorf("loadgen: node %s: variant %d has %d samples, variant 0 %d", b.Resource.Host, v, tp.samples, g.nodes[node][0].samples)
			}
			g.nodes[node] = append(g.nodes[node], tp)
			node++
		}
		if node != cfg.Nodes {
			return nil, fmt.Errorf("loadgen: simulated %d nodes, want %d", node, cfg.Nodes)
		}
	}
	for _, vs := range g.nodes {
		g.perRound += vs[0].samples
	}
	g.rounds = int((cfg.Samples + int64(g.perRound) - 1) / int64(g.perRound))
	g.firstTime = time.Now().Truncate(cfg.Interval).Add(-time.Duration(g.rounds-1) * cfg.Interval)
	return g, nil
}

func newTemplate(req *colmetrics.ExportMetricsServiceRequest) (template, error) {
	if req == nil {
		return template{}, errors.New("no samples")
	}
	data, err := proto.Marshal(req)
	if err != nil {
		return template{}, err
	}
	var mark [9]byte
	mark[0] = timeTag
	binary.LittleEndian.PutUint64(mark[1:], uint64(sentinel.UnixNano()))
	t := template{data: data}
	for off := 0; ; {
		i := bytes.Index(data[off:], mark[:])
		if i < 0 {
			break
		}
		t.stamps = append(t.stamps, off+i+1)
		off += i + len(mark)
	}
	for _, rm := range req.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				t.samples += len(m.GetGauge().GetDataPoints()) + len(m.GetSum().GetDataPoints())
			}
		}
	}
	if len(t.stamps) != t.samples {
		return template{}, fmt.Errorf("found %d timestamps for %d data points", len(t.stamps), t.samples)
	}
	return t, nil
}

// Total is the number of samples Run sends.
func (g *Generator) Total() int64 { return int64(g.rounds) * int64(g.perRound) }

// PerRequest is the average number of samples in one request.
func (g *Generator) PerRequest() int { return g.perRound / len(g.nodes) }

// Span is the first and last timestamp Run sends.
func (g *Generator) Span() (first, last time.Time) {
	return g.firstTime, g.firstTime.Add(time.Duration(g.rounds-1) * g.cfg.Interval)
}

// rawCodec sends the marshalled bytes as they are.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("loadgen: cannot marshal %T", v)
	}
	return proto.Marshal(m)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("loadgen: cannot unmarshal into %T", v)
	}
	return proto.Unmarshal(data, m)
}

func (rawCodec) Name() string { return "proto" }

var _ encoding.Codec = rawCodec{}

const exportMethod = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"

// Run sends every round and returns what was accepted. progress, when not
// nil, is called about once a second with the totals so far. Sends the
// collector pushes back on are retried after a short pause; any other error
// ends the run.
func (g *Generator) Run(ctx context.Context, progress func(Stats)) (Stats, error) {
	conn, err := grpc.NewClient(g.cfg.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		return Stats{}, fmt.Errorf("loadgen: dial %s: %w", g.cfg.Endpoint, err)
	}
	defer conn.Close()
	opts := []grpc.CallOption{grpc.ForceCodec(rawCodec{})}
	if g.cfg.Compression == "gzip" {
		opts = append(opts, grpc.UseCompressor("gzip"))
	}
	var requests, samples, rejected, retries, sent atomic.Int64
	snapshot := func(start time.Time) Stats {
		return Stats{Requests: requests.Load(), Samples: samples.Load(), Rejected: rejected.Load(),
			Retries: retries.Load(), Bytes: sent.Load(), Elapsed: time.Since(start)}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < g.cfg.Workers; w++ {
		wg.Go(func() {
			for r := 0; r < g.rounds && ctx.Err() == nil; r++ {
				if g.cfg.Pace > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(time.Until(start.Add(time.Duration(r) * g.cfg.Pace))):
					}
				}
				ts := uint64(g.firstTime.Add(time.Duration(r) * g.cfg.Interval).UnixNano())
				for n := w; n < len(g.nodes); n += g.cfg.Workers {
					t := &g.nodes[n][r%len(g.nodes[n])]
					for _, off := range t.stamps {
						binary.LittleEndian.PutUint64(t.data[off:], ts)
					}
					rej, tries, err := g.send(ctx, conn, t.data, opts)
					retries.Add(tries)
					if err != nil {
						cancel(fmt.Errorf("loadgen: node %d round %d: %w", n, r, err))
						return
					}
					requests.Add(1)
					samples.Add(int64(t.samples) - rej)
					rejected.Add(rej)
					sent.Add(int64(len(t.data)))
				}
			}
		})
	}
	if progress != nil {
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		tick := time.NewTicker(time.Second)
	loop:
		for {
			select {
			case <-done:
				break loop
			case <-tick.C:
				progress(snapshot(start))
			}
		}
		tick.Stop()
	}
	wg.Wait()
	st := snapshot(start)
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return st, err
	}
	return st, nil
}

// send exports one request, retrying while the collector pushes back. It
// returns the data points the collector rejected and the number of retries.
func (g *Generator) send(ctx context.Context, conn *grpc.ClientConn, data []byte, opts []grpc.CallOption) (int64, int64, error) {
	backoff := 10 * time.Millisecond
	for tries := int64(0); ; tries++ {
		var resp colmetrics.ExportMetricsServiceResponse
		err := conn.Invoke(ctx, exportMethod, data, &resp, opts...)
		if err == nil {
			return resp.GetPartialSuccess().GetRejectedDataPoints(), tries, nil
		}
		switch status.Code(err) {
		case codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.DeadlineExceeded:
		default:
			return 0, tries, err
		}
		g.log.Debug("collector pushed back; retrying", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return 0, tries, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}
