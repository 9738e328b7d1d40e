// Package drift detects distribution shift with the population stability
// index (PSI), for numeric and categorical features and for model outputs.
//
// A reference profile (lib/profile: bin edges from reference quantiles, or the
// top-K categories, with the reference counts and missing share) is built
// once and stored (storage/drift.go); each check bins the current window into the profile's bins —
// in ClickHouse for the analyzer, with the kernels package for files — and a
// Tester turns the two histograms into a PSI, its band, and a p-value that
// knows the sample sizes. BenjaminiHochberg controls the false-discovery rate
// across every column of a pass, and a CUSUM on the per-window evidence
// catches small persistent shifts sooner than one window can.
//
// Detector runs all of this on the analytics engine's schedule; Compare and
// CompareFiles do it offline for fleetctl drift.
package drift
