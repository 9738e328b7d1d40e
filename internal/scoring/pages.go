package scoring

import (
	"fmt"
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
		rep.Causes[i] = CauseScore{Fault: t.Fault, Type: t.Type, Level: t.Level, WantLevel: wantLevel(t.Level)}
	}
	for _, p := range pages {
		hit := false
		for i := range truths {
			if !pageMatches(&truths[i], &p.Incident, o) {
				continue
			}
			hit = true
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
