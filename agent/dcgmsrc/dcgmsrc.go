// Package dcgmsrc scrapes an existing dcgm-exporter /metrics endpoint and maps
// what it finds onto the same samples the NVML source produces. It parses the
// Prometheus text format with Prometheus' own parser, drops DCGM's blank
// sentinels (not found, not supported, no permission), and accepts both the
// classic field names and the DCGM 4.6/4.7 names with base units (hertz,
// joules, bytes, ratios), converting them to the classic units of
// docs/TELEMETRY.md. The last-XID gauge becomes an XID event when it changes.
package dcgmsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/fleetwatch/fleetwatch/agent/nvmlsrc"
	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Config says where to scrape.
type Config struct {
	// URL of dcgm-exporter's metrics (default http://127.0.0.1:9400/metrics).
	URL      string        `yaml:"url"`
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
}

// NewDefaultConfig returns the defaults.
func NewDefaultConfig() Config {
	return Config{URL: "http://127.0.0.1:9400/metrics", Interval: 15 * time.Second, Timeout: 5 * time.Second}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
		errs = append(errs, fmt.Errorf("dcgm.url %q: want an http(s) URL", c.URL))
	}
	if c.Interval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("dcgm.interval %v is below 100ms", c.Interval))
	}
	if c.Timeout <= 0 || c.Timeout > c.Interval {
		errs = append(errs, fmt.Errorf("dcgm.timeout %v: want 0 < timeout <= interval", c.Timeout))
	}
	return errors.Join(errs...)
}

// Sentinel values DCGM uses for "no value"; dcgm-exporter passes them through.
const (
	int32Blank = 0x7ffffff0         // DCGM_INT32_BLANK, +1 not found, +2 not supported, +3 no permission
	int64Blank = 0x7ffffffffffffff0 // DCGM_INT64_BLANK and friends
	fp64Blank  = 140737488355328.0  // DCGM_FP64_BLANK (2^47), +1.. as above
)

// IsBlank reports whether v is one of DCGM's blank sentinels.
func IsBlank(v float64) bool {
	switch {
	case v >= float64(int64Blank): // every INT64 sentinel rounds to this range as float64
		return true
	case v >= int32Blank && v <= int32Blank+3 && v == math.Trunc(v):
		return true
	case v >= fp64Blank && v <= fp64Blank+3 && v == math.Trunc(v):
		return true
	}
	return false
}

// Stats counts what a parse kept and dropped, by reason.
type Stats struct {
	Series, Samples int
	// PassedThrough counts DCGM fields outside the catalog, kept under their own name.
	PassedThrough int
	Dropped       map[string]int
}

func (s *Stats) drop(reason string) {
	if s.Dropped == nil {
		s.Dropped = map[string]int{}
	}
	s.Dropped[reason]++
}

// Label names that identify the GPU; the rest become extra labels.
var identityLabels = map[string]bool{
	telemetry.LabelGPU: true, telemetry.LabelUUID: true, telemetry.LabelPCIBusID: true, telemetry.LabelDevice: true,
	telemetry.LabelModelName: true, telemetry.LabelHostname: true, telemetry.LabelHostnameNew: true,
	telemetry.LabelMIGID: true, telemetry.LabelMIGProfile: true, telemetry.LabelNamespace: true, telemetry.LabelPod: true,
	telemetry.LabelContainer: true, "__name__": true, telemetry.LabelPodUID: true, telemetry.LabelDriverVersion: true,
	telemetry.LabelJob: true,
}

// Parse maps one scrape onto a batch. host, when the batch's resource has
// none, is taken from the Hostname label.
func Parse(body []byte, contentType string, now time.Time) (*record.Batch, Stats, error) {
	var st Stats
	b := &record.Batch{Source: "dcgm", Time: now, Resource: &record.Resource{}}
	p, err := textparse.New(body, contentType, labels.NewSymbolTable(), textparse.ParserOptions{FallbackContentType: "text/plain"})
	if p == nil {
		return nil, st, fmt.Errorf("parse dcgm-exporter scrape: %w", err)
	}
	types := map[string]model.MetricType{}
	gpus := map[string]int32{}
	var lset labels.Labels
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return b, st, fmt.Errorf("parse dcgm-exporter scrape: %w", err)
		}
		switch entry {
		case textparse.EntryType:
			name, t := p.Type()
			types[string(name)] = t
			continue
		case textparse.EntryHistogram:
			st.drop("histogram")
			continue
		case textparse.EntrySeries:
		default:
			continue
		}
		st.Series++
		_, _, v := p.Series()
		p.Labels(&lset)
		name := lset.Get("__name__")
		if !strings.HasPrefix(name, "DCGM_FI_") {
			st.drop("not_a_dcgm_field")
			continue
		}
		if IsBlank(v) {
			st.drop("blank")
			continue
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			st.drop("not_finite")
			continue
		}
		s := record.Sample{Field: -1, Link: -1}
		if f, factor, link, ok := telemetry.Canonical(name); ok {
			s.Field, v, s.Link = int16(telemetry.Index(f.Name)), v*factor, int16(link)
		} else {
			s.Name, s.Kind = name, telemetry.Gauge
			if types[name] == model.MetricTypeCounter {
				s.Kind = telemetry.Counter
			}
			st.PassedThrough++
		}
		s.Value = v
		gi, id := gpuOf(b, gpus, lset)
		s.GPU = gi
		if b.Resource.Host == "" {
			b.Resource.Host = firstNonEmpty(lset.Get(telemetry.LabelHostname), lset.Get(telemetry.LabelHostnameNew))
		}
		lset.Range(func(l labels.Label) {
			switch {
			case identityLabels[l.Name]:
			case l.Name == telemetry.LabelLink:
				if n, err := strconv.Atoi(l.Value); err == nil {
					s.Link = int16(n)
				}
			default:
				s.Extra = append(s.Extra, record.Label{Key: l.Name, Value: l.Value})
			}
		})
		if s.Field >= 0 && telemetry.Fields[s.Field].Name == telemetry.XIDErrors {
			s.Extra = nil // err_code and err_msg describe the event; the gauge is the code
			if v != 0 {
				b.Events = append(b.Events, record.Event{Time: now, GPU: gi, Kind: telemetry.GPUEventXID, Code: int64(v), Count: 1,
					Message: firstNonEmpty(lset.Get(telemetry.LabelErrMsg), nvmlsrc.XIDMessage(int(v)))})
			}
		}
		_ = id
		b.Samples = append(b.Samples, s)
		st.Samples++
	}
	return b, st, nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// gpuOf returns the batch index of the GPU the series belongs to.
