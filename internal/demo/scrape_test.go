package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/dashboards"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/promtest"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.Run(m)) }

// quietPromQL lists dashboard expressions (by panel title) that may
// legitimately return nothing while data flows normally, with the reason.
// They must still parse and run. None today.
var quietPromQL = map[string]string{}

// Every PromQL expression in the shipped dashboards runs on Debian's
// Prometheus scraping the real collector (the shipped default
// configuration), a real agent and a real analyzer while a simulated fleet
// sends, and returns at least one series with a value above zero. Template
// variables get every value their ClickHouse query returns, as "All" does.
func TestDashboardPromQLOnRealScrapes(t *testing.T) {
	c := chtest.NewDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	log := chtest.Logger(t)
	p, err := startPipeline(ctx, c.Config(), t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sim.Load("testdata/scrape.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc.Start = time.Now().UTC().Truncate(time.Second)
	runner, err := sim.New(sc, log)
	if err != nil {
		t.Fatal(err)
	}
	agentAddr, analyzerAddr := mustFreeAddr(), mustFreeAddr()
	ag, err := newSimAgent(runner, true, p.endpoint, p.certs, agentAddr, filepath.Join(t.TempDir(), "agent"), log, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &Demo{cfg: Config{Analyzer: "../../deploy/demo/fleetwatch.yaml"}, client: c, out: io.Discard, log: log}
	acfg, err := d.analyzerConfig()
	if err != nil {
		t.Fatal(err)
	}
	an, err := d.startAnalyzer(ctx, acfg, c.Config(), analyzerAddr, filepath.Join(t.TempDir(), "canary-rollbacks"))
	if d.rollouts != nil {
		t.Cleanup(d.rollouts.stop)
	}
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{ag.Run, an.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("component stopped: %v", err)
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		p.stop(log)
		runner.Close()
	})

	prom := promtest.Prometheus(t, time.Second, p.metrics, agentAddr, analyzerAddr)
	prom.WaitQuery(t, "sum(up)", time.Minute, func(s []promtest.Sample) bool { return len(s) == 1 && s[0].Value == 3 })
	waitForRows(t, c, "gpu_series", time.Minute)

	ran := 0
	for _, f := range shippedDashboards(t) {
		r := selectAll(t, c, f, dashboards.Request{From: sc.Start.Add(-time.Hour), To: time.Now().Add(time.Minute), Interval: time.Minute})
		for _, p := range f.Panels {
			for _, tg := range p.Targets {
				if tg.Datasource.Type != dashboards.PrometheusType {
					continue
				}
				ran++
				where := f.UID + " / " + p.Title
				q, err := dashboards.ExpandVariables(tg.Expr, r, "promql")
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				if reason, ok := quietPromQL[p.Title]; ok {
					if _, err := prom.Query(context.Background(), q); err != nil {
						t.Errorf("%s (may be empty: %s): %v", where, reason, err)
					}
					continue
				}
				t.Logf("%s: %s", where, q)
				last, ok, err := prom.Poll(q, time.Minute, func(s []promtest.Sample) bool {
					for _, x := range s {
						if x.Value > 0 && !math.IsInf(x.Value, 0) {
							return true
						}
					}
					return false
				})
				if !ok {
					t.Errorf("%s: %s returned no series above zero within a minute; last result %v, error %v", where, q, last, err)
				}
			}
		}
	}
	if ran == 0 {
		t.Fatal("no PromQL expression in the shipped dashboards")
	}
}

// shippedDashboards decodes dashboards/json/*.json as Grafana loads them.
func shippedDashboards(t *testing.T) []dashboards.Dashboard {
	t.Helper()
	names, err := fs.Glob(dashboards.Files, "json/*.json")
	if err != nil || len(names) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	out := make([]dashboards.Dashboard, len(names))
	for i, n := range names {
		data, err := fs.ReadFile(dashboards.Files, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &out[i]); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
	return out
}

// selectAll returns r with d's variables set: each query variable's SQL
// runs on ClickHouse in order (each may narrow the next) and every value it
// returns is selected; a text box keeps its default.
func selectAll(t *testing.T, c *storage.Client, d dashboards.Dashboard, r dashboards.Request) dashboards.Request {
	t.Helper()
	r.Vars, r.Multi = map[string][]string{}, map[string]bool{}
	for _, v := range d.Templating.List {
		r.Multi[v.Name] = v.Multi
		if v.Type != "query" {
			r.Vars[v.Name] = []string{v.Query}
			continue
		}
		sql, err := dashboards.ExpandSQL(v.Query, r)
		if err != nil {
			t.Fatalf("%s: variable %s: %v", d.UID, v.Name, err)
		}
		rows, err := c.Conn().Query(context.Background(), sql)
		if err != nil {
			t.Fatalf("%s: variable %s: %v", d.UID, v.Name, err)
		}
		var vals []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatalf("%s: variable %s: %v", d.UID, v.Name, err)
			}
			vals = append(vals, s)
		}
		rows.Close()
		sort.Strings(vals)
		r.Vars[v.Name] = vals
	}
	return r
}

func waitForRows(t *testing.T, c *storage.Client, table string, timeout time.Duration) {
	t.Helper()
	q := fmt.Sprintf("SELECT count() FROM %s.%s", c.Config().Database, table)
	deadline := time.Now().Add(timeout)
	for {
		var n uint64
		if err := c.QueryScalar(context.Background(), q, &n); err == nil && n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rows in %s after %v", table, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
