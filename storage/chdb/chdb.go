// Package chdb runs SQL on a current ClickHouse engine in-process, through
// chDB's C API in libchdb.so (npm package @chdb/lib-linux-x64-gnu), loaded at
// run time with dlopen. Fleetwatch's tests use it to prove that the modern
// schema profile and the SQL the product ships run on current ClickHouse,
// while the network tests run against Debian's ClickHouse 18.16.
//
// `make setup` puts the library at .cache/chdb/libchdb.so; $FLEETWATCH_CHDB_LIB
// overrides the path.
package chdb

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

typedef void* (*connect_fn)(int, char**);
typedef void  (*close_fn)(void*);
typedef void* (*query_fn)(void*, const char*, const char*);
typedef void  (*destroy_fn)(void*);
typedef char* (*buffer_fn)(void*);
typedef size_t (*length_fn)(void*);
typedef const char* (*error_fn)(void*);

static void* fw_connect(void* f, int argc, char** argv) { return ((connect_fn)f)(argc, argv); }
static void  fw_close(void* f, void* conn) { ((close_fn)f)(conn); }
static void* fw_query(void* f, void* conn, const char* q, const char* fmt) { return ((query_fn)f)(conn, q, fmt); }
static void  fw_destroy(void* f, void* r) { ((destroy_fn)f)(r); }
static char* fw_buffer(void* f, void* r) { return ((buffer_fn)f)(r); }
static size_t fw_length(void* f, void* r) { return ((length_fn)f)(r); }
static const char* fw_error(void* f, void* r) { return ((error_fn)f)(r); }
static void* fw_deref(void* p) { return *(void**)p; }
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"
)

// LibEnv names the environment variable that may point at libchdb.so.
const LibEnv = "FLEETWATCH_CHDB_LIB"

// InstallHint says how to get the library.
const InstallHint = "run `make setup` (downloads @chdb/lib-linux-x64-gnu from npm into .cache/chdb) or set $" + LibEnv

// FindLibrary returns the path of libchdb.so: $FLEETWATCH_CHDB_LIB, or
// .cache/chdb/libchdb.so in the first directory at or above dir holding a go.mod.
func FindLibrary(dir string) (string, error) {
	if p := os.Getenv(LibEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$%s: %w", LibEnv, err)
		}
		return p, nil
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			p := filepath.Join(d, ".cache", "chdb", "libchdb.so")
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("libchdb.so not found at %s; %s", p, InstallHint)
			}
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s to find .cache/chdb; %s", dir, InstallHint)
		}
	}
}

type symbols struct {
	connect, close, query, destroy, buffer, length, errorf unsafe.Pointer
}

var (
	loadOnce sync.Once
	syms     symbols
	loadErr  error
)

func load(path string) error {
	loadOnce.Do(func() {
		cpath := C.CString(path)
		defer C.free(unsafe.Pointer(cpath))
		h := C.dlopen(cpath, C.RTLD_NOW|C.RTLD_LOCAL)
		if h == nil {
			loadErr = fmt.Errorf("dlopen %s: %s", path, C.GoString(C.dlerror()))
			return
		}
		for name, dst := range map[string]*unsafe.Pointer{
			"chdb_connect": &syms.connect, "chdb_close_conn": &syms.close, "chdb_query": &syms.query,
			"chdb_destroy_query_result": &syms.destroy, "chdb_result_buffer": &syms.buffer,
			"chdb_result_length": &syms.length, "chdb_result_error": &syms.errorf,
		} {
			cname := C.CString(name)
			*dst = C.dlsym(h, cname)
			C.free(unsafe.Pointer(cname))
			if *dst == nil {
				loadErr = fmt.Errorf("%s: symbol %s not found", path, name)
				return
			}
		}
	})
	return loadErr
}

// Session is an in-process ClickHouse with its data in one directory. Queries
// are serialized; chDB allows one session per process.
type Session struct {
	mu     sync.Mutex
	handle unsafe.Pointer // chdb_connection*
	conn   unsafe.Pointer // chdb_connection
}

var open sync.Mutex

// Open loads libPath and starts a session storing its data under dir.
func Open(libPath, dir string) (*Session, error) {
	if err := load(libPath); err != nil {
		return nil, err
	}
	open.Lock()
	defer open.Unlock()
	args := []string{"clickhouse", "--path=" + dir}
	argv := C.malloc(C.size_t(len(args)) * C.size_t(unsafe.Sizeof(uintptr(0))))
	defer C.free(argv)
	cargs := (*[8]*C.char)(argv)
	for i, a := range args {
		cargs[i] = C.CString(a)
		defer C.free(unsafe.Pointer(cargs[i]))
	}
	h := C.fw_connect(syms.connect, C.int(len(args)), (**C.char)(argv))
	if h == nil {
		return nil, errors.New("chdb_connect failed")
	}
	// chdb_connect returns a pointer to the connection; queries take the connection.
	conn := C.fw_deref(h)
	if conn == nil {
		return nil, errors.New("chdb_connect returned no connection")
	}
	return &Session{handle: h, conn: conn}, nil
}

// Query runs one statement and returns its output in format (CSV,
// TabSeparated, JSONEachRow, ...).
func (s *Session) Query(sql, format string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return "", errors.New("chdb: session closed")
	}
	csql, cfmt := C.CString(sql), C.CString(format)
	defer C.free(unsafe.Pointer(csql))
	defer C.free(unsafe.Pointer(cfmt))
	r := C.fw_query(syms.query, s.conn, csql, cfmt)
	if r == nil {
		return "", errors.New("chdb_query returned no result")
	}
	defer C.fw_destroy(syms.destroy, r)
	if e := C.fw_error(syms.errorf, r); e != nil {
		return "", fmt.Errorf("chdb: %s", C.GoString(e))
	}
	n := C.fw_length(syms.length, r)
	if n == 0 {
		return "", nil
	}
	return C.GoStringN(C.fw_buffer(syms.buffer, r), C.int(n)), nil
}

// Close ends the session.
func (s *Session) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handle != nil {
		C.fw_close(syms.close, s.handle)
		s.handle, s.conn = nil, nil
	}
}
