package tabular

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// DirectIOMin is the file size from which IPC files are read with direct
// I/O (O_DIRECT on Linux): a file that big is read once, so caching it
// would only evict other data, and on virtualised disks the kernel's
// buffered copy can cost more CPU than the binning (docs/BENCHMARKS.md,
// the Evidently workload). Smaller files are read through the page cache.
const DirectIOMin = 256 << 20

const (
	directAlign = 4096    // logical block size O_DIRECT offsets and buffers are aligned to
	directChunk = 8 << 20 // bytes read per system call
)

// directFile is an io.ReaderAt and io.Seeker over a file opened for direct
// I/O. ReadAt reads whole aligned blocks into an aligned scratch buffer
// and copies out the requested bytes; it is safe for concurrent use. If
// the file system refuses direct I/O, reads go through a buffered
// descriptor instead.
type directFile struct {
	direct   *os.File
	buffered *os.File
	size     int64

	mu  sync.Mutex
	pos int64 // for Seek, which the IPC reader uses to find the footer

	scratch sync.Pool
	refused atomic.Bool // the file system rejected an aligned direct read
}

// openDirect opens path for direct I/O; it returns an error when the
// platform or file system does not support it.
func openDirect(path string, buffered *os.File, size int64) (*directFile, error) {
	if oDirect == 0 {
		return nil, errors.ErrUnsupported
	}
	f, err := os.OpenFile(path, os.O_RDONLY|oDirect, 0)
	if err != nil {
		return nil, err
	}
	d := &directFile{direct: f, buffered: buffered, size: size}
	d.scratch.New = func() any { return alignedBuffer(directChunk) }
	return d, nil
}

// alignedBuffer returns n bytes starting at a directAlign boundary.
func alignedBuffer(n int) *[]byte {
	raw := make([]byte, n+directAlign)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(&raw[0])) % directAlign); r != 0 {
		skip = directAlign - r
	}
	b := raw[skip : skip+n : skip+n]
	return &b
}

func (d *directFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at negative offset %d", off)
	}
	if d.refused.Load() {
		return d.buffered.ReadAt(p, off)
	}
	bp := d.scratch.Get().(*[]byte)
	defer d.scratch.Put(bp)
	buf := *bp
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		if pos >= d.size {
			return done, io.EOF
		}
		start := pos &^ (directAlign - 1)
		want := min(int64(len(p)-done)+(pos-start), int64(len(buf)))
		want = (want + directAlign - 1) &^ (directAlign - 1)
		n, err := d.direct.ReadAt(buf[:want], start)
		if errors.Is(err, syscall.EINVAL) && done == 0 {
			d.refused.Store(true)
			return d.buffered.ReadAt(p, off)
		}
		if n <= int(pos-start) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return done, err
		}
		done += copy(p[done:], buf[pos-start:n])
		if err != nil && err != io.EOF {
			return done, err
		}
	}
	return done, nil
}

func (d *directFile) Seek(offset int64, whence int) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += d.pos
	case io.SeekEnd:
		offset += d.size
	default:
		return 0, fmt.Errorf("seek: bad whence %d", whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("seek to negative offset %d", offset)
	}
	d.pos = offset
	return offset, nil
}

// Read is io.Reader for completeness; the IPC file reader only uses ReadAt.
func (d *directFile) Read(p []byte) (int, error) {
	d.mu.Lock()
	pos := d.pos
	d.mu.Unlock()
	n, err := d.ReadAt(p, pos)
	d.mu.Lock()
	d.pos = pos + int64(n)
	d.mu.Unlock()
	return n, err
}

func (d *directFile) Close() error { return d.direct.Close() }
