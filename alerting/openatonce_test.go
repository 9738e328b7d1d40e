package alerting_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/alerting"
	"github.com/fleetwatch/fleetwatch/internal/testsupport/fixture"
)

// A definitive event (a critical detection of an open_at_once class, such
// as an uncorrectable ECC error) pages in its first window, where a
// critical statistic of another class waits open_after windows; with the
// class taken out of open_at_once the event waits too.
func TestDefinitiveEventsPageInTheirFirstWindow(t *testing.T) {
	gpu := testFleet.Select(func(g fixture.GPU) bool { return g.Rack == "rack-01" })[:1]
	hard := fixture.Thermal("health", "gpu_hard_fault", "critical", t0, gpu)
	statistic := fixture.Thermal("health", "thermal", "critical", t0, gpu)
	for _, c := range []struct {
		name       string
		hard       bool
		atOnce     []string
		wantWindow int
	}{
		{"hard fault, default", true, nil, 0},
		{"critical statistic, default", false, nil, 1},
		{"hard fault, open_at_once empty", true, []string{}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := alerting.NewDefaultConfig()
			if c.atOnce != nil {
				cfg.Lifecycle.OpenAtOnce = c.atOnce
			}
			dets := statistic
			if c.hard {
				dets = hard
			}
			p := &pages{}
			m := newManager(t, cfg, alerting.Deps{Inventory: testFleet.Inventory(), Notifier: p})
			paged := -1
			for i := 0; i < 3 && paged < 0; i++ {
				feed(t, m, "health", 30*time.Second, i, 1, always, dets)
				if slices.ContainsFunc(p.lines(), func(l string) bool { return strings.HasPrefix(l, "trigger ") }) {
					paged = i
				}
			}
			if paged != c.wantWindow {
				t.Errorf("paged in window %d, want %d: %v", paged, c.wantWindow, p.lines())
			}
		})
	}
}
