package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/fleetwatch/fleetwatch/agent"
	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/collector"
	"github.com/fleetwatch/fleetwatch/lib/devcerts"
	"github.com/fleetwatch/fleetwatch/lib/freeport"
	"github.com/fleetwatch/fleetwatch/storage"
)

// pipeline is an in-process collector writing to ClickHouse.
type pipeline struct {
	endpoint string         // OTLP/gRPC, host:port
	certs    devcerts.Files // the listeners' TLS and token, which agents use
	metrics  string         // the collector's own /metrics, host:port
	col      *collector.Running
}

// startPipeline starts the collector (the shipped default configuration on
// free loopback ports, with TLS and a bearer token from a private CA made
// under dir) writing to ch, its queue under dir.
func startPipeline(ctx context.Context, ch storage.Config, dir string, memoryQueue bool) (*pipeline, error) {
	grpcAddr, err := freeport.Addr()
	if err != nil {
		return nil, err
	}
	metricsPort, err := freeport.Port()
	if err != nil {
		return nil, err
	}
	certs, err := devcerts.Ensure(filepath.Join(dir, "tls"), nil)
	if err != nil {
		return nil, err
	}
	cfg, err := collector.LocalConfig(collector.Local{TLSCert: certs.ServerCert, TLSKey: certs.ServerKey, TokenFile: certs.Token, GRPC: grpcAddr, HTTP: mustFreeAddr(), Health: mustFreeAddr(),
		PProf: mustFreeAddr(), MetricsHost: "127.0.0.1", MetricsPort: metricsPort,
		DSN: ch.DSN(), QueueDir: dir, Memory: memoryQueue, LogLevel: "warn"})
	if err != nil {
		return nil, err
	}
	col, err := collector.Start(ctx, cfg, "demo")
	if err != nil {
		return nil, err
	}
	return &pipeline{endpoint: grpcAddr, certs: certs, metrics: net.JoinHostPort("127.0.0.1", strconv.Itoa(metricsPort)), col: col}, nil
}

func (p *pipeline) stop(log *slog.Logger) {
	if err := p.col.Stop(2 * time.Minute); err != nil {
		log.Warn("collector stop", "err", err)
	}
}

// newSimAgent is the node agent with the simulator as its only source,
// shipping to endpoint over TLS with the token of certs, its buffer under dir, its /metrics on listen
// (none when empty).
func newSimAgent(runner *sim.Runner, realtime bool, endpoint string, certs devcerts.Files, listen, dir string, log *slog.Logger, done chan<- struct{}) (*agent.Agent, error) {
	cfg := agent.NewDefaultConfig()
	cfg.DataDir = dir
	cfg.NVML.Enabled = false
	cfg.Listen = listen
	cfg.Ship.Endpoint = endpoint
	cfg.Ship.TLS.CAFile, cfg.Ship.TokenFile = certs.CA, certs.Token
	cfg.Resource.Host = "fleetwatch-sim"
	cfg.Resolve()
	return agent.New(cfg, agent.WithLogger(log), agent.WithSource(simSource{Source: sim.Source{Runner: runner, Realtime: realtime}, done: done}),
		agent.WithCounterStart(runner.Scenario.Start))
}

// simSource is the simulator as an agent source that says when it is done.
type simSource struct {
	sim.Source
	done chan<- struct{}
}

func (s simSource) Run(ctx context.Context, sink record.Sink) error {
	err := s.Source.Run(ctx, sink)
	if s.done != nil {
		close(s.done)
	}
	return err
}

// SimulateResult is what Simulate loaded.
type SimulateResult struct {
	Truth    []sim.Truth
	Samples  uint64 // gpu_samples rows after the load
	Events   uint64 // inference_events rows after the load
	Duration time.Duration
}

// Simulate runs a scenario as fast as it can through the real agent and
// collector code into ClickHouse and returns its ground truth. A scenario
// that would reach into the future is moved to end now.
func Simulate(ctx context.Context, sc *sim.Scenario, c *storage.Client, workDir string, log *slog.Logger, progress func(appended, acked uint64)) (SimulateResult, error) {
	began := time.Now()
	if sc.Duration <= 0 {
		return SimulateResult{}, errors.New("simulate: the scenario runs forever (duration 0); give it a duration")
	}
	if sc.Start.Add(sc.Duration).After(began.Add(time.Minute)) {
		// Replay it so that it ends now: the collector rejects the future.
		sc.Start = began.UTC().Add(-sc.Duration).Truncate(sc.Interval)
	}
	p, err := startPipeline(ctx, c.Config(), filepath.Join(workDir, "collector"), true)
	if err != nil {
		return SimulateResult{}, err
	}
	runner, err := sim.New(sc, log.With("source", "sim"))
	if err != nil {
		p.stop(log)
		return SimulateResult{}, err
	}
	defer runner.Close()
	done := make(chan struct{})
	ag, err := newSimAgent(runner, false, p.endpoint, p.certs, "", filepath.Join(workDir, "agent"), log, done)
	if err != nil {
		p.stop(log)
		return SimulateResult{}, err
	}
	actx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := ag.Run(actx); err != nil {
			log.Error("agent", "err", err)
		}
	}()
	// Wait for the scenario to end and the collector to acknowledge it all.
	tick := time.NewTicker(500 * time.Millisecond)
	finished := false
	for !finished {
		select {
		case <-ctx.Done():
			finished = true
		case <-done:
			done = nil
		case <-tick.C:
			st := ag.Buffer()
			if progress != nil {
				progress(st.Appended, st.Acked)
			}
			finished = done == nil && st.Pending == 0
		}
	}
	tick.Stop()
	cancel()
	wg.Wait()
	p.stop(log) // drains the collector's queue into ClickHouse
	if ctx.Err() != nil {
		return SimulateResult{}, ctx.Err()
	}
	res := SimulateResult{Truth: runner.Fleet.GroundTruth(), Duration: time.Since(began)}
	db := c.Config().Database
	err = c.QueryScalar(ctx, fmt.Sprintf("SELECT (SELECT count() FROM %[1]s.gpu_samples), (SELECT count() FROM %[1]s.inference_events)", db),
		&res.Samples, &res.Events)
	return res, err
}
