package supervisor

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/internal/kernel"
)

// selfMem is a targetMem reading this very thread (process_vm_readv on
// oneself needs no privilege).
func selfMem(t *testing.T) *targetMem {
	t.Helper()
	m := newTargetMem(newProcCache())
	m.bind(-1, &kernel.Notif{ID: 1, PID: uint32(unix.Gettid())})
	return m
}

// guardedPages maps two pages and makes the second inaccessible, returning
// the address of the first.
func guardedPages(t *testing.T) ([]byte, uint64) {
	t.Helper()
	b, err := unix.Mmap(-1, 0, 2*memPageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	if err := unix.Mprotect(b[memPageSize:], unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	return b, uint64(uintptr(unsafe.Pointer(&b[0])))
}

func TestTargetMemStringAtPageEnd(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	m := selfMem(t)
	b, base := guardedPages(t)
	s := "/a/path/that/ends/at/the/page"
	at := memPageSize - len(s) - 1
	copy(b[at:], s+"\x00")
	got, ok, err := m.cString(base+uint64(at), maxPath)
	if err != nil || !ok || got != s {
		t.Fatalf("cString = %q, %v, %v; want %q", got, ok, err, s)
	}
	// One byte more and the string runs into the inaccessible page: the
	// kernel's own copy would fault too.
	b[memPageSize-1] = 'x'
	m.bind(-1, &kernel.Notif{ID: 1, PID: uint32(unix.Gettid())})
	if _, _, err := m.cString(base+uint64(at), maxPath); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("string into a PROT_NONE page: err %v, want EFAULT", err)
	}
	// Bounded by max before the fault: truncated, no error.
	got, ok, err = m.cString(base+uint64(at), 4)
	if err != nil || ok || got != s[:4] {
		t.Fatalf("bounded cString = %q, %v, %v", got, ok, err)
	}
	var buf [8]byte
	if err := m.read(base+memPageSize-4, buf[:]); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("read across into PROT_NONE: %v, want EFAULT", err)
	}
	if err := m.read(^uint64(0)-3, buf[:]); !errors.Is(err, unix.EFAULT) {
		t.Fatalf("read wrapping the address space: %v, want EFAULT", err)
	}
	if !m.pending {
		t.Error("reads did not mark the memory pending validation")
	}
}

