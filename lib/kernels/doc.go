// Package kernels holds the vectorized statistics over Apache Arrow arrays
// that the analyzer and the collector's ingest binning share (a pure library
// of the ground layer, lib/README.md): binning values into histograms with
// given edges, categorical counting, the population stability index,
// moving-range statistics, and control-chart rule evaluation over many series
// at once.
//
// Every kernel works on whole columns (array.Float64 with its validity
// bitmap, or plain slices) and appends into caller-owned state, so a steady
// stream of batches allocates nothing per value. Nulls, NaN and ±Inf are
// "missing": they are counted apart from the value bins, never dropped.
package kernels
