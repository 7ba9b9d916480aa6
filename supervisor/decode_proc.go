package supervisor

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/internal/kernel"
	"github.com/archangel-sandbox/archangel/profiles"
)

// Bounds of the identity cache: one entry per thread and per process seen
// recently. On overflow an arbitrary entry goes; it is re-read on the next
// notification from its owner. Each cached thread holds one descriptor
// (its /proc/TID/stat), so the thread bound also respects RLIMIT_NOFILE.
const (
	maxCachedThreads = 1024
	maxCachedProcs   = 1024
)

// procCache provides analyzer.Process for a notified thread. Reading it
// from scratch costs six /proc operations (stat, status, the exe link, a
// stat of exe, cgroup); with the cache a repeated notification from a
// known thread costs one pread(2) of its /proc/TID/stat, kept open.
//
// The kept descriptor is what tells a thread from a later one that reused
// its TID: it pins the task it was opened for, and reading it fails with
// ESRCH once that task has exited, whatever now has the number. The start
// time (stat field 22, fixed for the life of a task) is compared as well.
// A process keeps its (TGID, start time) across execve, which replaces
// Exe, so its entry is also dropped when
//   - its memory layout changes: fields 26-28 of stat (start and end of
//     code, start of stack) belong to the mm that execve replaces and ASLR
//     randomises; this catches an exec the profile does not notify, and
//     a sibling thread's notification that refilled the entry while an
//     allowed execve was still in progress;
//   - the process makes a notified execve/execveat or set*id call
//     (memReader.forget); the next notification re-reads it.
//
// An exec that keeps the same layout (ASLR off, identical code size and
// stack) and is not notified leaves a stale Exe; credentials changed by a
// set*id call the profile does not notify stay stale until the next exec.
// PPID and Comm (the calling thread's, as in /proc/TID/stat) are always
// fresh.
//
// Not safe for concurrent use: the notification loop owns it; close
// releases the descriptors.
type procCache struct {
	threads    map[int]threadID
	procs      map[procKey]*procInfo
	buf        []byte
	maxThreads int
}

type procKey struct {
	pid   int
	start uint64
}

type threadID struct {
	stat    int     // open /proc/TID/stat, or -1
	start   uint64  // the thread's own start time
	proc    procKey // its thread group
	last    procStat
	checked time.Time // when last was read
	// creds: the thread's credentials as the emulated open uses them,
	// read from /proc/TID/status at its first emulated open; nil until
	// then and after forget.
	creds *kernel.Creds
}

// identityFresh is how long a thread's /proc/TID/stat, once read, is
// trusted without reading it again. A TID can only name another task
// after the kernel's PID counter has wrapped around pid_max (32768 at the
// least), which takes far more than this many forks. What can change a
// thread's identity inside the window — an execve (the exe), the setuid
// family, setgroups, capset, unshare and setns (the credentials) — the
// filter always notifies (IdentityCalls), and the notification drops the
// cached identity (forget); what may go stale is only PPID after a
// reparenting and Comm after PR_SET_NAME, both informational.
const identityFresh = 50 * time.Millisecond

// IdentityCalls are the system calls that change what archangel caches
// about a thread: the program it runs and the credentials it opens files
// with. The filter notifies every allowed one (filter.Options
// NotifyAllowed); the supervisor drops its cached identity of the caller
// and answers with the profile's verdict.
var IdentityCalls = []string{
	"execve", "execveat",
	"setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid",
	"setgroups", "capset", "unshare", "setns",
}

// IdentityCallsFor returns IdentityCalls when p makes the supervisor act
// on who a caller is — path, network or exec rules (emulated opens run
// with the caller's credentials; rules and the model key on its exe), the
// model tier, or patterns — and nil otherwise: a profile that decides on
// syscall numbers and scalar arguments alone never reads the identity,
// and its execs need not pay a notification.
func IdentityCallsFor(p *profiles.Profile) []string {
	if len(p.Files.Read)+len(p.Files.Write)+len(p.Files.Exec)+len(p.Files.Deny)+
		len(p.Network.Connect)+len(p.Network.Bind)+len(p.Network.Deny)+len(p.Exec.Rules)+len(p.Learned) > 0 ||
		analysisConfigured(p) || p.Supervisor.Patterns {
		return IdentityCalls
	}
	return nil
}

