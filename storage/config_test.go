package storage_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/config/configtls"

	"github.com/fleetwatch/fleetwatch/storage"
)

// tlsConfig is a TLS section, enabled or not, with set applied to its
// configtls settings.
func tlsConfig(enabled bool, set func(*configtls.ClientConfig)) storage.TLSConfig {
	t := storage.TLSConfig{Enabled: enabled}
	set(&t.ClientConfig)
	return t
}

func TestParseDSN(t *testing.T) {
	cases := []struct {
		dsn     string
		check   func(storage.Config) bool
		wantErr string
	}{
		{"clickhouse://localhost", func(c storage.Config) bool {
			return len(c.Addrs) == 1 && c.Addrs[0] == "localhost:9000" && c.Database == "fleetwatch" && c.Username == "default"
		}, ""},
		{"clickhouse://bob:s3cret@ch1:9001,ch2/metrics?dial_timeout=2s&read_timeout=1m&max_open_conns=3&compress=zstd&cluster=fleet", func(c storage.Config) bool {
			return strings.Join(c.Addrs, ",") == "ch1:9001,ch2:9000" && c.Username == "bob" && c.Password == "s3cret" &&
				c.Database == "metrics" && c.DialTimeout == 2*time.Second && c.ReadTimeout == time.Minute &&
				c.MaxOpenConns == 3 && c.Compression == "zstd" && c.Cluster == "fleet"
		}, ""},
		{"tcp://[::1]/db?secure=true&skip_verify=true&server_name=ch.internal&profile=modern", func(c storage.Config) bool {
			return c.Addrs[0] == "[::1]:9440" && c.TLS.Enabled && c.TLS.InsecureSkipVerify && c.TLS.ServerName == "ch.internal" && c.Profile == "modern"
		}, ""},
		{"http://localhost", nil, "scheme"},
		{"clickhouse:///db", nil, "no host"},
		{"clickhouse://h?dial_timeout=soon", nil, "dial_timeout"},
		{"clickhouse://h?secure=maybe", nil, "not a boolean"},
		{"clickhouse://h?max_open_conns=many", nil, "max_open_conns"},
		{"clickhouse://h?colour=blue", nil, `unknown parameter "colour"`},
		{"clickhouse://user:p%zzword@h", nil, "parse DSN"},
	}
	for _, c := range cases {
		t.Run(c.dsn, func(t *testing.T) {
			cfg, err := storage.ParseDSN(c.dsn)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), "p%zzword") || strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(cfg) {
				t.Fatalf("parsed %+v", cfg)
			}
			if err := cfg.Validate(); err != nil && !strings.Contains(err.Error(), "tls") {
				t.Fatalf("parsed config does not validate: %v", err)
			}
		})
	}
}

// TestParseDSNClickhouseGoForms covers DSNs that clickhouse-go's parser
// accepts and ParseDSN now accepts too, with the Config each gives.
func TestParseDSNClickhouseGoForms(t *testing.T) {
	with := func(f func(*storage.Config)) storage.Config {
		c := storage.NewDefaultConfig()
		f(&c)
		return c
	}
	cases := []struct {
		name, dsn string
		want      storage.Config
	}{
		{"several hosts, bare secure", "clickhouse://h1,h2:9001,[::1]/db?secure", with(func(c *storage.Config) {
			c.Addrs, c.Database, c.TLS.Enabled = []string{"h1:9440", "h2:9001", "[::1]:9440"}, "db", true
		})},
		{"secure=true with clickhouse-go's TLS parameters", "clickhouse://h?secure=true&skip_verify&tls_server_name=ch.example", with(func(c *storage.Config) {
			c.Addrs = []string{"h:9440"}
			c.TLS = tlsConfig(true, func(t *configtls.ClientConfig) { t.InsecureSkipVerify, t.ServerName = true, "ch.example" })
		})},
		{"secure=1 with Fleetwatch's TLS files", "tcp://h:9441?secure=1&ca_file=/ca.pem&cert_file=/c.pem&key_file=/k.pem", with(func(c *storage.Config) {
			c.Addrs = []string{"h:9441"}
			c.TLS = tlsConfig(true, func(t *configtls.ClientConfig) { t.CAFile, t.CertFile, t.KeyFile = "/ca.pem", "/c.pem", "/k.pem" })
		})},
		{"hosts and alt_hosts", "clickhouse://h1?hosts=h0&alt_hosts=h2:9001,h3", with(func(c *storage.Config) {
			c.Addrs = []string{"h0:9000", "h1:9000", "h2:9001", "h3:9000"}
		})},
		{"credentials and database as parameters", "clickhouse://h?username=alice&password=p%26w&database=metrics", with(func(c *storage.Config) {
			c.Addrs, c.Username, c.Password, c.Database = []string{"h:9000"}, "alice", "p&w", "metrics"
		})},
		{"compress=true is lz4", "clickhouse://h?compress=true", with(func(c *storage.Config) { c.Addrs, c.Compression = []string{"h:9000"}, "lz4" })},
		{"compress=false is none", "clickhouse://h?compress=false", with(func(c *storage.Config) { c.Addrs, c.Compression = []string{"h:9000"}, "none" })},
		{"timeouts and pool", "CLICKHOUSE://h?dial_timeout=250ms&read_timeout=10s&max_open_conns=2", with(func(c *storage.Config) {
			c.Addrs, c.DialTimeout, c.ReadTimeout, c.MaxOpenConns = []string{"h:9000"}, 250*time.Millisecond, 10*time.Second, 2
		})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := storage.ParseDSN(c.dsn)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("ParseDSN(%q):\n got %+v\nwant %+v", c.dsn, got, c.want)
			}
		})
	}
}

