package supervisor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/archangel-sandbox/archangel/analyzer"
	"github.com/archangel-sandbox/archangel/internal/kernel"
	"github.com/archangel-sandbox/archangel/profiles"
)

// Decoding turns a notification into the canonical analyzer.Call: the
// syscall, its scalar arguments, and what its pointer arguments point to
// (paths resolved to absolute, normalised form; socket addresses; exec
// argv) together with the identity of the calling process.
//
// Everything read from the target is a snapshot. Another thread of the
// target (or a process sharing the memory) can change a path or an address
// right after it was read, and the kernel re-reads pointer arguments if the
// call is then let through with SECCOMP_USER_NOTIF_FLAG_CONTINUE. So a deny
// decided on a decoded value is safe; an allow is advisory unless the
// supervisor performs the call itself on the value it checked (emulate.go)
// or a race-free kernel mechanism enforces it (Landlock).
//
// Paths are resolved lexically and never through symlinks: "a/link/.."
// becomes "a", whatever link points to. That is the path rules see and the
// path enforcement opens, with openat2(RESOLVE_NO_SYMLINKS), so the file
// opened is the one that was checked even when the kernel's own
// resolution would have gone elsewhere; CONTINUE (audit mode) lets the
// kernel resolve it its own way.

// decoder decodes the notifications of one supervisor. It is owned by the
// notification loop.
type decoder struct {
	mem *targetMem
}

func newDecoder() *decoder { return &decoder{mem: newTargetMem(newProcCache())} }

// close releases what the decoder keeps open (a descriptor per cached
// thread). Call it once the loop has stopped.
func (d *decoder) close() { d.mem.procs.close() }

// decode decodes notification n, received on listener, reading the
// target's memory and /proc entries and validating the notification ID
// after the last read. See decodeCall for errors.
func (d *decoder) decode(listener int, n *kernel.Notif) (analyzer.Call, error) {
	d.mem.bind(listener, n)
	c, err := decodeCall(d.mem, n)
	if err == nil && d.mem.pending {
		// Cannot happen while decodeCall ends with validate; if a change
		// ever breaks that, fail closed rather than trust the bytes.
		return c, errors.New("decode: target memory read after the notification was validated")
	}
	return c, err
}

// decodeError is a call whose arguments the kernel itself refuses: Errno
// is what the kernel answers for them.
type decodeError struct {
	Errno unix.Errno
	What  string
}

func (e *decodeError) Error() string { return e.What + ": " + e.Errno.Error() }
func (e *decodeError) Unwrap() error { return e.Errno }

// readError classifies a failed read of target memory: EFAULT (no such
// mapping, what the kernel answers for the same pointer) is the target's
// doing; anything else (EPERM: no ptrace access; ESRCH) is archangel's.
func readError(err error, what string) error {
	if errors.Is(err, unix.EFAULT) {
		return &decodeError{Errno: unix.EFAULT, What: "read " + what}
	}
	return fmt.Errorf("read %s: %w", what, err)
}

// answerErrno is the errno with which to answer, in enforce mode, a call
// that decodeCall failed on. For a *decodeError it is what the kernel
// would answer for the same arguments (EFAULT for an unreadable pointer,
// EINVAL for a bad address length, ENOENT for an empty path, EBADF,
// ENOTDIR, E2BIG), so the target cannot tell archangel from the kernel;
// for any other error it is EPERM: archangel could not see the call and
// fails closed. It returns 0 for kernel.ErrNotifGone: the call is gone and
// nobody is left to answer. In audit mode the call continues regardless
// and the kernel answers for itself.
func answerErrno(err error) unix.Errno {
	var de *decodeError
	switch {
	case err == nil, errors.Is(err, kernel.ErrNotifGone):
		return 0
	case errors.As(err, &de):
		return de.Errno
	}
	return unix.EPERM
}

// decodeCall decodes notification n from r. It fills Nr, Name, Arch, Args,
// Kind, Access and Process, and per kind Path/Path2, Flags, Mode, Addr and
// Argv; Truncated when a path had no NUL within PATH_MAX (the kernel
// answers ENAMETOOLONG), an argv went beyond maxArgv strings or
// maxArgvSize bytes, or sendmmsg carried several different addresses.
//
// Its last act is r.validate(): every byte and /proc fact it returns was
// read before the notification ID was confirmed valid, never after. On
// failure it returns kernel.ErrNotifGone when the notification is no
// longer valid (checked first: a read that failed because the thread died
// is not the target's fault), a *decodeError when the kernel would refuse
// the arguments, or another error when archangel could not read them; see
// answerErrno. The Call returned with an error other than ErrNotifGone
// holds what was decoded (for the event log) and must not be decided on.
func decodeCall(r memReader, n *kernel.Notif) (analyzer.Call, error) {
	c := analyzer.Call{
		Nr:   n.Data.Nr,
		Name: syscallName(n.Data.Nr),
		Arch: n.Data.Arch,
		Args: n.Data.Args,
	}
	err := decodeInto(r, n, &c)
	// seccomp_unotify(2): the thread may have died and its TID been reused
	// since RECV; only ID_VALID after the last read proves the bytes came
	// from the thread that is blocked in this call.
	if verr := r.validate(); verr != nil {
		return analyzer.Call{}, verr
	}
	return c, err
}

