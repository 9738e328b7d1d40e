// Package canary judges a canary deployment: one model version (the canary)
// against the version it replaces (the baseline), measured over the same
// minutes, on the rollback triggers of design document 003 ("Automated
// rollback triggers", listing 4; "Latency gates", table 14; "Model-type
// specific monitoring", table 20).
//
// The judge is a pure function of two cumulative per-version aggregates
// (requests, errors, engagement trials and successes, labelled and
// correctly predicted requests, a latency histogram, optionally a
// prediction histogram). It keeps no state, so a restarted
// analyzer reaches the same verdict from the same counts, and it may be
// called as often as the caller likes: every statistic is always valid.
//
// # Statistics
//
// Error rate, engagement, accuracy and the p99 ratio are each a difference of two
// proportions, tested with the normal-mixture sequential probability ratio
// test (mSPRT; Robbins 1970, Johari et al. 2017, "Peeking at A/B tests").
// With Δ̂ the observed difference, I = 1/Var(Δ̂) its information and τ the
// mixture scale (the rule's threshold, in absolute units), each of the
// judge's decisions is one-sided: fail asks whether the canary is worse
// than the baseline, pass whether it is better than worse-by-the-threshold.
// Each side's test mixes the likelihood ratio over a half-normal of scale τ
// on the effects in its direction; with s = √(1 + τ²·I) and z = Δ̂·I·τ/s,
// the statistic is (2/s)·exp(z²/2)·Φ(z), and it reaches 1/α when Δ̂−Δ
// passes the radius
//
//	r = z*·s/(I·τ),  z*²/2 = ln(s/(2α)) − ln Φ(z*)
//
// (seq.go solves it, never below the root). By Ville's inequality the
// probability that Δ̂ − r ever exceeds the true Δ, over any number of looks
// at any times, is at most α, and likewise for Δ̂ + r on the other side: a
// false fail and a false pass are each bounded by α. [Δ̂ − r, Δ̂ + r] is
// the evidence's interval, each end valid at 1−α (the two-sided normal
// mixture, Δ̂ ± sqrt((I + 1/τ²)·(2·ln(1/α) + ln(1 + τ²·I))) / I, spends
// half its α on the side a decision does not use and is 3–5% wider).
// Counts are tested as counts, never ranked, so
// errors that are mostly zero are handled like any other rate. The variance
// uses, on each side, the larger of the side's own (add-½) rate and the
// pooled rate, which is the null variance when the versions agree and the
// unpooled one when they do not.
//
// The p99 rule tests the exceedance proportion: the share of each
// version's requests slower than the baseline's p99 (taken at a histogram
// bucket edge, so both sides are counted exactly). If the canary's p99 were
// no worse, the two shares would be equal; the mSPRT above tells them apart.
// The p50 and p99 latency gates are the one-sample form: the canary's share
// above the gate against 50% and 1%.
//
// # Rules and verdicts
//
// A rule fails when its test is significant in the bad direction (the
// interval excludes "no worse") and the estimate is past the rule's
// threshold (the document's size of a regression worth a rollback) and the
// canary has at least the rule's minimum samples: significance from the
// test, relevance from the threshold. A rule passes when its interval rules
// out a regression as large as the threshold, the canary has the minimum
// samples and the rule's window (5 or 15 minutes) has passed; before then
// it is inconclusive, with the time a decision needs at the observed
// traffic. The verdict fails if any rule fails and passes when every
// applicable rule passes. The family's false-fail rate, Config.Alpha, is
// split evenly (Bonferroni) over the rules in force.
//
// Prediction drift (PSI of the canary's prediction histogram against the
// baseline's) is reported as evidence and is not a rollback trigger unless
// Config.Drift.Fail is set: a new model is expected to predict differently,
// and the design documents' triggers are errors, latency and the business
// outcome; PSI ≥ 0.25 is marked as "investigate" in the evidence. Feature
// drift is the same per feature of the requests (numeric on the
// baseline's deciles, categorical on its most frequent categories): one
// feature_drift line with the worst features' PSI, judged like prediction
// drift.
//
// Tracker restarts the tests every 2.5 minutes (restart k gets
// α·6/(π²(k+1)²)) so a regression that begins mid-canary is not diluted
// by the good minutes before it.
//
// Reader reads the per-version counts over the same minutes: requests,
// errors and latency from inference_events, engagement from
// business_outcomes and accuracy from delayed_labels (both joined by
// request id), prediction bins on the baseline's pre-canary deciles. Detector
// is the analyzer's fleet.Detector: the canaries that model_deployments
// says are running, judged each window, one detection per failed canary,
// every verdict to a callback (package action: the rollback webhook, the
// Argo Rollouts and Flagger endpoints) and, with RecordTo, to
// canary_verdicts for the on-call views.
//
// Plan sizes the stages of a rollout (design document 003, equations 5 and
// 6) for fleetctl canary plan. The simulation (Scenario, Simulate) produces
// canary runs with known ground truth for the scoring tests.
package canary