type procInfo struct {
	p  analyzer.Process // PID, Exe, ExeIno, UID, EUID, GID, Cgroup
	mm [3]uint64
}

// procStat is what is read from /proc/TID/stat on every notification.
type procStat struct {
	comm  string
	ppid  int
	start uint64
	mm    [3]uint64 // startcode, endcode, startstack
}

func newProcCache() *procCache {
	c := &procCache{
		threads:    make(map[int]threadID),
		procs:      make(map[procKey]*procInfo),
		buf:        make([]byte, 8192),
		maxThreads: maxCachedThreads,
	}
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur/4 < uint64(c.maxThreads) {
		c.maxThreads = int(max(lim.Cur/4, 1))
	}
	return c
}

// close releases the descriptors of the cached threads.
func (c *procCache) close() {
	for tid := range c.threads {
		c.dropThread(tid)
	}
	clear(c.procs)
}

func (c *procCache) dropThread(tid int) {
	if th, ok := c.threads[tid]; ok {
		if th.stat >= 0 {
			unix.Close(th.stat)
		}
		delete(c.threads, tid)
	}
}

// lookup returns the identity of thread tid.
func (c *procCache) lookup(tid int) (analyzer.Process, error) {
	var st procStat
	th, ok := c.threads[tid]
	now := time.Now()
	cached := ok && now.Sub(th.checked) < identityFresh
	if cached {
		st = th.last
	} else if ok {
		b, err := preadProcFile(th.stat, c.buf)
		if err == nil {
			st, ok = parseProcStat(b)
		}
		if err != nil || !ok || st.start != th.start {
			// ESRCH: the task the entry was made for has exited and the
			// TID belongs to another one now.
			c.dropThread(tid)
			ok = false
		}
	}
	var status []byte
	if !ok {
		var err error
		if th, st, err = c.newThread(tid); err != nil {
			return analyzer.Process{}, err
		}
		if status, err = c.status(tid); err != nil {
			unix.Close(th.stat)
			return analyzer.Process{}, err
		}
		tgid, err := procStatusInt(status, "Tgid:")
		if err != nil {
			unix.Close(th.stat)
			return analyzer.Process{}, fmt.Errorf("/proc/%d/status: %w", tid, err)
		}
		th.proc = procKey{pid: tgid, start: st.start}
		if tgid != tid {
			leader, err := c.stat(tgid)
			if err != nil {
				unix.Close(th.stat)
				return analyzer.Process{}, err
			}
			th.proc.start = leader.start
		}
		if len(c.threads) >= c.maxThreads {
			for k := range c.threads {
				c.dropThread(k)
				break
			}
		}
		c.threads[tid] = th
	}
	pi := c.procs[th.proc]
	if pi == nil || pi.mm != st.mm {
		if status == nil {
			var err error
			if status, err = c.status(tid); err != nil {
				return analyzer.Process{}, err
			}
		}
		var err error
		if pi, err = c.fill(th.proc.pid, tid, status); err != nil {
			return analyzer.Process{}, err
		}
		pi.mm = st.mm
		evictOne(c.procs, maxCachedProcs)
		c.procs[th.proc] = pi
	}
	if !cached {
		th.last, th.checked = st, now
		c.threads[tid] = th
	}
	p := pi.p
	p.TID, p.PPID, p.Comm = tid, st.ppid, st.comm
	return p, nil
}

// newThread opens /proc/TID/stat and reads it.
func (c *procCache) newThread(tid int) (threadID, procStat, error) {
	path := "/proc/" + strconv.Itoa(tid) + "/stat"
	fd, err := openProcFile(path)
	if err != nil {
		return threadID{}, procStat{}, err
	}
	b, err := preadProcFile(fd, c.buf)
	if err != nil {
		unix.Close(fd)
		return threadID{}, procStat{}, fmt.Errorf("read %s: %w", path, err)
	}
	st, ok := parseProcStat(b)
	if !ok {
		unix.Close(fd)
		return threadID{}, procStat{}, fmt.Errorf("%s: unexpected format", path)
	}
	return threadID{stat: fd, start: st.start}, st, nil
}

