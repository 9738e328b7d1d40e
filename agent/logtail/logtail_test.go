package logtail_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/logtail"
	"github.com/fleetwatch/fleetwatch/agent/record"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func inferenceLine(id int) string {
	return fmt.Sprintf(`{"ts":"2026-11-23T11:59:00Z","model":"fraud","model_version":"v3","request_id":"r-%d","latency_ms":12.5,"features":{"amount":%d,"country":"DE","age":null},"prediction":0.9}`, id, id)
}

type env struct {
	t   *testing.T
	dir string
	cfg logtail.Config
}

func newEnv(t *testing.T) *env {
	dir := t.TempDir()
	cfg := logtail.NewDefaultConfig(filepath.Join(dir, "state"))
	cfg.Paths = []string{filepath.Join(dir, "*.log")}
	return &env{t: t, dir: dir, cfg: cfg}
}

func (e *env) tailer() *logtail.Tailer {
	e.t.Helper()
	tl, err := logtail.New(e.cfg, record.Resource{Host: "serve-1"}, quiet)
	if err != nil {
		e.t.Fatal(err)
	}
	return tl
}

func (e *env) append(name string, lines ...string) {
	e.t.Helper()
	f, err := os.OpenFile(filepath.Join(e.dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		fmt.Fprintln(f, l)
	}
}

// poll polls once, commits, and returns the request ids read.
func poll(t *testing.T, tl *logtail.Tailer, commit bool) []string {
	t.Helper()
	b := tl.Poll(now)
	if b == nil {
		return nil
	}
	var ids []string
	for _, in := range b.Inferences {
		ids = append(ids, in.RequestID)
	}
	if commit && b.Commit != nil {
		b.Commit()
	}
	return ids
}

func wantIDs(t *testing.T, got []string, from, to int) {
	t.Helper()
	if len(got) != to-from {
		t.Fatalf("read %d lines %v, want r-%d..r-%d", len(got), got, from, to-1)
	}
	for i, id := range got {
		if id != fmt.Sprintf("r-%d", from+i) {
			t.Fatalf("line %d is %s, want r-%d", i, id, from+i)
		}
	}
}

func TestReadsLinesAndKinds(t *testing.T) {
	e := newEnv(t)
	e.append("a.log", inferenceLine(0),
		fmt.Sprintf(`{"type":"label","ts":%d.5,"model":"fraud","request_id":"r-0","label":"fraud","label_value":1}`, now.Unix()-30),
		`{"type":"deployment","model":"fraud","model_version":"v4","previous_version":"v3","change":"canary"}`)
	tl := e.tailer()
	b := tl.Poll(now)
	if b == nil || len(b.Inferences) != 1 || len(b.Labels) != 1 || len(b.Deployments) != 1 {
		t.Fatalf("batch %+v", b)
	}
	in := b.Inferences[0]
	if in.Model != "fraud" || in.ModelVersion != "v3" || in.LatencyMs != 12.5 || !in.HasPrediction || in.SampleRate != 1 || in.Status != "ok" {
		t.Fatalf("inference %+v", in)
	}
	if len(in.Features) != 3 || in.Features[0].Name != "age" || !in.Features[0].Missing || in.Features[1].Num != 0 ||
		!in.Features[2].IsCat || in.Features[2].Str != "DE" {
		t.Fatalf("features %+v", in.Features)
	}
	l := b.Labels[0]
	if l.Time != time.Unix(now.Unix()-30, 5e8).UTC() || !l.HasValue || l.LabelValue != 1 {
		t.Fatalf("label %+v", l)
	}
	if b.Deployments[0].Time != now || b.Deployments[0].Change != "canary" {
		t.Fatalf("deployment without ts gets the read time: %+v", b.Deployments[0])
	}
	if b.Resource.Host != "serve-1" || b.Resource.Service != "model-server" {
		t.Fatalf("resource %+v", b.Resource)
	}
}

// Outcome lines (issue 20 item 1): success by default, an explicit miss,
// a value; sampled like labels, with their requests; one without a request
// id is dead-lettered.
func TestOutcomeLines(t *testing.T) {
	e := newEnv(t)
	e.cfg.SampleRate = map[string]float64{"ranker": 0.5}
	var lines []string
	for i := 0; i < 400; i++ {
		lines = append(lines, fmt.Sprintf(`{"model":"ranker","model_version":"v8","request_id":"r-%d","latency_ms":3}`, i),
			fmt.Sprintf(`{"type":"outcome","model":"ranker","model_version":"v8","request_id":"r-%d","outcome":"click"}`, i))
	}
	lines = append(lines, `{"type":"outcome","model":"other","request_id":"o-1","success":false,"value":2.5}`,
		`{"type":"outcome","model":"other","request_id":"o-2"}`,
		`{"type":"outcome","model":"other"}`)
	e.append("a.log", lines...)
	tl := e.tailer()
	b := tl.Poll(now)
	kept := map[string]bool{}
	for _, in := range b.Inferences {
		kept[in.RequestID] = true
	}
	ranker := 0
	for _, o := range b.Outcomes {
		switch o.RequestID {
		case "o-1":
			if o.Success || !o.HasValue || o.Value != 2.5 || o.Outcome != "" {
				t.Errorf("explicit miss %+v", o)
			}
		case "o-2":
			if !o.Success || o.HasValue {
				t.Errorf("default outcome %+v", o)
			}
		default:
			ranker++
			if !kept[o.RequestID] || o.Outcome != "click" || !o.Success || o.ModelVersion != "v8" || o.Time != now {
				t.Errorf("outcome %+v (its request kept: %v)", o, kept[o.RequestID])
			}
		}
	}
	if ranker != len(b.Inferences) || ranker < 150 || ranker > 250 {
		t.Errorf("%d ranker outcomes kept for %d requests kept of 400 at rate 0.5", ranker, len(b.Inferences))
	}
	if st := tl.Stats(); st.Malformed[logtail.ReasonMissingRequest] != 1 {
		t.Errorf("malformed %v, want one missing_request_id (the outcome without one)", st.Malformed)
	}
}

func TestUnfinishedLineWaits(t *testing.T) {
	e := newEnv(t)
	line := inferenceLine(0)
	f, _ := os.Create(filepath.Join(e.dir, "a.log"))
	f.WriteString(line[:20])
	tl := e.tailer()
	if got := poll(t, tl, true); len(got) != 0 {
		t.Fatalf("read a half line: %v", got)
	}
	f.WriteString(line[20:] + "\n")
	f.Close()
	wantIDs(t, poll(t, tl, true), 0, 1)
}

func TestRotationByRenameLosesNothing(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "a.log")
	old, _ := os.Create(path)
	for i := 0; i < 5; i++ {
		fmt.Fprintln(old, inferenceLine(i))
	}
	tl := e.tailer()
	wantIDs(t, poll(t, tl, true), 0, 5)
	for i := 5; i < 8; i++ {
		fmt.Fprintln(old, inferenceLine(i))
	}
	// logrotate: rename, then the server reopens a new file; it also wrote
	// two more lines to the old one just before switching.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	for i := 8; i < 10; i++ {
		fmt.Fprintln(old, inferenceLine(i))
	}
	old.Close()
	e.append("a.log", inferenceLine(10), inferenceLine(11))
	got := poll(t, tl, true)
	got = append(got, poll(t, tl, true)...)
	wantIDs(t, sortIDs(got), 5, 12)
	if tl.Stats().Rotations != 1 {
		t.Errorf("rotations %d", tl.Stats().Rotations)
	}
}

