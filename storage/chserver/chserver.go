// Package chserver runs a private clickhouse-server process: its own config,
// data directory and loopback ports, so it never touches a user's ClickHouse.
// Tests start one per run; `fleetctl demo` starts one under ./data.
package chserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/fleetwatch/fleetwatch/lib/freeport"
)

// InstallHint tells a user how to get the server binary.
const InstallHint = "install it with `make setup` (or: sudo apt-get install -y clickhouse-server clickhouse-client)"

// ErrNoBinary means no clickhouse-server binary was found.
var ErrNoBinary = errors.New("clickhouse-server not found on PATH, in /usr/bin or /usr/sbin; " + InstallHint)

// Config describes the private server.
type Config struct {
	// Binary is the server executable (default: clickhouse-server on PATH, then
	// /usr/bin/clickhouse-server, /usr/sbin/clickhouse-server, /usr/bin/clickhouse).
	Binary string
	// Dir holds config, data and logs. It must be set.
	Dir string
	// TCPPort and HTTPPort are the loopback ports; 0 picks free ones.
	TCPPort, HTTPPort int
	// StartTimeout bounds the wait until the server answers (default 60s).
	StartTimeout time.Duration
	// MaxMemoryBytes caps query memory (default 4 GiB).
	MaxMemoryBytes int64
	// LogLevel is the server's log level (default warning).
	LogLevel string
	// TLSCert and TLSKey (PEM files), when set, open a TLS native-protocol
	// port (TLSPort; 0 picks a free one) beside the plain one.
	TLSCert, TLSKey string
	TLSPort         int
	// InterserverPort is the loopback port replicas fetch parts from; 0 picks
	// a free one on first start, kept across restarts.
	InterserverPort int
	// Replication, when set, makes the server one replica of a cluster.
	Replication *Replication
}

// Replication joins a server to a replicated, sharded cluster: the
// ZooKeeper ensemble that coordinates its Replicated*MergeTree tables, the
// cluster's shape for Distributed tables and ON CLUSTER DDL, and the
// {shard} and {replica} macros the schema's replication paths use.
type Replication struct {
	// ZooKeeper lists the ensemble's host:port addresses.
	ZooKeeper []string
	// Cluster names the cluster in <remote_servers>.
	Cluster string
	// Shards lists, per shard, the native-protocol host:port of each replica.
	Shards [][]string
	// Shard and Replica are this server's macros.
	Shard, Replica string
}

// Validate checks that the cluster is complete.
func (r *Replication) Validate() error {
	switch {
	case len(r.ZooKeeper) == 0:
		return errors.New("chserver: replication needs at least one ZooKeeper address")
	case r.Cluster == "":
		return errors.New("chserver: replication needs a cluster name")
	case len(r.Shards) == 0:
		return errors.New("chserver: replication needs at least one shard")
	case r.Shard == "" || r.Replica == "":
		return errors.New("chserver: replication needs the shard and replica macros")
	}
	for i, sh := range r.Shards {
		if len(sh) == 0 {
			return fmt.Errorf("chserver: shard %d has no replicas", i+1)
		}
		for _, a := range sh {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return fmt.Errorf("chserver: shard %d replica %q: %w", i+1, a, err)
			}
		}
	}
	return nil
}

// FindBinary locates clickhouse-server.
func FindBinary() (path string, args []string, err error) {
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return p, nil, nil
	}
	for _, p := range []string{"/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil, nil
		}
	}
	for _, p := range []string{"/usr/bin/clickhouse"} {
		if _, err := os.Stat(p); err == nil {
			return p, []string{"server"}, nil
		}
	}
	if p, err := exec.LookPath("clickhouse"); err == nil {
		return p, []string{"server"}, nil
	}
	return "", nil, ErrNoBinary
}

