// Package promtest runs Debian's Prometheus (and Alertmanager) as private
// processes for tests: free loopback ports, data in a temp dir, stopped at
// cleanup. Without the binaries tests skip, except under CI=true, where they
// fail with instructions.
package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/lib/freeport"
)

const installHint = "install it with `make setup` (or: sudo apt-get install -y prometheus prometheus-alertmanager)"

func require(t testing.TB, bin string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %s is not installed; %s", bin, installHint)
		}
		t.Skipf("skipping: %s is not installed; %s", bin, installHint)
	}
	return p
}

// FreePort returns a free loopback port.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Process is a started server.
type Process struct {
	URL string
	cmd *exec.Cmd
	log string
}

// start runs bin with args and waits until url+ready answers 200.
func start(t testing.TB, bin string, args []string, dir, base, ready string) *Process {
	t.Helper()
	logPath := filepath.Join(dir, "out.log")
	out, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	p := &Process{URL: base, cmd: cmd, log: logPath}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		out.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", filepath.Base(bin), data)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	data, _ := os.ReadFile(logPath)
	t.Fatalf("%s did not become ready at %s: %s", bin, base, data)
	return nil
}

// Prometheus starts Prometheus scraping targets (host:port) every interval.
func Prometheus(t testing.TB, interval time.Duration, targets ...string) *Process {
	t.Helper()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	return PrometheusConfig(t, interval, fmt.Sprintf(`  - job_name: fleetwatch
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", ")))
}

// PrometheusConfig starts Prometheus with the given scrape_configs list
// (YAML list items, indented by two spaces), e.g. a job that scrapes over
// TLS with a bearer token.
func PrometheusConfig(t testing.TB, interval time.Duration, scrapeConfigs string) *Process {
	t.Helper()
	bin := require(t, "prometheus")
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: %s
  evaluation_interval: %s
scrape_configs:
%s`, interval, interval, scrapeConfigs)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	return start(t, bin, []string{"--config.file=" + cfgPath, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:" + strconv.Itoa(port)}, dir, base, "/-/ready")
}

// Alertmanager starts Alertmanager (Debian's prometheus-alertmanager) with
// the given configuration file contents, clustering off.
func Alertmanager(t testing.TB, config string) *Process {
	t.Helper()
	bin := require(t, "prometheus-alertmanager")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	return start(t, bin, []string{"--config.file=" + cfgPath, "--storage.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:" + strconv.Itoa(port), "--cluster.listen-address=", "--log.level=warn"}, dir, base, "/-/ready")
}

// Sample is one instant-vector element of a query result.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query runs an instant PromQL query.
func (p *Process) Query(ctx context.Context, q string) ([]Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, body.Error)
	}
	out := make([]Sample, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, _ := strconv.ParseFloat(s, 64)
		out = append(out, Sample{Labels: r.Metric, Value: v})
	}
	return out, nil
}

// Poll runs q until check accepts the result or timeout passes; ok says
// which. It returns the last result and error.
func (p *Process) Poll(q string, timeout time.Duration, check func([]Sample) bool) (last []Sample, ok bool, err error) {
	deadline := time.Now().Add(timeout)
	for {
		last, err = p.Query(context.Background(), q)
		if err == nil && check(last) {
			return last, true, nil
		}
		if time.Now().After(deadline) {
			return last, false, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// WaitQuery polls q until check accepts the result or the timeout passes,
// failing t then.
func (p *Process) WaitQuery(t testing.TB, q string, timeout time.Duration, check func([]Sample) bool) []Sample {
	t.Helper()
	last, ok, err := p.Poll(q, timeout, check)
	if !ok {
		t.Fatalf("query %q never satisfied the check within %v; last result %v, error %v", q, timeout, last, err)
	}
	return last
}
