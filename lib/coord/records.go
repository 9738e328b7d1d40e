package coord

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/go-zookeeper/zk"
)

// ErrNoSession is returned by the record calls while the member holds no
// ZooKeeper session (before Run connects, or while the connection is
// lost): the caller tries again later rather than acting on a guess.
var ErrNoSession = errors.New("coord: no ZooKeeper session")

// Records are small facts the members of a group share and that outlive
// the member that wrote them: persistent nodes
// <group>/records/<kind>/<escaped key> carrying the member's ACL. They are
// for what must be done once per group, not once per member (the
// analyzer's rollback ledger); they are read and written directly, with no
// cache, so every member sees the last write.

// recordPath returns the node of kind/key; kind is a plain path element,
// key any string (escaped).
func (m *Member) recordPath(kind, key string) (string, error) {
	if kind == "" || strings.ContainsAny(kind, "/ ") || key == "" {
		return "", fmt.Errorf("coord: bad record %q/%q", kind, key)
	}
	return path.Join(m.group, "records", kind, url.PathEscape(key)), nil
}

// sessionConn returns the connection while it holds a session.
func (m *Member) sessionConn() (*zk.Conn, error) {
	m.mu.Lock()
	c := m.conn
	m.mu.Unlock()
	if c == nil || c.State() != zk.StateHasSession {
		return nil, ErrNoSession
	}
	return c, nil
}

// Record returns the data of record kind/key; ok is false when there is
// none.
func (m *Member) Record(kind, key string) (data []byte, ok bool, err error) {
	p, err := m.recordPath(kind, key)
	if err != nil {
		return nil, false, err
	}
	c, err := m.sessionConn()
	if err != nil {
		return nil, false, err
	}
	data, _, err = c.Get(p)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("coord: read record %s: %w", p, err)
	}
	return data, true, nil
}

// SetRecord writes data to record kind/key, creating it (and its parents)
// when missing, replacing it otherwise.
func (m *Member) SetRecord(kind, key string, data []byte) error {
	p, err := m.recordPath(kind, key)
	if err != nil {
		return err
	}
	c, err := m.sessionConn()
	if err != nil {
		return err
	}
	for {
		_, err := c.Set(p, data, -1)
		if err == nil {
			return nil
		}
		if !errors.Is(err, zk.ErrNoNode) {
			return fmt.Errorf("coord: write record %s: %w", p, err)
		}
		for _, dir := range []string{m.cfg.Root, m.group, m.group + "/records", path.Dir(p)} {
			if _, err := c.Create(dir, nil, 0, m.acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
				return fmt.Errorf("coord: write record %s: %w", p, err)
			}
		}
		_, err = c.Create(p, data, 0, m.acl)
		if err == nil {
			return nil
		}
		if !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("coord: write record %s: %w", p, err)
		}
		// Created by another member in between: set it again.
	}
}
