package scoring

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/sim"
	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/fleet"
)

// Page is one page: an incident's trigger notification, with the incident
// as it stands at the end of the run (its evidence says what it was about).
type Page struct {
	Time     time.Time
	Incident incident.Incident
}

// CauseScore is what one injected fault paged.
type CauseScore struct {
	Fault, Type string
	// Level is the fault's level in the ground truth; WantLevel the
	// incident level that explains it (a feature pipeline's faults page
	// their upstream).
	Level, WantLevel string
	// Pages counts the triggers of incidents whose evidence matches the
	// fault; Levels are those incidents' levels, in page order.
	Pages  int
	Levels []string
	// LevelOK: the fault paged, and every page about it came at WantLevel.
	LevelOK bool
	// Delay runs from the fault's start to its first page.
	Delay time.Duration
}

// PageReport scores the pages of a run against its ground truth.
type PageReport struct {
	Causes []CauseScore
	// Pages is every page of the run; Explained those that match a fault.
	Pages, Explained int
	// Paged counts the faults that paged at least once, LevelOK those
	// whose pages all came at the right level.
	Paged, LevelOK int
	// Unexplained lists the pages that match no fault (by incident key and
	// time).
	Unexplained []string
}

// wantLevel is the incident level that explains a fault at level l.
func wantLevel(l string) string {
	if l == "pipeline" {
		return string(incident.LevelUpstream)
	}
	return l
}

// Pages matches pages against truths: a page is about a fault when any of
// its incident's evidence is (the same place, seen while the fault lasted
// or within o.Grace after it, as for detections).
func Pages(truths []sim.Truth, pages []Page, o Options) PageReport {
	var rep PageReport
	rep.Pages = len(pages)
	pages = slices.Clone(pages)
	slices.SortStableFunc(pages, func(a, b Page) int { return a.Time.Compare(b.Time) })
	rep.Causes = make([]CauseScore, len(truths))
	for i, t := range truths {
		rep.Causes[i] = CauseScore{Fault: t.Fault, Type: o.row(&t), Level: t.Level, WantLevel: wantLevel(t.Level)}
	}
	for _, p := range pages {
		// A page is about the faults its evidence matches; when some of
		// them are at the page's level, about those only (a GPU page
		// inside a hot node is the GPU's fault's, not also the node's).
		var about []int
		atLevel := false
		for i := range truths {
			if pageMatches(&truths[i], &p.Incident, o) {
				about = append(about, i)
				atLevel = atLevel || wantLevel(truths[i].Level) == string(p.Incident.Level)
			}
		}
		hit := len(about) > 0
		for _, i := range about {
			if atLevel && wantLevel(truths[i].Level) != string(p.Incident.Level) {
				continue
			}
			c := &rep.Causes[i]
			if c.Pages == 0 {
				c.Delay = p.Time.Sub(truths[i].Start)
			}
			c.Pages++
			c.Levels = append(c.Levels, string(p.Incident.Level))
		}
		if hit {
			rep.Explained++
		} else {
			rep.Unexplained = append(rep.Unexplained, fmt.Sprintf("%s at %s", p.Incident.Key, p.Time.UTC().Format(time.TimeOnly)))
		}
	}
	for i := range rep.Causes {
		c := &rep.Causes[i]
		if c.Pages == 0 {
			continue
		}
		rep.Paged++
		c.LevelOK = !slices.ContainsFunc(c.Levels, func(l string) bool { return l != c.WantLevel })
		if c.LevelOK {
			rep.LevelOK++
		}
	}
	return rep
}

// pageMatches says whether any of inc's evidence is about t.
func pageMatches(t *sim.Truth, inc *incident.Incident, o Options) bool {
	for i := range inc.Evidence {
		e := &inc.Evidence[i]
		// The evidence stands for the windows it was seen in.
		d := fleet.Detection{Time: e.LastSeen, WindowStart: e.FirstSeen.Add(-o.Interval), Topology: e.Topology,
			GPUUUID: e.GPUUUID, Model: e.Model, Feature: e.Feature}
		if e.EntityType == "job" {
			d.Job = e.Entity
		}
		switch t.Level {
		case "model", "pipeline":
			if slices.Contains(t.Models, e.Model) || (e.Model != "" && e.Model == t.Model) {
				if inTime(t, &d, o) {
					return true
				}
			}
		default:
			if matches(t, &d, o) {
				return true
			}
		}
	}
	return false
}