func decodeInto(r memReader, n *kernel.Notif, c *analyzer.Call) error {
	if n.Data.Arch != auditArchX8664 || n.Data.Nr&x32SyscallBit != 0 {
		// The filter refuses foreign architectures and x32 before
		// notifying; argument layouts here are x86-64 only.
		return fmt.Errorf("decode %s: architecture %#x nr %d is not decoded", c.Name, n.Data.Arch, n.Data.Nr)
	}
	p, err := r.process()
	if err != nil {
		return fmt.Errorf("identify thread %d: %w", n.PID, err)
	}
	c.Process = p
	if n.Data.Nr < 0 || int(n.Data.Nr) >= len(callSpecs) {
		return nil
	}
	spec := &callSpecs[n.Data.Nr]
	c.Kind, c.Access = spec.kind, spec.access
	if spec.forget {
		// The call may replace the image (Exe) or the credentials: the
		// next notification from this process re-reads its identity.
		r.forget()
	}
	if spec.decode == nil {
		return nil
	}
	d := decoding{r: r, c: c, a: &n.Data.Args}
	if err := spec.decode(&d); err != nil {
		return fmt.Errorf("decode %s: %w", c.Name, err)
	}
	return nil
}

// AT_* values as the kernel defines them (fcntl.h).
const (
	x32SyscallBit = 0x40000000 // __X32_SYSCALL_BIT
	atFDCWD       = -100       // a 32-bit int in a 64-bit register: compare int32(reg)
	atEmptyPath   = unix.AT_EMPTY_PATH
)

// Open flags the kernel keeps for open(2)/openat(2) (VALID_OPEN_FLAGS in
// include/linux/fcntl.h; the rest are silently dropped by build_open_how),
// and the ones O_PATH keeps (O_PATH_FLAGS).
const (
	oTmpfileBit    = 0x400000 // __O_TMPFILE (O_TMPFILE also has O_DIRECTORY)
	validOpenFlags = unix.O_ACCMODE | unix.O_CREAT | unix.O_EXCL | unix.O_NOCTTY | unix.O_TRUNC | unix.O_APPEND |
		unix.O_NONBLOCK | unix.O_SYNC | unix.O_DSYNC | unix.O_ASYNC | unix.O_DIRECT | unix.O_LARGEFILE |
		unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_NOATIME | unix.O_CLOEXEC | unix.O_PATH | oTmpfileBit
	oPathFlags = unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_PATH | unix.O_CLOEXEC
	sIALLUGO   = 0o7777 // S_ISUID | S_ISGID | S_ISVTX | S_IRWXUGO
)

// decoding is the state of one decodeCall.
type decoding struct {
	r      memReader
	c      *analyzer.Call
	a      *[6]uint64
	cwd    string // read once per call
	hasCwd bool
}

type callSpec struct {
	kind   analyzer.Kind
	access analyzer.Access
	decode func(*decoding) error
	forget bool // drop the cached process identity (exec, set*id)
}

const (
	accR = analyzer.AccessRead
	accW = analyzer.AccessWrite
	accX = analyzer.AccessExec
)

