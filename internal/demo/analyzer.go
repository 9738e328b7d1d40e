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

// startAnalyzer builds the analyzer from the demo's configuration file
// (cfg.Analyzer), pointed at the demo's ClickHouse, its "demo-pager"
// receiver at the demo's own webhook receiver, its /metrics on listen.
func (d *Demo) startAnalyzer(ctx context.Context, ch storage.Config, listen string) (*analyzer.Analyzer, error) {
	acfg, err := analyzer.LoadConfig(d.cfg.Analyzer)
	if err != nil {
		return nil, err
	}
	acfg.ClickHouse = ch
	if c := acfg.Alerting.Catalog; c != "" && !filepath.IsAbs(c) {
		acfg.Alerting.Catalog = filepath.Join(filepath.Dir(d.cfg.Analyzer), c)
	}
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
	an, err := analyzer.New(ctx, acfg, d.client, d.log)
	if err != nil {
		return nil, fmt.Errorf("analyzer: %w", err)
	}
	d.say("analyzer: detectors %v; alerting %v; /metrics on http://%s/metrics", an.Engine.Detectors(), onOff(acfg.Alerting.Enabled), acfg.Listen)
	return an, nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
