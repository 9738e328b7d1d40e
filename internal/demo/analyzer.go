package demo

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/internal/analyzer"
	"github.com/fleetwatch/fleetwatch/storage"
)

// pagerReceiver is the demo's stand-in for a pager: a webhook receiver
// counting the notifications alerting sends to the "demo-pager" receiver.
const pagerReceiver = "demo-pager"

type pager struct {
	srv   *http.Server
	url   string
	count atomic.Int64
}

func startPager() (*pager, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo pager: %w", err)
	}
	p := &pager{url: "http://" + ln.Addr().String() + "/notify"}
	p.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		p.count.Add(1)
	})}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *pager) stop() { _ = p.srv.Close() }

// analyzerConfig loads the demo's analyzer configuration (cfg.Analyzer);
// its relative paths (catalog, price book) are relative to the file.
func (d *Demo) analyzerConfig() (analyzer.Config, error) {
	acfg, err := analyzer.LoadConfig(d.cfg.Analyzer)
	if err != nil {
		return acfg, err
	}
	for _, p := range []*string{&acfg.Alerting.Catalog, &acfg.Cost.PriceBook} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(filepath.Dir(d.cfg.Analyzer), *p)
		}
	}
	return acfg, nil
}

// startAnalyzer builds the analyzer from acfg, pointed at the demo's
// ClickHouse, its "demo-pager" receiver at the demo's own webhook
// receiver, the canary judge's rollback webhook at the demo's rollout
// controller (its ledger at ledger), its /metrics and canary verdicts on
// listen.
func (d *Demo) startAnalyzer(ctx context.Context, acfg analyzer.Config, ch storage.Config, listen, ledger string) (*analyzer.Analyzer, error) {
	var err error
	acfg.ClickHouse = ch
	acfg.Listen = listen
	for i := range acfg.Alerting.Routing.Receivers {
		if acfg.Alerting.Routing.Receivers[i].Name == pagerReceiver {
			if d.pager == nil {
				if d.pager, err = startPager(); err != nil {
					return nil, err
				}
			}
			acfg.Alerting.Routing.Receivers[i].URL = d.pager.url
		}
	}
	if acfg.Canary.Enabled {
		var deps []sim.DeploymentSpec
		if d.sc != nil {
			deps = d.sc.Deployments
		}
		if d.rollouts, err = startRollouts(d, deps); err != nil {
			return nil, err
		}
		d.rollouts.verdicts = "http://" + listen + "/canary/v1/verdict"
		acfg.Canary.Rollback.URL, acfg.Canary.Ledger = d.rollouts.url, ledger
	}
	an, err := analyzer.New(ctx, acfg, d.client, d.log)
	if err != nil {
		return nil, fmt.Errorf("analyzer: %w", err)
	}
	d.say("analyzer: detectors %v; alerting %v; canary judge %v; cost %v; /metrics on http://%s/metrics", an.Engine.Detectors(), onOff(acfg.Alerting.Enabled),
		onOff(acfg.Canary.Enabled), onOff(acfg.Cost.Enabled), acfg.Listen)
	return an, nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
