package drift

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// SequentialConfig sets the CUSUM that accumulates evidence of drift
// across windows.
type SequentialConfig struct {
	// K is the reference value and H the decision interval of the CUSUM on
	// the probit of the per-window p-value (standard normal with no shift).
	K, H float64
	// MinShift is the smallest mean excess of PSI over its no-shift mean,
	// across the windows of the current run, worth raising: it keeps a
	// real but negligible shift on a busy model from alarming.
	MinShift float64
}

// NewDefaultSequentialConfig returns k = 0.5, h = 8 and a minimum shift of
// 0.05 (half the investigate band). With no shift and calibrated p-values the
// per-window probit is N(0, 1), and a one-sided CUSUM with k = 0.5, h = 8 has
// an in-control average run length of about 2·10⁴ windows (Siegmund's
// approximation; measured in TestSequentialFalseAlarmRate): about one false
// alarm per series every 70 days at 5-minute windows, before the MinShift gate
// removes nearly all of those.
func NewDefaultSequentialConfig() SequentialConfig {
	return SequentialConfig{K: 0.5, H: 8, MinShift: 0.05}
}

// Validate reports every problem at once.
func (c SequentialConfig) Validate() error {
	var errs []error
	if !(c.K >= 0) {
		errs = append(errs, fmt.Errorf("cusum k %v: want >= 0", c.K))
	}
	if !(c.H > 0) {
		errs = append(errs, fmt.Errorf("cusum h %v: want > 0", c.H))
	}
	if !(c.MinShift >= 0) {
		errs = append(errs, fmt.Errorf("min_shift %v: want >= 0", c.MinShift))
	}
	return errors.Join(errs...)
}

// CUSUM is the sequential state of one profiled column. The zero value is
// a fresh detector.
type CUSUM struct {
	// S is the CUSUM statistic; Run the windows since it was last 0;
	// Excess the sum of PSI − NullMean over those windows.
	S      float64
	Run    int
	Excess float64
}

// maxProbit bounds one window's contribution: a p-value of 1e-15 or less
// counts like 1e-15, so one extreme window cannot carry the CUSUM alone
// (that is the per-window test's job).
const maxProbit = 7.9

// Update adds one window's result and reports whether the CUSUM alarms:
// S ≥ H with the run's mean PSI excess at least MinShift. Windows without a
// test (no p-value) leave the state unchanged.
func (c *CUSUM) Update(r Result, cfg SequentialConfig) bool {
	if r.Method == MethodNone {
		return false
	}
	p := min(max(r.PValue, 1e-300), 1)
	u := min(distuv.UnitNormal.Quantile(1-p), maxProbit)
	if math.IsInf(u, -1) {
		u = -maxProbit
	}
	c.S = max(0, c.S+u-cfg.K)
	if c.S == 0 {
		c.Run, c.Excess = 0, 0
		return false
	}
	c.Run++
	c.Excess += r.PSI - r.NullMean
	return c.S >= cfg.H && c.Excess/float64(c.Run) >= cfg.MinShift
}