// Server is a running (or stopped) private clickhouse-server.
type Server struct {
	cfg  Config
	bin  string
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start writes the config under cfg.Dir, starts the server and waits until
// it answers on its HTTP port.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("chserver: Dir is required")
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	if cfg.MaxMemoryBytes <= 0 {
		cfg.MaxMemoryBytes = 4 << 30
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "warning"
	}
	if cfg.Replication != nil {
		if err := cfg.Replication.Validate(); err != nil {
			return nil, err
		}
	}
	s := &Server{cfg: cfg}
	if cfg.Binary != "" {
		s.bin = cfg.Binary
	} else {
		bin, args, err := FindBinary()
		if err != nil {
			return nil, err
		}
		s.bin, s.args = bin, args
	}
	if err := s.Restart(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Restart (re)starts the process on the same ports and data. Ports chosen
// automatically on first start are kept.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("chserver: already running")
	}
	var err error
	if s.cfg.TCPPort == 0 {
		if s.cfg.TCPPort, err = freePort(); err != nil {
			return err
		}
	}
	if s.cfg.HTTPPort == 0 {
		if s.cfg.HTTPPort, err = freePort(); err != nil {
			return err
		}
	}
	if s.cfg.TLSCert != "" && s.cfg.TLSPort == 0 {
		if s.cfg.TLSPort, err = freePort(); err != nil {
			return err
		}
	}
	if s.cfg.InterserverPort == 0 {
		if s.cfg.InterserverPort, err = freePort(); err != nil {
			return err
		}
	}
	if err := s.writeConfig(); err != nil {
		return err
	}
	args := append(append([]string{}, s.args...), "--config-file="+filepath.Join(s.cfg.Dir, "config.xml"))
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.cfg.Dir
	out, err := os.OpenFile(filepath.Join(s.cfg.Dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("chserver: %w", err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	setProcAttrs(cmd)
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("chserver: start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	if err := s.waitReady(ctx, done); err != nil {
		s.stopLocked(syscall.SIGKILL, 5*time.Second)
		return err
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context, done <-chan struct{}) error {
	deadline := time.Now().Add(s.cfg.StartTimeout)
	url := fmt.Sprintf("http://127.0.0.1:%d/ping", s.cfg.HTTPPort)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-done:
			return fmt.Errorf("chserver: clickhouse-server exited during start-up; last log lines:\n%s", s.LogTail(20))
		case <-ctx.Done():
			return fmt.Errorf("chserver: waiting for start-up: %w", ctx.Err())
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chserver: no answer on %s after %v; last log lines:\n%s", url, s.cfg.StartTimeout, s.LogTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Addr is the native-protocol address, 127.0.0.1:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.cfg.TCPPort)) }

// HTTPAddr is the HTTP interface address.
func (s *Server) HTTPAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.cfg.HTTPPort))
}

// TLSAddr is the TLS native-protocol address, "" without TLS.
func (s *Server) TLSAddr() string {
	if s.cfg.TLSCert == "" {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.cfg.TLSPort))
}

// Dir is the server's directory.
func (s *Server) Dir() string { return s.cfg.Dir }

// Running reports whether the process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Stop shuts the server down gracefully (SIGTERM, then SIGKILL after 30s).
// It is safe to call on a stopped server.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(syscall.SIGTERM, 30*time.Second)
}

// Kill stops the server abruptly, as a crash would.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(syscall.SIGKILL, 10*time.Second)
}

func (s *Server) stopLocked(sig syscall.Signal, grace time.Duration) {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(grace):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

// LogTail returns the last n lines of the server's error log and stdout.
func (s *Server) LogTail(n int) string {
	var b strings.Builder
	for _, f := range []string{"err.log", "stdout.log"} {
		data, err := os.ReadFile(filepath.Join(s.cfg.Dir, f))
		if err != nil || len(data) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "== %s ==\n%s\n", f, strings.Join(lines, "\n"))
	}
	return b.String()
}

func freePort() (int, error) {
	p, err := freeport.Port()
	if err != nil {
		return 0, fmt.Errorf("chserver: %w", err)
	}
	return p, nil
}