// forget drops the cached identity of tid's process.
func (c *procCache) forget(tid int) {
	th, ok := c.threads[tid]
	if !ok {
		return
	}
	delete(c.procs, th.proc)
	// Every thread of the process: an execve leaves one thread with new
	// credentials (capabilities are recomputed), the setuid family as
	// glibc runs it changes each thread in turn.
	for t, o := range c.threads {
		if o.proc == th.proc {
			o.creds, o.checked = nil, time.Time{}
			c.threads[t] = o
		}
	}
}

func (c *procCache) fill(pid, tid int, status []byte) (*procInfo, error) {
	pi := &procInfo{p: analyzer.Process{PID: pid}}
	uids, err := procStatusIDs(status, "Uid:")
	if err != nil {
		return nil, fmt.Errorf("/proc/%d/status: %w", tid, err)
	}
	gids, err := procStatusIDs(status, "Gid:")
	if err != nil {
		return nil, fmt.Errorf("/proc/%d/status: %w", tid, err)
	}
	pi.p.UID, pi.p.EUID, pi.p.GID = uids[0], uids[1], gids[0]
	pi.p.FSUID, pi.p.FSGID = uids[3], gids[3]
	dir := "/proc/" + strconv.Itoa(pid)
	// A process without an mm (exiting, or a kernel thread) has no exe;
	// leave it empty rather than fail: the call is still decided.
	if n, err := unix.Readlink(dir+"/exe", c.buf[:unix.PathMax]); err == nil {
		pi.p.Exe = string(c.buf[:n])
		var st unix.Stat_t
		if unix.Stat(dir+"/exe", &st) == nil {
			pi.p.ExeIno = st.Ino
		}
	}
	if b, err := readProcFile(dir+"/cgroup", c.buf); err == nil {
		pi.p.Cgroup = cgroupPath(b)
	}
	return pi, nil
}

func (c *procCache) stat(tid int) (procStat, error) {
	b, err := readProcFile("/proc/"+strconv.Itoa(tid)+"/stat", c.buf)
	if err != nil {
		return procStat{}, err
	}
	st, ok := parseProcStat(b)
	if !ok {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", tid)
	}
	return st, nil
}

// creds returns thread tid's credentials, what the kernel would check its
// own open against: cached per thread (a call that changes them is always
// notified, and drops them), read from /proc/TID/status otherwise.
func (c *procCache) creds(tid int) (kernel.Creds, error) {
	th, ok := c.threads[tid]
	if ok && th.creds != nil {
		return *th.creds, nil
	}
	cr, err := c.readCreds(tid)
	if err == nil && ok {
		th.creds = &cr
		c.threads[tid] = th
	}
	return cr, err
}

func (c *procCache) readCreds(tid int) (kernel.Creds, error) {
	b, err := readProcFile("/proc/"+strconv.Itoa(tid)+"/status", c.buf)
	if err != nil {
		return kernel.Creds{}, err
	}
	uids, err := procStatusIDs(b, "Uid:")
	if err != nil {
		return kernel.Creds{}, err
	}
	gids, err := procStatusIDs(b, "Gid:")
	if err != nil {
		return kernel.Creds{}, err
	}
	cr := kernel.Creds{FSUID: uids[3], FSGID: gids[3]}
	if v, ok := procStatusLine(b, "Groups:"); ok {
		for f := range strings.FieldsSeq(v) {
			g, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				return kernel.Creds{}, fmt.Errorf("/proc/%d/status: Groups %q: %w", tid, v, err)
			}
			cr.Groups = append(cr.Groups, uint32(g))
		}
	}
	v, ok := procStatusLine(b, "CapEff:")
	if !ok {
		return kernel.Creds{}, fmt.Errorf("/proc/%d/status: no CapEff line", tid)
	}
	if cr.CapEff, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64); err != nil {
		return kernel.Creds{}, fmt.Errorf("/proc/%d/status: CapEff %q: %w", tid, v, err)
	}
	return cr, nil
}

