package cost

import (
	"slices"
	"testing"
	"time"
)

func TestWidthChanges(t *testing.T) {
	d0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	day := func(i int) time.Time { return d0.AddDate(0, 0, i) }
	for _, tc := range []struct {
		name string
		ws   []jobWidth
		want []string // job@day
	}{
		{"steady", []jobWidth{{day(0), "a", 4}, {day(1), "a", 4.4}, {day(2), "a", 3.7}}, nil},
		{"widened 2.5x", []jobWidth{{day(0), "a", 4}, {day(1), "a", 10}, {day(2), "a", 10}}, []string{"a@1"}},
		{"narrowed", []jobWidth{{day(0), "a", 8}, {day(1), "a", 4}}, []string{"a@1"}},
		{"a gap day is no comparison", []jobWidth{{day(0), "a", 4}, {day(2), "a", 10}}, nil},
		{"another job is no comparison", []jobWidth{{day(0), "a", 4}, {day(1), "b", 10}}, nil},
		{"all idle (width 0) is no change", []jobWidth{{day(0), "a", 4}, {day(1), "a", 0}, {day(2), "a", 4}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, c := range widthChanges(tc.ws) {
				if c.Model != "" || c.What == "" {
					t.Errorf("change %+v: want a job's, with what changed", c)
				}
				got = append(got, c.Job+"@"+string(rune('0'+int(c.Day.Sub(d0).Hours()/24))))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("changes %v, want %v", got, tc.want)
			}
		})
	}
}

// Idle GPUs a job holds do not widen it: 4 GPUs working on day 0; on day
// 1 the same 4 working and 3 more held idle (a leak) is no change; on day
// 2, 10 working is one.
func TestJobWidthsOfHeldHours(t *testing.T) {
	d0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var hours []HeldHour
	add := func(day, gpus int, sm float64) {
		for g := range gpus {
			for h := range 24 {
				hours = append(hours, HeldHour{Hour: d0.AddDate(0, 0, day).Add(time.Duration(h) * time.Hour),
					GPU: string(rune('A'+g)) + string(rune('a'+int(sm*10))), Tags: Tags{Job: "sweep"}, SMActive: sm})
			}
		}
	}
	add(0, 4, 0.9)
	add(1, 4, 0.9)
	add(1, 3, 0.001)
	add(2, 10, 0.9)
	got := jobWidthsOf(hours)
	if len(got) != 1 || got[0].Job != "sweep" || !got[0].Day.Equal(d0.AddDate(0, 0, 2)) || got[0].What != "working width 4 → 10 GPUs" {
		t.Errorf("changes %+v, want one on day 2: working width 4 → 10 GPUs", got)
	}
}
