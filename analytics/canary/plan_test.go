package canary

import (
	"math"
	"strings"
	"testing"
	"time"
)

// TestPlanDocumentNumbers reproduces design document 003: equation 5's
// worked example (10,000 samples at 1M requests/h: 1 h at 1%, 12 min at
// 5%) and equation 6's (29,792 and 620,800 samples per variant with the
// document's rounded z of 1.96 + 0.84; the exact quantiles give 0.1% more).
func TestPlanDocumentNumbers(t *testing.T) {
	c := NewDefaultPlanConfig()
	c.RequestsPerHour, c.Samples, c.Stages = 1e6, 10000, []float64{0.01, 0.05}
	p, err := MakePlan(c)
	if err != nil {
		t.Fatal(err)
	}
	if p.Stages[0].Duration != time.Hour || p.Stages[1].Duration != 12*time.Minute {
		t.Errorf("stage durations %v, %v; want 1h, 12m", p.Stages[0].Duration, p.Stages[1].Duration)
	}
	for _, tc := range []struct{ p, delta, want float64 }{
		{0.05, 0.005, 29792},
		{0.01, 0.0005, 620800},
	} {
		got := SampleSize(tc.p, tc.delta, 0.05, 0.8)
		if math.Abs(got-tc.want)/tc.want > 0.002 {
			t.Errorf("SampleSize(%g, %g) = %.0f, want %.0f within 0.2%%", tc.p, tc.delta, got, tc.want)
		}
	}
}

func TestPlanSequential(t *testing.T) {
	c := NewDefaultPlanConfig()
	c.RequestsPerHour, c.BaselineRate, c.Effect = 1e6, 0.05, 0.005
	p, err := MakePlan(c)
	if err != nil {
		t.Fatal(err)
	}
	if p.Samples != 29826 {
		t.Errorf("samples %v, want 29826 (equation 6 with exact quantiles)", p.Samples)
	}
	for i, s := range p.Stages {
		// The always-valid test pays for peeking: more samples than the
		// fixed test at a small stage, where the baseline is large.
		if !(s.SequentialSamples > p.Samples) || !(s.SequentialSamples < 4*p.Samples) {
			t.Errorf("stage %v: sequential samples %v vs fixed %v", s.Share, s.SequentialSamples, p.Samples)
		}
		if i > 0 && !(s.SequentialDuration < p.Stages[i-1].SequentialDuration) {
			t.Errorf("stage %v lasts %v, not shorter than the stage before", s.Share, s.SequentialDuration)
		}
	}
}

func TestPlanValidate(t *testing.T) {
	c := NewDefaultPlanConfig()
	c.Stages = []float64{0, 2}
	_, err := MakePlan(c)
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"requests per hour", "stage 0", "stage 2", "baseline rate", "effect"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}
