package supervisor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/internal/kernel"
)

// Bounds on what is read from a target for one notification.
const (
	memPageSize = 4096
	maxPath     = unix.PathMax // 4096 including the NUL, as the kernel's getname()
	maxSockaddr = 128          // sizeof(struct sockaddr_storage)
	maxArgv     = 256          // execve argument strings decoded
	maxArgvSize = 128 << 10    // bytes of argument strings decoded, NULs included
)

// memReader is everything decodeCall learns about a notified thread beyond
// the notification itself: its memory and a few /proc facts.
//
// Nothing it returns may be trusted until validate has returned nil after
// the last read. The thread can die between SECCOMP_IOCTL_NOTIF_RECV and a
// read, and its TID be reused by another process, in which case the bytes
// (or the cwd, or the fd) belong to a stranger; only
// SECCOMP_IOCTL_NOTIF_ID_VALID after the read proves they did not
// (seccomp_unotify(2), NOTES). decodeCall is the only consumer and ends
// every path with validate.
type memReader interface {
	// read fills buf from addr; EFAULT unless every byte was readable.
	read(addr uint64, buf []byte) error
	// cString reads a NUL-terminated string of at most max bytes including
	// the NUL; ok is false when no NUL came within max bytes (the string
	// returned is then the first max bytes).
	cString(addr uint64, max int) (s string, ok bool, err error)
	// cwd is the calling thread's working directory.
	cwd() (string, error)
	// fdPath is what descriptor fd of the target refers to (readlink of
	// /proc/TID/fd/N); EBADF when it has no such descriptor.
	fdPath(fd int32) (string, error)
	// umask is the calling thread's file mode creation mask.
	umask() (uint32, error)
	// process is the identity of the calling thread and its process.
	process() (analyzer.Process, error)
	// forget drops cached identity of the calling process (it is about to
	// exec or change credentials).
	forget()
	// validate confirms that the notification is still pending, so that
	// everything read since it was received describes the thread that made
	// the call: kernel.ErrNotifGone otherwise.
	validate() error
}

// memPages reads target memory one whole page at a time through a
// two-page cache that lives for one notification. A string's length is
// unknown before it is read: a fixed PATH_MAX window could run into an
// unmapped page after a string that ends just before it, and
// process_vm_readv then fails or comes back short; a page is mapped or not
// as a whole, so page reads never fail for bytes that are there. The cache
// makes an argv array and its strings, or a msghdr and its msg_name, cost
// one process_vm_readv per page touched rather than per item.
type memPages struct {
	readAt func(addr uint64, buf []byte) (int, error) // at most one page, page-aligned
	slot   [2]memPage
	next   int
	str    []byte // scratch for strings that cross pages
}

type memPage struct {
	base uint64
	n    int
	ok   bool
	b    [memPageSize]byte
}

func (m *memPages) reset() { m.slot[0].ok, m.slot[1].ok = false, false }

// at returns the readable bytes from addr to the end of its page.
func (m *memPages) at(addr uint64) ([]byte, error) {
	base := addr &^ (memPageSize - 1)
	off := int(addr - base)
	for i := range m.slot {
		if p := &m.slot[i]; p.ok && p.base == base {
			if off >= p.n {
				return nil, unix.EFAULT
			}
			return p.b[off:p.n], nil
		}
	}
	p := &m.slot[m.next]
	m.next ^= 1
	p.ok = false
	n, err := m.readAt(base, p.b[:])
	if err != nil {
		return nil, err
	}
	p.base, p.n, p.ok = base, n, true
	if off >= n {
		return nil, unix.EFAULT
	}
	return p.b[off:n], nil
}

func (m *memPages) read(addr uint64, buf []byte) error {
	if addr+uint64(len(buf)) < addr {
		return unix.EFAULT // wraps around the address space
	}
	for len(buf) > 0 {
		b, err := m.at(addr)
		if err != nil {
			return err
		}
		k := copy(buf, b)
		buf, addr = buf[k:], addr+uint64(k)
	}
	return nil
}

