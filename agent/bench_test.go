package agent_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip"

	"github.com/fleetwatch/fleetwatch/agent"
	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/proc"
)

// sinkCodec receives OTLP requests without decoding them, so the receiving
// side costs next to nothing in the agent's CPU measurement.
type sinkCodec struct{}

func (sinkCodec) Marshal(v any) ([]byte, error)      { return []byte{}, nil }
func (sinkCodec) Unmarshal(data []byte, v any) error { return nil }
func (sinkCodec) Name() string                       { return "proto" }

var _ encoding.Codec = sinkCodec{}

// countingServer accepts any OTLP export and counts requests and bytes.
func countingServer(tb testing.TB) (addr string, requests *atomic.Int64) {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	requests = &atomic.Int64{}
	handler := func(srv any, stream grpc.ServerStream) error {
		var m struct{}
		if err := stream.RecvMsg(&m); err != nil {
			return err
		}
		requests.Add(1)
		return stream.SendMsg(&m)
	}
	s := grpc.NewServer(grpc.ForceServerCodec(sinkCodec{}), grpc.UnknownServiceHandler(handler))
	go s.Serve(l)
	tb.Cleanup(s.Stop)
	return l.Addr().String(), requests
}

// BenchmarkAgentPipeline measures what the agent spends per GPU sample from
// a collected batch to the collector's acknowledgement: OTLP encoding,
// protobuf marshalling, the disk buffer (write and read back) and a gzip'd
// gRPC send. Each op ships one minute of an 8-GPU node at 1 s (60 batches).
func BenchmarkAgentPipeline(b *testing.B) {
	runner := newRunner(b, "interval: 1s\nfleet: {nodes_per_rack: 1, gpus_per_node: 8}\njobs: [{name: j, nodes: 1}]\n")
	sc := runner.Scenario
	var batches []*record.Batch
	samples := 0
	for i := 1; i <= 60; i++ {
		for _, bt := range runner.Step(sc.Start.Add(time.Duration(i) * time.Second)) {
			if bt.Source == "nvml" {
				batches = append(batches, bt)
				samples += len(bt.Samples)
			}
		}
	}
	addr, requests := countingServer(b)
	cfg := agent.NewDefaultConfig()
	cfg.DataDir, cfg.NVML.Enabled, cfg.Listen = b.TempDir(), false, ""
	cfg.Ship.Endpoint = addr
	a, err := agent.New(cfg, agent.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := proc.SelfCPU()
	want := int64(0)
	for i := 0; i < b.N; i++ {
		for _, bt := range batches {
			cp := *bt // the pipeline owns what it is given
			a.Put(&cp)
		}
		want += int64(len(batches))
		for requests.Load() < want {
			time.Sleep(100 * time.Microsecond)
		}
	}
	cpu := proc.SelfCPU() - cpu0
	b.StopTimer()
	total := float64(samples * b.N)
	b.ReportMetric(total/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/total, "cpu-ns/sample")
	perNodeSecond := float64(samples) / 60 // samples an 8-GPU node produces per second
	b.ReportMetric(float64(cpu.Nanoseconds())/total*perNodeSecond/1e6, "mCPU/node@1s")
	b.ReportMetric(perNodeSecond/8, "samples/GPU/s")
}