// Markdown renders the report as a table, one row per fault, and a total.
func (r PageReport) Markdown() string {
	var b strings.Builder
	b.WriteString("| fault | type | level | pages | page levels | level correct | first page after |\n|---|---|---|---|---|---|---|\n")
	for _, c := range r.Causes {
		levels, ok, delay := "-", "-", "-"
		if c.Pages > 0 {
			levels, ok, delay = strings.Join(c.Levels, ","), "no", fmt.Sprintf("%.0f s", c.Delay.Seconds())
			if c.LevelOK {
				ok = "yes"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %s | %s | %s |\n", c.Fault, c.Type, c.Level, c.Pages, levels, ok, delay)
	}
	perCause := 0.0
	if r.Paged > 0 {
		perCause = float64(r.Explained) / float64(r.Paged)
	}
	fmt.Fprintf(&b, "| all | %d faults, %d paged | | %d pages, %d explained (%.2f per paged fault), %d unexplained | | %d of %d | |\n",
		len(r.Causes), r.Paged, r.Pages, r.Explained, perCause, len(r.Unexplained), r.LevelOK, r.Paged)
	return b.String()
}

// PageTypeScore is what the faults of one type paged.
type PageTypeScore struct {
	Type string
	// Faults of the type; Paged those that paged; Once those that paged
	// exactly once, at their level.
	Faults, Paged, Once int
	// MaxDelay is the longest time from a fault's start to its first page.
	MaxDelay time.Duration
}

// ByType sums the causes per fault type, in type order, and all of them.
func (r PageReport) ByType() (types []PageTypeScore, all PageTypeScore) {
	by := map[string]*PageTypeScore{}
	all.Type = "all"
	for _, c := range r.Causes {
		s := by[c.Type]
		if s == nil {
			s = &PageTypeScore{Type: c.Type}
			by[c.Type] = s
		}
		for _, s := range []*PageTypeScore{s, &all} {
			s.Faults++
			if c.Pages > 0 {
				s.Paged++
				s.MaxDelay = max(s.MaxDelay, c.Delay)
			}
			if c.Pages == 1 && c.LevelOK {
				s.Once++
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(by)) {
		types = append(types, *by[k])
	}
	return types, all
}

// Table renders detections and pages side by side, one row per fault
// type: the detections' precision, recall and slowest first detection
// (rep), and how many faults paged exactly once at their level (pages).
func Table(rep Report, pages PageReport, interval time.Duration) string {
	var b strings.Builder
	b.WriteString("| fault type | faults | detected | alarms (true) | precision | recall | slowest detection | paged | paged once, at its level | slowest page |\n" +
		"|---|---|---|---|---|---|---|---|---|---|\n")
	pt, all := pages.ByType()
	byType := map[string]PageTypeScore{}
	for _, p := range pt {
		byType[p.Type] = p
	}
	windows := func(d time.Duration) string {
		return fmt.Sprintf("%.0f s (%d)", d.Seconds(), int(math.Ceil(float64(d)/float64(interval))))
	}
	row := func(s TypeScore, p PageTypeScore) {
		fmt.Fprintf(&b, "| %s | %d | %d | %d (%d) | %.3f | %.3f | %s | %d | %d | %s |\n", s.Type, s.Faults, s.Detected, s.Alarms, s.TrueAlarms,
			s.Precision, s.Recall, windows(s.MaxDelay), p.Paged, p.Once, windows(p.MaxDelay))
	}
	for _, s := range rep.Types {
		row(s, byType[s.Type])
	}
	row(rep.Total, all)
	fmt.Fprintf(&b, "\n%d pages, %d explained by a fault, %d false.\n", pages.Pages, pages.Explained, len(pages.Unexplained))
	return b.String()
}
