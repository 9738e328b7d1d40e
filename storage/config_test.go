package storage_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/storage"
)

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
		TLS:           storage.TLSConfig{Enabled: true, CertFile: "/nonexistent/cert.pem"},
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
	cfg.TLS = storage.TLSConfig{Enabled: true, CAFile: ca}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("existing CA file rejected: %v", err)
	}
	cfg.TLS.CAFile = filepath.Join(dir, "missing.pem")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "tls.ca_file") {
		t.Fatalf("missing CA file: %v", err)
	}
	cfg.TLS = storage.TLSConfig{CAFile: ca}
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
			c.TLS = storage.TLSConfig{Enabled: true, InsecureSkipVerify: true, CAFile: "/ca.pem", ServerName: "ch"}
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
