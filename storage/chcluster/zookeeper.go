package chcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fleetwatch/fleetwatch/lib/freeport"
)

// ZooKeeperJar is where Debian's zookeeper package puts the server; its
// manifest carries the class path of its dependencies.
const ZooKeeperJar = "/usr/share/java/zookeeper.jar"

// ZooKeeperInstallHint tells a user how to get the server.
const ZooKeeperInstallHint = "install it with `make setup` (or: sudo apt-get install -y zookeeper)"

// ErrNoZooKeeper means java or Debian's ZooKeeper jar is missing.
var ErrNoZooKeeper = errors.New("ZooKeeper not found (" + ZooKeeperJar + " and java); " + ZooKeeperInstallHint)

// FindZooKeeper returns the java binary when both it and the jar are present.
func FindZooKeeper() (java string, err error) {
	java, err = exec.LookPath("java")
	if err != nil {
		return "", ErrNoZooKeeper
	}
	if _, err := os.Stat(ZooKeeperJar); err != nil {
		return "", ErrNoZooKeeper
	}
	return java, nil
}

// ZooKeeper is a private, standalone ZooKeeper server on a loopback port.
type ZooKeeper struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// StartZooKeeper writes a standalone configuration under dir, starts the
// server and waits until it answers "imok".
func StartZooKeeper(ctx context.Context, dir string) (*ZooKeeper, error) {
	java, err := FindZooKeeper()
	if err != nil {
		return nil, err
	}
	port, err := freeport.Port()
	if err != nil {
		return nil, fmt.Errorf("chcluster: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, fmt.Errorf("chcluster: %w", err)
	}
	cfg := fmt.Sprintf(`# Written by Fleetwatch's chcluster for a private test server.
tickTime=500
initLimit=10
syncLimit=5
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr
`, filepath.Join(dir, "data"), port)
	cfgPath := filepath.Join(dir, "zoo.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("chcluster: %w", err)
	}
	out, err := os.Create(filepath.Join(dir, "zookeeper.log"))
	if err != nil {
		return nil, fmt.Errorf("chcluster: %w", err)
	}
	cmd := exec.Command(java, "-Xmx256m", "-XX:+UseSerialGC", "-cp", ZooKeeperJar,
		"org.apache.zookeeper.server.quorum.QuorumPeerMain", cfgPath)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("chcluster: start ZooKeeper: %w", err)
	}
	z := &ZooKeeper{dir: dir, port: port, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(z.done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if z.ruok() {
			return z, nil
		}
		select {
		case <-z.done:
			return nil, fmt.Errorf("chcluster: ZooKeeper exited during start-up; see %s", filepath.Join(dir, "zookeeper.log"))
		case <-ctx.Done():
			z.Stop()
			return nil, fmt.Errorf("chcluster: waiting for ZooKeeper: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			z.Stop()
			return nil, fmt.Errorf("chcluster: ZooKeeper did not answer on %s within 60s", z.Addr())
		}
	}
}

// ruok sends ZooKeeper's four-letter health check.
func (z *ZooKeeper) ruok() bool {
	c, err := net.DialTimeout("tcp", z.Addr(), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("ruok")); err != nil {
		return false
	}
	b, _ := io.ReadAll(c)
	return strings.TrimSpace(string(b)) == "imok"
}

// Addr is the client address, 127.0.0.1:port.
func (z *ZooKeeper) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(z.port)) }

// Stop terminates the server and waits for it.
func (z *ZooKeeper) Stop() {
	_ = z.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-z.done:
	case <-time.After(10 * time.Second):
		_ = z.cmd.Process.Kill()
		<-z.done
	}
}