// TestParseDSNRefuses covers what clickhouse-go would take and Fleetwatch
// does not: server settings and driver options with no Config field (a
// typo must not become a setting), and clickhouse-go's own refusals.
func TestParseDSNRefuses(t *testing.T) {
	for dsn, want := range map[string]string{
		"clickhouse://h?max_execution_time=60":     `unknown parameter "max_execution_time"`,
		"clickhouse://h?debug=true":                `unknown parameter "debug"`,
		"clickhouse://h?tls_server_name=ch":        "tls_server_name requires secure=true",
		"clickhouse://h?secure=true&skip_verify=x": "skip_verify=\"x\": not a boolean",
		"clickhouse://h?read_timeout=1&colour=b":   "read_timeout",
	} {
		if _, err := storage.ParseDSN(dsn); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseDSN(%q) = %v, want an error mentioning %s", dsn, err, want)
		}
	}
	cfg, err := storage.ParseDSN("clickhouse://h?compress=gzip")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `compression: "gzip"`) {
		t.Fatalf("compress=gzip validates: %v", err)
	}
}

func TestConfigValidateListsEveryProblem(t *testing.T) {
	cfg := storage.Config{
		Addrs:         []string{"nohost", "h:0", ":9000"},
		Database:      "bad-name",
		DialTimeout:   0,
		ReadTimeout:   -time.Second,
		MaxOpenConns:  0,
		Compression:   "gzip",
		Profile:       "newest",
		Cluster:       "my cluster",
		RetentionDays: map[string]int{"gpu_samples": -3, "nope": 1},
		TLS:           tlsConfig(true, func(t *configtls.ClientConfig) { t.CertFile = "/nonexistent/cert.pem" }),
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`"nohost" is not host:port`, `"h:0": port`, `":9000" has no host`, "database name",
		"dial_timeout", "read_timeout", "max_open_conns", "compression", "profile", "cluster name", "negative",
		`unknown table "nope"`, "cert_file and key_file", "username"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if err := storage.NewDefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestTLSFilesMustExist(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("not a cert"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := storage.NewDefaultConfig()
	cfg.TLS = tlsConfig(true, func(t *configtls.ClientConfig) { t.CAFile = ca })
	if err := cfg.Validate(); err != nil {
		t.Fatalf("existing CA file rejected: %v", err)
	}
	cfg.TLS.CAFile = filepath.Join(dir, "missing.pem")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "tls.ca_file") {
		t.Fatalf("missing CA file: %v", err)
	}
	cfg.TLS = tlsConfig(false, func(t *configtls.ClientConfig) { t.CAFile = ca })
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "tls.enabled") {
		t.Fatalf("files without tls.enabled: %v", err)
	}
}

func TestFromEnv(t *testing.T) {
	base := storage.NewDefaultConfig()
	base.RetentionDays = map[string]int{"spans": 2}
	t.Setenv(storage.DSNEnv, "")
	got, err := storage.FromEnv(base)
	if err != nil || got.Addrs[0] != base.Addrs[0] {
		t.Fatalf("unset env: %+v %v", got, err)
	}
	t.Setenv(storage.DSNEnv, "clickhouse://envhost:9123/envdb")
	got, err = storage.FromEnv(base)
	if err != nil || got.Addrs[0] != "envhost:9123" || got.Database != "envdb" || got.RetentionDays["spans"] != 2 {
		t.Fatalf("env DSN: %+v %v", got, err)
	}
	t.Setenv(storage.DSNEnv, "mysql://x")
	if _, err := storage.FromEnv(base); err == nil || !strings.Contains(err.Error(), storage.DSNEnv) {
		t.Fatalf("bad env DSN: %v", err)
	}
}

func FuzzParseDSN(f *testing.F) {
	for _, s := range []string{"clickhouse://localhost", "clickhouse://u:p@a:1,b:2/db?secure=1", "tcp://[::1]", "::::", "clickhouse://%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		cfg, err := storage.ParseDSN(dsn)
		if err != nil {
			return
		}
		_ = cfg.Validate() // must not panic
	})
}

func TestDSNRoundTrip(t *testing.T) {
	for _, c := range []storage.Config{
		storage.NewDefaultConfig(),
		func() storage.Config {
			c := storage.NewDefaultConfig()
			c.Addrs = []string{"a:9440", "[::1]:9441"}
			c.Database, c.Username, c.Password = "fw", "alice", "p@ss/word"
			c.TLS = tlsConfig(true, func(t *configtls.ClientConfig) { t.InsecureSkipVerify, t.CAFile, t.ServerName = true, "/ca.pem", "ch" })
			c.Cluster, c.Profile, c.MaxOpenConns = "main", storage.ProfileLegacy, 3
			return c
		}(),
	} {
		got, err := storage.ParseDSN(c.DSN())
		if err != nil {
			t.Fatalf("ParseDSN(%q): %v", c.DSN(), err)
		}
		got.RetentionDays = c.RetentionDays
		if !reflect.DeepEqual(got, c) {
			t.Errorf("round trip of %q:\n got %+v\nwant %+v", c.DSN(), got, c)
		}
	}
}