// callSpecs describes, by x86-64 syscall number, the calls whose pointer
// arguments are decoded. Argument indexes are x86-64's; -1 is "none"
// (for a directory descriptor: AT_FDCWD).
var callSpecs = func() []callSpec {
	byName := map[string]callSpec{
		// Open family: Access from the flags.
		"open":    {kind: analyzer.KindOpen, decode: openCall(-1, 0, 1, 2, 0)},
		"openat":  {kind: analyzer.KindOpen, decode: openCall(0, 1, 2, 3, 0)},
		"creat":   {kind: analyzer.KindOpen, decode: openCall(-1, 0, -1, 1, unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC)},
		"openat2": {kind: analyzer.KindOpen, decode: openat2Call},

		// Stat family: looks at a file (or its link) without opening it.
		"stat":              {kind: analyzer.KindStat, access: accR, decode: pathCall(-1, 0, -1, emptyNo)},
		"lstat":             {kind: analyzer.KindStat, access: accR, decode: pathCall(-1, 0, -1, emptyNo)},
		"newfstatat":        {kind: analyzer.KindStat, access: accR, decode: pathCall(0, 1, 3, emptyFlag)},
		"statx":             {kind: analyzer.KindStat, access: accR, decode: pathCall(0, 1, 2, emptyFlag)},
		"statfs":            {kind: analyzer.KindStat, access: accR, decode: pathCall(-1, 0, -1, emptyNo)},
		"access":            {kind: analyzer.KindStat, access: accR, decode: pathCall(-1, 0, -1, emptyNo)},
		"faccessat":         {kind: analyzer.KindStat, access: accR, decode: pathCall(0, 1, -1, emptyNo)},
		"faccessat2":        {kind: analyzer.KindStat, access: accR, decode: pathCall(0, 1, 3, emptyFlag)},
		"readlink":          {kind: analyzer.KindStat, access: accR, decode: pathCall(-1, 0, -1, emptyAlways)},
		"readlinkat":        {kind: analyzer.KindStat, access: accR, decode: pathCall(0, 1, -1, emptyAlways)},
		"getxattr":          {kind: analyzer.KindStat, access: accR, decode: pathCall(-1, 0, -1, emptyNo)},
		"lgetxattr":         {kind: analyzer.KindStat, access: accR, decode: pathCall(-1, 0, -1, emptyNo)},
		"listxattr":         {kind: analyzer.KindStat, access: accR, decode: pathCall(-1, 0, -1, emptyNo)},
		"llistxattr":        {kind: analyzer.KindStat, access: accR, decode: pathCall(-1, 0, -1, emptyNo)},
		"getxattrat":        {kind: analyzer.KindStat, access: accR, decode: pathCall(0, 1, 2, emptyFlag)},
		"listxattrat":       {kind: analyzer.KindStat, access: accR, decode: pathCall(0, 1, 2, emptyFlag)},
		"inotify_add_watch": {kind: analyzer.KindStat, access: accR, decode: pathCall(-1, 1, -1, emptyNo)},
		"name_to_handle_at": {kind: analyzer.KindStat, access: accR, decode: pathCall(0, 1, 4, emptyFlag)},

		"execve":   {kind: analyzer.KindExec, access: accX, forget: true, decode: execCall(-1, 0, 1, -1)},
		"execveat": {kind: analyzer.KindExec, access: accX, forget: true, decode: execCall(0, 1, 2, 4)},

		"mkdir":     {kind: analyzer.KindCreate, access: accW, decode: mkdirCall(-1, 0, 1)},
		"mkdirat":   {kind: analyzer.KindCreate, access: accW, decode: mkdirCall(0, 1, 2)},
		"mknod":     {kind: analyzer.KindCreate, access: accW, decode: mknodCall(-1, 0, 1)},
		"mknodat":   {kind: analyzer.KindCreate, access: accW, decode: mknodCall(0, 1, 2)},
		"symlink":   {kind: analyzer.KindCreate, access: accW, decode: symlinkCall(0, -1, 1)},
		"symlinkat": {kind: analyzer.KindCreate, access: accW, decode: symlinkCall(0, 1, 2)},

		"unlink":   {kind: analyzer.KindDelete, access: accW, decode: pathCall(-1, 0, -1, emptyNo)},
		"unlinkat": {kind: analyzer.KindDelete, access: accW, decode: pathCall(0, 1, 2, emptyNo)},
		"rmdir":    {kind: analyzer.KindDelete, access: accW, decode: pathCall(-1, 0, -1, emptyNo)},

		"rename":    {kind: analyzer.KindRename, access: accW, decode: twoPathCall(-1, 0, -1, 1, -1, false)},
		"renameat":  {kind: analyzer.KindRename, access: accW, decode: twoPathCall(0, 1, 2, 3, -1, false)},
		"renameat2": {kind: analyzer.KindRename, access: accW, decode: twoPathCall(0, 1, 2, 3, 4, false)},
		"link":      {kind: analyzer.KindRename, access: accW, decode: twoPathCall(-1, 0, -1, 1, -1, false)},
		"linkat":    {kind: analyzer.KindRename, access: accW, decode: twoPathCall(0, 1, 2, 3, 4, true)},

		"chmod":         {kind: analyzer.KindAttr, access: accW, decode: chmodCall(-1, 0, 1, -1)},
		"fchmodat":      {kind: analyzer.KindAttr, access: accW, decode: chmodCall(0, 1, 2, -1)},
		"fchmodat2":     {kind: analyzer.KindAttr, access: accW, decode: chmodCall(0, 1, 2, 3)},
		"chown":         {kind: analyzer.KindAttr, access: accW, decode: pathCall(-1, 0, -1, emptyNo)},
		"lchown":        {kind: analyzer.KindAttr, access: accW, decode: pathCall(-1, 0, -1, emptyNo)},
		"fchownat":      {kind: analyzer.KindAttr, access: accW, decode: pathCall(0, 1, 4, emptyFlag)},
		"truncate":      {kind: analyzer.KindAttr, access: accW, decode: pathCall(-1, 0, -1, emptyNo)},
		"utimensat":     {kind: analyzer.KindAttr, access: accW, decode: utimensatCall},
		"utime":         {kind: analyzer.KindAttr, access: accW, decode: pathCall(-1, 0, -1, emptyNo)},
		"utimes":        {kind: analyzer.KindAttr, access: accW, decode: pathCall(-1, 0, -1, emptyNo)},
		"futimesat":     {kind: analyzer.KindAttr, access: accW, decode: pathCall(0, 1, -1, emptyNo)},
		"setxattr":      {kind: analyzer.KindAttr, access: accW, decode: pathCall(-1, 0, -1, emptyNo)},
		"lsetxattr":     {kind: analyzer.KindAttr, access: accW, decode: pathCall(-1, 0, -1, emptyNo)},
		"removexattr":   {kind: analyzer.KindAttr, access: accW, decode: pathCall(-1, 0, -1, emptyNo)},
		"lremovexattr":  {kind: analyzer.KindAttr, access: accW, decode: pathCall(-1, 0, -1, emptyNo)},
		"setxattrat":    {kind: analyzer.KindAttr, access: accW, decode: pathCall(0, 1, 2, emptyFlag)},
		"removexattrat": {kind: analyzer.KindAttr, access: accW, decode: pathCall(0, 1, 2, emptyFlag)},

		"chdir": {kind: analyzer.KindChdir, access: accR, decode: pathCall(-1, 0, -1, emptyNo)},

		"connect":  {kind: analyzer.KindConnect, decode: addrCall},
		"bind":     {kind: analyzer.KindBind, decode: addrCall},
		"sendto":   {kind: analyzer.KindConnect, decode: sendtoCall},
		"sendmsg":  {kind: analyzer.KindConnect, decode: sendmsgCall},
		"sendmmsg": {kind: analyzer.KindConnect, decode: sendmmsgCall},

		// Credentials change: nothing to decode, identity to refresh.
		"setuid": {forget: true}, "setgid": {forget: true}, "setreuid": {forget: true}, "setregid": {forget: true},
		"setresuid": {forget: true}, "setresgid": {forget: true}, "setfsuid": {forget: true}, "setfsgid": {forget: true},
		"setgroups": {forget: true}, "capset": {forget: true}, "unshare": {forget: true}, "setns": {forget: true},
	}
	maxNr := 0
	for name := range byName {
		nr, ok := profiles.SyscallNr(name)
		if !ok {
			panic("decode: unknown syscall " + name)
		}
		maxNr = max(maxNr, nr)
	}
	specs := make([]callSpec, maxNr+1)
	for name, s := range byName {
		nr, _ := profiles.SyscallNr(name)
		specs[nr] = s
	}
	return specs
}()

