// Command fleetwatch-agent collects GPU telemetry (NVML, dcgm-exporter) and
// model-server inference logs on a node and ships them over OTLP to the
// Fleetwatch collector, buffering on disk while the collector is away. With
// --simulate it runs a simulated fleet instead of reading real GPUs; the
// simulator is linked only into builds with the "simulator" tag (the shipped
// binary has none: `fleetctl simulate` is the simulator's home).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"gopkg.in/yaml.v3"

	"github.com/fleetwatch/fleetwatch/agent"
	"github.com/fleetwatch/fleetwatch/agent/k8snode"
	"github.com/fleetwatch/fleetwatch/agent/kubeapi"
	"github.com/fleetwatch/fleetwatch/lib/buildinfo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `fleetwatch-agent: collect GPU telemetry and inference logs on a node and ship them to the Fleetwatch collector.

Usage:
  fleetwatch-agent [--config agent.yaml] [flags]
  fleetwatch-agent --simulate scenario.yaml [--fast] [--truth truth.jsonl] [flags]

Sources: NVML (on by default; without an NVIDIA driver it says so and the other
sources keep running), a dcgm-exporter scrape (dcgm.enabled), model-server JSON
logs (logs.enabled), or a simulated fleet (--simulate, in builds with
-tags simulator; otherwise use fleetctl simulate). Data goes over OTLP to
ship.endpoint, through a bounded disk buffer under data_dir, over TLS
(ship.tls: CA, client certificate; ship.token_file: bearer token) unless the
collector is on loopback or ship.insecure is true. /metrics serves the latest
GPU values with dcgm-exporter's names and labels, and the agent's own health,
on 127.0.0.1:9401 by default; another address needs TLS and a token (web:)
or web.insecure: true.

Flags:
`

// errNoSimulator answers --simulate in the shipped build, which does not
// link the simulator.
var errNoSimulator = errors.New("--simulate: this build has no simulator; run `fleetctl simulate`, " +
	"or build the agent with `go build -tags simulator ./cmd/fleetwatch-agent`")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fleetwatch-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	configPath := fs.String("config", "", "YAML config file (see deploy/agent.yaml)")
	simulate := fs.String("simulate", "", "run this simulator scenario instead of reading real GPUs")
	fast := fs.Bool("fast", false, "with --simulate: run as fast as possible instead of in real time")
	truth := fs.String("truth", "", "with --simulate: write the ground truth (JSON lines) here")
	collector := fs.String("collector", "", "collector OTLP endpoint (overrides ship.endpoint): for gRPC host:port (every address the name resolves to), dns:///host:port, or host:port,host:port — the agent uses one at random and fails over to the others; for HTTP http(s)://...")
	listen := fs.String("listen", "", "address for /metrics and /healthz (overrides listen; \"off\" disables)")
	dataDir := fs.String("data-dir", "", "directory for the disk buffer and log offsets (overrides data_dir)")
	printConfig := fs.Bool("print-config", false, "print the effective configuration and exit")
	checkConfig := fs.Bool("check-config", false, "validate the configuration and exit")
	version := fs.Bool("version", false, "print the version and exit")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version {
		fmt.Fprintln(stdout, buildinfo.String("fleetwatch-agent"))
		return 0
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "fleetwatch-agent: --log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg := agent.NewDefaultConfig()
	if *configPath != "" {
		if err := loadConfig(*configPath, &cfg); err != nil {
			fmt.Fprintf(stderr, "fleetwatch-agent: %v\n", err)
			return 1
		}
	}
	if *collector != "" {
		cfg.Ship.Endpoint = *collector
		if bytes.HasPrefix([]byte(*collector), []byte("http")) {
			cfg.Ship.Protocol = "http"
		}
	}
	switch *listen {
	case "":
	case "off":
		cfg.Listen = ""
	default:
		cfg.Listen = *listen
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	var opts []agent.Option
	opts = append(opts, agent.WithLogger(log))
	if *simulate != "" {
		simOpts, release, err := simulated(&cfg, log, *simulate, *truth, *fast)
		if errors.Is(err, errNoSimulator) {
			fmt.Fprintf(stderr, "fleetwatch-agent: %v\n", err)
			return 2
		}
		if err != nil {
			fmt.Fprintf(stderr, "fleetwatch-agent: %v\n", err)
			return 1
		}
		defer release()
		opts = append(opts, simOpts...)
	}
	cfg.Resolve()
	if *printConfig {
		out, _ := yaml.Marshal(cfg)
		stdout.Write(out)
		return 0
	}
	if *checkConfig {
		if err := cfg.Validate(); err != nil {
			fmt.Fprintf(stderr, "fleetwatch-agent: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, "configuration is valid")
		return 0
	}
	if err := cfg.Resource.FromNode(ctx, nodeLabels, log); err != nil {
		fmt.Fprintf(stderr, "fleetwatch-agent: %v\n", err)
		return 1
	}
	a, err := agent.New(cfg, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "fleetwatch-agent: %v\n", err)
		return 1
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "fleetwatch-agent: %v\n", err)
		return 1
	}
	return 0
}

// nodeLabels reads the labels of the agent's Kubernetes node with the pod's
// service account.
func nodeLabels(ctx context.Context, node string) (map[string]string, error) {
	c, err := kubeapi.InCluster()
	if err != nil {
		return nil, err
	}
	return k8snode.Labels(ctx, c, node)
}

// loadConfig reads a YAML file over the defaults; unknown keys are errors.
func loadConfig(path string, cfg *agent.Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}
