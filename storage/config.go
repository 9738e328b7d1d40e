package storage

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// DSNEnv is the environment variable that may hold a ClickHouse DSN.
const DSNEnv = "FLEETWATCH_CLICKHOUSE_DSN"

// Profile names accepted by Config.Profile.
const (
	ProfileAuto   = "auto"
	ProfileLegacy = "legacy"
	ProfileModern = "modern"
)

// TLSConfig turns on TLS for the native protocol.
type TLSConfig struct {
	Enabled bool `yaml:"enabled"`
	// InsecureSkipVerify disables certificate verification (testing only).
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
}

// Config says how to reach ClickHouse and how to lay out the schema there.
type Config struct {
	// Addrs are host:port pairs of the native protocol (port 9000, 9440 with TLS).
	// Several addresses are tried in order for failover.
	Addrs    []string  `yaml:"addrs"`
	Database string    `yaml:"database"`
	Username string    `yaml:"username"`
	Password string    `yaml:"password"`
	TLS      TLSConfig `yaml:"tls"`
	// Cluster, when set, renders ON CLUSTER DDL with Replicated and Distributed tables.
	Cluster      string        `yaml:"cluster"`
	DialTimeout  time.Duration `yaml:"dial_timeout"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	MaxOpenConns int           `yaml:"max_open_conns"`
	// Compression of native-protocol blocks: lz4 (default), zstd or none.
	Compression string `yaml:"compression"`
	// Profile picks the DDL extras: auto (from the server version), legacy or modern.
	Profile string `yaml:"profile"`
	// RetentionDays overrides each table's default retention (0 keeps forever).
	RetentionDays map[string]int `yaml:"retention_days"`
}

// NewDefaultConfig returns a Config for a local ClickHouse.
func NewDefaultConfig() Config {
	return Config{
		Addrs:        []string{"127.0.0.1:9000"},
		Database:     "fleetwatch",
		Username:     "default",
		DialTimeout:  5 * time.Second,
		ReadTimeout:  5 * time.Minute,
		MaxOpenConns: 8,
		Compression:  "lz4",
		Profile:      ProfileAuto,
	}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if len(c.Addrs) == 0 {
		errs = append(errs, errors.New("addrs: at least one host:port is needed"))
	}
	for _, a := range c.Addrs {
		if err := validateAddr(a); err != nil {
			errs = append(errs, fmt.Errorf("addrs: %w", err))
		}
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, fmt.Errorf("dial_timeout: %v must be positive", c.DialTimeout))
	}
	if c.ReadTimeout <= 0 {
		errs = append(errs, fmt.Errorf("read_timeout: %v must be positive", c.ReadTimeout))
	}
	if c.MaxOpenConns < 1 {
		errs = append(errs, fmt.Errorf("max_open_conns: %d must be at least 1", c.MaxOpenConns))
	}
	switch c.Compression {
	case "lz4", "zstd", "none":
	default:
		errs = append(errs, fmt.Errorf("compression: %q is not one of lz4, zstd, none", c.Compression))
	}
	switch c.Profile {
	case ProfileAuto, ProfileLegacy, ProfileModern:
	default:
		errs = append(errs, fmt.Errorf("profile: %q is not one of auto, legacy, modern", c.Profile))
	}
	if c.Username == "" {
		errs = append(errs, errors.New("username: empty (ClickHouse's default user is \"default\")"))
	}
	errs = append(errs, c.TLS.validate()...)
	tg := schema.Target{Database: c.Database, Cluster: c.Cluster, RetentionDays: c.RetentionDays}
	if err := tg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid ClickHouse config: %w", err)
	}
	return nil
}

func validateAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", a, err)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", a)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: port must be 1-65535", a)
	}
	return nil
}

func (t TLSConfig) validate() []error {
	var errs []error
	if !t.Enabled {
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" {
			errs = append(errs, errors.New("tls: files are set but tls.enabled is false"))
		}
		return errs
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, errors.New("tls: cert_file and key_file go together"))
	}
	for _, f := range []struct{ name, path string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("tls.%s: %w", f.name, err))
		}
	}
	return errs
}

// ParseDSN reads a DSN of the form
//
//	clickhouse://[user[:password]@]host[:port][,host[:port]...][/database][?param=value&...]
//
// on top of NewDefaultConfig. Parameters: secure, skip_verify, ca_file,
// cert_file, key_file, server_name, dial_timeout, read_timeout,
// max_open_conns, compress, cluster, profile. The scheme may also be tcp.
func ParseDSN(dsn string) (Config, error) {
	c := NewDefaultConfig()
	// net/url accepts one host only; lift the comma-separated host list out
	// and parse the rest with a placeholder host.
	hosts := ""
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		authority := rest[:end]
		at := strings.LastIndexByte(authority, '@')
		hosts = authority[at+1:]
		dsn = dsn[:i+3] + authority[:at+1] + "placeholder" + rest[end:]
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return c, fmt.Errorf("parse DSN: %w", redactURLError(err))
	}
	if u.Scheme != "clickhouse" && u.Scheme != "tcp" {
		return c, fmt.Errorf("parse DSN: scheme %q: want clickhouse:// or tcp://", u.Scheme)
	}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	q := u.Query()
	var errs []error
	boolParam := func(name string) bool {
		v := q.Get(name)
		if v == "" {
			return false
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: not a boolean", name, v))
		}
		return b
	}
	durParam := func(name string, dst *time.Duration) {
		if v := q.Get(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
			*dst = d
		}
	}
	c.TLS.Enabled = boolParam("secure")
	c.TLS.InsecureSkipVerify = boolParam("skip_verify")
	c.TLS.CAFile, c.TLS.CertFile, c.TLS.KeyFile = q.Get("ca_file"), q.Get("cert_file"), q.Get("key_file")
	c.TLS.ServerName = q.Get("server_name")
	durParam("dial_timeout", &c.DialTimeout)
	durParam("read_timeout", &c.ReadTimeout)
	if v := q.Get("max_open_conns"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("max_open_conns=%q: not a number", v))
		}
		c.MaxOpenConns = n
	}
	if v := q.Get("compress"); v != "" {
		c.Compression = v
	}
	if v := q.Get("profile"); v != "" {
		c.Profile = v
	}
	c.Cluster = q.Get("cluster")
	known := map[string]bool{"secure": true, "skip_verify": true, "ca_file": true, "cert_file": true, "key_file": true,
		"server_name": true, "dial_timeout": true, "read_timeout": true, "max_open_conns": true, "compress": true,
		"cluster": true, "profile": true}
	var unknown []string
	for k := range q {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		errs = append(errs, fmt.Errorf("unknown parameter %q", k))
	}
	defPort := "9000"
	if c.TLS.Enabled {
		defPort = "9440"
	}
	c.Addrs = nil
	for _, h := range strings.Split(hosts, ",") {
		if h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(strings.Trim(h, "[]"), defPort)
		}
		c.Addrs = append(c.Addrs, h)
	}
	if len(c.Addrs) == 0 {
		errs = append(errs, errors.New("no host"))
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		c.Database = db
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("parse DSN: %w", err)
	}
	return c, nil
}

// redactURLError keeps passwords out of error messages.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return errors.New(ue.Err.Error())
	}
	return err
}

// FromEnv returns base, or the config parsed from $FLEETWATCH_CLICKHOUSE_DSN
// when that is set. Retention overrides in base are kept.
func FromEnv(base Config) (Config, error) {
	dsn := os.Getenv(DSNEnv)
	if dsn == "" {
		return base, nil
	}
	c, err := ParseDSN(dsn)
	if err != nil {
		return base, fmt.Errorf("$%s: %w", DSNEnv, err)
	}
	c.RetentionDays = base.RetentionDays
	return c, nil
}

// target is what the schema is rendered for with features.
func (c Config) target(f schema.Features) schema.Target {
	return schema.Target{Database: c.Database, Cluster: c.Cluster, Features: f, RetentionDays: c.RetentionDays}
}

// features resolves Profile against the server's version.
func (c Config) features(v schema.Version) schema.Features {
	switch c.Profile {
	case ProfileLegacy:
		return schema.Features{}
	case ProfileModern:
		return schema.Modern
	default:
		return schema.FeaturesFor(v)
	}
}

// DSN renders c as a DSN that ParseDSN reads back to the same connection
// settings (retention is not part of a DSN).
func (c Config) DSN() string {
	u := url.URL{Scheme: "clickhouse", Host: strings.Join(c.Addrs, ","), Path: "/" + c.Database}
	switch {
	case c.Password != "":
		u.User = url.UserPassword(c.Username, c.Password)
	case c.Username != "":
		u.User = url.User(c.Username)
	}
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	if c.TLS.Enabled {
		q.Set("secure", "true")
	}
	if c.TLS.InsecureSkipVerify {
		q.Set("skip_verify", "true")
	}
	set("ca_file", c.TLS.CAFile)
	set("cert_file", c.TLS.CertFile)
	set("key_file", c.TLS.KeyFile)
	set("server_name", c.TLS.ServerName)
	if c.DialTimeout > 0 {
		q.Set("dial_timeout", c.DialTimeout.String())
	}
	if c.ReadTimeout > 0 {
		q.Set("read_timeout", c.ReadTimeout.String())
	}
	if c.MaxOpenConns > 0 {
		q.Set("max_open_conns", strconv.Itoa(c.MaxOpenConns))
	}
	set("compress", c.Compression)
	set("cluster", c.Cluster)
	set("profile", c.Profile)
	u.RawQuery = q.Encode()
	return u.String()
}