func (m *memPages) cString(addr uint64, max int) (string, bool, error) {
	m.str = m.str[:0]
	for len(m.str) < max {
		if addr == 0 && len(m.str) > 0 {
			return "", false, unix.EFAULT // wrapped around
		}
		b, err := m.at(addr)
		if err != nil {
			return "", false, err
		}
		if len(b) > max-len(m.str) {
			b = b[:max-len(m.str)]
		}
		if s, ok := cString(b); ok {
			if len(m.str) == 0 {
				return s, true, nil
			}
			return string(append(m.str, s...)), true, nil
		}
		m.str = append(m.str, b...)
		addr += uint64(len(b))
	}
	return string(m.str), false, nil
}

// cString returns the bytes of b before the first NUL and whether there
// was one.
func cString(b []byte) (string, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), true
		}
	}
	return "", false
}

// targetMem is the memReader of a real notified thread: process_vm_readv
// for memory (no descriptor to open per notification, unlike
// /proc/PID/mem) and /proc/TID for the rest. The notification's PID is a
// thread ID; /proc/TID resolves for any thread even though /proc lists
// only thread-group leaders.
type targetMem struct {
	listener int
	id       uint64
	tid      int
	procs    *procCache
	mem      memPages
	pending  bool // something was read since the last validate
	link     []byte
}

func newTargetMem(procs *procCache) *targetMem {
	t := &targetMem{procs: procs, link: make([]byte, unix.PathMax)}
	t.mem.readAt = func(addr uint64, buf []byte) (int, error) { return kernel.ReadMem(t.tid, addr, buf) }
	return t
}

// bind points t at notification n of listener and forgets what it read
// for the previous one.
func (t *targetMem) bind(listener int, n *kernel.Notif) {
	t.listener, t.id, t.tid = listener, n.ID, int(n.PID)
	t.mem.reset()
	t.pending = false
}

func (t *targetMem) read(addr uint64, buf []byte) error {
	t.pending = true
	return t.mem.read(addr, buf)
}

func (t *targetMem) cString(addr uint64, max int) (string, bool, error) {
	t.pending = true
	return t.mem.cString(addr, max)
}

func (t *targetMem) readlink(p string) (string, error) {
	t.pending = true
	for {
		n, err := unix.Readlink(p, t.link)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", err
		}
		if n == len(t.link) {
			return "", unix.ENAMETOOLONG
		}
		return string(t.link[:n]), nil
	}
}

func (t *targetMem) cwd() (string, error) {
	return t.readlink("/proc/" + strconv.Itoa(t.tid) + "/cwd")
}

func (t *targetMem) fdPath(fd int32) (string, error) {
	if fd < 0 {
		return "", unix.EBADF
	}
	p, err := t.readlink("/proc/" + strconv.Itoa(t.tid) + "/fd/" + strconv.Itoa(int(fd)))
	if errors.Is(err, unix.ENOENT) {
		return "", unix.EBADF
	}
	return p, err
}

func (t *targetMem) umask() (uint32, error) {
	t.pending = true
	b, err := readProcFile("/proc/"+strconv.Itoa(t.tid)+"/status", t.procs.buf)
	if err != nil {
		return 0, err
	}
	v, ok := procStatusLine(b, "Umask:")
	if !ok {
		return 0, fmt.Errorf("/proc/%d/status has no Umask line", t.tid)
	}
	u, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/status: Umask %q: %w", t.tid, v, err)
	}
	return uint32(u), nil
}

func (t *targetMem) process() (analyzer.Process, error) {
	t.pending = true
	return t.procs.lookup(t.tid)
}

func (t *targetMem) forget() { t.procs.forget(t.tid) }

// validate is SECCOMP_IOCTL_NOTIF_ID_VALID: see memReader.
func (t *targetMem) validate() error {
	if err := kernel.NotifIDValid(t.listener, t.id); err != nil {
		return err
	}
	t.pending = false
	return nil
}
