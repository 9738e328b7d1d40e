package netsec

import (
	"fmt"
	"os"
	"sync"
)

// watched holds a value loaded from files and reloads it when one of them
// changes (size, modification time, or the file itself, as when a rotation
// renames a new file into place or a Kubernetes secret swaps its symlink).
// A reload that fails — a half-written file, a certificate without its new
// key yet — keeps the last good value and is tried again on the next call.
type watched[T any] struct {
	paths []string
	load  func() (T, error)

	mu    sync.Mutex
	infos []os.FileInfo
	val   T
	err   error // the last reload's failure, nil after a good one
}

// newWatched loads the value once; a failure here is an error (nothing
// good to fall back on).
func newWatched[T any](load func() (T, error), paths ...string) (*watched[T], error) {
	w := &watched[T]{paths: paths, load: load}
	infos, err := w.stat()
	if err != nil {
		return nil, err
	}
	if w.val, err = load(); err != nil {
		return nil, err
	}
	w.infos = infos
	return w, nil
}

func (w *watched[T]) stat() ([]os.FileInfo, error) {
	infos := make([]os.FileInfo, len(w.paths))
	for i, p := range w.paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("netsec: %w", err)
		}
		infos[i] = fi
	}
	return infos, nil
}

// get returns the current value, reloading it first if a file changed.
func (w *watched[T]) get() T {
	w.mu.Lock()
	defer w.mu.Unlock()
	infos, err := w.stat()
	if err != nil {
		w.err = err
		return w.val
	}
	if !changed(w.infos, infos) {
		return w.val
	}
	v, err := w.load()
	if err != nil {
		w.err = err
		return w.val
	}
	w.val, w.infos, w.err = v, infos, nil
	return w.val
}

// lastError is the last reload's failure (nil once a reload succeeded).
func (w *watched[T]) lastError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func changed(old, cur []os.FileInfo) bool {
	for i := range cur {
		o, c := old[i], cur[i]
		if !os.SameFile(o, c) || o.Size() != c.Size() || !o.ModTime().Equal(c.ModTime()) {
			return true
		}
	}
	return false
}