// flags returns argument i as the int flags word the kernel takes (upper
// 32 bits ignored), records it as Call.Flags, and 0 for i < 0.
func (d *decoding) flags(i int) uint64 {
	if i < 0 {
		return 0
	}
	f := uint64(uint32(d.a[i]))
	d.c.Flags = f
	return f
}

// dirfd returns argument i as a directory descriptor: AT_FDCWD for i < 0.
// The kernel takes an int: a 32-bit -100 in a 64-bit register is AT_FDCWD
// whatever the upper half holds.
func (d *decoding) dirfd(i int) int32 {
	if i < 0 {
		return atFDCWD
	}
	return int32(uint32(d.a[i]))
}

// str reads the NUL-terminated string argument i (at most PATH_MAX bytes).
// A string without NUL within PATH_MAX is returned truncated and marks the
// call Truncated; the kernel refuses such a path with ENAMETOOLONG.
func (d *decoding) str(i int, what string) (string, error) {
	s, ok, err := d.r.cString(d.a[i], maxPath)
	if err != nil {
		return "", readError(err, what)
	}
	if !ok {
		d.c.Truncated = true
	}
	return s, nil
}

// pathAt reads the path argument pathArg relative to the directory
// descriptor argument dirArg. With emptyOK (AT_EMPTY_PATH in the call's
// flags) an empty path, or a NULL one as statx and fstatat accept since
// Linux 6.11, names the descriptor itself.
func (d *decoding) pathAt(dirArg, pathArg int, emptyOK bool, what string) (string, error) {
	var p string
	if !emptyOK || d.a[pathArg] != 0 {
		var err error
		if p, err = d.str(pathArg, what); err != nil {
			return "", err
		}
	}
	return d.resolve(d.dirfd(dirArg), p, emptyOK, what)
}

