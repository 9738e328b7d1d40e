// Package health is the analyzer's fleet-health detector (issue 6): hard
// faults, gray failures and stragglers found by peer comparison, and
// failure prediction, for every GPU of the fleet, every window.
//
// One window is evaluated in three steps:
//
//  1. A Source reads the window from ClickHouse (source.go): per GPU and
//     signal, the mean, maximum or counter increase of its samples; the
//     window's GPU events; the GPUs that stopped reporting.
//  2. The rows become a Frame: one column per signal, one slot per GPU
//     (slots are stable across windows), each GPU placed in its peer group —
//     the GPUs of its job when it has one, else the GPUs of its model at a
//     similar utilization.
//  3. Tick computes every group's median and MAD per signal by selection
//     (select.go), scores every GPU against its peers, applies the rules and
//     their persistence (k of the last n windows), and the Evaluator turns
//     what persisted, and every hard fault, into storage.Detections with a
//     recommended action and evidence.
//
// The rules, their thresholds and their false-alarm arithmetic are in
// analytics/README.md ("Fleet health"); the measured precision, recall and
// delay per fault type, and the cost of a tick at 100,000 GPUs, are in
// docs/BENCHMARKS.md.
package health
