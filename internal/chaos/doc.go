// Package chaos holds Fleetwatch's fault-injection suite (tests only): the
// real binaries — agent, collector, analyzer — run as separate processes
// against a private ClickHouse, while the tests kill them with SIGKILL, fill
// their disks, stop ClickHouse and hang the pager. Every case compares what
// ClickHouse holds with a clean run of the same deterministic simulated
// fleet: the same distinct rows in every table (nothing lost), raw and
// one-minute rollup agreeing on counts and counter increases (nothing
// doubled), and exactly one page per incident transition.
//
// `go test ./internal/chaos` runs it (part of `make test`; about three
// minutes here); FLEETWATCH_CHAOS_LONG=1 stretches the outages to minutes.
package chaos
