package storage

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/churl"
	"go.opentelemetry.io/collector/config/configtls"
	"go.opentelemetry.io/collector/confmap"
	"gopkg.in/yaml.v3"

	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// DSNEnv is the environment variable that may hold a ClickHouse DSN.
const DSNEnv = "FLEETWATCH_CLICKHOUSE_DSN"

// PasswordFileEnv names a file holding the ClickHouse password; it sets
// Config.PasswordFile (FromEnv).
const PasswordFileEnv = "FLEETWATCH_CLICKHOUSE_PASSWORD_FILE"

// Profile names accepted by Config.Profile.
const (
	ProfileAuto   = "auto"
	ProfileLegacy = "legacy"
	ProfileModern = "modern"
)

// TLSConfig turns on TLS for the native protocol. Its settings are the
// Collector's configtls.ClientConfig (ca_file, cert_file, key_file, the
// *_pem forms, insecure_skip_verify, server_name_override, min_version,
// max_version, cipher_suites, reload_interval, ...), the same ones the
// collector's exporter takes, loaded by configtls.
type TLSConfig struct {
	Enabled bool
	configtls.ClientConfig
}

// tlsServerNameAlias is the older name of configtls's server_name_override,
// still read from YAML files.
const tlsServerNameAlias = "server_name"

// UnmarshalYAML reads a tls: section: enabled, and configtls.ClientConfig's
// keys, decoded as the Collector decodes them (confmap), so the keys and
// their meaning are configtls's own; an unknown key is an error. yaml.v3
// cannot decode configtls.ClientConfig by itself: it has mapstructure tags
// only and an embedded (squashed) Config.
func (t *TLSConfig) UnmarshalYAML(n *yaml.Node) error {
	var m map[string]any
	if err := n.Decode(&m); err != nil {
		return err
	}
	out := TLSConfig{ClientConfig: configtls.NewDefaultClientConfig()}
	if v, ok := m["enabled"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return fmt.Errorf("tls.enabled: %v is not a boolean", v)
		}
		out.Enabled = b
		delete(m, "enabled")
	}
	if v, ok := m[tlsServerNameAlias]; ok {
		if _, both := m["server_name_override"]; both {
			return errors.New("tls: server_name and server_name_override: give one")
		}
		m["server_name_override"] = v
		delete(m, tlsServerNameAlias)
	}
	if err := confmap.NewFromStringMap(m).Unmarshal(&out.ClientConfig); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	*t = out
	return nil
}

// MarshalYAML writes the keys UnmarshalYAML reads.
func (t TLSConfig) MarshalYAML() (any, error) {
	conf := confmap.New()
	if err := conf.Marshal(t.ClientConfig); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	m := conf.ToStringMap()
	if m == nil {
		m = map[string]any{}
	}
	m["enabled"] = t.Enabled
	return m, nil
}

// Config says how to reach ClickHouse and how to lay out the schema there.
type Config struct {
	// Addrs are host:port pairs of the native protocol (port 9000, 9440 with TLS).
	// Several addresses are tried in order for failover.
	Addrs    []string `yaml:"addrs"`
	Database string   `yaml:"database"`
	Username string   `yaml:"username"`
	Password string   `yaml:"password"`
	// PasswordFile is a file holding the password instead (a mounted
	// Kubernetes Secret, a systemd credential), read when a client opens,
	// with one trailing newline trimmed. It excludes Password;
	// $FLEETWATCH_CLICKHOUSE_PASSWORD_FILE sets it.
	PasswordFile string    `yaml:"password_file"`
	TLS          TLSConfig `yaml:"tls"`
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
	if c.Password != "" && c.PasswordFile != "" {
		errs = append(errs, errors.New("password and password_file: set one, not both"))
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
	if len(errs) == 0 {
		if err := t.ClientConfig.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("tls: %w", err))
		}
	}
	return errs
}