func TestTargetMemStringAcrossPages(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	m := selfMem(t)
	b, err := unix.Mmap(-1, 0, 3*memPageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	base := uint64(uintptr(unsafe.Pointer(&b[0])))
	long := make([]byte, memPageSize+100)
	for i := range long {
		long[i] = 'a' + byte(i%26)
	}
	at := memPageSize - 50
	copy(b[at:], long)
	got, ok, err := m.cString(base+uint64(at), maxPath*2)
	if err != nil || !ok || got != string(long) {
		t.Fatalf("cString across pages: len %d, %v, %v", len(got), ok, err)
	}
	// Truncated at max across a page boundary.
	got, ok, err = m.cString(base+uint64(at), 60)
	if err != nil || ok || got != string(long[:60]) {
		t.Fatalf("bounded cString across pages = %q, %v, %v", got, ok, err)
	}
	var w [16]byte
	if err := m.read(base+memPageSize-8, w[:]); err != nil || string(w[:]) != string(long[memPageSize-8-at:][:16]) {
		t.Fatalf("read across pages: %q, %v", w, err)
	}
}

func TestTargetMemProc(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	m := selfMem(t)
	wd, _ := os.Getwd()
	if cwd, err := m.cwd(); err != nil || cwd != wd {
		t.Errorf("cwd = %q, %v; want %q", cwd, err, wd)
	}
	f, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	exe, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if p, err := m.fdPath(int32(f.Fd())); err != nil || p != exe {
		t.Errorf("fdPath = %q, %v; want %q", p, err, exe)
	}
	if _, err := m.fdPath(1 << 20); !errors.Is(err, unix.EBADF) {
		t.Errorf("fdPath of no descriptor: %v, want EBADF", err)
	}
	if _, err := m.fdPath(-5); !errors.Is(err, unix.EBADF) {
		t.Errorf("fdPath(-5): %v, want EBADF", err)
	}
	old := unix.Umask(0o027)
	um, err := m.umask()
	unix.Umask(old)
	if err != nil || um != 0o027 {
		t.Errorf("umask = %#o, %v; want 027", um, err)
	}
	// No listener: validation fails, and the memory stays unvalidated.
	if err := m.validate(); err == nil || !m.pending {
		t.Errorf("validate without a listener: %v, pending %v", err, m.pending)
	}
}

func TestProcCache(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c := newProcCache()
	tid := unix.Gettid()
	p, err := c.lookup(tid)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	var st unix.Stat_t
	if err := unix.Stat(exe, &st); err != nil {
		t.Fatal(err)
	}
	comm, _ := os.ReadFile("/proc/thread-self/comm")
	switch {
	case p.PID != os.Getpid(), p.TID != tid, p.PPID != os.Getppid():
		t.Errorf("PID/TID/PPID = %d/%d/%d, want %d/%d/%d", p.PID, p.TID, p.PPID, os.Getpid(), tid, os.Getppid())
	case p.Exe != exe || p.ExeIno != st.Ino:
		t.Errorf("Exe = %q (inode %d), want %q (%d)", p.Exe, p.ExeIno, exe, st.Ino)
	case p.Comm+"\n" != string(comm):
		t.Errorf("Comm = %q, want %q", p.Comm, comm)
	case p.UID != uint32(os.Getuid()) || p.EUID != uint32(os.Geteuid()) || p.GID != uint32(os.Getgid()):
		t.Errorf("UID/EUID/GID = %d/%d/%d", p.UID, p.EUID, p.GID)
	case p.Cgroup == "":
		t.Errorf("no cgroup")
	}
	if len(c.threads) != 1 || len(c.procs) != 1 {
		t.Fatalf("cache holds %d threads, %d processes", len(c.threads), len(c.procs))
	}

	// Another thread of the same process shares the process entry.
	done := make(chan error)
	var other int
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		other = unix.Gettid()
		q, err := c.lookup(other)
		if err == nil && (q.PID != p.PID || q.TID != other || q.Exe != p.Exe) {
			err = errors.New("other thread's identity differs")
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if other != tid && (len(c.threads) != 2 || len(c.procs) != 1) {
		t.Fatalf("cache holds %d threads, %d processes after a second thread", len(c.threads), len(c.procs))
	}

	// A changed memory layout (an exec) refreshes the process entry.
	key := c.threads[tid].proc
	c.procs[key].p.Exe = "/stale"
	if q, _ := c.lookup(tid); q.Exe != "/stale" {
		t.Fatalf("cache not used: Exe %q", q.Exe)
	}
	c.procs[key].mm[2]++
	if q, _ := c.lookup(tid); q.Exe != exe {
		t.Fatalf("after a layout change Exe = %q, want %q", q.Exe, exe)
	}
	// forget drops it.
	c.procs[key].p.Exe = "/stale"
	c.forget(tid)
	if q, _ := c.lookup(tid); q.Exe != exe {
		t.Fatalf("after forget Exe = %q", q.Exe)
	}
	// A thread entry from an earlier thread with this TID is replaced once
	// it is re-read (a TID is reused only after the PID counter wraps,
	// far outside identityFresh).
	th := c.threads[tid]
	th.start, th.proc, th.checked = 1, procKey{pid: 1, start: 1}, time.Time{}
	c.threads[tid] = th
	if q, _ := c.lookup(tid); q.PID != os.Getpid() {
		t.Fatalf("reused TID: PID %d", q.PID)
	}
	if _, err := c.lookup(1 << 30); err == nil {
		t.Fatal("lookup of a TID that does not exist succeeded")
	}

	// A process that has exited: its kept descriptor reads ESRCH, and the
	// entry goes.
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	gone := child.Process.Pid
	if q, err := c.lookup(gone); err != nil || q.PID != gone || q.PPID != os.Getpid() {
		t.Fatalf("child: %+v, %v", q, err)
	}
	_ = child.Process.Kill()
	_ = child.Wait()
	th = c.threads[gone]
	if _, err := preadProcFile(th.stat, c.buf); !errors.Is(err, unix.ESRCH) {
		t.Fatalf("kept stat of a reaped process: %v, want ESRCH", err)
	}
	// The decoder only looks up threads blocked in a notification (and
	// confirms with ID_VALID); an entry is re-read once identityFresh has
	// passed, and then the reaped process is noticed.
	th.checked = time.Time{}
	c.threads[gone] = th
	if _, err := c.lookup(gone); err == nil {
		t.Fatal("lookup of a reaped process succeeded")
	}
	if _, ok := c.threads[gone]; ok {
		t.Fatal("reaped process still cached")
	}

	c.close()
	if len(c.threads) != 0 || len(c.procs) != 0 {
		t.Fatal("close left entries")
	}
}

func countOpenFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestProcCacheReleasesDescriptors(t *testing.T) {
	before := countOpenFDs(t)
	c := newProcCache()
	if _, err := c.lookup(unix.Gettid()); err != nil {
		t.Fatal(err)
	}
	if n := countOpenFDs(t); n != before+1 {
		t.Fatalf("%d descriptors with one cached thread, %d before", n, before)
	}
	c.close()
	if n := countOpenFDs(t); n != before {
		t.Fatalf("%d descriptors after close, %d before", n, before)
	}
	c.maxThreads = 1
	var tids [2]int
	done := make(chan struct{})
	for i := range tids {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			tids[i] = unix.Gettid()
			if _, err := c.lookup(tids[i]); err != nil {
				t.Error(err)
			}
			done <- struct{}{}
		}()
		<-done
	}
	if len(c.threads) != 1 || countOpenFDs(t) != before+1 {
		t.Fatalf("bounded to 1 thread: %d cached, %d descriptors (%d before)", len(c.threads), countOpenFDs(t), before)
	}
	c.close()
}

func TestProcCacheBounded(t *testing.T) {
	m := map[int]int{}
	for i := range 10 {
		evictOne(m, 4)
		m[i] = i
	}
	if len(m) != 4 {
		t.Fatalf("len %d, want 4", len(m))
	}
}

func TestDecoderValidatesAgainstTheListener(t *testing.T) {
	// A real decoder with no listener behind it: the reads succeed (this
	// thread's own memory) but ID_VALID fails, so nothing comes back as
	// decoded.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p := []byte("/etc/hostname\x00")
	n := &kernel.Notif{ID: 1, PID: uint32(unix.Gettid()), Data: kernel.SeccompData{Nr: nr(t, "openat"), Arch: auditArchX8664,
		Args: [6]uint64{fdcwd, uint64(uintptr(unsafe.Pointer(&p[0])))}}}
	d := newDecoder()
	defer d.close()
	c, err := d.decode(-1, n)
	runtime.KeepAlive(p)
	if err == nil || answerErrno(err) != unix.EPERM {
		t.Fatalf("decode with an invalid listener: %+v, %v", c, err)
	}
	if c.Path != "" {
		t.Errorf("unvalidated path returned: %q", c.Path)
	}
}
