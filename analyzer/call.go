package analyzer

import (
	"net/netip"
)

// Kind classifies a notified call by what its pointer arguments mean.
type Kind int

const (
	KindOther   Kind = iota // no pointer argument archangel decodes
	KindOpen                // open, openat, openat2, creat: Path, Flags, Mode
	KindStat                // stat family, access family, readlink: Path
	KindExec                // execve, execveat: Path, Argv
	KindCreate              // mkdir, mknod, symlink (Path is the new name; Path2 the target of symlink)
	KindDelete              // unlink, unlinkat, rmdir: Path
	KindRename              // rename family, link family: Path (old) and Path2 (new)
	KindAttr                // chmod, chown, utimes, truncate, xattr families: Path
	KindConnect             // connect, sendto/sendmsg/sendmmsg with an address: Addr
	KindBind                // bind: Addr
	KindChdir               // chdir: Path
)

var kindNames = [...]string{"other", "open", "stat", "exec", "create", "delete", "rename", "attr", "connect", "bind", "chdir"}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Access is what a path call does to the file.
type Access uint8

const (
	AccessRead  Access = 1 << iota // open for reading, stat, readlink, exec's read of the file
	AccessWrite                    // open for writing, create, delete, rename, attr changes
	AccessExec                     // execve of the file
)

// SockAddr is a decoded socket address.
type SockAddr struct {
	Family   uint16         // AF_INET, AF_INET6, AF_UNIX, or another family number
	Addr     netip.AddrPort // for AF_INET and AF_INET6
	Unix     string         // AF_UNIX path; for an abstract socket the name without the NUL
	Abstract bool           // AF_UNIX abstract namespace
	Unnamed  bool           // AF_UNIX with no name (autobind)
}

// Process is the identity of the thread that made a call.
type Process struct {
	PID    int    // thread group ID
	TID    int    // the thread that made the call
	PPID   int    //
	Exe    string // /proc/PID/exe target
	ExeIno uint64 // inode of the executable (tells a replaced binary apart)
	Comm   string //
	UID    uint32 // real UID
	EUID   uint32
	GID    uint32 // real GID
	FSUID  uint32 // filesystem UID: what file access is checked against
	FSGID  uint32
	Cgroup string // cgroup v2 path, or the first line of /proc/PID/cgroup
}

// Call is one notified system call, decoded into its canonical form: the
// supervisor fills it from the notification and the target's memory, and
// rules, patterns and the analyzer decide on it.
type Call struct {
	Nr      int32
	Name    string
	Arch    uint32
	Args    [6]uint64
	Kind    Kind
	Access  Access
	Process Process

	Path  string    // absolute, normalised ("." and ".." resolved lexically, no trailing slash); "" if none
	Path2 string    // second path of rename/link/symlink
	Flags uint64    // open flags (O_*), or the flags argument of the call
	Mode  uint32    // creation mode, after the target's umask
	Addr  *SockAddr // connect/bind/sendto address; nil if none
	Argv  []string  // execve argument vector (bounded)

	// Truncated reports that a path or argv was longer than archangel reads;
	// such a call is never allowed on the strength of the truncated value.
	Truncated bool
}
