package collector_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// probeMetric is the metric of the visibility probe's points; the benchmark
// leaves its rows out of its counts.
const probeMetric = "fleetwatch_bench_probe"

// visibilityProbe measures the time from a sample's send to the moment a
// query sees it: every period it sends one point (value i+1, timestamp
// base+i s) through the collector, and a poller asks ClickHouse for the
// highest probe value stored. Points of one GPU go through one log in order,
// so a stored value v means probes 0..v-1 are visible.
type visibilityProbe struct {
	client pmetricotlp.GRPCClient
	db     *storage.Client
	base   time.Time
	period time.Duration

	mu     sync.Mutex
	sent   []time.Time     // send start of probe i
	loaded []bool          // whether probe i was sent under load
	seen   []time.Duration // send → visible of probe i; 0 until seen
	load   bool
	err    error
}

func newVisibilityProbe(t testing.TB, endpoint string, db *storage.Client) *visibilityProbe {
	return &visibilityProbe{client: pmetricotlp.NewGRPCClient(dial(t, endpoint)), db: db,
		base: time.Now().Add(-2 * time.Hour).Truncate(time.Second), period: 200 * time.Millisecond, load: true}
}

// setLoaded marks the probes sent from now on as sent under load or not.
func (p *visibilityProbe) setLoaded(v bool) {
	p.mu.Lock()
	p.load = v
	p.mu.Unlock()
}

func (p *visibilityProbe) request(i int) pmetricotlp.ExportRequest {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr(telemetry.AttrHostName, "probe")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(probeMetric)
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.Attributes().PutStr(telemetry.LabelUUID, "GPU-probe")
	dp.SetTimestamp(pcommon.NewTimestampFromTime(p.base.Add(time.Duration(i) * time.Second)))
	dp.SetDoubleValue(float64(i + 1))
	return pmetricotlp.NewExportRequestFromMetrics(md)
}

// run sends and polls until ctx ends.
func (p *visibilityProbe) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(p.period)
		defer tick.Stop()
		for i := 0; ; i++ {
			req := p.request(i)
			p.mu.Lock()
			p.sent, p.loaded, p.seen = append(p.sent, time.Now()), append(p.loaded, p.load), append(p.seen, 0)
			p.mu.Unlock()
			if _, err := p.client.Export(ctx, req); err != nil && ctx.Err() == nil {
				p.fail(fmt.Errorf("probe %d: %w", i, err))
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	wg.Go(func() {
		q := fmt.Sprintf("SELECT max(value) FROM %s.gpu_samples WHERE metric = '%s'", p.db.Config().Database, probeMetric)
		tick := time.NewTicker(p.period / 4)
		defer tick.Stop()
		for {
			var v float64
			if err := p.db.QueryScalar(ctx, q, &v); err != nil {
				if ctx.Err() == nil {
					p.fail(fmt.Errorf("probe poll: %w", err))
				}
				return
			}
			now := time.Now()
			p.mu.Lock()
			for i := 0; i < int(v) && i < len(p.seen); i++ {
				if p.seen[i] == 0 {
					p.seen[i] = now.Sub(p.sent[i])
				}
			}
			p.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	wg.Wait()
}

func (p *visibilityProbe) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

// latency returns the 50th and 99th percentile of the seen probes' send →
// visible times, those sent under load or not, and how many were seen.
func (p *visibilityProbe) latency(loaded bool) (p50, p99 time.Duration, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var d []time.Duration
	for i, s := range p.seen {
		if s > 0 && p.loaded[i] == loaded {
			d = append(d, s)
		}
	}
	if len(d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	return at(0.50), at(0.99), len(d)
}