// ParseDSN reads a DSN of the form
//
//	clickhouse://[user[:password]@]host[:port][,host[:port]...][/database][?param=value&...]
//
// on top of NewDefaultConfig. The scheme may also be tcp. clickhouse-go's
// own parser (clickhouse.ParseDSN) reads it, so its parameters mean what
// they mean there: secure (a bare "secure" is true), skip_verify,
// tls_server_name, dial_timeout, read_timeout, max_open_conns, compress
// (true is lz4, false is none), hosts and alt_hosts (more hosts before and
// after those of the authority), username, password, database. Fleetwatch
// adds ca_file, cert_file, key_file, server_name (tls_server_name by its
// older name), cluster and profile. Every other parameter is refused:
// clickhouse-go would send it to the server as a setting, and a typo should
// not become one. A host without a port gets 9000, or 9440 with secure.
func ParseDSN(dsn string) (Config, error) {
	c := NewDefaultConfig()
	if scheme, _, _ := strings.Cut(dsn, "://"); !strings.EqualFold(scheme, "clickhouse") && !strings.EqualFold(scheme, "tcp") {
		return c, fmt.Errorf("parse DSN: scheme %q: want clickhouse:// or tcp://", scheme)
	}
	opt, optErr := clickhouse.ParseDSN(dsn)
	u, err := churl.Parse(dsn) // the parser clickhouse.ParseDSN uses
	if err != nil {
		// clickhouse.ParseDSN failed the same way and keeps credentials out of its error.
		return c, fmt.Errorf("parse DSN: %w", optErr)
	}
	q := u.Query()
	var errs []error
	if u.Host == "" {
		errs = append(errs, errors.New("no host"))
	}
	errs = append(errs, checkDSNParams(q)...)
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("parse DSN: %w", err)
	}
	if optErr != nil {
		return c, fmt.Errorf("parse DSN: %w", optErr)
	}

	if opt.Auth.Username != "" {
		c.Username = opt.Auth.Username
	}
	c.Password = opt.Auth.Password
	if db := strings.Trim(opt.Auth.Database, "/"); db != "" {
		c.Database = db
	}
	if opt.TLS != nil {
		c.TLS.Enabled = true
		c.TLS.InsecureSkipVerify = opt.TLS.InsecureSkipVerify
		c.TLS.ServerName = opt.TLS.ServerName
	}
	if v := q.Get("server_name"); v != "" {
		c.TLS.ServerName = v
	}
	c.TLS.CAFile, c.TLS.CertFile, c.TLS.KeyFile = q.Get("ca_file"), q.Get("cert_file"), q.Get("key_file")
	if q.Has("dial_timeout") {
		c.DialTimeout = opt.DialTimeout
	}
	if q.Has("read_timeout") {
		c.ReadTimeout = opt.ReadTimeout
	}
	if q.Has("max_open_conns") {
		c.MaxOpenConns = opt.MaxOpenConns
	}
	if v := q.Get("compress"); v != "" {
		c.Compression = dsnCompression(v, opt.Compression)
	}
	if v := q.Get("profile"); v != "" {
		c.Profile = v
	}
	c.Cluster = q.Get("cluster")

	defPort := "9000"
	if c.TLS.Enabled {
		defPort = "9440"
	}
	c.Addrs = nil
	for _, h := range opt.Addr {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(strings.Trim(h, "[]"), defPort)
		}
		c.Addrs = append(c.Addrs, h)
	}
	if len(c.Addrs) == 0 {
		return c, errors.New("parse DSN: no host")
	}
	return c, nil
}

// dsnParams are the DSN parameters ParseDSN accepts, with the kind of value
// each takes: clickhouse-go's that map onto Config, then Fleetwatch's own.
var dsnParams = map[string]string{
	"secure": "bool", "skip_verify": "bool", "tls_server_name": "", "dial_timeout": "duration",
	"read_timeout": "duration", "max_open_conns": "int", "compress": "", "hosts": "", "alt_hosts": "",
	"username": "", "password": "", "database": "",

	"ca_file": "", "cert_file": "", "key_file": "", "server_name": "", "cluster": "", "profile": "",
}

// checkDSNParams reports unknown parameters and values of the wrong kind, in
// Fleetwatch's words, before clickhouse-go reports the first in its own.
func checkDSNParams(q url.Values) []error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(q)) {
		kind, ok := dsnParams[k]
		if !ok {
			errs = append(errs, fmt.Errorf("unknown parameter %q", k))
			continue
		}
		v := q.Get(k)
		switch {
		case kind == "bool" && v != "":
			if _, err := strconv.ParseBool(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a boolean", k, v))
			}
		case kind == "duration":
			if _, err := time.ParseDuration(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", k, v, err))
			}
		case kind == "int":
			if _, err := strconv.Atoi(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a number", k, v))
			}
		}
	}
	return errs
}

// dsnCompression names the compression clickhouse-go read from compress=v;
// a value it does not know is kept for Validate to report.
func dsnCompression(v string, cc *clickhouse.Compression) string {
	if cc != nil {
		return cc.Method.String()
	}
	if on, err := strconv.ParseBool(v); err == nil && !on {
		return "none"
	}
	return v
}

// FromEnv returns base, or the config parsed from $FLEETWATCH_CLICKHOUSE_DSN
// when that is set (retention overrides in base are kept), with the
// password read from $FLEETWATCH_CLICKHOUSE_PASSWORD_FILE when that is set.
func FromEnv(base Config) (Config, error) {
	c := base
	if dsn := os.Getenv(DSNEnv); dsn != "" {
		var err error
		if c, err = ParseDSN(dsn); err != nil {
			return base, fmt.Errorf("$%s: %w", DSNEnv, err)
		}
		c.RetentionDays = base.RetentionDays
		c.PasswordFile = base.PasswordFile
	}
	return WithPasswordFileEnv(c), nil
}

// WithPasswordFileEnv returns c with its password taken from the file
// $FLEETWATCH_CLICKHOUSE_PASSWORD_FILE names, when that is set (also for a
// --dsn given on the command line, which should carry no password).
func WithPasswordFileEnv(c Config) Config {
	if f := os.Getenv(PasswordFileEnv); f != "" {
		c.Password, c.PasswordFile = "", f
	}
	return c
}

// password is the password to connect with: Password, or the content of
// PasswordFile without its trailing newline.
func (c Config) password() (string, error) {
	if c.PasswordFile == "" {
		return c.Password, nil
	}
	b, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("password_file: %w", err)
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if pw == "" {
		return "", fmt.Errorf("password_file %s: empty", c.PasswordFile)
	}
	return pw, nil
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
// settings. Retention is not part of a DSN, and of the TLS settings only
// enabled, the three files, insecure_skip_verify and the server name are.
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