func (c *procCache) status(tid int) ([]byte, error) {
	b, err := readProcFile("/proc/"+strconv.Itoa(tid)+"/status", c.buf)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(b), nil // c.buf is reused by the next read
}

// parseProcStat parses /proc/PID/stat (proc_pid_stat(5)). The command name
// is in parentheses and may itself contain spaces and parentheses: the
// fields start after the last ')'.
func parseProcStat(b []byte) (procStat, bool) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procStat{}, false
	}
	st := procStat{comm: string(b[open+1 : end])}
	rest := b[end+1:]
	// Field 3 (state) is rest's first field.
	for i := 3; i <= 28; i++ {
		rest = bytes.TrimLeft(rest, " ")
		j := bytes.IndexByte(rest, ' ')
		if j < 0 {
			j = len(rest)
		}
		f := rest[:j]
		rest = rest[j:]
		var err error
		switch i {
		case 4:
			st.ppid, err = strconv.Atoi(string(f))
		case 22:
			st.start, err = strconv.ParseUint(string(f), 10, 64)
		case 26, 27, 28:
			st.mm[i-26], err = strconv.ParseUint(string(f), 10, 64)
		}
		if err != nil || len(f) == 0 {
			return procStat{}, false
		}
	}
	return st, true
}

// readProcFile reads a small /proc file into buf: proc files of a task are
// generated whole on the first read.
func readProcFile(path string, buf []byte) ([]byte, error) {
	fd, err := openProcFile(path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	b, err := preadProcFile(fd, buf)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

func openProcFile(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// preadProcFile reads the whole of an open /proc file from offset 0.
func preadProcFile(fd int, buf []byte) ([]byte, error) {
	n := 0
	for n < len(buf) {
		k, err := unix.Pread(fd, buf[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if k == 0 {
			return buf[:n], nil
		}
		n += k
	}
	return nil, fmt.Errorf("longer than %d bytes", len(buf))
}

// procStatusLine returns the rest of the line of /proc/PID/status that starts
// with key.
func procStatusLine(b []byte, key string) (string, bool) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if bytes.HasPrefix(line, []byte(key)) {
			return string(line[len(key):]), true
		}
	}
	return "", false
}

func procStatusInt(b []byte, key string) (int, error) {
	v, ok := procStatusLine(b, key)
	if !ok {
		return 0, fmt.Errorf("no %s line", key)
	}
	return strconv.Atoi(string(bytes.TrimSpace([]byte(v))))
}

// procStatusIDs parses a "Uid:" or "Gid:" line: real, effective, saved, fs.
func procStatusIDs(b []byte, key string) ([4]uint32, error) {
	var out [4]uint32
	v, ok := procStatusLine(b, key)
	if !ok {
		return out, fmt.Errorf("no %s line", key)
	}
	f := bytes.Fields([]byte(v))
	if len(f) != 4 {
		return out, fmt.Errorf("%s %q: want 4 fields", key, v)
	}
	for i := range out {
		u, err := strconv.ParseUint(string(f[i]), 10, 32)
		if err != nil {
			return out, fmt.Errorf("%s %q: %w", key, v, err)
		}
		out[i] = uint32(u)
	}
	return out, nil
}

// cgroupPath returns the cgroup v2 path from /proc/PID/cgroup ("0::/path"),
// or the first line on a v1-only system.
func cgroupPath(b []byte) string {
	first := ""
	for line := range bytes.SplitSeq(bytes.TrimRight(b, "\n"), []byte("\n")) {
		if p, ok := bytes.CutPrefix(line, []byte("0::")); ok {
			return string(p)
		}
		if first == "" {
			first = string(line)
		}
	}
	return first
}

// evictOne removes an arbitrary entry when m is full.
func evictOne[K comparable, V any](m map[K]V, limit int) {
	if len(m) < limit {
		return
	}
	for k := range m {
		delete(m, k)
		return
	}
}