// resolve makes p absolute and normal: against the cwd or dirfd when
// relative, then /proc/self and /proc/thread-self rewritten to the
// target's /proc/PID (they would otherwise name archangel's).
func (d *decoding) resolve(dirfd int32, p string, emptyOK bool, what string) (string, error) {
	switch {
	case p == "" && !emptyOK:
		return "", &decodeError{Errno: unix.ENOENT, What: what + ": empty path"}
	case p == "":
		base, err := d.dir(dirfd, false)
		if err != nil {
			return "", err
		}
		return d.final(base), nil
	case p[0] == '/':
		return d.final(normalizePath("/", p)), nil
	}
	base, err := d.dir(dirfd, true)
	if err != nil {
		return "", err
	}
	return d.final(normalizePath(base, p)), nil
}

// dir is the path of dirfd (the cwd for AT_FDCWD), as /proc/TID/cwd or
// /proc/TID/fd/N reads. A descriptor that is no file ("socket:[123]") is
// named /proc/PID/fd/N when the call is on the descriptor itself and is
// ENOTDIR, as in the kernel, when a relative path starts at it.
func (d *decoding) dir(dirfd int32, lookup bool) (string, error) {
	if dirfd == atFDCWD {
		if !d.hasCwd {
			cwd, err := d.r.cwd()
			if err != nil {
				return "", fmt.Errorf("read cwd: %w", err)
			}
			if !path.IsAbs(cwd) {
				// "(unreachable)/...": outside archangel's root (chroot,
				// other mount namespace). Fail closed.
				return "", fmt.Errorf("cwd %q is not reachable from archangel's root", cwd)
			}
			d.cwd, d.hasCwd = cwd, true
		}
		return d.cwd, nil
	}
	if dirfd < 0 {
		return "", &decodeError{Errno: unix.EBADF, What: fmt.Sprintf("descriptor %d", dirfd)}
	}
	p, err := d.r.fdPath(dirfd)
	switch {
	case errors.Is(err, unix.EBADF):
		return "", &decodeError{Errno: unix.EBADF, What: fmt.Sprintf("descriptor %d", dirfd)}
	case err != nil:
		return "", fmt.Errorf("read descriptor %d: %w", dirfd, err)
	case path.IsAbs(p):
		return p, nil
	case lookup:
		return "", &decodeError{Errno: unix.ENOTDIR, What: fmt.Sprintf("descriptor %d (%s)", dirfd, p)}
	}
	return "/proc/" + strconv.Itoa(d.c.Process.PID) + "/fd/" + strconv.Itoa(int(dirfd)), nil
}

func (d *decoding) final(p string) string {
	return rewriteProcSelf(p, d.c.Process.PID, d.c.Process.TID)
}

// normalizePath returns p made absolute against base (when p is relative)
// and cleaned lexically: no ".", "..", duplicate or trailing slashes;
// ".." at the root stays at the root. It follows no symlink (see the top
// of this file). A base that is not absolute is taken as relative to "/".
func normalizePath(base, p string) string {
	if strings.HasPrefix(p, "/") {
		return path.Clean(p)
	}
	if !strings.HasPrefix(base, "/") {
		base = "/" + base
	}
	return path.Clean(base + "/" + p)
}

// rewriteProcSelf rewrites /proc/self and /proc/thread-self, which name the
// process that resolves them, to the target's /proc/PID and
// /proc/PID/task/TID. p must be normalised.
func rewriteProcSelf(p string, pid, tid int) string {
	rest, ok := strings.CutPrefix(p, "/proc/")
	if !ok {
		return p
	}
	name, tail, _ := strings.Cut(rest, "/")
	if tail != "" {
		tail = "/" + tail
	}
	switch name {
	case "self":
		return "/proc/" + strconv.Itoa(pid) + tail
	case "thread-self":
		return "/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid) + tail
	}
	return p
}

// What an empty path names in a call: nothing (ENOENT), the descriptor
// when the flags have AT_EMPTY_PATH, or always the descriptor
// (readlinkat: do_readlinkat looks up with LOOKUP_EMPTY).
const (
	emptyNo = iota
	emptyFlag
	emptyAlways
)