func sortIDs(ids []string) []string {
	var n []int
	for _, id := range ids {
		var v int
		fmt.Sscanf(id, "r-%d", &v)
		n = append(n, v)
	}
	for i := range n {
		for j := i + 1; j < len(n); j++ {
			if n[j] < n[i] {
				n[i], n[j] = n[j], n[i]
			}
		}
	}
	out := make([]string, len(n))
	for i, v := range n {
		out[i] = fmt.Sprintf("r-%d", v)
	}
	return out
}

func TestTruncationStartsOver(t *testing.T) {
	e := newEnv(t)
	e.append("a.log", inferenceLine(0), inferenceLine(1), inferenceLine(2))
	tl := e.tailer()
	wantIDs(t, poll(t, tl, true), 0, 3)
	if err := os.Truncate(filepath.Join(e.dir, "a.log"), 0); err != nil {
		t.Fatal(err)
	}
	e.append("a.log", inferenceLine(3))
	wantIDs(t, poll(t, tl, true), 3, 4)
	if tl.Stats().Truncations != 1 {
		t.Errorf("truncations %d", tl.Stats().Truncations)
	}
}

func TestRestartNeitherLosesNorRepeats(t *testing.T) {
	e := newEnv(t)
	e.append("a.log", inferenceLine(0), inferenceLine(1))
	e.append("b.log", inferenceLine(100))
	tl := e.tailer()
	if got := poll(t, tl, true); len(got) != 3 {
		t.Fatalf("first poll %v", got)
	}
	e.append("a.log", inferenceLine(2))
	// A batch that never reached the buffer (no Commit) is read again.
	if got := poll(t, tl, false); len(got) != 1 {
		t.Fatalf("second poll %v", got)
	}
	tl2 := e.tailer()
	wantIDs(t, poll(t, tl2, true), 2, 3)
	e.append("a.log", inferenceLine(3))
	tl3 := e.tailer()
	wantIDs(t, poll(t, tl3, true), 3, 4)
	if got := poll(t, tl3, true); len(got) != 0 {
		t.Fatalf("repeated %v", got)
	}
}

