package alerting

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting/internal/labelmatch"
)

// Silence suppresses notifications for incidents whose labels match every
// matcher while it is in force: a maintenance window, or a known problem.
// Incidents are still tracked and stored; their notification attempts are
// recorded as silenced.
type Silence struct {
	// Matchers are "label=value", "label!=value", "label=~regex" or
	// "label!~regex", as in Alertmanager; regular expressions are anchored.
	Matchers []string  `yaml:"matchers"`
	Starts   time.Time `yaml:"starts"`
	Ends     time.Time `yaml:"ends"`
	Comment  string    `yaml:"comment"`
	parsed   []matcher
}

type matcher struct {
	name, value string
	re          *regexp.Regexp
	negate      bool
}

func parseMatcher(s string) (matcher, error) {
	for _, op := range []string{"!~", "=~", "!=", "="} {
		i := strings.Index(s, op)
		if i <= 0 {
			continue
		}
		m := matcher{name: strings.TrimSpace(s[:i]), value: strings.Trim(strings.TrimSpace(s[i+len(op):]), `"`), negate: op[0] == '!'}
		if strings.HasSuffix(op, "~") {
			re, err := labelmatch.Anchored(m.value)
			if err != nil {
				return m, fmt.Errorf("matcher %q: %w", s, err)
			}
			m.re = re
		}
		return m, nil
	}
	return matcher{}, fmt.Errorf("matcher %q: want label=value, label!=value, label=~re or label!~re", s)
}

func (m matcher) matches(labels map[string]string) bool {
	v := labels[m.name]
	ok := v == m.value
	if m.re != nil {
		ok = m.re.MatchString(v)
	}
	return ok != m.negate
}

// compile parses the matchers.
func (s *Silence) compile() error {
	var errs []error
	s.parsed = s.parsed[:0]
	if len(s.Matchers) == 0 {
		errs = append(errs, errors.New("no matchers (a silence must say what it silences)"))
	}
	for _, ms := range s.Matchers {
		m, err := parseMatcher(ms)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.parsed = append(s.parsed, m)
	}
	if !s.Ends.IsZero() && s.Ends.Before(s.Starts) {
		errs = append(errs, fmt.Errorf("ends %v is before starts %v", s.Ends, s.Starts))
	}
	return errors.Join(errs...)
}

// Active reports whether the silence covers labels at t.
func (s *Silence) Active(t time.Time, labels map[string]string) bool {
	if t.Before(s.Starts) || (!s.Ends.IsZero() && !t.Before(s.Ends)) {
		return false
	}
	for _, m := range s.parsed {
		if !m.matches(labels) {
			return false
		}
	}
	return len(s.parsed) > 0
}
