package correlate

import (
	"maps"
	"slices"

	"github.com/fleetwatch/fleetwatch/alerting/incident"
	"github.com/fleetwatch/fleetwatch/fleet"
)

// models attributes one family's model detections: a pipeline with
// detections of its own (a feature pipeline whose features breach their
// freshness SLO) is one upstream incident with its anomalous consumers;
// then the whole fleet when more than FleetThreshold of the catalog is
// anomalous; else, greedily, shared upstreams that explain the most
// anomalous consumers; then portfolios past PortfolioThreshold; every model
// left is its own incident.
func (c *Correlator) models(family string, dets []*fleet.Detection) []Candidate {
	byModel := map[string][]*fleet.Detection{}
	byPipeline := map[string][]*fleet.Detection{}
	for _, d := range dets {
		if d.EntityType == "pipeline" && d.Model == "" {
			byPipeline[d.Entity] = append(byPipeline[d.Entity], d)
			continue
		}
		m := d.Model
		if m == "" {
			m = d.Entity
		}
		byModel[m] = append(byModel[m], d)
	}
	var pipes []Candidate
	pipes, byModel = c.pipelines(family, byPipeline, byModel)
	anomalous := slices.Sorted(maps.Keys(byModel))
	perModel := slices.Contains(c.cfg.PerModelFamilies, family)
	evidence := func(models []string) []*fleet.Detection {
		var out []*fleet.Detection
		for _, m := range models {
			out = append(out, byModel[m]...)
		}
		return out
	}
	if !perModel && c.cat != nil && c.cat.Len() >= c.cfg.UpstreamMinModels {
		inCat := 0
		for _, m := range anomalous {
			if c.cat.Model(m) != nil {
				inCat++
			}
		}
		if inCat >= c.cfg.UpstreamMinModels && float64(inCat)/float64(c.cat.Len()) > c.cfg.FleetThreshold {
			return append(pipes, Candidate{Key: key(family, incident.LevelFleet, "models"), Level: incident.LevelFleet, Scope: "models",
				Family: family, Models: anomalous, Evidence: evidence(anomalous)})
		}
	}
	out := pipes
	left := map[string]bool{}
	for _, m := range anomalous {
		left[m] = true
	}
	if c.cat != nil && !perModel {
		out = c.upstreams(family, anomalous, left, evidence, out)
		out = c.portfolios(family, anomalous, left, evidence, out)
	}
	for _, m := range anomalous {
		if !left[m] {
			continue
		}
		cd := Candidate{Key: key(family, incident.LevelModel, m), Level: incident.LevelModel, Scope: m, Family: family,
			Models: []string{m}, Evidence: byModel[m]}
		c.own(&cd, m)
		out = append(out, cd)
	}
	return out
}

// pipelines opens one upstream incident per pipeline with detections of
// its own, owned by the pipeline, whatever the number of its consumers:
// its consumers' detections of the family join it as evidence. It returns
// the candidates and the model detections left to correlate.
func (c *Correlator) pipelines(family string, byPipeline, byModel map[string][]*fleet.Detection) ([]Candidate, map[string][]*fleet.Detection) {
	var out []Candidate
	for _, p := range slices.Sorted(maps.Keys(byPipeline)) {
		cd := Candidate{Key: key(family, incident.LevelUpstream, p), Level: incident.LevelUpstream, Scope: p,
			Family: family, Evidence: byPipeline[p]}
		if c.cat != nil {
			for _, m := range c.cat.Consumers(p) {
				if ds, ok := byModel[m]; ok {
					cd.Models = append(cd.Models, m)
					cd.Evidence = append(cd.Evidence, ds...)
					delete(byModel, m)
				}
			}
			c.own(&cd, p)
		}
		out = append(out, cd)
	}
	return out, byModel
}

// upstreams picks, repeatedly, the upstream explaining the most anomalous
// models still unexplained (ties: the one with fewer consumers, the more
// specific cause; then by name).
func (c *Correlator) upstreams(family string, anomalous []string, left map[string]bool, evidence func([]string) []*fleet.Detection, out []Candidate) []Candidate {
	isAnom := map[string]bool{}
	for _, m := range anomalous {
		isAnom[m] = true
	}
	ups := c.cat.Upstreams()
	for {
		best, bestHits, bestCons := "", []string(nil), 0
		for _, u := range ups {
			cons := c.cat.Consumers(u)
			var hits []string
			all := 0
			for _, m := range cons {
				if isAnom[m] {
					all++
					if left[m] {
						hits = append(hits, m)
					}
				}
			}
			if len(hits) < c.cfg.UpstreamMinModels || float64(all) < c.cfg.UpstreamFraction*float64(len(cons)) {
				continue
			}
			if len(hits) > len(bestHits) || (len(hits) == len(bestHits) && len(cons) < bestCons) {
				best, bestHits, bestCons = u, hits, len(cons)
			}
		}
		if best == "" {
			return out
		}
		// An anomalous upstream model is part of the same incident.
		if left[best] {
			bestHits = append(bestHits, best)
			slices.Sort(bestHits)
		}
		for _, m := range bestHits {
			delete(left, m)
		}
		cd := Candidate{Key: key(family, incident.LevelUpstream, best), Level: incident.LevelUpstream, Scope: best,
			Family: family, Models: bestHits, Evidence: evidence(bestHits)}
		c.own(&cd, best)
		if cd.Team == "" && len(bestHits) > 0 {
			c.own(&cd, bestHits[0])
			cd.Domain = c.domainOf(bestHits[0])
		}
		out = append(out, cd)
	}
}

// portfolios opens one incident per domain where at least
// PortfolioThreshold of its models are anomalous.
func (c *Correlator) portfolios(family string, anomalous []string, left map[string]bool, evidence func([]string) []*fleet.Detection, out []Candidate) []Candidate {
	byDomain := map[string][]string{}
	for _, m := range anomalous {
		if mm := c.cat.Model(m); mm != nil {
			byDomain[mm.Domain] = append(byDomain[mm.Domain], m)
		}
	}
	for _, dom := range slices.Sorted(maps.Keys(byDomain)) {
		ms := byDomain[dom]
		total := len(c.cat.Portfolio(dom))
		var rest []string
		for _, m := range ms {
			if left[m] {
				rest = append(rest, m)
			}
		}
		if len(rest) < c.cfg.UpstreamMinModels || float64(len(ms)) < c.cfg.PortfolioThreshold*float64(total) {
			continue
		}
		for _, m := range rest {
			delete(left, m)
		}
		cd := Candidate{Key: key(family, incident.LevelPortfolio, dom), Level: incident.LevelPortfolio, Scope: dom,
			Family: family, Models: rest, Domain: dom, Evidence: evidence(rest)}
		c.own(&cd, "portfolio/"+dom)
		out = append(out, cd)
	}
	return out
}

// own fills a candidate's owner from the catalog entry name.
func (c *Correlator) own(cd *Candidate, name string) {
	if c.cat == nil {
		return
	}
	o, runbook, ok := c.cat.Owner(name)
	if !ok {
		return
	}
	cd.Team, cd.Oncall, cd.Runbook = o.Team, o.Oncall, runbook
	if cd.Domain == "" {
		cd.Domain = c.domainOf(name)
	}
}

func (c *Correlator) domainOf(model string) string {
	if m := c.cat.Model(model); m != nil {
		return m.Domain
	}
	return ""
}
