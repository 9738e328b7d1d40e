// Command fleetctl is Fleetwatch's command-line tool: schema migrations,
// retention, the local demo, and (as they land) incidents, drift, SPC, SQL.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
)

// command is one fleetctl subcommand.
type command struct {
	name, args, summary string
	run                 func(ctx context.Context, env *env, args []string) error
}

// env is what a command may use: its output streams.
type env struct {
	stdout, stderr io.Writer
}

// commands is filled in init: the commands refer to newFlags, which reads it.
var commands []command

func init() {
	commands = []command{
		{"migrate", "[--print] [--profile auto|legacy|modern] [--dsn DSN]", "create or upgrade the ClickHouse schema; --print shows the SQL", runMigrate},
		{"retention", "[--dsn DSN] [--dry-run]", "drop partitions older than each table's retention (servers without TTL)", runRetention},
		{"backtest", "--from T --to T [--target-db DB] [--truth F] [--config F] [--dsn DSN] [--format json|table]", "replay a stored time range through the analyzer's detectors and alerting; --truth scores it", runBacktest},
		{"canary", "plan (--rate R | --rps R | --model M [--over D]) [--stages 1,5,25,50] (--samples N | --baseline-rate P --effect D [--relative]) [--alpha A] [--power P] [--format json|table]\n       fleetctl canary status [--catalog F] [--at T] [--dsn DSN] [--format json|table]", "canary rollouts: plan sizes the stages (how long each must run to detect an effect); status judges the running canaries with their evidence", runCanary},
		{"certs", "[--dir D] [--hosts h1,h2]", "make a private CA, server and client certificates and a bearer token for a first install", runCerts},
		{"cost", "--prices F --gpus F --allocations F --from T --to T [--by team,model,...] [--shared gpu_hours|query_volume|equal|separate] [--volume F] [--format table|csv|json]\n       fleetctl cost --clickhouse --roll-up --from T --to T [--system-namespaces a,b] [--dsn DSN]", "GPU-hours and cost for a period from a price book and allocation intervals, grouped as asked, shared cost split by a rule; --roll-up fills the hourly cost rollup for history", runCost},
		{"demo", "[--data DIR] [--scenario F] [--config F] [--duration D] [--keep]", "run the whole system on this machine with a simulated fleet and injected faults", runDemo},
		{"drift", "--reference ref.csv --current cur.csv [--bins N] [--format json|table]", "compare two tables column by column: PSI, p-value, band, bins", runDrift},
		{"spc", "--input series.csv [--column c] [--baseline N] [--format json|table]", "control-chart a series: limits and every rule violation", runSPC},
		{"incidents", "[--since D] [--evidence N] [--ack KEY] [--format json|table]", "list open and recent incidents with their evidence chain; --ack acknowledges one", runIncidents},
		{"simulate", "[--scenario F] [--truth F] [--dsn DSN]", "load a simulated fleet's telemetry into ClickHouse through the agent and collector, as fast as it goes", runSimulate},
		{"sql", "[--dsn DSN] [--format table|csv|json] [--file F] 'SELECT ...'", "run a statement against ClickHouse and print its result (try the oncall_* views)", runSQL},
		{"users", "[--format sql|users-xml] [--apply] [--passwords DIR] [--dsn DSN]", "least-privilege database roles: GRANTs for current ClickHouse, a users.d/ file for 18.x", runUsers},
		{"version", "", "print the version", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `fleetctl: the Fleetwatch command-line tool.

Usage:
  fleetctl <command> [flags]

Commands:
`)
	cs := append([]command{}, commands...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, `
Run 'fleetctl <command> --help' for a command's flags.

ClickHouse is found through --dsn or $FLEETWATCH_CLICKHOUSE_DSN, e.g.
  clickhouse://default:@127.0.0.1:9000/fleetwatch?dial_timeout=5s
Only migrate and simulate create the database (backtest creates its
target database); the other commands need
nothing more than the rights their statements need (a read-only user can
list incidents and run SELECTs).

Exit status, the same for every command:
  0  it succeeded
  1  it ran and failed: ClickHouse unreachable, a query failed, a file is
     missing or invalid, ...
  2  the command line is wrong: an unknown command or flag, a flag value
     that cannot be parsed, a missing or extra argument (as Go's flag
     package exits)
`)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr}))
}

// run executes one fleetctl invocation and returns the exit code.
func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 {
		usage(e.stderr)
		return exitUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stdout)
		return exitOK
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, e, args[1:])
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.Is(err, errUsage):
			return exitUsage
		default:
			fmt.Fprintf(e.stderr, "fleetctl %s: %v\n", c.name, err)
			return exitFailure
		}
	}
	fmt.Fprintf(e.stderr, "fleetctl: unknown command %q\n\n", args[0])
	usage(e.stderr)
	return exitUsage
}

// Exit codes, one convention for every command (usage documents it).
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed
	exitUsage   = 2 // the command line is wrong, as flag.Parse's callers exit
)

// errUsage means the command line was wrong and the user has been told why
// (by the flag package or badUsage).
var errUsage = errors.New("usage")

// badUsage tells the user what is wrong with the command line, shows the
// command's usage and returns errUsage.
func badUsage(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), format+"\n", args...)
	fs.Usage()
	return errUsage
}

// newFlags makes a flag set for a subcommand with a helpful usage line.
func newFlags(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("fleetctl "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	for _, c := range commands {
		if c.name == name {
			fs.Usage = func() {
				fmt.Fprintf(fs.Output(), "Usage: fleetctl %s %s\n\n%s.\n\nFlags:\n", name, c.args, strings.ToUpper(c.summary[:1])+c.summary[1:])
				fs.PrintDefaults()
			}
		}
	}
	return fs
}

// parse parses args, mapping flag errors to errUsage.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		return badUsage(fs, "unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return nil
}

// checkFormat rejects an output format other than those allowed (default
// table or json) as a usage error.
func checkFormat(fs *flag.FlagSet, format string, allowed ...string) error {
	if len(allowed) == 0 {
		allowed = []string{"table", "json"}
	}
	if !slices.Contains(allowed, format) {
		last := len(allowed) - 1
		return badUsage(fs, "--format %q: want %s or %s", format, strings.Join(allowed[:last], ", "), allowed[last])
	}
	return nil
}

// writeJSON writes v as indented JSON, the --format json output.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	return nil
}
