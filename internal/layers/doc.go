// Package layers holds the test that keeps Fleetwatch's three layers
// (docs/ARCHITECTURE.md, "Layers") honest. It reads `go list` for every
// package of the module and fails on an import that breaks a rule:
//
//   - ground (shared domain types, pure libraries, telemetry, storage) imports
//     only the ground;
//   - a stage (agent, collector, analytics, alerting, dashboards) imports the
//     ground and its own packages, never another stage;
//   - the assembly (binaries, the analyzer app, the demo) is imported by
//     nothing but the assembly;
//   - test support is imported only by tests and by other test support;
//   - the pure libraries (lib/) import only fleet and lib/;
//   - the shared domain types (fleet) import only the standard library.
//
// The rules apply to what a package's non-test files import: a _test.go file
// belongs to the assembly and may import any layer. Every package must have a
// layer in the table of layers_test.go; a new package without one fails the
// test too. The package has no code of its own.
package layers
