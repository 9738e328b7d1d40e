// Package promexp exposes the latest GPU samples in Prometheus format with
// dcgm-exporter's metric names and labels, so a Prometheus that scraped
// dcgm-exporter can scrape the agent instead and keep its dashboards and
// alert rules. A series that stops being reported (a GPU that is gone) is
// dropped after a staleness period.
package promexp

import (
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetwatch/fleetwatch/agent/record"
	"github.com/fleetwatch/fleetwatch/telemetry"
)

// Exporter is a prometheus.Collector of the latest value of every series.
type Exporter struct {
	staleAfter time.Duration
	now        func() time.Time

	mu     sync.Mutex
	series map[uint64]*entry // by hash of name and labels
	descs  map[string]*prometheus.Desc
}

type entry struct {
	name   string
	kind   telemetry.Kind
	labels []string // alternating name, value; sorted by name
	value  float64
	seen   time.Time
}

// New returns an exporter that forgets series not updated for staleAfter.
func New(staleAfter time.Duration) *Exporter {
	return &Exporter{staleAfter: staleAfter, now: time.Now, series: map[uint64]*entry{}, descs: map[string]*prometheus.Desc{}}
}

// Observe records the samples of a batch.
func (e *Exporter) Observe(b *record.Batch) {
	if len(b.Samples) == 0 {
		return
	}
	host := ""
	if b.Resource != nil {
		host = b.Resource.Host
	}
	gpuLabels := make([][]string, len(b.GPUs))
	for i := range b.GPUs {
		gpuLabels[i] = labelsOf(&b.GPUs[i], host)
	}
	seen := e.now()
	gpuHash := make([]uint64, len(gpuLabels))
	for i, ls := range gpuLabels {
		gpuHash[i] = hashPairs(0, ls)
	}
	hostHash := hashPairs(0, []string{telemetry.LabelHostname, host})
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range b.Samples {
		s := &b.Samples[i]
		var ls []string
		h := hostHash
		if s.GPU >= 0 && int(s.GPU) < len(gpuLabels) {
			ls, h = gpuLabels[s.GPU], gpuHash[s.GPU]
		} else if host != "" {
			ls = []string{telemetry.LabelHostname, host}
		}
		var extra []string
		if s.Link >= 0 || len(s.Extra) > 0 {
			extra = extraLabels(s)
			h = hashPairs(h, extra)
		}
		name := s.MetricName()
		k := xxhash.Sum64String(name) ^ h*0x9e3779b97f4a7c15
		en, ok := e.series[k]
		if !ok {
			if extra != nil {
				ls = append(append([]string(nil), ls...), extra...)
				sortPairs(ls)
			}
			en = &entry{name: name, kind: s.MetricKind(), labels: ls}
			e.series[k] = en
		}
		en.value, en.seen = s.Value, seen
	}
}

// hashPairs folds label pairs into h (order-sensitive; callers keep an order).
func hashPairs(h uint64, pairs []string) uint64 {
	d := xxhash.New()
	var seed [8]byte
	for i := range seed {
		seed[i] = byte(h >> (8 * i))
	}
	_, _ = d.Write(seed[:])
	for _, p := range pairs {
		_, _ = d.WriteString(p)
		_, _ = d.Write([]byte{0})
	}
	return d.Sum64()
}

func extraLabels(s *record.Sample) []string {
	var out []string
	if s.Link >= 0 {
		out = append(out, telemetry.LabelLink, strconv.Itoa(int(s.Link)))
	}
	for _, l := range s.Extra {
		if validLabelName(l.Key) {
			out = append(out, l.Key, l.Value)
		}
	}
	return out
}

func validLabelName(s string) bool {
	if s == "" || strings.HasPrefix(s, "__") {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// labelsOf gives dcgm-exporter's labels of a GPU. The identity labels are
// always present (as dcgm-exporter emits them); the driver version, workload
// and MIG labels only when set.
func labelsOf(g *record.GPU, host string) []string {
	ls := []string{
		telemetry.LabelGPU, g.Index, telemetry.LabelUUID, g.UUID, telemetry.LabelPCIBusID, g.PCIBusID,
		telemetry.LabelDevice, g.Device, telemetry.LabelModelName, g.ModelName, telemetry.LabelHostname, host,
	}
	opt := [][2]string{{telemetry.LabelDriverVersion, g.DriverVersion}, {telemetry.LabelMIGID, g.MIGInstance}, {telemetry.LabelMIGProfile, g.MIGProfile}}
	for _, o := range g.Workload.Labels(opt) {
		if o[1] != "" {
			ls = append(ls, o[0], o[1])
		}
	}
	sortPairs(ls)
	return ls
}

type pairs []string

func (p pairs) Len() int           { return len(p) / 2 }
func (p pairs) Less(i, j int) bool { return p[2*i] < p[2*j] }
func (p pairs) Swap(i, j int) {
	p[2*i], p[2*j] = p[2*j], p[2*i]
	p[2*i+1], p[2*j+1] = p[2*j+1], p[2*i+1]
}

func sortPairs(ls []string) { sort.Sort(pairs(ls)) }

// Describe sends nothing: the exporter is an unchecked collector, since the
// label sets of a metric family vary (per-link series, MIG instances).
func (e *Exporter) Describe(chan<- *prometheus.Desc) {}

// Collect emits every fresh series and forgets stale ones.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cutoff := e.now().Add(-e.staleAfter)
	for k, en := range e.series {
		if en.seen.Before(cutoff) {
			delete(e.series, k)
			continue
		}
		names := make([]string, 0, len(en.labels)/2+2)
		values := make([]string, 0, len(en.labels)/2+2)
		for i := 0; i+1 < len(en.labels); i += 2 {
			names = append(names, en.labels[i])
			values = append(values, en.labels[i+1])
		}
		if en.name == telemetry.XIDErrors {
			// As dcgm-exporter: the last XID and its meaning as labels. They
			// follow the value, so the GPU keeps one series.
			code, msg := xidLabels(en.value)
			names = append(names, telemetry.LabelErrCode, telemetry.LabelErrMsg)
			values = append(values, code, msg)
		}
		dk := en.name + "\x00" + strings.Join(names, ",")
		desc, ok := e.descs[dk]
		if !ok {
			help := en.name
			if f, ok := telemetry.Lookup(en.name); ok {
				help = f.Help
			}
			desc = prometheus.NewDesc(en.name, help, names, nil)
			e.descs[dk] = desc
		}
		vt := prometheus.GaugeValue
		if en.kind == telemetry.Counter {
			vt = prometheus.CounterValue
		}
		m, err := prometheus.NewConstMetric(desc, vt, en.value, values...)
		if err != nil {
			continue
		}
		ch <- m
	}
}

// xidLabels are err_code and err_msg of a last-XID value.
func xidLabels(v float64) (code, msg string) {
	if v == 0 {
		return "0", "No Error"
	}
	return strconv.FormatFloat(v, 'f', -1, 64), telemetry.XID(int(v)).Meaning
}

// Series is the number of series held.
func (e *Exporter) Series() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.series)
}
