package canary

import "time"

// literal is the comparison judge for the scoring: design document 003's
// listing 4 read literally, as a fixed-window rule re-evaluated at every
// look. Over the trailing window of each rule (5 or 15 minutes, or since
// the start while shorter) it fails the canary when the rule's minimum
// samples are there and the point estimate is past the threshold: error
// rate up by more than the threshold, p99 above ratio × the baseline's,
// engagement down by more than the threshold. No test, no interval.
type literal struct {
	cfg  Config
	past []snap
}

type snap struct {
	at   time.Duration
	c, b Counts
}

func copyCounts(c Counts) Counts {
	var d Counts
	d.Latency = &Histogram{}
	copyInto(&d, &c)
	d.Predictions, d.Features = nil, nil
	return d
}

// minus returns a − b, b being an earlier snapshot of the same counts.
func minus(a, b Counts) Counts {
	d := Counts{Latency: &Histogram{}}
	diffCounts(&d, &a, &b)
	return d
}

func (l *literal) window(o *Observation, w time.Duration) (c, b Counts) {
	c, b = o.Canary, o.Baseline
	for i := len(l.past) - 1; i >= 0; i-- {
		if l.past[i].at <= o.Elapsed-w {
			return minus(c, l.past[i].c), minus(b, l.past[i].b)
		}
	}
	return c, b
}

func (l *literal) evaluate(o *Observation, v *Verdict) {
	v.Outcome, v.Evidence = Inconclusive, v.Evidence[:0]
	fail := func(rule string) {
		v.Outcome = Fail
		v.Evidence = append(v.Evidence, Evidence{Rule: rule, Outcome: Fail})
	}
	if r := l.cfg.ErrorRate; r.Enabled {
		c, b := l.window(o, r.Window)
		if c.Requests >= r.MinSamples && b.Requests > 0 &&
			float64(c.Errors)/float64(c.Requests)-float64(b.Errors)/float64(b.Requests) > r.Threshold {
			fail(RuleErrorRate)
		}
	}
	if r := l.cfg.LatencyP99; r.Enabled {
		c, b := l.window(o, r.Window)
		if c.Latency.Count() >= r.MinSamples && b.Latency.Count() > 0 && c.Latency.Quantile(0.99) > r.Ratio*b.Latency.Quantile(0.99) {
			fail(RuleLatencyP99)
		}
	}
	if r := l.cfg.Engagement; r.Enabled {
		c, b := l.window(o, r.Window)
		if c.Trials >= r.MinSamples && b.Successes > 0 &&
			(float64(c.Successes)/float64(c.Trials))/(float64(b.Successes)/float64(b.Trials))-1 < -r.Threshold {
			fail(RuleEngagement)
		}
	}
	l.past = append(l.past, snap{at: o.Elapsed, c: copyCounts(o.Canary), b: copyCounts(o.Baseline)})
}