var configTmpl = template.Must(template.New("config").Funcs(template.FuncMap{
	"host": func(a string) string { h, _, _ := net.SplitHostPort(a); return h },
	"port": func(a string) string { _, p, _ := net.SplitHostPort(a); return p },
}).Parse(`<?xml version="1.0"?>
<!-- Written by Fleetwatch's chserver for a private server; safe to delete with its directory. -->
<yandex>
  <logger>
    <level>{{.LogLevel}}</level>
    <log>{{.Dir}}/server.log</log>
    <errorlog>{{.Dir}}/err.log</errorlog>
    <size>50M</size>
    <count>2</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>{{.TCPPort}}</tcp_port>
{{- if .TLSCert}}
  <tcp_port_secure>{{.TLSPort}}</tcp_port_secure>
  <openSSL>
    <server>
      <certificateFile>{{.TLSCert}}</certificateFile>
      <privateKeyFile>{{.TLSKey}}</privateKeyFile>
      <verificationMode>none</verificationMode>
      <loadDefaultCAFile>false</loadDefaultCAFile>
      <cacheSessions>true</cacheSessions>
      <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
      <preferServerCiphers>true</preferServerCiphers>
    </server>
  </openSSL>
{{- end}}
  <http_port>{{.HTTPPort}}</http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <interserver_http_port>{{.InterserverPort}}</interserver_http_port>
{{- with .Replication}}
  <zookeeper>
{{- range .ZooKeeper}}
    <node><host>{{host .}}</host><port>{{port .}}</port></node>
{{- end}}
    <session_timeout_ms>10000</session_timeout_ms>
  </zookeeper>
  <remote_servers>
    <{{.Cluster}}>
{{- range .Shards}}
      <shard>
        <internal_replication>true</internal_replication>
{{- range .}}
        <replica><host>{{host .}}</host><port>{{port .}}</port></replica>
{{- end}}
      </shard>
{{- end}}
    </{{.Cluster}}>
  </remote_servers>
  <distributed_ddl>
    <path>/clickhouse/task_queue/ddl</path>
  </distributed_ddl>
  <macros>
    <shard>{{.Shard}}</shard>
    <replica>{{.Replica}}</replica>
  </macros>
{{- end}}
  <path>{{.Dir}}/data/</path>
  <tmp_path>{{.Dir}}/data/tmp/</tmp_path>
  <user_files_path>{{.Dir}}/data/user_files/</user_files_path>
  <format_schema_path>{{.Dir}}/data/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>200</max_concurrent_queries>
  <mlock_executable>false</mlock_executable>
  <shutdown_wait_unfinished>1</shutdown_wait_unfinished>
</yandex>
`))

// ReadOnlyUser and ReadOnlyPassword name a second user of every private
// server, in a profile with readonly=1: it may run SELECT and SHOW, and no
// DDL, INSERT or SET, like the read-only user a dashboard or an on-call
// engineer gets in production. (ClickHouse 18.16 has no CREATE USER; users
// live in users.xml.)
const (
	ReadOnlyUser     = "reader"
	ReadOnlyPassword = "reader-password"
)

var usersTmpl = template.Must(template.New("users").Parse(`<?xml version="1.0"?>
<yandex>
  <profiles>
    <default>
      <max_memory_usage>{{.MaxMemoryBytes}}</max_memory_usage>
    </default>
    <readonly>
      <max_memory_usage>{{.MaxMemoryBytes}}</max_memory_usage>
      <readonly>1</readonly>
    </readonly>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
    <{{.ReadOnlyUser}}>
      <password>{{.ReadOnlyPassword}}</password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>readonly</profile>
      <quota>default</quota>
    </{{.ReadOnlyUser}}>
  </users>
  <quotas>
    <default>
      <interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval>
    </default>
  </quotas>
</yandex>
`))

func (s *Server) writeConfig() error {
	abs, err := filepath.Abs(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("chserver: %w", err)
	}
	s.cfg.Dir = abs
	if err := os.MkdirAll(filepath.Join(abs, "data"), 0o755); err != nil {
		return fmt.Errorf("chserver: %w", err)
	}
	data := struct {
		Config
		ReadOnlyUser, ReadOnlyPassword string
	}{s.cfg, ReadOnlyUser, ReadOnlyPassword}
	for name, t := range map[string]*template.Template{"config.xml": configTmpl, "users.xml": usersTmpl} {
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return fmt.Errorf("chserver: render %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(abs, name), b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("chserver: %w", err)
		}
	}
	return nil
}

// PID is the server's process id, or 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}
