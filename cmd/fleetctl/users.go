package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// runUsers prints (or applies) the least-privilege roles: SQL GRANTs for
// servers with access control, a users.xml fragment for ClickHouse 18.x.
func runUsers(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "users")
	resolve := chFlags(fs)
	format := fs.String("format", "sql", "sql: CREATE ROLE and GRANT statements (ClickHouse 20.5+); users-xml: a users.d/ file for ClickHouse 18.x")
	apply := fs.Bool("apply", false, "with --format sql: run the statements on the server (as an administrator) instead of printing them")
	cluster := fs.String("cluster", "", "grant ON CLUSTER, on the per-server tables too (overrides the DSN's cluster=)")
	secrets := fs.String("passwords", "", "with --format users-xml: directory of password files named after the roles (fleetwatch_ingest, fleetwatch_analyzer, fleetwatch_reader); a missing one is generated (mode 0600)")
	networks := fs.String("networks", "", "with --format users-xml: comma-separated addresses or CIDRs the users may connect from (default: loopback)")
	names := map[string]*string{
		schema.RoleIngest:   fs.String("ingest-user", "fleetwatch_collector", "user name of the collector (role "+schema.RoleIngest+")"),
		schema.RoleAnalyzer: fs.String("analyzer-user", "fleetwatch_analyzer", "user name of the analyzer (role "+schema.RoleAnalyzer+")"),
		schema.RoleReader:   fs.String("reader-user", "fleetwatch_reader", "user name of Grafana and on-call (role "+schema.RoleReader+")"),
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := resolve()
	if err != nil {
		return err
	}
	if *cluster != "" {
		cfg.Cluster = *cluster
	}
	tg := schema.Target{Database: cfg.Database, Cluster: cfg.Cluster}
	if err := tg.Validate(); err != nil {
		return err
	}
	users := map[string]string{}
	for role, n := range names {
		if !schema.ValidIdent(*n) {
			return badUsage(fs, "user name %q: want letters, digits and _", *n)
		}
		users[role] = *n
	}
	switch *format {
	case "sql":
		stmts := schema.GrantStatements(tg)
		for _, r := range schema.Roles() {
			stmts = append(stmts, "-- CREATE USER "+users[r.Name]+" IDENTIFIED WITH sha256_password BY '...' DEFAULT ROLE "+r.Name,
				"GRANT "+r.Name+" TO "+users[r.Name])
		}
		if !*apply {
			fmt.Fprintf(e.stdout, "-- Fleetwatch roles on %s: run as an administrator, after creating the users.\n", tg.Database)
			for _, s := range stmts {
				fmt.Fprintln(e.stdout, strings.TrimSuffix(s, ";")+";")
			}
			return nil
		}
		c, err := open(ctx, cfg, logger(e))
		if err != nil {
			return err
		}
		defer c.Close()
		if !c.ServerVersion().AtLeast(20, 5) {
			return fmt.Errorf("ClickHouse %s has no SQL access control (CREATE ROLE came in 20.5): use --format users-xml and put the file in the server's users.d/", c.ServerVersion())
		}
		for _, s := range stmts {
			if strings.HasPrefix(s, "--") {
				continue
			}
			if err := c.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			fmt.Fprintln(e.stderr, "ok  "+s)
		}
		return nil
	case "users-xml":
		if *apply {
			return badUsage(fs, "--apply works with --format sql; a users.xml file goes into the server's users.d/ directory")
		}
		if *secrets == "" {
			return badUsage(fs, "--format users-xml needs --passwords DIR (the password files; missing ones are generated)")
		}
		hashes := map[string]string{}
		for role := range users {
			pw, err := passwordFile(filepath.Join(*secrets, role), e)
			if err != nil {
				return err
			}
			sum := sha256.Sum256([]byte(pw))
			hashes[role] = hex.EncodeToString(sum[:])
		}
		var nets []string
		for _, n := range strings.Split(*networks, ",") {
			if n = strings.TrimSpace(n); n != "" {
				if _, _, err := net.ParseCIDR(n); err != nil && net.ParseIP(n) == nil {
					return badUsage(fs, "--networks: %q is not an address or a CIDR", n)
				}
				nets = append(nets, n)
			}
		}
		xml, err := schema.UsersXML(tg, users, hashes, nets)
		if err != nil {
			return err
		}
		fmt.Fprint(e.stdout, xml)
		return nil
	}
	return badUsage(fs, "--format %q: want sql or users-xml", *format)
}

// passwordFile reads the password in path (trailing newline ignored), or
// writes a new random one there when the file does not exist.
func passwordFile(path string, e *env) (string, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		pw := strings.TrimRight(string(data), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("%s is empty", path)
		}
		return pw, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	pw := hex.EncodeToString(buf)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", err
	}
	fmt.Fprintf(e.stderr, "generated a password in %s\n", path)
	return pw, nil
}