func gpuOf(b *record.Batch, gpus map[string]int32, l labels.Labels) (int32, string) {
	uuid := l.Get(telemetry.LabelUUID)
	if uuid == "" {
		uuid = l.Get("uuid")
	}
	key := uuid + "/" + l.Get(telemetry.LabelMIGID)
	if key == "/" {
		return -1, ""
	}
	if i, ok := gpus[key]; ok {
		return i, key
	}
	i := int32(len(b.GPUs))
	b.GPUs = append(b.GPUs, record.GPU{
		Index: l.Get(telemetry.LabelGPU), UUID: uuid, PCIBusID: l.Get(telemetry.LabelPCIBusID), Device: l.Get(telemetry.LabelDevice),
		ModelName: l.Get(telemetry.LabelModelName), MIGInstance: l.Get(telemetry.LabelMIGID), MIGProfile: l.Get(telemetry.LabelMIGProfile),
		DriverVersion: l.Get(telemetry.LabelDriverVersion),
		Workload: record.Workload{Namespace: l.Get(telemetry.LabelNamespace), Pod: l.Get(telemetry.LabelPod),
			PodUID: l.Get(telemetry.LabelPodUID), Container: l.Get(telemetry.LabelContainer), Job: l.Get(telemetry.LabelJob)},
	})
	gpus[key] = i
	return i, key
}

// Source scrapes dcgm-exporter on an interval.
type Source struct {
	cfg    Config
	res    record.Resource
	client *http.Client
	log    *slog.Logger

	mu       sync.Mutex
	lastXID  map[string]int64
	errs     map[string]uint64
	lastStat Stats
}

// New returns a source; res supplies topology (and host, if the scrape has none).
func New(cfg Config, res record.Resource, log *slog.Logger) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Source{cfg: cfg, res: res, client: &http.Client{Timeout: cfg.Timeout}, log: log.With("source", "dcgm"),
		lastXID: map[string]int64{}, errs: map[string]uint64{}}, nil
}

// Name is "dcgm".
func (s *Source) Name() string { return "dcgm" }

// Errors returns scrape failures and dropped series by reason.
func (s *Source) Errors() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.errs)
}

// Scrape fetches and maps one scrape. XID events are reported only when the
// last-XID value of a GPU changes.
func (s *Source) Scrape(ctx context.Context, now time.Time) (*record.Batch, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		s.countErr("unreachable")
		return nil, fmt.Errorf("scrape %s: %w", s.cfg.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.countErr(fmt.Sprintf("http_%d", resp.StatusCode))
		return nil, fmt.Errorf("scrape %s: HTTP %d", s.cfg.URL, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		s.countErr("read")
		return nil, fmt.Errorf("scrape %s: %w", s.cfg.URL, err)
	}
	b, st, err := Parse(body, resp.Header.Get("Content-Type"), now)
	if err != nil {
		s.countErr("parse")
		return nil, err
	}
	res := s.res
	if res.Host == "" {
		res.Host = b.Resource.Host
	}
	b.Resource = &res
	s.mu.Lock()
	defer s.mu.Unlock()
	for reason, n := range st.Dropped {
		s.errs["dropped_"+reason] += uint64(n)
	}
	s.lastStat = st
	kept := b.Events[:0]
	for _, e := range b.Events {
		key := b.GPUs[e.GPU].UUID
		if s.lastXID[key] != e.Code {
			kept = append(kept, e)
		}
	}
	for i := range b.Samples {
		sm := &b.Samples[i]
		if sm.Field >= 0 && telemetry.Fields[sm.Field].Name == telemetry.XIDErrors && sm.GPU >= 0 {
			s.lastXID[b.GPUs[sm.GPU].UUID] = int64(sm.Value)
		}
	}
	b.Events = kept
	return b, nil
}

func (s *Source) countErr(reason string) {
	s.mu.Lock()
	s.errs[reason]++
	s.mu.Unlock()
}

// Run scrapes every interval until ctx ends; failed scrapes are logged
// (once per change of cause) and counted, and the next interval tries again.
func (s *Source) Run(ctx context.Context, sink record.Sink) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	lastErr := ""
	for {
		now := time.Now()
		b, err := s.Scrape(ctx, now)
		switch {
		case err != nil && err.Error() != lastErr:
			s.log.Warn("dcgm-exporter scrape failed", "err", err)
			lastErr = err.Error()
		case err == nil:
			if lastErr != "" {
				s.log.Info("dcgm-exporter scrape recovered")
				lastErr = ""
			}
			sink.Put(b)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
