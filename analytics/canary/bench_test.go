package canary

import (
	"testing"
	"time"
)

// benchObservation is a recommendation canary 10 minutes in at 1M
// requests/h: every rule and the drift report in force.
func benchObservation(b *testing.B) (*Judge, *Observation) {
	b.Helper()
	cfg, err := NewConfigForType(TypeRecommendation)
	if err != nil {
		b.Fatal(err)
	}
	j, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	s := Scenarios()[0]
	// 10 minutes of 278 requests/s, 5% to the canary.
	o := &Observation{Elapsed: 10 * time.Minute,
		Canary:   Counts{Latency: &Histogram{}, Predictions: make([]float64, PredBins)},
		Baseline: Counts{Latency: &Histogram{}, Predictions: make([]float64, PredBins)}}
	srv := newServer(s.Baseline)
	rng := newRand(1)
	srv.serve(rng, &o.Canary, 8340)
	srv.serve(rng, &o.Baseline, 158460)
	return j, o
}

// BenchmarkJudgeLook is the cost of one look: five rules, the drift PSI,
// the evidence.
func BenchmarkJudgeLook(b *testing.B) {
	j, o := benchObservation(b)
	var v Verdict
	b.ReportAllocs()
	for b.Loop() {
		j.Evaluate(o, &v)
	}
	if len(v.Evidence) != 6 {
		b.Fatalf("%d evidence lines", len(v.Evidence))
	}
}

// BenchmarkJudgeLookFresh is a look that builds a new Verdict (Judge).
func BenchmarkJudgeLookFresh(b *testing.B) {
	j, o := benchObservation(b)
	b.ReportAllocs()
	var v Verdict
	for b.Loop() {
		v = j.Judge(*o)
	}
	if v.Outcome == "" {
		b.Fatal("no verdict")
	}
}

// BenchmarkTrackerLook is a look of the Tracker 10 minutes into a
// recommendation canary at 1M requests/h: the test since the start and
// four restarts, each on its own counts.
func BenchmarkTrackerLook(b *testing.B) {
	j, _ := benchObservation(b)
	tr, err := NewDefaultTracker(j.Config())
	if err != nil {
		b.Fatal(err)
	}
	o := &Observation{
		Canary:   Counts{Latency: &Histogram{}, Predictions: make([]float64, PredBins)},
		Baseline: Counts{Latency: &Histogram{}, Predictions: make([]float64, PredBins)}}
	srv := newServer(Scenarios()[0].Baseline)
	rng := newRand(1)
	var v Verdict
	for k := range 4 {
		srv.serve(rng, &o.Canary, 2085)
		srv.serve(rng, &o.Baseline, 39615)
		o.Elapsed = time.Duration(k+1) * DefaultEpoch
		tr.Evaluate(o, &v)
	}
	b.ReportAllocs()
	for b.Loop() {
		tr.Evaluate(o, &v)
	}
	if v.Outcome == "" {
		b.Fatal("no verdict")
	}
}
