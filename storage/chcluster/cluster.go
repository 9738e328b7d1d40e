// Package chcluster runs a private, replicated and sharded ClickHouse
// cluster on loopback: one standalone ZooKeeper (Debian's package) and
// shards × replicas clickhouse-server processes (storage/chserver), each
// with the cluster in its <remote_servers>, the ZooKeeper ensemble and its
// {shard}/{replica} macros. The schema's cluster mode (ON CLUSTER DDL,
// Replicated*MergeTree tables, Distributed tables over them) runs on it
// unchanged. Tests use it to prove the pipeline on a real cluster; it never
// touches a user's ClickHouse or ZooKeeper.
package chcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/fleetwatch/fleetwatch/lib/freeport"
	"github.com/fleetwatch/fleetwatch/storage/chserver"
)

// Config is the cluster's shape.
type Config struct {
	// Dir holds ZooKeeper's and every server's directory. It must be set.
	Dir string
	// Name is the cluster's name in <remote_servers> (default "fleetwatch").
	Name string
	// Shards and Replicas give the shape (default 2 × 2).
	Shards, Replicas int
	// MaxMemoryBytes caps each server's query memory (default 1 GiB).
	MaxMemoryBytes int64
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "fleetwatch"
	}
	if c.Shards == 0 {
		c.Shards = 2
	}
	if c.Replicas == 0 {
		c.Replicas = 2
	}
	if c.MaxMemoryBytes == 0 {
		c.MaxMemoryBytes = 1 << 30
	}
	return c
}

// Validate checks the shape.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Dir == "":
		return errors.New("chcluster: Dir is required")
	case c.Shards < 1 || c.Replicas < 1:
		return fmt.Errorf("chcluster: %d shards × %d replicas: want at least 1 × 1", c.Shards, c.Replicas)
	}
	return nil
}

// Cluster is a running private cluster.
type Cluster struct {
	cfg Config
	zk  *ZooKeeper
	// servers[shard][replica]
	servers [][]*chserver.Server
}

// Start starts ZooKeeper and every server, in parallel, and returns when all
// answer.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	zk, err := StartZooKeeper(ctx, filepath.Join(cfg.Dir, "zookeeper"))
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, zk: zk}
	// Every server's ports are chosen first: each server's <remote_servers>
	// names all of them.
	ports := make([][]chserver.Config, cfg.Shards)
	shape := make([][]string, cfg.Shards)
	for s := range ports {
		for r := 0; r < cfg.Replicas; r++ {
			sc := chserver.Config{
				Dir:            filepath.Join(cfg.Dir, fmt.Sprintf("s%dr%d", s+1, r+1)),
				MaxMemoryBytes: cfg.MaxMemoryBytes,
			}
			for _, p := range []*int{&sc.TCPPort, &sc.HTTPPort, &sc.InterserverPort} {
				if *p, err = freeport.Port(); err != nil {
					zk.Stop()
					return nil, fmt.Errorf("chcluster: %w", err)
				}
			}
			ports[s] = append(ports[s], sc)
			shape[s] = append(shape[s], net.JoinHostPort("127.0.0.1", strconv.Itoa(sc.TCPPort)))
		}
	}
	c.servers = make([][]*chserver.Server, cfg.Shards)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for s := range ports {
		c.servers[s] = make([]*chserver.Server, cfg.Replicas)
		for r, sc := range ports[s] {
			sc.Replication = &chserver.Replication{
				ZooKeeper: []string{zk.Addr()},
				Cluster:   cfg.Name,
				Shards:    shape,
				Shard:     strconv.Itoa(s + 1),
				Replica:   fmt.Sprintf("s%dr%d", s+1, r+1),
			}
			wg.Add(1)
			go func(s, r int, sc chserver.Config) {
				defer wg.Done()
				if err := os.MkdirAll(sc.Dir, 0o755); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				srv, err := chserver.Start(ctx, sc)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, fmt.Errorf("shard %d replica %d: %w", s+1, r+1, err))
					return
				}
				c.servers[s][r] = srv
			}(s, r, sc)
		}
	}
	wg.Wait()
	if len(errs) == 0 {
		for _, sh := range c.servers {
			errs = append(errs, waitZooKeeper(ctx, sh...))
		}
	}
	if err := errors.Join(errs...); err != nil {
		c.Stop()
		return nil, fmt.Errorf("chcluster: %w", err)
	}
	return c, nil
}

// Restart restarts the (stopped or killed) server of shard s, replica r on
// its ports and data, and waits for its ZooKeeper session.
func (c *Cluster) Restart(ctx context.Context, s, r int) error {
	if err := c.servers[s][r].Restart(ctx); err != nil {
		return err
	}
	return waitZooKeeper(ctx, c.servers[s][r])
}

// waitZooKeeper waits until each of servers has its ZooKeeper session: 18.16
// crashes (a null session in zkutil::ZooKeeper::createImpl) when ON CLUSTER
// DDL reaches it before the session is up.
func waitZooKeeper(ctx context.Context, servers ...*chserver.Server) error {
	client := &http.Client{Timeout: 2 * time.Second}
	q := url.QueryEscape("SELECT count() FROM system.zookeeper WHERE path = '/'")
	deadline := time.Now().Add(60 * time.Second)
	for _, srv := range servers {
		for !hasSession(client, srv, q) {
			if time.Now().After(deadline) {
				return fmt.Errorf("server %s has no ZooKeeper session after 60s", srv.Addr())
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

func hasSession(client *http.Client, srv *chserver.Server, query string) bool {
	resp, err := client.Get("http://" + srv.HTTPAddr() + "/?query=" + query)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// Name is the cluster's name, for storage.Config.Cluster.
func (c *Cluster) Name() string { return c.cfg.Name }

// Server returns the server of shard s and replica r, both counted from 0.
func (c *Cluster) Server(s, r int) *chserver.Server { return c.servers[s][r] }

// Shards returns the number of shards; Replicas the replicas per shard.
func (c *Cluster) Shards() int   { return len(c.servers) }
func (c *Cluster) Replicas() int { return len(c.servers[0]) }

// Addrs lists every server's native address, replicas of a shard adjacent,
// for a client that fails over between them.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, sh := range c.servers {
		for _, srv := range sh {
			out = append(out, srv.Addr())
		}
	}
	return out
}

// ZooKeeper is the cluster's coordination server.
func (c *Cluster) ZooKeeper() *ZooKeeper { return c.zk }

// Stop stops every server, then ZooKeeper.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, sh := range c.servers {
		for _, srv := range sh {
			if srv == nil {
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); srv.Stop() }()
		}
	}
	wg.Wait()
	if c.zk != nil {
		c.zk.Stop()
	}
}