// pathCall decodes a call on one path: (dirArg, pathArg) with the flags in
// flagsArg, recorded as Call.Flags.
func pathCall(dirArg, pathArg, flagsArg, empty int) func(*decoding) error {
	return func(d *decoding) error {
		f := d.flags(flagsArg)
		emptyOK := empty == emptyAlways || empty == emptyFlag && f&atEmptyPath != 0
		p, err := d.pathAt(dirArg, pathArg, emptyOK, "path")
		d.c.Path = p
		return err
	}
}

// openAccess is what open flags do to the file: O_ACCMODE, plus write for
// anything that creates or changes it. O_PATH opens neither for reading
// nor writing (the kernel drops every other flag) and counts as a read,
// like stat: it gives a descriptor to stat, fchdir or execveat with.
func openAccess(flags uint64) analyzer.Access {
	if flags&unix.O_PATH != 0 {
		return accR
	}
	var acc analyzer.Access
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		acc = accR
	case unix.O_WRONLY:
		acc = accW
	default: // O_RDWR, and 3, which needs both permissions
		acc = accR | accW
	}
	if flags&(unix.O_CREAT|unix.O_TRUNC|unix.O_APPEND|oTmpfileBit) != 0 {
		acc |= accW
	}
	return acc
}

// creates reports whether open flags take a mode (WILL_CREATE).
func creates(flags uint64) bool { return flags&(unix.O_CREAT|oTmpfileBit) != 0 }

// openCall decodes open, openat and creat: flags as build_open_how keeps
// them (unknown bits dropped; O_PATH keeps only O_PATH_FLAGS), the mode
// only when the call creates, after the target's umask. (A directory with
// a default ACL ignores the umask; the mode is then what the ACL makes
// it, which decoding does not know.)
func openCall(dirArg, pathArg, flagsArg, modeArg int, fixed uint64) func(*decoding) error {
	return func(d *decoding) error {
		flags := fixed
		if flagsArg >= 0 {
			flags = uint64(uint32(d.a[flagsArg])) & validOpenFlags
		}
		if flags&unix.O_PATH != 0 {
			flags &= oPathFlags
		}
		d.c.Flags = flags
		d.c.Access = openAccess(flags)
		p, err := d.pathAt(dirArg, pathArg, false, "path")
		d.c.Path = p
		if err != nil {
			return err
		}
		if creates(flags) {
			return d.mode(uint32(d.a[modeArg]) & sIALLUGO)
		}
		return nil
	}
}

// mode records m after the target's umask.
func (d *decoding) mode(m uint32) error {
	um, err := d.r.umask()
	if err != nil {
		return fmt.Errorf("read umask: %w", err)
	}
	d.c.Mode = m &^ um
	return nil
}

// openat2Call decodes openat2(dirfd, path, struct open_how *how, size).
// The kernel copies how with copy_struct_from_user: size below
// OPEN_HOW_SIZE_VER0 (24) is EINVAL, above a page E2BIG, and bytes past
// the ones it knows must be zero (E2BIG). With RESOLVE_IN_ROOT an absolute
// path and ".." stop at dirfd, which is then the root; RESOLVE_BENEATH
// refusals (EXDEV) are left to the kernel or to the emulated open.
func openat2Call(d *decoding) error {
	size := d.a[3]
	switch {
	case size < unix.SizeofOpenHow:
		return &decodeError{Errno: unix.EINVAL, What: fmt.Sprintf("open_how size %d", size)}
	case size > memPageSize:
		return &decodeError{Errno: unix.E2BIG, What: fmt.Sprintf("open_how size %d", size)}
	}
	var how [memPageSize]byte
	if err := d.r.read(d.a[2], how[:size]); err != nil {
		return readError(err, "open_how")
	}
	for _, b := range how[unix.SizeofOpenHow:size] {
		if b != 0 {
			return &decodeError{Errno: unix.E2BIG, What: "open_how has unknown non-zero fields"}
		}
	}
	flags := binary.NativeEndian.Uint64(how[0:])
	mode := binary.NativeEndian.Uint64(how[8:])
	resolve := binary.NativeEndian.Uint64(how[16:])
	d.c.Flags = flags
	d.c.Access = openAccess(flags)
	p, err := d.str(1, "path")
	if err != nil {
		return err
	}
	if resolve&unix.RESOLVE_IN_ROOT != 0 && p != "" {
		root, err := d.dir(d.dirfd(0), true)
		if err != nil {
			return err
		}
		d.c.Path = d.final(normalizePath(root, strings.TrimPrefix(normalizePath("/", p), "/")))
	} else if d.c.Path, err = d.resolve(d.dirfd(0), p, false, "path"); err != nil {
		return err
	}
	if creates(flags) {
		return d.mode(uint32(mode) & sIALLUGO)
	}
	return nil
}

