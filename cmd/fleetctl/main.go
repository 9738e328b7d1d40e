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
		{"demo", "[--data DIR] [--scenario F] [--config F] [--duration D] [--keep]", "run the whole system on this machine with a simulated fleet and injected faults", runDemo},
		{"drift", "--reference ref.csv --current cur.csv [--bins N] [--format json|table]", "compare two tables column by column: PSI, p-value, band, bins", runDrift},
		{"spc", "--input series.csv [--column c] [--baseline N] [--format json|table]", "control-chart a series: limits and every rule violation", runSPC},
		{"incidents", "[--since D] [--evidence N] [--ack KEY] [--format json|table]", "list open and recent incidents with their evidence chain; --ack acknowledges one", runIncidents},
		{"simulate", "[--scenario F] [--truth F] [--dsn DSN]", "load a simulated fleet's telemetry into ClickHouse through the agent and collector, as fast as it goes", runSimulate},
		{"sql", "[--dsn DSN] [--format table|csv|json] [--file F] 'SELECT ...'", "run a query against ClickHouse and print the result (try the oncall_* views)", runSQL},
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
`)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr}))
}

// run executes one fleetctl invocation and returns the exit code.
func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, e, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		default:
			fmt.Fprintf(e.stderr, "fleetctl %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(e.stderr, "fleetctl: unknown command %q\n\n", args[0])
	usage(e.stderr)
	return 2
}

// errUsage means the flags were wrong; the flag package already said why.
var errUsage = errors.New("usage")

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
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		fs.Usage()
		return errUsage
	}
	return nil
}

// checkFormat rejects an output format other than table or json.
func checkFormat(format string) error {
	if format != "table" && format != "json" {
		return fmt.Errorf("--format %q: want table or json", format)
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