func TestMalformedLinesAreDeadLetteredAndCounted(t *testing.T) {
	e := newEnv(t)
	e.cfg.MaxLineBytes = 2048
	long := `{"model":"fraud","request_id":"x","features":{"blob":"` + strings.Repeat("a", 5000) + `"}}`
	e.append("a.log",
		inferenceLine(0),
		`{not json`,
		`{"request_id":"r-x"}`,
		`{"model":"fraud"}`,
		`{"model":"fraud","request_id":"r","ts":"yesterday"}`,
		`{"model":"fraud","request_id":"r","ts":"2020-01-01T00:00:00Z"}`,
		`{"model":"fraud","request_id":"r","latency_ms":-3}`,
		`{"model":"fraud","request_id":"r","features":{"x":[1,2]}}`,
		`{"type":"metric","model":"fraud"}`,
		long,
		"",
		inferenceLine(1))
	tl := e.tailer()
	wantIDs(t, poll(t, tl, true), 0, 2)
	want := map[string]uint64{logtail.ReasonInvalidJSON: 1, logtail.ReasonMissingModel: 1, logtail.ReasonMissingRequest: 1,
		logtail.ReasonBadTimestamp: 1, logtail.ReasonTimeOutOfRange: 1, logtail.ReasonBadLatency: 1, logtail.ReasonBadFeature: 1,
		logtail.ReasonUnknownType: 1, logtail.ReasonLineTooLong: 1}
	st := tl.Stats()
	for r, n := range want {
		if st.Malformed[r] != n {
			t.Errorf("%s: %d, want %d (all: %v)", r, st.Malformed[r], n, st.Malformed)
		}
	}
	f, err := os.Open(e.cfg.DeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reasons := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct {
			File, Reason, Error, Line string
			Offset                    int64
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.File == "" || rec.Error == "" || rec.Line == "" {
			t.Errorf("dead letter lacks detail: %+v", rec)
		}
		reasons[rec.Reason]++
	}
	if len(reasons) != len(want) {
		t.Errorf("dead-letter reasons %v", reasons)
	}
}

func TestSamplingKeepsLabelsWithTheirRequests(t *testing.T) {
	e := newEnv(t)
	e.cfg.SampleRate = map[string]float64{"fraud": 0.25}
	var lines []string
	for i := 0; i < 4000; i++ {
		lines = append(lines, inferenceLine(i), fmt.Sprintf(`{"type":"label","model":"fraud","request_id":"r-%d","label":"ok"}`, i))
	}
	lines = append(lines, `{"model":"other","request_id":"o-1"}`)
	e.append("a.log", lines...)
	tl := e.tailer()
	b := tl.Poll(now)
	kept := map[string]bool{}
	fraud := 0
	for _, in := range b.Inferences {
		if in.Model == "fraud" {
			fraud++
			kept[in.RequestID] = true
			if in.SampleRate != 0.25 {
				t.Fatalf("sample rate not recorded: %v", in.SampleRate)
			}
		} else if in.SampleRate != 1 {
			t.Fatalf("unlisted model sampled at %v", in.SampleRate)
		}
	}
	// Binomial(4000, 0.25): mean 1000, sd 27.
	if math.Abs(float64(fraud)-1000) > 4*27 {
		t.Fatalf("kept %d of 4000 at rate 0.25", fraud)
	}
	if len(b.Labels) != fraud {
		t.Fatalf("%d labels kept for %d requests", len(b.Labels), fraud)
	}
	for _, l := range b.Labels {
		if !kept[l.RequestID] {
			t.Fatalf("label %s kept without its request", l.RequestID)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := logtail.Config{Paths: []string{"[bad"}, DefaultSampleRate: 2, SampleRate: map[string]float64{"m": 0}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"[bad", "poll", "state_file", "default_sample_rate", "sample_rate.m", "max_line_bytes", "max_age"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

// feature_updated_at is forwarded as written, sorted by feature: numbers as
// Unix seconds, strings as they are, anything else as its JSON text, for
// the collector to validate and count; a bad entry never loses the line.
func TestFeatureUpdatedAtIsForwarded(t *testing.T) {
	line := `{"model":"m","request_id":"r","feature_updated_at":{"b":"2026-11-20T00:00:00Z","a":1763596800.5,"c":{"x":1},"d":true}}`
	item, err := logtail.ParseLine([]byte(line), now, logtail.Window{Past: time.Hour, Future: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%+v", item.Inference.FeatureUpdatedAt)
	want := fmt.Sprintf("%+v", []record.FeatureUpdate{{Name: "a", Unix: 1763596800.5}, {Name: "b", Str: "2026-11-20T00:00:00Z", IsStr: true},
		{Name: "c", Str: `{"x":1}`, IsStr: true}, {Name: "d", Str: "true", IsStr: true}})
	if got != want {
		t.Errorf("feature updates %s, want %s", got, want)
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add([]byte(inferenceLine(1)))
	f.Add([]byte(`{"type":"label","model":"m","request_id":"r","label_value":1e308}`))
	f.Add([]byte(`{"model":"m","request_id":"r","ts":-1}`))
	f.Add([]byte(`{"model":"m","request_id":"r","features":{"a":"","b":true,"c":1e-400}}`))
	f.Add([]byte(`{"model":"m","request_id":"r","feature_updated_at":{"a":1,"b":"2026-11-20T00:00:00Z","c":{"x":1},"d":null}}`))
	w := logtail.Window{Past: 24 * time.Hour, Future: time.Hour}
	f.Fuzz(func(t *testing.T, data []byte) {
		item, err := logtail.ParseLine(data, now, w)
		if err != nil {
			var me *logtail.MalformedError
			if !errors.As(err, &me) || me.Reason == "" {
				t.Fatalf("error %v is not a MalformedError with a reason", err)
			}
			return
		}
		n := 0
		for _, set := range []bool{item.Inference != nil, item.Label != nil, item.Deployment != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d items from one line", n)
		}
		if in := item.Inference; in != nil {
			if in.Model == "" || in.RequestID == "" || in.Time.Before(now.Add(-w.Past)) || in.Time.After(now.Add(w.Future)) {
				t.Fatalf("accepted %+v", in)
			}
		}
	})
}

func BenchmarkParseLine(b *testing.B) {
	line := []byte(inferenceLine(42))
	w := logtail.Window{Past: time.Hour, Future: time.Hour}
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for i := 0; i < b.N; i++ {
		if _, err := logtail.ParseLine(line, now, w); err != nil {
			b.Fatal(err)
		}
	}
}