// execCall decodes execve and execveat: the file (with AT_EMPTY_PATH, the
// file behind the descriptor: readlink of /proc/TID/fd/N, which for a
// memfd reads "/memfd:NAME (deleted)") and argv. envp is not decoded.
func execCall(dirArg, pathArg, argvArg, flagsArg int) func(*decoding) error {
	return func(d *decoding) error {
		f := d.flags(flagsArg)
		p, err := d.pathAt(dirArg, pathArg, flagsArg >= 0 && f&atEmptyPath != 0, "path")
		d.c.Path = p
		if err != nil {
			return err
		}
		d.c.Argv, err = d.argv(d.a[argvArg])
		return err
	}
}

// argv reads a NULL-terminated array of string pointers: at most maxArgv
// strings and maxArgvSize bytes (NULs included); more marks the call
// Truncated. A NULL argv is an empty one (Linux runs the program with
// argc 0, or since 5.18 with argv[0] = "").
func (d *decoding) argv(addr uint64) ([]string, error) {
	if addr == 0 {
		return nil, nil
	}
	var ptrs [maxArgv]uint64
	n := 0
	for ; ; n++ {
		if n == maxArgv {
			// Is there more? Only then is it truncated.
			var b [8]byte
			if err := d.r.read(addr+8*maxArgv, b[:]); err != nil || binary.NativeEndian.Uint64(b[:]) != 0 {
				d.c.Truncated = true
			}
			break
		}
		var b [8]byte
		if err := d.r.read(addr+8*uint64(n), b[:]); err != nil {
			return nil, readError(err, fmt.Sprintf("argv[%d] pointer", n))
		}
		if ptrs[n] = binary.NativeEndian.Uint64(b[:]); ptrs[n] == 0 {
			break
		}
	}
	argv := make([]string, 0, n)
	budget := maxArgvSize
	for i, p := range ptrs[:n] {
		if budget == 0 {
			d.c.Truncated = true
			break
		}
		s, ok, err := d.r.cString(p, budget)
		if err != nil {
			return nil, readError(err, fmt.Sprintf("argv[%d]", i))
		}
		argv = append(argv, s)
		if !ok {
			d.c.Truncated = true
			break
		}
		budget -= len(s) + 1
	}
	return argv, nil
}

// mkdirCall decodes mkdir and mkdirat: mode & (S_IRWXUGO | S_ISVTX) after
// the umask, as vfs_mkdir gets it.
func mkdirCall(dirArg, pathArg, modeArg int) func(*decoding) error {
	return func(d *decoding) error {
		p, err := d.pathAt(dirArg, pathArg, false, "path")
		d.c.Path = p
		if err != nil {
			return err
		}
		return d.mode(uint32(d.a[modeArg]) & (0o777 | unix.S_ISVTX))
	}
}

// mknodCall decodes mknod and mknodat: the file type bits stay, the
// permission bits lose the umask.
func mknodCall(dirArg, pathArg, modeArg int) func(*decoding) error {
	return func(d *decoding) error {
		p, err := d.pathAt(dirArg, pathArg, false, "path")
		d.c.Path = p
		if err != nil {
			return err
		}
		m := uint32(d.a[modeArg])
		if err := d.mode(m & sIALLUGO); err != nil {
			return err
		}
		d.c.Mode |= m & unix.S_IFMT
		return nil
	}
}

// chmodCall decodes chmod, fchmodat and fchmodat2: Mode is the new mode
// (no umask applies).
func chmodCall(dirArg, pathArg, modeArg, flagsArg int) func(*decoding) error {
	return func(d *decoding) error {
		f := d.flags(flagsArg)
		p, err := d.pathAt(dirArg, pathArg, flagsArg >= 0 && f&atEmptyPath != 0, "path")
		d.c.Path = p
		d.c.Mode = uint32(d.a[modeArg]) & sIALLUGO
		return err
	}
}

// symlinkCall decodes symlink(target, linkpath) and symlinkat(target,
// dirfd, linkpath): Path is the link created; Path2 is where it points,
// resolved lexically against the link's directory when relative, as it
// will be when followed. /proc/self in a target is not rewritten: it will
// name whichever process follows the link.
func symlinkCall(targetArg, dirArg, pathArg int) func(*decoding) error {
	return func(d *decoding) error {
		target, err := d.str(targetArg, "target")
		if err != nil {
			return err
		}
		if target == "" {
			return &decodeError{Errno: unix.ENOENT, What: "target: empty path"}
		}
		p, err := d.pathAt(dirArg, pathArg, false, "path")
		d.c.Path = p
		if err != nil {
			return err
		}
		d.c.Path2 = normalizePath(path.Dir(p), target)
		return nil
	}
}

// twoPathCall decodes the rename and link families: Path is the old name,
// Path2 the new. For linkat, atFlags says flagsArg holds AT_* flags whose
// AT_EMPTY_PATH applies to the old name; renameat2's RENAME_* flags are
// only recorded.
func twoPathCall(oldDir, oldPath, newDir, newPath, flagsArg int, atFlags bool) func(*decoding) error {
	return func(d *decoding) error {
		f := d.flags(flagsArg)
		var err error
		if d.c.Path, err = d.pathAt(oldDir, oldPath, atFlags && f&atEmptyPath != 0, "old path"); err != nil {
			return err
		}
		d.c.Path2, err = d.pathAt(newDir, newPath, false, "new path")
		return err
	}
}

// utimensatCall decodes utimensat(dirfd, path, times, flags). A NULL path
// with a real descriptor changes the descriptor's file (a Linux
// extension); with AT_FDCWD it is EFAULT, which the read reports.
func utimensatCall(d *decoding) error {
	f := d.flags(3)
	emptyOK := f&atEmptyPath != 0 || (d.a[1] == 0 && d.dirfd(0) != atFDCWD)
	p, err := d.pathAt(0, 1, emptyOK, "path")
	d.c.Path = p
	return err
}

// sockaddr reads addrLen bytes of address at addr and resolves a relative
// AF_UNIX path against the cwd (as unix_find_bsd does). The Unix field
// then holds an absolute, normalised path like Call.Path.
func (d *decoding) sockaddr(sa *analyzer.SockAddr) error {
	if sa == nil || sa.Family != unix.AF_UNIX || sa.Abstract || sa.Unnamed {
		return nil
	}
	p, err := d.resolve(atFDCWD, sa.Unix, false, "socket path")
	if err != nil {
		return err
	}
	sa.Unix = p
	return nil
}

// addrCall decodes connect and bind (fd, addr, addrlen).
func addrCall(d *decoding) error {
	n, err := addrLen(d.a[2], "address")
	if err != nil {
		return err
	}
	if d.c.Addr, err = sockaddrAt(d.r, d.a[1], n, "address"); err != nil {
		return err
	}
	return d.sockaddr(d.c.Addr)
}

// sendtoCall decodes sendto(fd, buf, len, flags, addr, addrlen): a NULL
// address, or a length of 0, is a send to the connected peer (Kind
// becomes KindOther).
func sendtoCall(d *decoding) error {
	d.flags(3)
	if d.a[4] == 0 {
		// The kernel looks at the length only with an address.
		d.c.Kind = analyzer.KindOther
		return nil
	}
	n, err := addrLen(d.a[5], "address")
	if err != nil {
		return err
	}
	if n == 0 {
		d.c.Kind = analyzer.KindOther
		return nil
	}
	if d.c.Addr, err = sockaddrAt(d.r, d.a[4], n, "address"); err != nil {
		return err
	}
	return d.sockaddr(d.c.Addr)
}

// sendmsgCall decodes sendmsg(fd, msg, flags): msg_name, when there is
// one. Descriptors passed in msg_control (SCM_RIGHTS) are not decoded.
func sendmsgCall(d *decoding) error {
	d.flags(2)
	sa, err := msgName(d.r, d.a[1], "msghdr")
	if err != nil {
		return err
	}
	if sa == nil {
		d.c.Kind = analyzer.KindOther
		return nil
	}
	d.c.Addr = sa
	return d.sockaddr(sa)
}

// sendmmsgCall decodes sendmmsg(fd, msgvec, vlen, flags). Call carries one
// address: the first message's that has one. Every message (vlen, at most
// UIO_MAXIOV as the kernel clamps it) is read; if another message names a
// different address the call is Truncated, so that it is never allowed on
// the strength of the first. Messages without an address go to the
// connected peer. An unreadable message after the first ends the batch
// there, as the kernel sends the ones before it and returns their count.
func sendmmsgCall(d *decoding) error {
	d.flags(3)
	vlen := min(uint32(d.a[2]), maxMmsg)
	d.c.Kind = analyzer.KindOther
	for i := range uint64(vlen) {
		sa, err := msgName(d.r, d.a[1]+i*sizeofMmsghdr, fmt.Sprintf("mmsghdr[%d]", i))
		if err != nil {
			if i == 0 {
				return err
			}
			break
		}
		if sa == nil {
			continue
		}
		if err := d.sockaddr(sa); err != nil {
			if i == 0 {
				return err
			}
			break
		}
		switch {
		case d.c.Addr == nil:
			d.c.Addr, d.c.Kind = sa, analyzer.KindConnect
		case !sameSockaddr(d.c.Addr, sa):
			d.c.Truncated = true
		}
	}
	return nil
}
